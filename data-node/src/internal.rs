//! The node-to-node gRPC endpoint (`--internal-port`): gRPC health checks and the
//! slot-streaming service that live migration pulls from.

use std::sync::Arc;

use ember_proto::pb::internal_server::InternalServer;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::migration::source::InternalService;
use crate::migration::Migrations;

/// Largest message the source sends (parts are far smaller).
const MAX_MESSAGE: usize = 64 * 1024 * 1024;

pub async fn serve(listener: TcpListener, migrations: Arc<Migrations>) {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<InternalServer<InternalService>>()
        .await;
    let internal =
        InternalServer::new(InternalService { migrations }).max_encoding_message_size(MAX_MESSAGE);
    let result = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(internal)
        .serve_with_incoming(TcpIncoming::from(listener).with_nodelay(Some(true)))
        .await;
    if let Err(e) = result {
        tracing::error!("internal gRPC server stopped: {e}");
    }
}
