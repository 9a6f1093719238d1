//! Who leads. With the file store, the one process always does. With etcd, the
//! control-plane processes campaign in an etcd election on a lease (`--lease-ttl`):
//!
//! - The winner reads the state linearizably ([`Authority::take_over`]), starts the
//!   leader's tasks (heartbeater: failure detection and failovers, migration timeouts)
//!   and commits, every commit fenced by its term (see [`crate::store::etcd`]).
//! - It steps down when its lease may have run out: the lease is renewed every third of
//!   the TTL, and a renewal not answered before the TTL since the last one sent that was
//!   ends the term locally (the fencing holds even if this process is paused past it).
//!   Stepping down cancels the leader's tasks and revokes the lease, so the next
//!   candidate wins at once.
//! - The others follow: they learn the leader's URL from the election (to forward every
//!   request to it, see [`crate::forward`]) and keep a hot copy of the state from an
//!   etcd watch.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{Client, EventType, GetOptions, SortOrder, SortTarget, WatchOptions};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::authority::Authority;
use crate::store::etcd::{timed, EtcdStore, Term};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// This process leads, at `url` as the others reach it ("" with the file store), in
    /// `term` (its election key's create revision; 0 with the file store).
    Leader { url: String, term: i64 },
    /// The process at this URL leads.
    Follower { leader: String },
    /// No leader is known: an election is under way, or etcd cannot be reached.
    NoLeader { why: String },
}

impl Role {
    /// No leader yet: an election is under way.
    pub fn electing() -> Role {
        Role::NoLeader {
            why: "no leader: an election is under way".into(),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Leader { term, .. } => write!(f, "leader (term {term})"),
            Role::Follower { leader } => write!(f, "follower of {leader}"),
            Role::NoLeader { why } => write!(f, "{why}"),
        }
    }
}

/// Starts the leader's tasks; they stop when the token is cancelled.
pub type LeaderTasks = Box<dyn Fn(CancellationToken) -> Vec<JoinHandle<()>> + Send + Sync>;

/// Wait before trying etcd again after a failure.
const RETRY: Duration = Duration::from_millis(300);

