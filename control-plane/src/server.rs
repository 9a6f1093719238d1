//! Wires the gRPC services together: admin, session, health (tonic-health) and server
//! reflection (so grpcurl works), and runs them until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ember_proto::pb::{admin_server::AdminServer, session_server::SessionServer};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::admin::AdminService;
use crate::authority::Authority;
use crate::session::SessionService;
use crate::store::Store;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub node_timeout: Duration,
    /// Most migrations running at once.
    pub max_migrations: usize,
    /// A migration whose target reports no progress for this long is aborted.
    pub migration_timeout: Duration,
    /// `--replica-validity-factor` (0: no bound).
    pub replica_validity_factor: u32,
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
    let store = Store::open(&config.data_dir)?;
    let heartbeat = crate::session::heartbeat_interval(config.node_timeout);
    let authority = Authority::open(
        store,
        crate::lease::length(config.node_timeout, heartbeat),
        crate::heartbeater::Promotion::new(config.node_timeout, config.replica_validity_factor),
    )?;
    let heartbeater = tokio::spawn(crate::heartbeater::run(
        authority.clone(),
        config.node_timeout,
        config.migration_timeout,
    ));

    let (health, health_service) = tonic_health::server::health_reporter();
    // Health follows persistence: while changes cannot be saved the control plane is
    // NOT_SERVING (it still answers reads), and SERVING again once a save succeeds.
    let mut persistence = authority.persistence();
    let health_task = tokio::spawn(async move {
        loop {
            let failing = persistence.borrow_and_update().is_some();
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
            if persistence.changed().await.is_err() {
                return;
            }
        }
    });
    // No background task may die silently: if one ends, the process stops with a message.
    let shutdown = async move {
        tokio::select! {
            _ = shutdown => {}
            r = heartbeater => {
                tracing::error!("the heartbeater stopped ({r:?}); shutting down");
                std::process::exit(70);
            }
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
        data_dir = %config.data_dir.display(),
        node_timeout = ?config.node_timeout,
        "control plane serving"
    );
    tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(10)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(
            AdminServer::new(AdminService::new(authority.clone(), config.max_migrations))
                .max_decoding_message_size(ember_proto::MAX_ADMIN_MESSAGE)
                .max_encoding_message_size(ember_proto::MAX_ADMIN_MESSAGE),
        )
        .add_service(SessionServer::new(SessionService::new(
            authority,
            config.node_timeout,
        )))
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await?;
    Ok(())
}
