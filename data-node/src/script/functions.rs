//! Function libraries on a node: the set applied here (what `FUNCTION LIST` and `FCALL`
//! see), how a new set reaches the script thread's functions VM, and how a client's
//! change (`FUNCTION LOAD/DELETE/FLUSH/RESTORE`) reaches the control plane.
//!
//! - **Cluster-wide.** Libraries are part of the topology: the control plane checks and
//!   commits a change, streams it to every node, and each node rebuilds its functions VM
//!   with the whole new set at once (a library is never half there). A client's change
//!   is forwarded to the control plane and answered once this node runs the committed
//!   set, so an `FCALL` right after `FUNCTION LOAD` on the same node finds the function.
//! - **Standalone** (the command engine's tests): the same rules applied here.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use ember_core::functions::{self, FunctionError, FunctionInfo, Libraries, RestorePolicy};
use ember_core::Topology;
use ember_proto::pb;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use crate::resp::Reply;
use crate::state::ServerState;

/// How long a change may take at the control plane, and then to be applied here.
const CHANGE_TIMEOUT: Duration = Duration::from_secs(10);

/// The applied libraries, and their functions by name.
#[derive(Default)]
pub struct Applied {
    pub libraries: Arc<Libraries>,
    pub by_name: HashMap<String, FunctionInfo>,
    /// The functions known short (they may run on a connection's thread, see
    /// [`super`]).
    pub short: HashMap<String, std::sync::atomic::AtomicBool>,
}

#[derive(Default)]
pub struct Functions {
    applied: RwLock<Arc<Applied>>,
    /// The newest set handed to the script thread, and its topology version (re-sent
    /// when the thread starts).
    requested: Mutex<(u64, Arc<Libraries>)>,
    /// The newest topology version whose libraries the script thread has applied.
    version: watch::Sender<u64>,
    /// The command of the function running now (`FCALL name ...`: `FUNCTION STATS`).
    pub(crate) running: Mutex<Option<Arc<[Bytes]>>>,
    /// Where changes go: the control plane's URL (unset: standalone, applied here).

    /// The runtime that talks to the control plane (a connection thread's may be held
    /// by `EXEC` while the change is waited for).
    runtime: OnceLock<tokio::runtime::Handle>,
    /// The node, for the tasks that carry changes out.
    node: OnceLock<std::sync::Weak<ServerState>>,
    /// Libraries this node stopped having lately, and when: a `FUNCTION DELETE` of one is
    /// a client's repeat (sent to every primary), answered `OK` as the first was.
    deleted: Mutex<HashMap<String, std::time::Instant>>,
}

/// How long a deleted library's name is remembered (see [`Functions`]' `deleted`).
const REPEAT_WINDOW: Duration = Duration::from_secs(10);

/// A client's change of the libraries.
pub enum Change {
    Load {
        code: String,
        replace: bool,
    },
    Restore {
        code: Vec<String>,
        policy: RestorePolicy,
    },
    Delete {
        name: String,
    },
    Flush,
}

impl Functions {
    pub(crate) fn started(&self, node: &Arc<ServerState>, rt: Option<tokio::runtime::Handle>) {
        let _ = self.node.set(Arc::downgrade(node));
        if let Some(rt) = rt {
            let _ = self.runtime.set(rt);
        }
    }

    pub fn applied(&self) -> Arc<Applied> {
        self.applied.read().clone()
    }

    /// The script thread rebuilt its functions VM with `libs`.
    pub(crate) fn set_applied(&self, libs: Arc<Libraries>) {
        let now = std::time::Instant::now();
        let mut deleted = self.deleted.lock();
        deleted.retain(|_, at| now.duration_since(*at) < REPEAT_WINDOW);
        for name in self.applied().libraries.keys() {
            if !libs.contains_key(name) {
                deleted.insert(name.clone(), now);
            }
        }
        drop(deleted);
        let by_name: HashMap<_, _> = libs
            .values()
            .flat_map(|l| &l.functions)
            .map(|f| (f.name.clone(), f.clone()))
            .collect();
        let short = by_name
            .keys()
            .map(|n| (n.clone(), Default::default()))
            .collect();
        *self.applied.write() = Arc::new(Applied {
            libraries: libs,
            by_name,
            short,
        });
    }

    /// The script thread has applied the libraries of topology `version`.
    pub(crate) fn applied_through(&self, version: u64) {
        self.version.send_if_modified(|v| {
            let newer = version > *v;
            *v = (*v).max(version);
            newer
        });
    }

    /// What to hand the script thread for topology `version` (the same `Arc` when the
    /// set is unchanged, so nothing is copied or rebuilt).
    fn request(&self, version: u64, libs: &Libraries) -> Arc<Libraries> {
        let mut requested = self.requested.lock();
        if *requested.1 != *libs {
            requested.1 = Arc::new(libs.clone());
        }
        requested.0 = requested.0.max(version);
        requested.1.clone()
    }

    /// What the script thread must be handed when it starts.
    pub(crate) fn requested(&self) -> (u64, Arc<Libraries>) {
        self.requested.lock().clone()
    }

