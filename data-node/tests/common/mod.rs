//! Shared test helpers: start the RESP engine in-process on an ephemeral port.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;

use ember_data_node::cluster::Cluster;
use ember_data_node::{serve, Config, ServerState};

/// Starts a standalone ember server on the current tokio runtime.
pub async fn start() -> (SocketAddr, Arc<ServerState>) {
    start_with(Config::default()).await
}

pub async fn start_with(config: Config) -> (SocketAddr, Arc<ServerState>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = Arc::new(ServerState::new(Arc::new(Cluster::standalone()), config));
    tokio::spawn(serve(listener, state.clone(), std::future::pending::<()>()));
    (addr, state)
}

/// Starts a standalone ember server on its own thread and runtime (for sync tests).
pub fn start_in_thread() -> SocketAddr {
    start_in_thread_with_state().0
}

/// [`start_in_thread`], with the server's state.
pub fn start_in_thread_with_state() -> (SocketAddr, Arc<ServerState>) {
    start_in_thread_with(Config::default())
}

/// [`start_in_thread`] with `config`.
pub fn start_in_thread_with(config: Config) -> (SocketAddr, Arc<ServerState>) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            tx.send(start_with(config).await).unwrap();
            std::future::pending::<()>().await;
        });
    });
    rx.recv().unwrap()
}
