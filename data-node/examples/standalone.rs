//! A standalone ember RESP server (every slot served here, no control plane), for
//! benchmarks and trying commands: `cargo run --release -p ember-data-node --example
//! standalone -- 7001`.

use std::sync::Arc;

use ember_data_node::cluster::Cluster;
use ember_data_node::{serve, Config, ServerState};

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(7001);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    let config = Config {
        port,
        ..Config::default()
    };
    let state = Arc::new(ServerState::new(Arc::new(Cluster::standalone()), config));
    serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await;
}
