//! The control plane commits a migration only on its target's promise: `ready` is
//! answered with a `PromiseRequest` on the target's session (and commits nothing),
//! `promised` commits, and a target that answers `failed` (it agreed to abort the
//! handoff) gets the migration aborted. Two fake nodes speak the session protocol.

use std::time::Duration;

use ember_control_plane::server::{self, Config, StoreConfig};
use ember_proto::pb::{
    self, admin_client::AdminClient, control_message, migration_report::Kind, node_message,
    session_client::SessionClient,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use uuid::Uuid;

const T: Duration = Duration::from_secs(10);

/// One fake data node: its outbound queue and the control plane's messages to it.
struct Node {
    id: Uuid,
    tx: mpsc::Sender<pb::NodeMessage>,
    inbound: tonic::Streaming<pb::ControlMessage>,
}

impl Node {
    async fn connect(channel: Channel, name: &str, port: u16) -> Node {
        let id = Uuid::new_v4();
        let (tx, rx) = mpsc::channel(16);
        tx.send(pb::NodeMessage {
            msg: Some(node_message::Msg::Hello(pb::Hello {
                node_id: id.to_string(),
                name: name.into(),
                client_addr: format!("127.0.0.1:{port}"),
                internal_addr: format!("127.0.0.1:{}", port + 1),
                ..Default::default()
            })),
        })
        .await
        .unwrap();
        let mut inbound = SessionClient::new(channel)
            .open(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let first = inbound.message().await.unwrap().unwrap();
        assert!(matches!(first.msg, Some(control_message::Msg::Welcome(_))));
        Node { id, tx, inbound }
    }

    async fn report(&self, migration: &str, kind: Kind) {
        let report = pb::MigrationReport {
            id: migration.into(),
            kind: kind.into(),
            error: if kind == Kind::Failed {
                "target: agreed to abort".into()
            } else {
                String::new()
            },
            ..Default::default()
        };
        self.tx
            .send(pb::NodeMessage {
                msg: Some(node_message::Msg::Migration(report)),
            })
            .await
            .unwrap();
    }

    /// Sends a heartbeat carrying `mark` as its key count and waits until the control
    /// plane shows it: everything sent before on this stream has been acted on.
    async fn sync(&self, admin: &mut AdminClient<Channel>, mark: u64) {
        self.tx
            .send(pb::NodeMessage {
                msg: Some(node_message::Msg::Heartbeat(pb::Heartbeat {
                    applied_version: 0,
                    key_count: mark,
                    ..Default::default()
                })),
            })
            .await
            .unwrap();
        let id = self.id.to_string();
        wait_for(admin, "the heartbeat mark", |s| {
            s.status
                .iter()
                .any(|n| n.node_id == id && n.key_count == mark)
        })
        .await;
    }

    /// The next promise request, skipping snapshots; `None` if none comes within `wait`.
    async fn promise_request(&mut self, wait: Duration) -> Option<pb::PromiseRequest> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.inbound.message())
                .await
                .ok()?
                .unwrap()
                .unwrap();
            if let Some(control_message::Msg::PromiseRequest(p)) = msg.msg {
                return Some(p);
            }
        }
    }
}

async fn state(admin: &mut AdminClient<Channel>) -> pb::ClusterState {
    admin
        .get_state(pb::GetStateRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// Polls the state until `f` holds.
async fn wait_for(
    admin: &mut AdminClient<Channel>,
    what: &str,
    f: impl Fn(&pb::ClusterState) -> bool,
) -> pb::ClusterState {
    let deadline = tokio::time::Instant::now() + T;
    loop {
        let s = state(admin).await;
        if f(&s) {
            return s;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn running(s: &pb::ClusterState) -> bool {
    !s.topology.as_ref().unwrap().migrations.is_empty()
}

async fn start_migration(admin: &mut AdminClient<Channel>, slots: (u32, u32)) -> String {
    let reply = admin
        .migrate(pb::MigrateRequest {
            target: "b".into(),
            slots: vec![pb::SlotRange {
                start: slots.0,
                end: slots.1,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    reply.topology.unwrap().migrations[0].id.clone()
}

#[tokio::test]
async fn a_migration_commits_only_on_its_targets_promise() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Config {
        listen: addr,
        store: StoreConfig::File {
            data_dir: dir.path().join("cp"),
        },
        node_timeout: Duration::from_secs(60),
        max_migrations: 2,
        migration_timeout: Duration::from_secs(60),
        replica_validity_factor: 10,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let cp = tokio::spawn(server::serve(listener, config, async {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut admin = AdminClient::new(channel.clone());
    let a = Node::connect(channel.clone(), "a", 17001).await;
    let mut b = Node::connect(channel.clone(), "b", 17003).await;
    admin
        .bootstrap(pb::BootstrapRequest {
            nodes: vec!["a".into()],
            replicas: 0,
        })
        .await
        .unwrap();
    admin
        .join(pb::JoinRequest {
            node: "b".into(),
            replica_of: String::new(),
        })
        .await
        .unwrap();

    // READY asks for the promise and commits nothing; a READY from the source asks nothing.
    let m1 = start_migration(&mut admin, (0, 99)).await;
    a.report(&m1, Kind::Ready).await;
    b.report(&m1, Kind::Ready).await;
    let asked = b.promise_request(T).await.expect("a promise request");
    assert_eq!(asked.migration_id, m1);
    // Re-sent READYs ask again (idempotent on the node).
    b.report(&m1, Kind::Ready).await;
    assert!(b.promise_request(T).await.is_some(), "asked again");
    assert!(
        running(&state(&mut admin).await),
        "READY alone must not commit"
    );
    // A PROMISED from the source is not the target's word.
    a.report(&m1, Kind::Promised).await;
    a.sync(&mut admin, 1).await;
    assert!(running(&state(&mut admin).await));

    // PROMISED commits: the target owns the slots.
    b.report(&m1, Kind::Promised).await;
    let s = wait_for(&mut admin, "the commit", |s| !running(s)).await;
    let t = s.topology.unwrap();
    let b_index = t
        .nodes
        .iter()
        .position(|n| n.id == b.id.to_string())
        .unwrap() as u32;
    assert!(
        t.slots
            .iter()
            .any(|r| r.start == 0 && r.end == 99 && r.node == b_index),
        "slots 0-99 belong to b: {:?}",
        t.slots
    );
    assert!(s.finished.last().unwrap().committed);

    // A target that agreed to abort answers the promise request with FAILED: aborted.
    let m2 = start_migration(&mut admin, (100, 199)).await;
    b.report(&m2, Kind::Ready).await;
    assert!(b.promise_request(T).await.is_some());
    b.report(&m2, Kind::Failed).await;
    let s = wait_for(&mut admin, "the abort", |s| !running(s)).await;
    let last = s.finished.last().unwrap();
    assert_eq!(last.migration.as_ref().unwrap().id, m2);
    assert!(!last.committed, "aborted, not committed");
    // A late PROMISED for the aborted migration changes nothing.
    let version = s.topology.as_ref().unwrap().version;
    b.report(&m2, Kind::Promised).await;
    b.sync(&mut admin, 2).await;
    let after = state(&mut admin).await;
    assert_eq!(after.topology.unwrap().version, version);

    drop((a, b));
    let _ = stop.send(());
    cp.await.unwrap().unwrap();
}
