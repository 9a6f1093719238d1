//! The etcd store: the state document at `PREFIX/state`, written only by the elected
//! leader (see [`crate::leadership`]), each commit one transaction conditioned on
//!
//! - the leader's term: its election key still exists with the create revision it had
//!   when this process won (a deposed leader, even one that still believes it leads
//!   after a pause, cannot write: its key is gone or another's), and
//! - the version it replaces: the document's mod revision is the one this process
//!   loaded or committed last (absent, for the first commit).
//!
//! Reads are etcd's default, linearizable.

use std::sync::Mutex;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, Txn, TxnOp, TxnOpResponse};

use super::{decode, encode, StateStore, StoreError};
use crate::state::ClusterState;

/// Longest wait for one etcd request: without a quorum, requests hang until it.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The term this process leads in: its election key, and that key's create revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    pub key: Vec<u8>,
    pub revision: i64,
}

pub struct EtcdStore {
    client: Client,
    endpoints: Vec<String>,
    prefix: String,
    term: Mutex<Option<Term>>,
    /// The stored document as this process last loaded or committed it: its state's
    /// version and its mod revision.
    stored: Mutex<Option<(u64, i64)>>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Runs one etcd request under [`REQUEST_TIMEOUT`].
pub async fn timed<T>(
    f: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(r) => r.map_err(unavailable),
        Err(_) => Err(StoreError::Unavailable(format!(
            "no answer within {REQUEST_TIMEOUT:?}: no quorum?"
        ))),
    }
}

impl EtcdStore {
    /// A client of the etcd cluster at `endpoints` (connected lazily: an etcd down at
    /// start is waited for, not an error), keys under `prefix`.
    pub async fn connect(endpoints: Vec<String>, prefix: &str) -> Result<Self, StoreError> {
        // No per-request timeout here: a campaign waits as long as another leads (a
        // timeout would make candidates give up and re-queue behind each other). Every
        // other request is bounded by [`timed`].
        let options = ConnectOptions::new()
            .with_connect_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(1), REQUEST_TIMEOUT);
        let client = Client::connect(&endpoints, Some(options))
            .await
            .map_err(unavailable)?;
        Ok(Self {
            client,
            endpoints,
            prefix: prefix.trim_end_matches('/').to_string(),
            term: Mutex::new(None),
            stored: Mutex::new(None),
        })
    }

    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The key holding the state document.
    pub fn state_key(&self) -> String {
        format!("{}/state", self.prefix)
    }

    /// The election's name (its candidates' keys are under it).
    pub fn election(&self) -> String {
        format!("{}/leader", self.prefix)
    }

    /// Starts (`Some`) or ends (`None`) this process's term: commits are fenced by it.
    pub fn set_term(&self, term: Option<Term>) {
        *self.term.lock().unwrap() = term;
    }

    /// Decodes a stored document (from a read or a watch event).
    pub fn decode(&self, value: &[u8]) -> Result<ClusterState, StoreError> {
        let source = format!("etcd key {}", self.state_key());
        decode(value, std::path::Path::new(&source))
    }
}

#[tonic::async_trait]
impl StateStore for EtcdStore {
    async fn load(&self) -> Result<Option<ClusterState>, StoreError> {
        let mut kv = self.client.kv_client();
        let resp = timed(kv.get(self.state_key(), None)).await?;
        let Some(kv) = resp.kvs().first() else {
            *self.stored.lock().unwrap() = None;
            return Ok(None);
        };
        let state = self.decode(kv.value())?;
        *self.stored.lock().unwrap() = Some((state.version(), kv.mod_revision()));
        Ok(Some(state))
    }

    async fn commit(&self, expected: Option<u64>, next: &ClusterState) -> Result<(), StoreError> {
        let term = self
            .term
            .lock()
            .unwrap()
            .clone()
            .ok_or(StoreError::NotLeader)?;
        let stored = *self.stored.lock().unwrap();
        if stored.map(|(v, _)| v) != expected {
            return Err(StoreError::Conflict {
                expected,
                found: stored.map(|(v, _)| v),
            });
        }
        let key = self.state_key();
        let document = match stored {
            Some((_, rev)) => Compare::mod_revision(key.clone(), CompareOp::Equal, rev),
            None => Compare::create_revision(key.clone(), CompareOp::Equal, 0),
        };
        let txn = Txn::new()
            .when([
                Compare::create_revision(term.key.clone(), CompareOp::Equal, term.revision),
                document,
            ])
            .and_then([TxnOp::put(key.clone(), encode(next), None)])
            .or_else([
                TxnOp::get(term.key.clone(), None),
                TxnOp::get(key.clone(), None),
            ]);
        let mut kv = self.client.kv_client();
        let resp = timed(kv.txn(txn)).await?;
        if resp.succeeded() {
            let revision = resp.header().map_or(0, |h| h.revision());
            *self.stored.lock().unwrap() = Some((next.version(), revision));
            return Ok(());
        }
        // Refused: the term ended, or someone else wrote the document.
        let mut answers = resp.op_responses().into_iter();
        let leads = match answers.next() {
            Some(TxnOpResponse::Get(g)) => g
                .kvs()
                .first()
                .is_some_and(|kv| kv.create_revision() == term.revision),
            _ => false,
        };
        if !leads {
            self.set_term(None);
            return Err(StoreError::NotLeader);
        }
        let found = match answers.next() {
            Some(TxnOpResponse::Get(g)) => g
                .kvs()
                .first()
                .and_then(|kv| self.decode(kv.value()).ok())
                .map(|s| s.version()),
            _ => None,
        };
        Err(StoreError::Conflict { expected, found })
    }

    fn describe(&self) -> String {
        format!("etcd {} (prefix {})", self.endpoints.join(","), self.prefix)
    }
}
