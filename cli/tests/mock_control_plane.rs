//! Runs the built `emberctl` binary against an in-process mock of the Admin gRPC service,
//! to check the whole path (request fields, reply rendering, error mapping, exit codes)
//! without the real control plane.

use std::net::SocketAddr;
use std::process::{Output, Stdio};
use std::sync::{Arc, Mutex};
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
            // Owners by index into `nodes`.
            pb::SlotOwner {
                start: 0,
                end: 8191,
                node: 0,
            },
            pb::SlotOwner {
                start: 8192,
                end: 16383,
                node: 1,
            },
        ],
        migrations: vec![],
        ..Default::default()
    }
}

fn reply(changed: bool, summary: String) -> Result<Response<pb::ChangeReply>, Status> {
    Ok(Response::new(pb::ChangeReply {
        topology: Some(topology(5, false)),
        changed,
        summary,
    }))
}

/// How a mock behaves beyond the fixed replies.
#[derive(Clone, Default)]
struct Config {
    /// The moves PlanMoves answers (source, target, start, end).
    plan: Vec<(&'static str, &'static str, u32, u32)>,
    /// A migration holding this slot aborts with this reason instead of committing.
    abort: Option<(u32, &'static str)>,
    /// GetState lists no pending node until it was called this many times.
    pending_after: u32,
    /// A running migration and a finished one, for `migrations`.
    with_migrations: bool,
}

/// The mutable side of the mock: the slot map, migrations, and what GetState reports.
struct State {
    config: Config,
    version: u64,
    owners: Vec<&'static str>,
    /// Running migrations with the GetState calls left before they end.
    running: Vec<(pb::Migration, u32)>,
    progress: Vec<pb::MigrationProgress>,
    finished: Vec<pb::FinishedMigration>,
    get_state_calls: u32,
    next_id: u32,
}

fn migration(id: &str, source: &str, target: &str, start: u32, end: u32) -> pb::Migration {
    pb::Migration {
        id: id.into(),
        slots: vec![pb::SlotRange { start, end }],
        source_id: source.into(),
        target_id: target.into(),
        state: pb::MigrationState::Streaming.into(),
    }
}

impl State {
    fn new(config: Config) -> Self {
        let mut owners = vec![N1; 16384];
        owners[8192..].fill(N2);
        let mut s = Self {
            config,
            version: 5,
            owners,
            running: vec![],
            progress: vec![],
            finished: vec![],
            get_state_calls: 0,
            next_id: 0,
        };
        if s.config.with_migrations {
            let m = migration("aaaabbbb-0000-4000-8000-000000000001", N1, N2, 0, 99);
            s.progress.push(pb::MigrationProgress {
                id: m.id.clone(),
                keys: 1500,
                bytes: 2_500_000,
                keys_total: 3000,
                millis: 2500,
            });
            s.running.push((m, u32::MAX));
            s.finished.push(pb::FinishedMigration {
                migration: Some(migration(
                    "ccccdddd-0000-4000-8000-000000000002",
                    N2,
                    N1,
                    8192,
                    8200,
                )),
                committed: false,
                reason: "the target stopped answering".into(),
                keys: 10,
                bytes: 1000,
                millis: 1200,
            });
        }
        s
    }

    fn topology(&self) -> pb::Topology {
        let mut t = topology(self.version, false);
        t.slots.clear();
        let index = |id: &str| {
            t.nodes
                .iter()
                .position(|n| n.id == id)
                .expect("owner listed") as u32
        };
        for (slot, owner) in self.owners.iter().enumerate() {
            let node = index(owner);
            match t.slots.last_mut() {
                Some(run) if run.node == node => run.end = slot as u32,
                _ => t.slots.push(pb::SlotOwner {
                    start: slot as u32,
                    end: slot as u32,
                    node,
                }),
            }
        }
        t.migrations = self.running.iter().map(|(m, _)| m.clone()).collect();
        t
    }

