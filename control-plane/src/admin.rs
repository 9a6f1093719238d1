//! The admin API that emberctl calls: requests become [`Op`]s, replies carry the
//! committed topology.

use std::pin::Pin;
use std::sync::Arc;

use ember_core::SlotSet;
use ember_proto::{convert, pb};
use futures::Stream;
use tonic::{Request, Response, Status};

use crate::authority::Authority;
use crate::state::Op;

pub struct AdminService {
    authority: Arc<Authority>,
}

impl AdminService {
    pub fn new(authority: Arc<Authority>) -> Self {
        Self { authority }
    }

    async fn change(&self, op: Op) -> Result<Response<pb::ChangeReply>, Status> {
        let (state, outcome) = self.authority.submit(op).await?;
        Ok(Response::new(pb::ChangeReply {
            topology: Some(convert::topology_to_pb(&state.topology)),
            changed: outcome.changed,
            summary: outcome.summary,
        }))
    }
}

fn required(what: &str, value: &str) -> Result<String, Status> {
    if value.trim().is_empty() {
        Err(Status::invalid_argument(format!("{what} is required")))
    } else {
        Ok(value.trim().to_string())
    }
}

type TopologyStream = Pin<Box<dyn Stream<Item = Result<pb::Topology, Status>> + Send>>;

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    type WatchStream = TopologyStream;

    async fn get_state(
        &self,
        _: Request<pb::GetStateRequest>,
    ) -> Result<Response<pb::ClusterState>, Status> {
        Ok(Response::new(self.authority.state_pb()))
    }

    async fn bootstrap(
        &self,
        req: Request<pb::BootstrapRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let nodes = req.into_inner().nodes;
        let nodes = nodes
            .iter()
            .map(|n| required("node", n))
            .collect::<Result<_, _>>()?;
        self.change(Op::Bootstrap { nodes }).await
    }

    async fn join(
        &self,
        req: Request<pb::JoinRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let req = req.into_inner();
        let replica_of =
            (!req.replica_of.trim().is_empty()).then(|| req.replica_of.trim().to_string());
        self.change(Op::Join {
            node: required("node", &req.node)?,
            replica_of,
        })
        .await
    }

    async fn assign(
        &self,
        req: Request<pb::AssignRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let req = req.into_inner();
        let ranges = req
            .slots
            .iter()
            .map(convert::range_from_pb)
            .collect::<Result<Vec<_>, _>>()?;
        let slots = SlotSet::from_ranges(&ranges);
        self.change(Op::Assign {
            node: required("node", &req.node)?,
            slots,
        })
        .await
    }

    async fn forget(
        &self,
        req: Request<pb::ForgetRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let req = req.into_inner();
        self.change(Op::Forget {
            node: required("node", &req.node)?,
            force: req.force,
        })
        .await
    }

    async fn set_config(
        &self,
        req: Request<pb::SetConfigRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let req = req.into_inner();
        self.change(Op::SetConfig {
            require_full_coverage: req.require_full_coverage,
        })
        .await
    }

    async fn watch(
        &self,
        _: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let mut published = self.authority.subscribe();
        let stream = async_stream(move |tx| async move {
            loop {
                let latest = published.borrow_and_update().clone();
                if tx
                    .send(Ok(convert::topology_to_pb(&latest.state.topology)))
                    .await
                    .is_err()
                {
                    return;
                }
                if published.changed().await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(stream))
    }
}

/// A stream fed by a spawned task through a small channel (the task ends with the client).
fn async_stream<F, Fut>(f: F) -> TopologyStream
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<pb::Topology, Status>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(f(tx));
    Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
}
