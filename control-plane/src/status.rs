//! The edge where control-plane errors become gRPC statuses with the right codes.

use ember_core::topology::ResolveError;
use tonic::Status;

use crate::authority::AuthorityError;
use crate::state::StateError;

impl From<AuthorityError> for Status {
    fn from(e: AuthorityError) -> Self {
        let msg = e.to_string();
        match e {
            AuthorityError::Store(_) => Status::unavailable(msg),
            AuthorityError::State(s) => match s {
                StateError::Resolve(ResolveError::Unknown(_)) | StateError::NoMigration(_) => {
                    Status::not_found(msg)
                }
                StateError::Resolve(ResolveError::Ambiguous { .. }) => {
                    Status::invalid_argument(msg)
                }
                StateError::Invalid(_) => Status::invalid_argument(msg),
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
