//! The node-to-node gRPC endpoint (`--internal-port`). Today it answers gRPC health
//! checks; live migration adds the slot-streaming service here.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::ServerState;

pub async fn serve(listener: TcpListener, _state: Arc<ServerState>) {
    let (_health, health_service) = tonic_health::server::health_reporter();
    let result = tonic::transport::Server::builder()
        .add_service(health_service)
        .serve_with_incoming(TcpListenerStream::new(listener))
        .await;
    if let Err(e) = result {
        tracing::error!("internal gRPC server stopped: {e}");
    }
}
