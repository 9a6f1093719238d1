//! Anyone who reaches the control plane can open a session: hellos with huge or forged
//! names and bad addresses are refused without growing the state, a registration whose
//! node went quiet expires, emberctl can always read the state, and every binary refuses
//! out-of-range flags at start instead of misbehaving later.

use std::process::Command;
use std::time::Duration;

use ember_proto::pb::{self, node_message, session_client::SessionClient};
use ember_tests::{bin, TestCluster};
use tonic::Code;

const T: Duration = Duration::from_secs(30);

/// Opens a session with this hello; the status code if the control plane refused it.
/// The stream is dropped at once when it was accepted.
fn hello(c: &TestCluster, name: &str, client_addr: &str) -> Result<(), Code> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let channel = ember_proto::session_endpoint(
            tonic::transport::Endpoint::from_shared(c.cp_url()).unwrap(),
        )
        .connect()
        .await
        .unwrap();
        let mut client = SessionClient::new(channel).max_decoding_message_size(64 << 20);
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(pb::NodeMessage {
            msg: Some(node_message::Msg::Hello(pb::Hello {
                node_id: uuid::Uuid::new_v4().to_string(),
                name: name.into(),
                client_addr: client_addr.into(),
                internal_addr: "127.0.0.1:17999".into(),
                ..Default::default()
            })),
        })
        .await
        .unwrap();
        let mut inbound = client
            .open(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .map_err(|s| s.code())?
            .into_inner();
        // Accepted: the Welcome arrives.
        inbound.message().await.map_err(|s| s.code())?;
        Ok(())
    })
}

#[test]
fn forged_and_oversized_hellos_are_refused_and_quiet_registrations_expire() {
    let c = TestCluster::start(0, Duration::from_millis(200));
    let state_file = c.cp_dir().join("state.json");
    let size_before = std::fs::metadata(&state_file).unwrap().len();

    let huge = "x".repeat(3 << 20);
    for (name, addr) in [
        (huge.as_str(), "127.0.0.1:7101"),
        ("n1\x1b[31m fake row", "127.0.0.1:7102"),
        ("cafe", "127.0.0.1:7103"),
        ("ok-name", huge.as_str()),
        ("ok-name", "no-port"),
        ("ok-name", "127.0.0.1:0"),
    ] {
        assert_eq!(
            hello(&c, name, addr),
            Err(Code::InvalidArgument),
            "name {:.20?} addr {:.20?}",
            name,
            addr
        );
    }
    assert!(std::fs::metadata(&state_file).unwrap().len() <= size_before + 16);
    let pending = c.ctl_json(&["pending"]).unwrap();
    assert_eq!(pending["pending"].as_array().unwrap().len(), 0, "{pending}");

    // A valid registration from a node that then goes away expires after 10 node
    // timeouts (2 s here).
    hello(&c, "visitor", "127.0.0.1:7104").unwrap();
    let pending = c.ctl_json(&["pending"]).unwrap();
    assert_eq!(pending["pending"].as_array().unwrap().len(), 1, "{pending}");
    c.wait("the quiet registration expires", T, |c| {
        Ok(c.ctl_json(&["pending"])?["pending"]
            .as_array()
            .unwrap()
            .is_empty())
    });
    // emberctl still reads everything.
    c.ctl_ok(&["status"]);
    c.ctl_ok(&["nodes"]);
}

/// Runs a binary with `args`; (exit code, stderr).
fn run(name: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(bin(name)).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn out_of_range_flags_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    for (bin, args) in [
        ("ember-control-plane", vec!["--node-timeout", "0s"]),
        ("ember-control-plane", vec!["--node-timeout", "1ns"]),
        ("ember-control-plane", vec!["--max-migrations", "0"]),
        ("ember-control-plane", vec!["--migration-timeout", "0s"]),
        ("ember-data-node", vec!["--name", "a b"]),
        ("ember-data-node", vec!["--name", "deadbeef"]),
        ("ember-data-node", vec!["--announce", "nohost"]),
        ("ember-data-node", vec!["--io-threads", "100000"]),
        ("emberctl", vec!["--timeout", "0s", "status"]),
    ] {
        let mut all = args.clone();
        if bin != "emberctl" {
            all.extend(["--data-dir", data]);
        }
        let (code, err) = run(bin, &all);
        assert_eq!(code, Some(2), "{bin} {args:?}: {err}");
        assert!(err.contains(args[0]), "{bin} {args:?}: {err}");
    }
}