    /// One GetState call: running migrations progress, and end when their time is up.
    fn tick(&mut self) {
        self.get_state_calls += 1;
        let mut ended = vec![];
        // u32::MAX: a migration that runs forever, with fixed progress.
        for (m, left) in self.running.iter_mut().filter(|(_, l)| *l != u32::MAX) {
            *left -= 1;
            if let Some(p) = self.progress.iter_mut().find(|p| p.id == m.id) {
                p.keys += 500;
                p.bytes += 50_000;
                p.keys_total = 1000;
                p.millis += 100;
            }
            if *left == 0 {
                ended.push(m.clone());
            }
        }
        for m in ended {
            self.running.retain(|(r, _)| r.id != m.id);
            let p = self.progress.iter().position(|p| p.id == m.id).unwrap();
            let p = self.progress.remove(p);
            let r = &m.slots[0];
            let abort = self
                .config
                .abort
                .filter(|(slot, _)| (r.start..=r.end).contains(slot));
            if abort.is_none() {
                let target = if m.target_id == N1 { N1 } else { N2 };
                self.owners[r.start as usize..=r.end as usize].fill(target);
            }
            self.version += 1;
            self.finished.push(pb::FinishedMigration {
                migration: Some(m),
                committed: abort.is_none(),
                reason: abort.map_or(String::new(), |(_, why)| why.to_string()),
                keys: p.keys,
                bytes: p.bytes,
                millis: p.millis,
            });
        }
    }
}

#[derive(Clone)]
struct Mock(Arc<Mutex<State>>);

#[tonic::async_trait]
impl Admin for Mock {
    async fn get_state(
        &self,
        _: Request<pb::GetStateRequest>,
    ) -> Result<Response<pb::ClusterState>, Status> {
        let mut s = self.0.lock().unwrap();
        s.tick();
        let pending = if s.get_state_calls > s.config.pending_after {
            vec![node(N3, "n3", 7003)]
        } else {
            vec![]
        };
        Ok(Response::new(pb::ClusterState {
            topology: Some(s.topology()),
            pending,
            status: vec![pb::NodeStatus {
                node_id: N1.into(),
                connected: true,
                applied_version: 5,
                key_count: 4242,
                millis_since_heartbeat: 100,
                ..Default::default()
            }],
            progress: s.progress.clone(),
            finished: s.finished.clone(),
            ..Default::default()
        }))
    }

    async fn export_state(
        &self,
        _: Request<pb::ExportStateRequest>,
    ) -> Result<Response<pb::StateDocument>, Status> {
        Err(Status::unimplemented("not in the mock"))
    }

    async fn import_state(
        &self,
        _: Request<pb::ImportStateRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        Err(Status::unimplemented("not in the mock"))
    }

    async fn load_library(
        &self,
        _: Request<pb::LoadLibraryRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        Err(Status::unimplemented("not in the mock"))
    }

    async fn restore_libraries(
        &self,
        _: Request<pb::RestoreLibrariesRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        Err(Status::unimplemented("not in the mock"))
    }

    async fn delete_library(
        &self,
        _: Request<pb::DeleteLibraryRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        Err(Status::unimplemented("not in the mock"))
    }

    async fn flush_libraries(
        &self,
        _: Request<pb::FlushLibrariesRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        Err(Status::unimplemented("not in the mock"))
    }

    async fn migrate(
        &self,
        r: Request<pb::MigrateRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let r = r.into_inner();
        let mut s = self.0.lock().unwrap();
        if s.running.len() >= 2 {
            let mut busy = Status::failed_precondition(
                "2 migrations are running, the most allowed (--max-migrations); wait for one to finish",
            );
            busy.metadata_mut().insert(
                ember_proto::ERROR_KIND,
                tonic::metadata::MetadataValue::from_static(ember_proto::ERROR_BUSY),
            );
            return Err(busy);
        }
        let range = r.slots[0];
        let source = s.owners[range.start as usize];
        s.next_id += 1;
        let id = format!("{:08x}-0000-4000-8000-{:012x}", s.next_id, s.next_id);
        let m = migration(&id, source, &r.target, range.start, range.end);
        s.progress.push(pb::MigrationProgress {
            id: id.clone(),
            ..Default::default()
        });
        s.running.push((m, 3));
        s.version += 1;
        Ok(Response::new(pb::ChangeReply {
            topology: Some(s.topology()),
            changed: true,
            summary: format!("migration {id} started"),
        }))
    }

    async fn cancel_migration(
        &self,
        r: Request<pb::CancelMigrationRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let id = r.into_inner().id;
        let s = self.0.lock().unwrap();
        if !s.running.iter().any(|(m, _)| m.id.starts_with(&id)) {
            return Err(Status::not_found(format!(
                "no running migration matches '{id}'"
            )));
        }
        Ok(Response::new(pb::ChangeReply {
            topology: Some(s.topology()),
            changed: true,
            summary: format!("migration {id} aborted: cancelled by the operator"),
        }))
    }