/// Campaigns, leads and follows until `shutdown` (see the module).
pub async fn run(
    store: Arc<EtcdStore>,
    authority: Arc<Authority>,
    me: String,
    ttl: Duration,
    lead: LeaderTasks,
    shutdown: CancellationToken,
) {
    let mut client = store.client();
    let follow = tokio::spawn(follow(store.clone(), authority.clone(), shutdown.clone()));
    while !shutdown.is_cancelled() {
        let ttl_secs = ttl.as_secs().max(1) as i64;
        let lease = match timed(client.lease_grant(ttl_secs, None)).await {
            Ok(l) => l.id(),
            Err(e) => {
                authority.set_role(Role::NoLeader {
                    why: format!("no leader: {e}"),
                });
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let lost = CancellationToken::new();
        let keeper = tokio::spawn(keep_alive(client.clone(), lease, ttl, lost.clone()));
        let observer = tokio::spawn(observe(store.clone(), authority.clone(), me.clone()));
        let mut election = client.election_client();
        let won = tokio::select! {
            r = election.campaign(store.election(), me.clone(), lease) => r.ok().and_then(|r| r.leader().cloned()),
            _ = lost.cancelled() => None,
            _ = shutdown.cancelled() => None,
        };
        observer.abort();
        let Some(key) = won else {
            lost.cancel();
            let _ = keeper.await;
            let _ = timed(client.lease_revoke(lease)).await;
            if !shutdown.is_cancelled() {
                tokio::time::sleep(RETRY).await;
            }
            continue;
        };
        let term = Term {
            key: key.key().to_vec(),
            revision: key.rev(),
        };
        store.set_term(Some(term.clone()));
        authority.set_role(Role::Leader {
            url: me.clone(),
            term: term.revision,
        });
        tracing::info!(term = term.revision, "elected leader");
        let tasks = match authority.take_over().await {
            Ok(()) => {
                let token = lost.child_token();
                Some((lead(token.clone()), token))
            }
            Err(e) => {
                tracing::warn!("cannot take over as the leader: {e}");
                lost.cancel();
                None
            }
        };
        tokio::select! {
            _ = lost.cancelled() => tracing::warn!(term = term.revision, "leadership lost: the lease was not renewed in time"),
            _ = shutdown.cancelled() => tracing::info!(term = term.revision, "stepping down: shutting down"),
        }
        // Ordering: no commit after this (the store refuses without a term), then the
        // leader's tasks stop, then the lease goes, so that the next leader's tasks
        // never run beside these.
        store.set_term(None);
        authority.set_role(Role::electing());
        lost.cancel();
        if let Some((handles, _)) = tasks {
            for h in handles {
                let _ = h.await;
            }
        }
        let _ = keeper.await;
        let _ = timed(client.lease_revoke(lease)).await;
    }
    follow.abort();
}

/// Renews `lease` every third of `ttl`; cancels `lost` once it may have expired (no
/// renewal answered within `ttl` of the last one sent that was) or was revoked.
async fn keep_alive(mut client: Client, lease: i64, ttl: Duration, lost: CancellationToken) {
    let mut valid_until = Instant::now() + ttl;
    let mut stream = None;
    while !lost.is_cancelled() {
        if stream.is_none() {
            stream = timed(client.lease_keep_alive(lease)).await.ok();
        }
        let sent = Instant::now();
        let renewed = match stream.as_mut() {
            Some((keeper, answers)) => {
                let ask = async {
                    keeper.keep_alive().await?;
                    answers.message().await
                };
                match tokio::time::timeout(ttl / 3, ask).await {
                    Ok(Ok(Some(r))) if r.ttl() > 0 => true,
                    Ok(Ok(Some(_))) => {
                        tracing::warn!("the leadership lease was revoked or expired");
                        lost.cancel();
                        return;
                    }
                    _ => {
                        stream = None;
                        false
                    }
                }
            }
            None => false,
        };
        if renewed {
            valid_until = sent + ttl;
        }
        if Instant::now() >= valid_until {
            lost.cancel();
            return;
        }
        let next = sent + ttl / 3;
        tokio::select! {
            _ = tokio::time::sleep_until(next.into()) => {}
            _ = lost.cancelled() => return,
        }
    }
}

/// While campaigning: who leads, every 200 ms. The leader is the candidate whose key
/// under the election was created first (as etcd's election decides).
async fn observe(store: Arc<EtcdStore>, authority: Arc<Authority>, me: String) {
    let mut kv = store.client().kv_client();
    let first = GetOptions::new()
        .with_prefix()
        .with_sort(SortTarget::Create, SortOrder::Ascend)
        .with_limit(1);
    loop {
        let role = match timed(kv.get(format!("{}/", store.election()), Some(first.clone()))).await
        {
            Ok(r) => match r
                .kvs()
                .first()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned())
            {
                Some(leader) if leader != me => Role::Follower { leader },
                _ => Role::electing(),
            },
            Err(e) => Role::NoLeader {
                why: format!("no leader: {e}"),
            },
        };
        authority.set_role(role);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Keeps the authority's copy of the state as etcd has it (a follower's hot copy).
async fn follow(store: Arc<EtcdStore>, authority: Arc<Authority>, shutdown: CancellationToken) {
    let mut client = store.client();
    let adopt = |value: &[u8]| match store.decode(value) {
        Ok(state) => authority.adopt(state),
        Err(e) => tracing::error!("cannot read the stored state: {e}"),
    };
    while !shutdown.is_cancelled() {
        // Read, then watch from the next revision: nothing committed between is missed.
        let from = match timed(client.get(store.state_key(), None)).await {
            Ok(r) => {
                if let Some(kv) = r.kvs().first() {
                    adopt(kv.value());
                }
                r.header().map_or(0, |h| h.revision()) + 1
            }
            Err(_) => {
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        let watch = timed(client.watch(
            store.state_key(),
            Some(WatchOptions::new().with_start_revision(from)),
        ))
        .await;
        let Ok((_watcher, mut events)) = watch else {
            tokio::time::sleep(RETRY).await;
            continue;
        };
        loop {
            let message = tokio::select! {
                m = events.message() => m,
                _ = shutdown.cancelled() => return,
            };
            let Ok(Some(resp)) = message else { break };
            for event in resp.events() {
                if event.event_type() != EventType::Put {
                    continue;
                }
                if let Some(kv) = event.kv() {
                    adopt(kv.value());
                }
            }
        }
        tokio::time::sleep(RETRY).await;
    }
}
