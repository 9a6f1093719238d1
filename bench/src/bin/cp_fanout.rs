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
    let mut cp = Command::new(ember_tests::bin("ember-control-plane"))
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
    let pid = cp.id();
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
        let channel = tonic::transport::Endpoint::from_shared(url.clone())?
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
        tokio::spawn(async move {
            // A real node's heartbeats, so that no session is marked failed meanwhile.
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut applied = 0;
            loop {
                tokio::select! {
                    msg = inbound.message() => {
                        let Ok(Some(msg)) = msg else { return };
                        if let Some(control_message::Msg::Topology(bytes)) = msg.msg {
                            let at = Instant::now();
                            let t = pb::Topology::decode(bytes).expect("valid snapshot");
                            applied = t.version;
                            let _ = seen.send((t.version, at));
                        }
                    }
                    _ = tick.tick() => {
                        let hb = pb::Heartbeat { applied_version: applied, key_count: 0 };
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
        .bootstrap(pb::BootstrapRequest { nodes: names })
        .await?;
    // Drain the bootstrap snapshots.
    let mut got = 0;
    while got < sessions {
        seen_rx.recv().await;
        got += 1;
    }

    let mut latencies = Vec::with_capacity(sessions * changes);
    let mut per_change_max = Vec::with_capacity(changes);
    for c in 0..changes {
        let start = Instant::now();
        let reply = admin
            .set_config(pb::SetConfigRequest {
                require_full_coverage: Some(c % 2 == 1),
            })
            .await?
            .into_inner();
        assert!(reply.changed, "each change must be a new version");
        let version = reply.topology.unwrap().version;
        let mut received = 0;
        let mut slowest = Duration::ZERO;
        while received < sessions {
            let (v, at) = seen_rx.recv().await.unwrap();
            if v == version {
                received += 1;
                let d = at - start;
                slowest = slowest.max(d);
                latencies.push(d);
            }
        }
        per_change_max.push(slowest);
    }
    let rss_after = rss_bytes(pid);
    cp.kill()?;
    let _ = cp.wait();

    println!("control-plane fan-out: {sessions} sessions, {changes} changes (commit incl. fsync -> receipt)");
    println!(
        "  per receipt   p50 {}  p99 {}",
        ms(percentile(&mut latencies, 50.0)),
        ms(percentile(&mut latencies, 99.0))
    );
    println!(
        "  last session  p50 {}  p99 {}",
        ms(percentile(&mut per_change_max, 50.0)),
        ms(percentile(&mut per_change_max, 99.0))
    );
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