    async fn plan_moves(&self, r: Request<pb::PlanRequest>) -> Result<Response<pb::Plan>, Status> {
        let drain = r.into_inner().drain;
        let s = self.0.lock().unwrap();
        let moves = s
            .config
            .plan
            .iter()
            .filter(|(source, ..)| drain.is_empty() || (drain == "n1") == (*source == N1))
            .map(|&(source, target, start, end)| pb::PlannedMove {
                source_id: source.into(),
                target_id: target.into(),
                slots: vec![pb::SlotRange { start, end }],
                slot_count: end - start + 1,
            })
            .collect();
        Ok(Response::new(pb::Plan {
            moves,
            topology: Some(s.topology()),
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

    async fn failover(
        &self,
        r: Request<pb::FailoverRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let r = r.into_inner();
        reply(true, format!("promoted {} (force={})", r.node, r.force))
    }

    async fn replicate(
        &self,
        r: Request<pb::ReplicateRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let r = r.into_inner();
        reply(true, format!("{} replicates {}", r.node, r.primary))
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
    start_mock_with(Config::default()).await
}

async fn start_mock_with(config: Config) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let incoming = tonic::transport::server::TcpIncoming::from(listener);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AdminServer::new(Mock(Arc::new(Mutex::new(State::new(
                config,
            ))))))
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

/// Two moves: 0-99 from n1 to N2, 8192-8291 from N2 to n1.
fn two_moves() -> Config {
    Config {
        plan: vec![(N1, N2, 0, 99), (N2, N1, 8192, 8291)],
        ..Config::default()
    }
}

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_dry_run_prints_the_plan() {
    let addr = start_mock_with(two_moves()).await;
    let (code, out, err) = emberctl(addr, &["rebalance", "--dry-run"]).await;
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "SOURCE    TARGET    SLOTS  RANGES", "{out}");
    assert_eq!(lines[1], "n1        22222222    100  0-99", "{out}");
    assert_eq!(lines[2], "22222222  n1          100  8192-8291", "{out}");
    assert_eq!(lines.last(), Some(&"200 slots in 2 moves"), "{out}");

    let (code, out, _) = emberctl(addr, &["rebalance", "--dry-run", "--json"]).await;
    assert_eq!(code, Some(0));
    let events = json_lines(&out);
    assert_eq!(events.len(), 1, "{out}");
    assert_eq!(events[0]["event"], "plan");
    assert_eq!(
        (
            events[0]["slot_count"].as_u64(),
            events[0]["move_count"].as_u64()
        ),
        (Some(200), Some(2))
    );
    assert_eq!(events[0]["moves"][0]["source"], "n1");
    assert_eq!(
        events[0]["moves"][1]["slots"],
        serde_json::json!(["8192-8291"])
    );

    // Nothing to do is a success.
    let addr = start_mock().await;
    let (code, out, _) = emberctl(addr, &["rebalance"]).await;
    assert_eq!(
        (code, out.trim()),
        (Some(0), "already balanced: nothing to move")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebalance_runs_the_moves_to_completion() {
    let addr = start_mock_with(two_moves()).await;
    let (code, out, err) = emberctl(addr, &["rebalance"]).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    let moved: Vec<&str> = out.lines().filter(|l| l.starts_with("moved ")).collect();
    assert_eq!(moved.len(), 2, "{out}");
    assert!(
        moved.contains(&"moved 100 slots (0-99) n1 -> 22222222: 1,500 keys, 150.0 kB in 0.3s"),
        "{out}"
    );
    assert_eq!(
        out.lines().last(),
        Some("done: 200 slots moved in 2 migrations"),
        "{out}"
    );
    // The mock committed both: the plan is recomputed from there by the next run.
    let (_, out, _) = emberctl(addr, &["slots", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["slots"][0]["range"], "0-99");
    assert_eq!(v["slots"][0]["node_id"], N2);

    let addr = start_mock_with(two_moves()).await;
    let (code, out, err) = emberctl(addr, &["rebalance", "--json"]).await;
    assert_eq!(code, Some(0), "{err}");
    let events = json_lines(&out);
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"plan"));
    assert_eq!(
        kinds.iter().filter(|k| **k == "started").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "finished").count(),
        2,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"progress"), "{kinds:?}");
    let done = events.last().unwrap();
    assert_eq!(done["event"], "done");
    assert_eq!(
        (done["moved_slots"].as_u64(), done["failed"].as_u64()),
        (Some(200), Some(0))
    );
    let finished = events.iter().find(|e| e["event"] == "finished").unwrap();
    assert_eq!(finished["committed"], true);
    assert_eq!(finished["keys"], 1500);
    for key in ["id", "reason", "bytes", "millis"] {
        assert!(finished.get(key).is_some(), "{finished}");
    }
    let started = events.iter().find(|e| e["event"] == "started").unwrap();
    assert!(
        started["id"].as_str().unwrap().starts_with("00000001"),
        "{started}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_migration_stops_rebalance_with_its_reason() {
    let addr = start_mock_with(Config {
        abort: Some((0, "n1 stopped answering")),
        ..two_moves()
    })
    .await;
    let (code, out, err) = emberctl(addr, &["rebalance", "--parallel", "1"]).await;
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        out.contains(
            "failed to move 100 slots (0-99) n1 -> 22222222 after 0.3s: n1 stopped answering"
        ),
        "{out}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: migration 00000001 of 100 slots (0-99) n1 -> 22222222 aborted: n1 stopped answering"), "{err}");
    // No new migration started after the abort.
    assert!(
        err.contains("0 slots moved in 0 of 2 moves, 1 not started"),
        "{err}"
    );
    assert!(
        err.contains("run `emberctl rebalance` to continue"),
        "{err}"
    );

    // drain goes through the same path.
    let addr = start_mock_with(Config {
        abort: Some((0, "n1 stopped answering")),
        ..two_moves()
    })
    .await;
    let (code, out, err) = emberctl(addr, &["drain", "n1", "--json"]).await;
    assert_eq!(code, Some(1), "{err}");
    let events = json_lines(&out);
    let f = events.iter().find(|e| e["event"] == "finished").unwrap();
    assert_eq!(
        (f["committed"].as_bool(), f["reason"].as_str()),
        (Some(false), Some("n1 stopped answering"))
    );
    assert_eq!(events.last().unwrap()["failed"], 1);
    assert!(err.contains("emberctl drain n1"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assign_moves_owned_slots_by_migration() {
    let addr = start_mock().await;
    let (code, out, err) = emberctl(addr, &["assign", "n1", "8192-8199", "0-10"]).await;
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0], "moving 8 slots (8192-8199) from 22222222 to n1 by live migration",
        "{out}"
    );
    assert!(
        lines[1].starts_with("moved 8 slots (8192-8199) 22222222 -> n1"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_lists_running_and_finished() {
    let addr = start_mock_with(Config {
        with_migrations: true,
        ..Config::default()
    })
    .await;
    let (code, out, err) = emberctl(addr, &["migrations"]).await;
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("ID        SOURCE  TARGET    SLOTS  RANGES  STATE"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("aaaabbbb  n1      22222222    100  0-99    streaming")
            && lines[1].contains("1,500/3,000")
            && lines[1].contains("2.5 MB"),
        "{out}"
    );
    assert!(out.contains("recently finished:"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("ccccdddd")
            && l.contains("aborted")
            && l.ends_with("the target stopped answering")),
        "{out}"
    );

    let (code, out, _) = emberctl(addr, &["migrations", "--json"]).await;
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["running"][0]["source_id"], N1);
    assert_eq!(v["running"][0]["slot_count"], 100);
    assert_eq!(v["running"][0]["keys_total"], 3000);
    assert_eq!(v["finished"][0]["committed"], false);
    assert_eq!(v["finished"][0]["reason"], "the target stopped answering");

    let (code, out, _) = emberctl(addr, &["migrations", "cancel", "aaaa"]).await;
    assert_eq!(
        (code, out.trim()),
        (Some(0), "migration aaaa aborted: cancelled by the operator")
    );
    let (code, _, err) = emberctl(addr, &["migrations", "cancel", "ffff"]).await;
    assert_eq!(code, Some(1), "{err}");

    let (_, out, _) = emberctl(addr, &["nodes"]).await;
    assert!(
        out.ends_with("1 migration running (see emberctl migrations)\n"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_waits_for_nodes_to_register() {
    let addr = start_mock_with(Config {
        pending_after: 3,
        ..Config::default()
    })
    .await;
    let (code, out, err) = emberctl(addr, &["bootstrap", "--wait", "10s", "n1", "n3"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("waiting for n3 to register"), "{err}");
    assert!(out.contains("already bootstrapped with n1,n3"), "{out}");

    let started = std::time::Instant::now();
    let (code, out, err) = emberctl(addr, &["bootstrap", "--wait", "1s", "n1", "ghost"]).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(out.is_empty(), "{out}");
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("error: gave up after 1s: ghost has not registered (see emberctl pending"),
        "{err}"
    );
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_control_plane_is_waited_for() {
    // The mock allows 2 migrations at once; the third waits for a slot, then runs.
    let addr = start_mock_with(Config {
        plan: vec![(N1, N2, 0, 99), (N1, N2, 200, 299), (N2, N1, 8192, 8291)],
        ..Config::default()
    })
    .await;
    let (code, out, err) = emberctl(addr, &["rebalance", "--parallel", "3"]).await;
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("moved ")).count(),
        3,
        "{out}"
    );
    assert_eq!(
        out.lines().last(),
        Some("done: 300 slots moved in 3 migrations")
    );
}