    /// Waits (bounded) until the libraries of topology `version` are applied.
    async fn wait_applied(&self, version: u64) -> bool {
        let mut rx = self.version.subscribe();
        tokio::time::timeout(CHANGE_TIMEOUT, rx.wait_for(|v| *v >= version))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Hands the libraries of `version` to the script thread.
pub fn offer(state: &ServerState, version: u64, libs: &Libraries) {
    let libs = state.scripts.functions.request(version, libs);
    state.scripts.send_libraries(version, libs);
}

/// Applies the libraries of every new topology.
pub struct FunctionsListener(pub Arc<ServerState>);

impl crate::cluster::applier::TopologyListener for FunctionsListener {
    fn before_apply(&self, _: &Topology) {}

    fn after_apply(self: Arc<Self>, applied: &Topology) {
        offer(&self.0, applied.version, &applied.libraries);
    }
}

/// Carries out `change` (at the control plane, or here when standalone) and answers once
/// this node runs the result: the library's name for a load, `OK` otherwise.
pub fn submit(state: &ServerState, change: Change) -> tokio::sync::oneshot::Receiver<Reply> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let Some(state) = state.scripts.functions.node.get().and_then(|w| w.upgrade()) else {
        let _ = tx.send(Reply::err("ERR scripting is not available"));
        return rx;
    };
    let runtime = state.scripts.functions.runtime.get().cloned();
    let work = async move {
        let reply = match apply(&state, change).await {
            Ok(reply) => reply,
            Err(e) => e,
        };
        let _ = tx.send(reply);
    };
    match runtime {
        Some(rt) => drop(rt.spawn(work)),
        None => drop(tokio::spawn(work)),
    }
    rx
}

async fn apply(state: &ServerState, change: Change) -> Result<Reply, Reply> {
    let f = &state.scripts.functions;
    let reply = match &change {
        Change::Load { code, .. } => {
            let meta = functions::metadata(code).map_err(function_error)?;
            Reply::Bulk(Bytes::from(meta.name))
        }
        _ => Reply::ok(),
    };
    let version = match state.cluster.control_plane() {
        Some(url) => at_control_plane(&url, state, change).await?,
        None => here(state, change).await?,
    };
    if !f.wait_applied(version).await {
        return Err(Reply::error(format!(
            "ERR the change is committed (topology version {version}) but this node has not applied it yet"
        )));
    }
    Ok(reply)
}

fn function_error(e: FunctionError) -> Reply {
    Reply::error(format!("ERR {e}"))
}

/// Standalone: checks and applies `change` to this node's libraries; the new version.
async fn here(state: &ServerState, change: Change) -> Result<u64, Reply> {
    let checked = |codes: Vec<String>| async move {
        tokio::task::spawn_blocking(move || functions::lua::check_all(&codes))
            .await
            .map_err(|_| Reply::err("ERR checking the library failed"))?
            .map_err(function_error)
    };
    let (version, libs) = state.scripts.functions.requested();
    let mut libs = (*libs).clone();
    let result = match change {
        Change::Load { code, replace } => {
            let lib = checked(vec![code]).await?.remove(0);
            functions::load(&mut libs, lib, replace).map(drop)
        }
        Change::Restore { code, policy } => {
            let new = checked(code).await?;
            functions::restore(&mut libs, new, policy).map(drop)
        }
        Change::Delete { name } => functions::delete(&mut libs, &name),
        Change::Flush => {
            libs.clear();
            Ok(())
        }
    };
    result.map_err(function_error)?;
    offer(state, version + 1, &libs);
    Ok(version + 1)
}

/// Sends `change` to the control plane: the topology version that commits it.
async fn at_control_plane(url: &str, state: &ServerState, change: Change) -> Result<u64, Reply> {
    use pb::admin_client::AdminClient;
    let unreachable = |e: &dyn std::fmt::Display| {
        Reply::error(format!(
            "ERR cannot reach the control plane ({url}) to change the function libraries: {e}"
        ))
    };
    let (channel, _) = ember_proto::connect_any(url, 0, |e| {
        e.connect_timeout(Duration::from_secs(2))
            .timeout(CHANGE_TIMEOUT)
    })
    .await
    .map_err(|e| unreachable(&e))?;
    let mut admin = AdminClient::new(channel);
    let reply = match change {
        Change::Load { code, replace } => {
            admin
                .load_library(pb::LoadLibraryRequest { code, replace })
                .await
        }
        Change::Restore { code, policy } => {
            let policy = ember_proto::convert::restore_policy_to_pb(policy);
            admin
                .restore_libraries(pb::RestoreLibrariesRequest {
                    code,
                    policy: policy as i32,
                })
                .await
        }
        Change::Delete { name } => {
            // This node has it, or had it until a moment ago: if it is gone at the
            // control plane, the same DELETE sent to every primary deleted it.
            let f = &state.scripts.functions;
            let missing_ok = f.applied().libraries.contains_key(&name)
                || f.deleted
                    .lock()
                    .get(&name)
                    .is_some_and(|at| at.elapsed() < REPEAT_WINDOW);
            admin
                .delete_library(pb::DeleteLibraryRequest { name, missing_ok })
                .await
        }
        Change::Flush => admin.flush_libraries(pb::FlushLibrariesRequest {}).await,
    };
    match reply {
        Ok(r) => Ok(r.into_inner().topology.map_or(0, |t| t.version)),
        Err(status) => {
            let kind = status
                .metadata()
                .get(ember_proto::ERROR_KIND)
                .and_then(|v| v.to_str().ok());
            if kind == Some(ember_proto::ERROR_FUNCTION) {
                Err(Reply::error(format!("ERR {}", status.message())))
            } else {
                Err(Reply::error(format!(
                    "ERR the control plane refused the change: {}",
                    status.message()
                )))
            }
        }
    }
}
