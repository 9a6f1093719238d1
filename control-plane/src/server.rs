//! Wires the gRPC services together: admin, session, health (tonic-health) and server
//! reflection (so grpcurl works), and runs them until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ember_proto::pb::{admin_server::AdminServer, session_server::SessionServer};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::admin::AdminService;
use crate::authority::Authority;
use crate::forward::{Forward, Router};
use crate::leadership::{LeaderTasks, Role};
use crate::session::SessionService;
use crate::store::etcd::EtcdStore;
use crate::store::file::Store;
use crate::store::StateStore;

/// Where the state is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// `DATA_DIR/state.json`: one control-plane process.
    File { data_dir: PathBuf },
    /// etcd: several control-plane processes, one elected leader.
    Etcd {
        endpoints: Vec<String>,
        prefix: String,
        /// The leadership lease's TTL.
        lease_ttl: Duration,
        /// This process's URL as the others (and their forwarded requests) reach it.
        advertise: String,
    },
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub store: StoreConfig,
    pub node_timeout: Duration,
    /// Most migrations running at once.
    pub max_migrations: usize,
    /// A migration whose target reports no progress for this long is aborted.
    pub migration_timeout: Duration,
    /// `--replica-validity-factor` (0: no bound).
    pub replica_validity_factor: u32,
}

/// The leader's tasks (the heartbeater: failure detection, failovers, migration
/// timeouts), each stopped by the token it is started with.
fn leader_tasks(authority: Arc<Authority>, config: &Config) -> LeaderTasks {
    let (node_timeout, migration_timeout) = (config.node_timeout, config.migration_timeout);
    Box::new(move |token| {
        let authority = authority.clone();
        vec![tokio::spawn(async move {
            tokio::select! {
                _ = crate::heartbeater::run(authority, node_timeout, migration_timeout) => {
                    tracing::error!("the heartbeater stopped; shutting down");
                    std::process::exit(70);
                }
                _ = token.cancelled() => {}
            }
        })]
    })
}

/// Opens the state, binds the listener and serves until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    serve(listener, config, shutdown).await
}

pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let heartbeat = crate::session::heartbeat_interval(config.node_timeout);
    let lease_length = crate::lease::length(config.node_timeout, heartbeat);
    let promotion =
        crate::heartbeater::Promotion::new(config.node_timeout, config.replica_validity_factor);
    let stop = tokio_util::sync::CancellationToken::new();
    let (authority, background) = match &config.store {
        StoreConfig::File { data_dir } => {
            let store: Arc<dyn StateStore> = Arc::new(Store::open(data_dir)?);
            let authority = Authority::new(
                store,
                Role::Leader {
                    url: String::new(),
                    term: 0,
                },
                lease_length,
                promotion,
            );
            authority.take_over().await?;
            let tasks = leader_tasks(authority.clone(), &config)(stop.child_token());
            (authority, tasks)
        }
        StoreConfig::Etcd {
            endpoints,
            prefix,
            lease_ttl,
            advertise,
        } => {
            let store = Arc::new(EtcdStore::connect(endpoints.clone(), prefix).await?);
            let authority =
                Authority::new(store.clone(), Role::electing(), lease_length, promotion);
            let election = tokio::spawn(crate::leadership::run(
                store,
                authority.clone(),
                advertise.clone(),
                *lease_ttl,
                leader_tasks(authority.clone(), &config),
                stop.child_token(),
            ));
            (authority, vec![election])
        }
    };
    let router = Router::new(authority.role());

    let (health, health_service) = tonic_health::server::health_reporter();
    // Health follows persistence and leadership: while changes cannot be saved, or no
    // leader is known, the control plane is NOT_SERVING (it still answers reads), and
    // SERVING again once a save succeeds and a leader is elected.
    let mut persistence = authority.persistence();
    let mut role = authority.role();
    let health_task = tokio::spawn(async move {
        loop {
            let failing = persistence.borrow_and_update().is_some()
                || matches!(*role.borrow_and_update(), Role::NoLeader { .. });
            if failing {
                health.set_not_serving::<AdminServer<AdminService>>().await;
                health
                    .set_not_serving::<SessionServer<SessionService>>()
                    .await;
                health
                    .set_service_status("", tonic_health::ServingStatus::NotServing)
                    .await;
            } else {
                health.set_serving::<AdminServer<AdminService>>().await;
                health.set_serving::<SessionServer<SessionService>>().await;
                health
                    .set_service_status("", tonic_health::ServingStatus::Serving)
                    .await;
            }
            let changed = tokio::select! {
                r = persistence.changed() => r,
                r = role.changed() => r,
            };
            if changed.is_err() {
                return;
            }
        }
    });
    // No background task may die silently: if one ends, the process stops with a message.
    let shutdown = async move {
        tokio::select! {
            _ = shutdown => {}
            r = health_task => {
                tracing::error!("the health reporter stopped ({r:?}); shutting down");
                std::process::exit(70);
            }
        }
    };
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(ember_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;

    tracing::info!(
        listen = %listener.local_addr()?,
        store = ?config.store,
        node_timeout = ?config.node_timeout,
        "control plane serving"
    );
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(Forward::new(
            AdminServer::new(AdminService::new(authority.clone(), config.max_migrations))
                .max_decoding_message_size(ember_proto::MAX_ADMIN_MESSAGE)
                .max_encoding_message_size(ember_proto::MAX_ADMIN_MESSAGE),
            router.clone(),
        ))
        .add_service(Forward::new(
            SessionServer::new(SessionService::new(authority, config.node_timeout)),
            router,
        ))
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await?;
    // Ordering: the leader's tasks stop (and an etcd leader steps down) once no
    // request is served any more.
    stop.cancel();
    for task in background {
        let _ = task.await;
    }
    Ok(())
}
