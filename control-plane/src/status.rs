//! The edge where control-plane errors become gRPC statuses with the right codes.
//!
//! A persistence failure is `INTERNAL` with the metadata `ember-error: persistence`, so
//! that emberctl tells it apart (exit 4) from an unreachable control plane without
//! reading the message.

use ember_core::functions::FunctionError;
use ember_core::topology::ResolveError;
use tonic::Status;

use crate::authority::AuthorityError;
use crate::leadership::Role;
use crate::state::StateError;
use crate::store::StoreError;

impl From<AuthorityError> for Status {
    fn from(e: AuthorityError) -> Self {
        let msg = e.to_string();
        let kind = |mut status: Status, kind: &'static str| {
            status.metadata_mut().insert(
                ember_proto::ERROR_KIND,
                tonic::metadata::MetadataValue::from_static(kind),
            );
            status
        };
        match e {
            AuthorityError::Store(StoreError::Unavailable(why)) => kind(
                Status::unavailable(format!("no leader (etcd quorum lost?): {why}")),
                ember_proto::ERROR_NO_LEADER,
            ),
            AuthorityError::NotLeader(Role::Follower { leader }) => {
                let mut status = kind(
                    Status::unavailable(format!("not the leader, the leader is {leader}")),
                    ember_proto::ERROR_NOT_LEADER,
                );
                if let Ok(v) = leader.parse() {
                    status.metadata_mut().insert(ember_proto::LEADER_URL, v);
                }
                status
            }
            AuthorityError::NotLeader(role) => kind(
                Status::unavailable(format!("no leader ({role})")),
                ember_proto::ERROR_NO_LEADER,
            ),
            AuthorityError::Store(_) => kind(Status::internal(msg), ember_proto::ERROR_PERSISTENCE),
            AuthorityError::Frozen(_) | AuthorityError::ForeignCluster(_) => {
                Status::failed_precondition(msg)
            }
            AuthorityError::State(s) => match s {
                StateError::Resolve(ResolveError::Unknown(_)) | StateError::NoMigration(_) => {
                    Status::not_found(msg)
                }
                StateError::Resolve(ResolveError::Ambiguous { .. }) => {
                    Status::invalid_argument(msg)
                }
                StateError::Invalid(_) | StateError::Registration(_) => {
                    Status::invalid_argument(msg)
                }
                StateError::TooManyPending => Status::resource_exhausted(msg),
                StateError::Function(f) => {
                    let status = match f {
                        FunctionError::NotFound => Status::not_found(msg),
                        FunctionError::Exists(_)
                        | FunctionError::ExistsOnRestore(_)
                        | FunctionError::FunctionExists(_) => Status::already_exists(msg),
                        _ => Status::invalid_argument(msg),
                    };
                    kind(status, ember_proto::ERROR_FUNCTION)
                }
                StateError::Busy(_) => {
                    kind(Status::failed_precondition(msg), ember_proto::ERROR_BUSY)
                }
                StateError::AlreadyMember(_) | StateError::Duplicate(_) => {
                    Status::already_exists(msg)
                }
                StateError::NotMember(_)
                | StateError::NotBootstrapped
                | StateError::AlreadyBootstrapped(_)
                | StateError::Conflict(_) => Status::failed_precondition(msg),
            },
        }
    }
}
