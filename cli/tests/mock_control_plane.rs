//! Runs the built `emberctl` binary against an in-process mock of the Admin gRPC service,
//! to check the whole path (request fields, reply rendering, error mapping, exit codes)
//! without the real control plane.

use std::net::SocketAddr;
use std::process::{Output, Stdio};
use std::time::Duration;

use ember_proto::pb;
use ember_proto::pb::admin_server::{Admin, AdminServer};
use tokio::io::{AsyncBufReadExt, BufReader};
use tonic::codegen::tokio_stream::{self, StreamExt};
use tonic::{Request, Response, Status};

const CLUSTER: &str = "00000000-0000-0000-0000-00000000002a";
const N1: &str = "11111111-0000-0000-0000-000000000001";
const N2: &str = "22222222-0000-0000-0000-000000000002";
const N3: &str = "33333333-0000-0000-0000-000000000003";

fn node(id: &str, name: &str, port: u16) -> pb::Node {
    pb::Node {
        id: id.into(),
        name: name.into(),
        client_addr: format!("127.0.0.1:{port}"),
        internal_addr: format!("127.0.0.1:{}", port + 10000),
        role: pb::Role::Primary.into(),
        primary_id: String::new(),
        failed: false,
        config_epoch: 0,
    }
}

fn topology(version: u64, n2_failed: bool) -> pb::Topology {
    let mut n1 = node(N1, "n1", 7001);
    n1.config_epoch = 1;
    let mut n2 = node(N2, "", 7002);
    n2.config_epoch = 2;
    n2.failed = n2_failed;
    pb::Topology {
        cluster_id: CLUSTER.into(),
        version,
        current_epoch: 2,
        require_full_coverage: true,
        nodes: vec![n1, n2],
        slots: vec![
            pb::SlotOwner {
                start: 0,
                end: 8191,
                node_id: N1.into(),
            },
            pb::SlotOwner {
                start: 8192,
                end: 16383,
                node_id: N2.into(),
            },
        ],
        migrations: vec![],
    }
}

fn reply(changed: bool, summary: String) -> Result<Response<pb::ChangeReply>, Status> {
    Ok(Response::new(pb::ChangeReply {
        topology: Some(topology(5, false)),
        changed,
        summary,
    }))
}

struct Mock;

#[tonic::async_trait]
impl Admin for Mock {
    async fn get_state(
        &self,
        _: Request<pb::GetStateRequest>,
    ) -> Result<Response<pb::ClusterState>, Status> {
        Ok(Response::new(pb::ClusterState {
            topology: Some(topology(5, false)),
            pending: vec![node(N3, "n3", 7003)],
            status: vec![pb::NodeStatus {
                node_id: N1.into(),
                connected: true,
                applied_version: 5,
                key_count: 4242,
                millis_since_heartbeat: 100,
            }],
        }))
    }

    async fn bootstrap(
        &self,
        r: Request<pb::BootstrapRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        reply(
            false,
            format!(
                "already bootstrapped with {}",
                r.into_inner().nodes.join(",")
            ),
        )
    }

    async fn join(&self, r: Request<pb::JoinRequest>) -> Result<Response<pb::ChangeReply>, Status> {
        let r = r.into_inner();
        match r.node.as_str() {
            "ghost" => Err(Status::not_found("no node matches 'ghost'")),
            "n1" => Err(Status::failed_precondition("n1 is already a member")),
            _ => reply(
                true,
                format!("{} joined (replica_of='{}')", r.node, r.replica_of),
            ),
        }
    }

    async fn assign(
        &self,
        r: Request<pb::AssignRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let r = r.into_inner();
        let ranges: Vec<String> = r
            .slots
            .iter()
            .map(|s| format!("{}-{}", s.start, s.end))
            .collect();
        reply(true, format!("assigned {} to {}", ranges.join(" "), r.node))
    }

    async fn forget(
        &self,
        r: Request<pb::ForgetRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let r = r.into_inner();
        reply(true, format!("forgot {} (force={})", r.node, r.force))
    }

    async fn set_config(
        &self,
        r: Request<pb::SetConfigRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        reply(
            true,
            format!(
                "require_full_coverage={:?}",
                r.into_inner().require_full_coverage
            ),
        )
    }

    type WatchStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::Topology, Status>> + Send>>;

    async fn watch(
        &self,
        _: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let versions = vec![
            Ok(topology(5, false)),
            Ok(topology(5, false)),
            Ok(topology(6, true)),
        ];
        Ok(Response::new(Box::pin(
            tokio_stream::iter(versions).chain(tokio_stream::pending()),
        )))
    }
}

async fn start_mock() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AdminServer::new(Mock))
            .serve_with_incoming(incoming),
    );
    addr
}

