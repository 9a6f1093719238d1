//! An etcd cluster on loopback (Debian's `etcd-server`: `.ci/run` installs it), and
//! control planes that keep their state in it (`--store etcd`).

use std::path::Path;
use std::time::Duration;

use crate::{bin, free_port, wait_until, Proc};

/// etcd members on loopback; killed on drop.
pub struct Etcd {
    pub members: Vec<Proc>,
    /// Each member's client URL.
    pub urls: Vec<String>,
}

impl Etcd {
    /// Starts an `n`-member etcd cluster in `dir` and waits until every member listens.
    pub fn start(n: usize, dir: &Path) -> Etcd {
        let peers: Vec<(String, String)> = (0..n)
            .map(|i| (format!("e{i}"), format!("http://127.0.0.1:{}", free_port())))
            .collect();
        let initial = peers
            .iter()
            .map(|(name, url)| format!("{name}={url}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        let mut urls = Vec::new();
        for (name, peer) in &peers {
            let client = format!("http://127.0.0.1:{}", free_port());
            let args = [
                "--name",
                name,
                "--data-dir",
                &dir.join(name).display().to_string(),
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
                "--listen-peer-urls",
                peer,
                "--initial-advertise-peer-urls",
                peer,
                "--initial-cluster",
                &initial,
                "--initial-cluster-state",
                "new",
                "--initial-cluster-token",
                "ember-test",
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "500",
            ];
            members.push(Proc::spawn(
                name,
                "etcd".into(),
                args.iter().map(|s| s.to_string()).collect(),
                dir.join(format!("{name}.log")),
            ));
            urls.push(client);
        }
        for url in &urls {
            let addr = url.trim_start_matches("http://").to_string();
            wait_until(&format!("etcd at {url}"), Duration::from_secs(30), || {
                Ok(std::net::TcpStream::connect(&addr).is_ok())
            })
            .expect("etcd must be installed (.ci/run installs etcd-server)");
        }
        Etcd { members, urls }
    }

    pub fn endpoints(&self) -> String {
        self.urls.join(",")
    }
}

/// The command line of a control plane on `port` storing its state in `etcd`.
pub fn control_plane_args(port: u16, etcd: &Etcd, node_timeout: Duration) -> Vec<String> {
    [
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--store",
        "etcd",
        "--etcd-endpoints",
        &etcd.endpoints(),
        "--lease-ttl",
        "2s",
        "--node-timeout",
        &format!("{}ms", node_timeout.as_millis()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Starts a control plane (`name`, logging to `dir`) with `args`.
pub fn spawn_control_plane(name: &str, args: Vec<String>, dir: &Path) -> Proc {
    Proc::spawn(
        name,
        bin("ember-control-plane"),
        args,
        dir.join(format!("{name}.log")),
    )
}
