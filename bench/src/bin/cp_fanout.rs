//! Control-plane scale: N concurrent node sessions (default 1,000), each on its own TCP
//! connection; all N are bootstrapped as members, then 100 changes are committed and the
//! time from issuing each change to its receipt by every session is recorded.
//!
//! Usage: cargo run --release -p ember-bench --bin cp_fanout [-- SESSIONS [CHANGES]]
//! It starts its own control plane (release build) on a free loopback port.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ember_bench::{ms, percentile, rss_bytes};
use ember_proto::pb::{
    self, admin_client::AdminClient, control_message, node_message, session_client::SessionClient,
};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let sessions: usize = args.get(1).map_or(Ok(1000), |s| s.parse())?;
    let changes: usize = args.get(2).map_or(Ok(100), |s| s.parse())?;

    let dir = tempfile_dir();
    let port = ember_tests::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let cp = Command::new(ember_tests::bin("ember-control-plane"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            &dir,
            "--node-timeout",
            "60s",
        ])
        .env("RUST_LOG", "warn")
        .stderr(Stdio::inherit())
        .spawn()?;
    // Killed when main returns, also on an error.
    let cp = KillOnDrop(cp);
    let pid = cp.0.id();
    let mut admin = loop {
        match AdminClient::connect(url.clone()).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let rss_before = rss_bytes(pid);

    // Each session reports (version, receipt instant) of every snapshot it gets.
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<(u64, Instant)>();
    let mut keep = Vec::new();
    for i in 0..sessions {
        let channel =
            ember_proto::session_endpoint(tonic::transport::Endpoint::from_shared(url.clone())?)
                .connect()
                .await?;
        let (tx, rx) = mpsc::channel(4);
        let hello = pb::Hello {
            node_id: uuid::Uuid::new_v4().to_string(),
            name: format!("b{i}"),
            client_addr: format!("10.0.{}.{}:6379", i / 250, i % 250),
            internal_addr: format!("10.0.{}.{}:16379", i / 250, i % 250),
            ..Default::default()
        };
        tx.send(pb::NodeMessage {
            msg: Some(node_message::Msg::Hello(hello)),
        })
        .await?;
        let mut inbound = SessionClient::new(channel)
            .open(ReceiverStream::new(rx))
            .await?
            .into_inner();
        let seen = seen_tx.clone();
        let heartbeats = tx.clone();
        // Every 50th session decodes every snapshot as a node does; the others read the
        // version off the message (a delta's is its base's plus one: each change here is
        // one version, which the sampled sessions check): a thousand fake nodes decoding
        // a 96 KB topology each on the control plane's two cores would measure
        // themselves, not the fan-out.
        let sampled = i % 50 == 0;
        let mut receiver = ember_proto::snapshot::Receiver::default();
        tokio::spawn(async move {
            // A real node's heartbeats, so that no session is marked failed meanwhile.
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut applied: Option<u64> = None;
            loop {
                tokio::select! {
                    msg = inbound.message() => {
                        let Ok(Some(msg)) = msg else { return };
                        let at = Instant::now();
                        let Some(msg) = msg.msg else { continue };
                        let version = match &msg {
                            control_message::Msg::Welcome(_) => continue,
                            control_message::Msg::Topology(bytes) if !sampled => peek_version(bytes),
                            control_message::Msg::TopologyDelta(d) if !sampled => d.base_version + 1,
                            _ => {
                                let t = receiver.receive(&msg).expect("a snapshot").expect("valid snapshot");
                                if i == 0 {
                                    report_size(&msg);
                                }
                                if let control_message::Msg::TopologyDelta(d) = &msg {
                                    assert_eq!(t.version, d.base_version + 1, "one version per change");
                                }
                                t.version
                            }
                        };
                        applied = Some(version);
                        let _ = seen.send((version, at));
                    }
                    _ = tick.tick() => {
                        let hb = pb::Heartbeat { applied_version: applied.unwrap_or(0), key_count: 0, ..Default::default() };
                        let msg = pb::NodeMessage { msg: Some(node_message::Msg::Heartbeat(hb)) };
                        if heartbeats.send(msg).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        keep.push(tx);
    }
    let rss_sessions = rss_bytes(pid);
    let names: Vec<String> = (0..sessions).map(|i| format!("b{i}")).collect();
    admin
        .bootstrap(pb::BootstrapRequest {
            nodes: names,
            replicas: 0,
        })
        .await?;
    // Drain the bootstrap snapshots.
    let mut got = 0;
    while got < sessions {
        seen_rx.recv().await;
        got += 1;
    }

    let mut latencies = Vec::with_capacity(sessions * changes);
    let mut per_change_max = Vec::with_capacity(changes);
    let mut commits = Vec::with_capacity(changes);
    let mut after_commit = Vec::with_capacity(sessions * changes);
    for c in 0..changes {
        let start = Instant::now();
        let reply = admin
            .set_config(pb::SetConfigRequest {
                require_full_coverage: Some(c % 2 == 1),
            })
            .await?
            .into_inner();
        let committed = Instant::now();
        commits.push(committed - start);
        assert!(reply.changed, "each change must be a new version");
        let version = reply.topology.unwrap().version;
        let mut received = 0;
        let mut others = std::collections::BTreeMap::<u64, usize>::new();
        let mut slowest = Duration::ZERO;
        while received < sessions {
            let (v, at) = tokio::time::timeout(Duration::from_secs(10), seen_rx.recv())
                .await
                .map_err(|_| anyhow::anyhow!("only {received} of {sessions} sessions received version {version} ({others:?} seen instead)"))?
                .unwrap();
            if v == version {
                received += 1;
                let d = at - start;
                slowest = slowest.max(d);
                latencies.push(d);
                // From the durable reply (sent right after the commit is published); a
                // receipt that beat the reply counts as zero.
                after_commit.push(at.saturating_duration_since(committed));
            } else {
                *others.entry(v).or_default() += 1;
            }
        }
        per_change_max.push(slowest);
    }
    let rss_after = rss_bytes(pid);
    drop(cp);

    println!("control-plane fan-out: {sessions} sessions, {changes} changes (commit incl. fsync -> receipt)");
    p50_p99("per receipt", &mut latencies);
    p50_p99("per receipt, from the durable reply", &mut after_commit);
    p50_p99("commit (request -> durable reply)", &mut commits);
    p50_p99("last session", &mut per_change_max);
    println!(
        "  memory: {:.1} KiB per session (RSS {} MiB idle, {} MiB with sessions, {} MiB after)",
        (rss_sessions.saturating_sub(rss_before)) as f64 / sessions as f64 / 1024.0,
        rss_before >> 20,
        rss_sessions >> 20,
        rss_after >> 20
    );
    drop(keep);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> String {
    let d = std::env::temp_dir().join(format!("ember-bench-cp-{}", std::process::id()));
    d.display().to_string()
}

/// The `version` of an encoded `Topology` without decoding the rest (field 1, the cluster
/// id, comes first, then field 2, the version): the bench's thousand fake nodes share two
/// cores with the control plane, so each decoding a full snapshot would measure them,
/// not the fan-out. Falls back to a full decode if the layout differs.
fn peek_version(bytes: &[u8]) -> u64 {
    let fast = || -> Option<u64> {
        let (&tag, rest) = bytes.split_first()?;
        if tag != 0x0a {
            return None;
        }
        let (&len, rest) = rest.split_first()?;
        let rest = rest.get(usize::from(len)..)?;
        let (&tag, rest) = rest.split_first()?;
        if tag != 0x10 {
            return None;
        }
        let mut version = 0u64;
        for (i, b) in rest.iter().take(10).enumerate() {
            version |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(version);
            }
        }
        None
    };
    fast().unwrap_or_else(|| pb::Topology::decode(bytes).expect("valid snapshot").version)
}

fn p50_p99(what: &str, samples: &mut [Duration]) {
    println!(
        "  {what}  p50 {}  p99 {}",
        ms(percentile(samples, 50.0)),
        ms(percentile(samples, 99.0))
    );
}

/// Prints each snapshot form's size once (session 0 only).
fn report_size(msg: &control_message::Msg) {
    static FULL: std::sync::Once = std::sync::Once::new();
    static DELTA: std::sync::Once = std::sync::Once::new();
    match msg {
        control_message::Msg::TopologyZstd(b) => {
            FULL.call_once(|| eprintln!("snapshot: {} bytes as zstd (first on a stream)", b.len()))
        }
        control_message::Msg::TopologyDelta(d) => DELTA.call_once(|| {
            eprintln!(
                "snapshot: {} bytes as a delta (every change after)",
                d.zstd.len()
            )
        }),
        _ => {}
    }
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