async fn emberctl(addr: SocketAddr, args: &[&str]) -> (Option<i32>, String, String) {
    let out: Output = tokio::process::Command::new(env!("CARGO_BIN_EXE_emberctl"))
        .arg("--control-plane")
        .arg(format!("http://{addr}"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_commands_render_tables_and_json() {
    let addr = start_mock().await;

    let (code, out, err) = emberctl(addr, &["status"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&format!("cluster id             {CLUSTER}")),
        "{out}"
    );
    assert!(out.contains("state                  ok"), "{out}");
    assert!(out.contains("16384 assigned, 16384 ok"), "{out}");

    let (code, out, _) = emberctl(addr, &["nodes"]).await;
    assert_eq!(code, Some(0));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[1].starts_with("11111111  n1")
            && lines[1].contains("0-8191")
            && lines[1].contains("4242"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("22222222  -") && lines[2].contains("8192-16383"),
        "{out}"
    );
    assert!(
        lines[3].contains("n3") && lines[3].contains("pending"),
        "{out}"
    );

    let (code, out, _) = emberctl(addr, &["nodes", "--json"]).await;
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["cluster_id"], CLUSTER);
    assert_eq!(v["nodes"][0]["slots"], serde_json::json!(["0-8191"]));
    assert_eq!(v["nodes"][0]["key_count"], 4242);
    assert!(v["nodes"][1]["key_count"].is_null());
    assert_eq!(v["pending"][0]["name"], "n3");

    let (code, out, _) = emberctl(addr, &["slots"]).await;
    assert_eq!(code, Some(0));
    assert!(
        out.contains("0-8191") && out.contains("127.0.0.1:7002"),
        "{out}"
    );

    let (code, out, _) = emberctl(addr, &["pending"]).await;
    assert_eq!(code, Some(0));
    assert!(
        out.contains("n3") && out.contains("emberctl join NODE"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_send_the_right_requests_and_map_errors() {
    let addr = start_mock().await;

    let (code, out, _) = emberctl(addr, &["assign", "n2", "0-5460", "7000", "7001"]).await;
    assert_eq!(
        (code, out.trim()),
        (Some(0), "assigned 0-5460 7000-7001 to n2")
    );

    let (code, out, _) = emberctl(addr, &["bootstrap", "n1", "n2"]).await;
    assert_eq!(code, Some(0));
    assert!(
        out.contains("already bootstrapped with n1,n2") && out.contains("already in effect"),
        "{out}"
    );

    let (code, out, _) = emberctl(addr, &["join", "n3", "--replica-of", "n1"]).await;
    assert_eq!((code, out.trim()), (Some(0), "n3 joined (replica_of='n1')"));

    let (code, out, err) = emberctl(addr, &["join", "ghost"]).await;
    assert_eq!(code, Some(1));
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: no node matches 'ghost' (is the node running?"),
        "{err}"
    );
    assert!(
        err.contains(&format!("--control-plane http://{addr}")),
        "{err}"
    );

    let (code, _, err) = emberctl(addr, &["join", "n1"]).await;
    assert_eq!(
        (code, err.as_str()),
        (Some(1), "error: n1 is already a member\n")
    );

    let (code, out, _) = emberctl(addr, &["config", "set", "require-full-coverage", "no"]).await;
    assert_eq!(
        (code, out.trim()),
        (Some(0), "require_full_coverage=Some(false)")
    );

    let (code, out, err) = emberctl(addr, &["forget", "n1", "--force"]).await;
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0]
            .starts_with("forgetting n1 (11111111) drops 8192 slots (0-8191) holding 4242 keys"),
        "{out}"
    );
    assert_eq!(lines[1], "forgot n1 (force=true)");
    assert!(
        lines[2].starts_with("8192 slots (0-8191) are now unassigned; 4242 keys"),
        "{out}"
    );

    let (code, out, err) = emberctl(addr, &["forget", "n1", "--force", "--json"]).await;
    assert_eq!(code, Some(0));
    assert!(
        err.contains("drops 8192 slots"),
        "preview goes to stderr with --json: {err}"
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["changed"].as_bool(), v["dropped"]["slot_count"].as_u64()),
        (Some(true), Some(8192))
    );
    assert_eq!(v["cluster"]["version"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_prints_one_line_per_new_version() {
    let addr = start_mock().await;
    for json in [false, true] {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_emberctl"));
        cmd.arg("--control-plane")
            .arg(format!("http://{addr}"))
            .arg("watch");
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut next = async || {
            tokio::time::timeout(Duration::from_secs(10), lines.next_line())
                .await
                .unwrap()
                .unwrap()
                .unwrap()
        };
        let (first, second) = (next().await, next().await);
        if json {
            let a: serde_json::Value = serde_json::from_str(&first).unwrap();
            let b: serde_json::Value = serde_json::from_str(&second).unwrap();
            assert_eq!(
                (a["version"].as_u64(), b["version"].as_u64()),
                (Some(5), Some(6))
            );
            assert_eq!(b["state"], "fail");
            assert_eq!(
                b["changes"],
                serde_json::json!(["cluster state ok -> fail", "node 22222222 failed"])
            );
        } else {
            assert!(
                first.contains("  v5  epoch 2  ok    2 members, 16384 slots assigned"),
                "{first}"
            );
            // The duplicate v5 is skipped.
            assert!(
                second.contains(
                    "  v6  epoch 2  fail  cluster state ok -> fail; node 22222222 failed"
                ),
                "{second}"
            );
        }
        child.kill().await.unwrap();
    }
}
