//! The RESP wire protocol: request parsing ([`parse`]) and replies ([`reply`]).

pub mod parse;
pub mod reply;

pub use parse::{Limits, Parser, ProtocolError};
pub use reply::Reply;
