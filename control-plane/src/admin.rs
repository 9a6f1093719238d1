//! The admin API that emberctl calls: requests become [`Op`]s, replies carry the
//! committed topology.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ember_proto::{convert, pb};
use futures::Stream;
use tonic::{Request, Response, Status};

use crate::authority::{Authority, AuthorityError};
use crate::restore;
use crate::scheduler;
use crate::state::{LibraryOp, Op, StateError};
use crate::store;
use ember_core::functions::{self, Library};
use ember_core::topology::resolve_node;
use std::path::Path;
use uuid::Uuid;

pub struct AdminService {
    authority: Arc<Authority>,
    /// Most migrations recorded at once (`--max-migrations`).
    max_migrations: usize,
}

impl AdminService {
    pub fn new(authority: Arc<Authority>, max_migrations: usize) -> Self {
        Self {
            authority,
            max_migrations,
        }
    }

    async fn change(&self, op: Op) -> Result<Response<pb::ChangeReply>, Status> {
        let (state, outcome) = self.authority.submit(op).await?;
        Ok(Response::new(pb::ChangeReply {
            topology: Some(convert::topology_to_pb(&state.topology)),
            changed: outcome.changed,
            summary: outcome.summary,
        }))
    }

    /// Asks the replicas of `primary` to stop granting it leases and waits (bounded)
    /// until every lease it could hold has run out.
    async fn wait_lease_released(
        &self,
        t: &ember_core::Topology,
        primary: ember_core::NodeId,
    ) -> Result<(), Status> {
        let promise = crate::lease::promise(self.authority.leases.length);
        let deadline = tokio::time::Instant::now() + promise * 3;
        let refuse = promise * 4;
        for r in t.replicas_of(&primary) {
            self.authority
                .ask(r.id, crate::authority::Ask::StopGranting(refuse));
        }
        tracing::info!(%primary, ?promise, "failover --force: waiting out the primary's write leases");
        loop {
            let why = match crate::heartbeater::lease_released(&self.authority, t, primary) {
                Ok(()) => return Ok(()),
                Err(why) => why,
            };
            if tokio::time::Instant::now() >= deadline {
                self.authority.leases.unfence(primary);
                return Err(Status::unavailable(format!(
                    "not promoting: the primary may still hold a write lease ({why}); are its replicas connected to the control plane?"
                )));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Runs each library's code (off the async threads: up to 500 ms each) to learn what it
/// registers; the first that fails refuses the request.
async fn check_libraries(codes: Vec<String>) -> Result<Vec<Library>, Status> {
    let checked = tokio::task::spawn_blocking(move || functions::lua::check_all(&codes))
        .await
        .map_err(|e| Status::internal(format!("checking the library failed: {e}")))?;
    checked.map_err(|e| AuthorityError::State(StateError::Function(e)).into())
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
        let req = req.into_inner();
        let nodes = req
            .nodes
            .iter()
            .map(|n| required("node", n))
            .collect::<Result<_, _>>()?;
        let replicas = req.replicas as usize;
        self.change(Op::Bootstrap { nodes, replicas }).await
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

    async fn failover(
        &self,
        req: Request<pb::FailoverRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let req = req.into_inner();
        let node = required("node", &req.node)?;
        // --force: the primary may be alive and cut off from us. Nobody may grant it a
        // lease any more; the promotion waits until every lease it could hold ran out.
        let state = self.authority.current().state;
        let id = state
            .resolve_member(&node)
            .map_err(crate::authority::AuthorityError::from)?;
        let primary = match state.topology.nodes[&id].role {
            ember_core::Role::Replica { of } => Some(of),
            ember_core::Role::Primary => None,
        };
        if let (false, Some(p)) = (req.force, primary) {
            crate::handover::check(&self.authority, p, id)
                .await
                .map_err(Status::failed_precondition)?;
            let run = tokio::spawn(crate::handover::run(self.authority.clone(), p, id));
            let (state, outcome) = run
                .await
                .map_err(|e| Status::internal(format!("the failover task failed: {e}")))??;
            return Ok(Response::new(pb::ChangeReply {
                topology: Some(convert::topology_to_pb(&state.topology)),
                changed: outcome.changed,
                summary: outcome.summary,
            }));
        }
        if let Some(p) = primary {
            self.wait_lease_released(&state.topology, p).await?;
        }
        let result = self.change(Op::Promote { node }).await;
        if let Some(p) = primary {
            self.authority.leases.unfence(p);
        }
        result
    }

    async fn replicate(
        &self,
        req: Request<pb::ReplicateRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let req = req.into_inner();
        self.change(Op::Replicate {
            node: required("node", &req.node)?,
            primary: required("primary", &req.primary)?,
        })
        .await
    }

    async fn assign(
        &self,
        req: Request<pb::AssignRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let req = req.into_inner();
        let slots = convert::slots_from_pb(&req.slots)?;
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

    async fn migrate(
        &self,
        req: Request<pb::MigrateRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let req = req.into_inner();
        let id = Uuid::new_v4();
        let op = Op::StartMigration {
            id,
            target: required("target", &req.target)?,
            slots: convert::slots_from_pb(&req.slots)?,
            max_running: self.max_migrations,
        };
        let reply = self.change(op).await?;
        self.authority.migration_progress(id, 0, 0, 0);
        Ok(reply)
    }

    async fn cancel_migration(
        &self,
        req: Request<pb::CancelMigrationRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let query = required("migration id", &req.into_inner().id)?
            .replace('-', "")
            .to_ascii_lowercase();
        let state = self.authority.current().state;
        let matches: Vec<Uuid> = state
            .topology
            .migrations
            .iter()
            .map(|m| m.id)
            .filter(|id| id.simple().to_string().starts_with(&query))
            .collect();
        let id = match matches.as_slice() {
            [id] => *id,
            [] => {
                return Err(Status::not_found(format!(
                    "no running migration matches '{query}' (see emberctl migrations)"
                )))
            }
            _ => {
                return Err(Status::invalid_argument(format!(
                    "'{query}' matches several migrations; give more of the id"
                )))
            }
        };
        self.change(Op::AbortMigration {
            id,
            reason: "cancelled by the operator".into(),
        })
        .await
    }

    async fn export_state(
        &self,
        _: Request<pb::ExportStateRequest>,
    ) -> Result<Response<pb::StateDocument>, Status> {
        let state = self.authority.current().state;
        Ok(Response::new(pb::StateDocument {
            json: store::encode(&state),
        }))
    }

    async fn import_state(
        &self,
        req: Request<pb::ImportStateRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let json = req.into_inner().json;
        let current = self.authority.current().state;
        let reports = self.authority.reports();
        let backup = if json.is_empty() {
            restore::base_without_backup(&current, &reports)
                .map_err(|e| Status::from(AuthorityError::State(e)))?
        } else {
            store::decode(&json, Path::new("the imported document"))
                .map_err(|e| Status::invalid_argument(format!("{e:#}")))?
        };
        self.change(Op::Restore {
            backup: Box::new(backup),
            reports,
        })
        .await
    }

    async fn load_library(
        &self,
        req: Request<pb::LoadLibraryRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let req = req.into_inner();
        let mut checked = check_libraries(vec![req.code]).await?;
        let library = checked.remove(0);
        self.change(Op::Libraries(LibraryOp::Load {
            library,
            replace: req.replace,
        }))
        .await
    }

    async fn restore_libraries(
        &self,
        req: Request<pb::RestoreLibrariesRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let req = req.into_inner();
        let policy = convert::restore_policy_from_pb(req.policy());
        let libraries = check_libraries(req.code).await?;
        self.change(Op::Libraries(LibraryOp::Restore { libraries, policy }))
            .await
    }

    async fn delete_library(
        &self,
        req: Request<pb::DeleteLibraryRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        let req = req.into_inner();
        self.change(Op::Libraries(LibraryOp::Delete {
            name: req.name,
            missing_ok: req.missing_ok,
        }))
        .await
    }

    async fn flush_libraries(
        &self,
        _: Request<pb::FlushLibrariesRequest>,
    ) -> Result<Response<pb::ChangeReply>, Status> {
        self.change(Op::Libraries(LibraryOp::Flush)).await
    }

    async fn plan_moves(
        &self,
        req: Request<pb::PlanRequest>,
    ) -> Result<Response<pb::Plan>, Status> {
        let req = req.into_inner();
        let state = self.authority.current().state;
        let t = &state.topology;
        if !t.migrations.is_empty() {
            return Err(Status::failed_precondition(format!(
                "{} migration(s) are running; wait for them (emberctl migrations) before planning",
                t.migrations.len()
            )));
        }
        let primaries: Vec<_> = t
            .nodes
            .values()
            .filter(|n| n.is_primary())
            .map(|n| n.id)
            .collect();
        if let Some(failed) = t.nodes.values().find(|n| n.is_primary() && n.failed) {
            return Err(Status::failed_precondition(format!(
                "{} is failed; bring it back or forget it before moving slots",
                failed.label()
            )));
        }
        let moves = if req.drain.trim().is_empty() {
            scheduler::rebalance(&t.slots, &primaries)
        } else {
            let node = resolve_node(state.all_nodes(), req.drain.trim())
                .map_err(|e| Status::not_found(e.to_string()))?;
            if !t.nodes.contains_key(&node.id) {
                return Err(Status::failed_precondition(format!(
                    "{} is not a member",
                    node.label()
                )));
            }
            if primaries.len() < 2 {
                return Err(Status::failed_precondition(
                    "there is no other primary to move the slots to",
                ));
            }
            scheduler::drain(&t.slots, &primaries, node.id)
        };
        Ok(Response::new(pb::Plan {
            moves: moves
                .iter()
                .map(|m| pb::PlannedMove {
                    source_id: m.source.to_string(),
                    target_id: m.target.to_string(),
                    slots: m.slots.ranges().iter().map(convert::range_to_pb).collect(),
                    slot_count: m.slots.len() as u32,
                })
                .collect(),
            topology: Some(convert::topology_to_pb(t)),
        }))
    }

    async fn watch(
        &self,
        _: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let mut published = self.authority.subscribe();
        // A task per watcher feeds a small channel; it ends when the watcher goes away.
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let latest = published.borrow_and_update().clone();
                let topology = convert::topology_to_pb(&latest.state.topology);
                if tx.send(Ok(topology)).await.is_err() || published.changed().await.is_err() {
                    return;
                }
            }
        });
        let stream: TopologyStream = Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx));
        Ok(Response::new(stream))
    }
}
