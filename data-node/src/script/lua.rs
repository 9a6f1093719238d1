//! The Lua 5.1 VM of the script thread: the sandbox, `redis.*`, the conversions between
//! Redis replies and Lua values (Redis's rules), and one script execution.
//!
//! Sandbox: the base, table, string and math libraries, and Redis's `cjson`, `cmsgpack`,
//! `bit` and `struct` ([`super::libs`]) only (no `os`, `io`, `package`,
//! `debug`, `loadfile`, `dofile`); globals are read-only and reading an undefined one is
//! an error, as in Redis 7; at most [`MEMORY_LIMIT`] bytes.
//!
//! Conversions (Redis's): integer → number, bulk → string, nil bulk/array → `false`,
//! array → table, status → `{ok=...}`, error → `{err=...}`; back: number → integer
//! (truncated), string → bulk, `true` → 1, `false`/`nil` → nil, `{ok=}` → status,
//! `{err=}` → error, `{double=}`, `{map=}`, `{set=}` → those RESP3 types, other tables
//! → arrays up to the first nil. After `redis.setresp(3)` the RESP3 types come to Lua as
//! `{map=}`, `{set=}`, `{double=}`, booleans and nil.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mlua::{Function, HookTriggers, Lua, LuaOptions, StdLib, Table, Value, VmState};

use super::Job;
use crate::cmd::{flags, lookup, meta, record_write, Client, Ctx, Handler, TABLE};
use crate::db::{now_ms, Effect, SlotGuard};
use crate::resp::Reply;
use crate::state::{ClientInfo, ServerState};
use ember_core::functions::Libraries;

/// Most memory the Lua VM may use.
pub const MEMORY_LIMIT: usize = 256 * 1024 * 1024;

/// The error handler and the `redis` table, defined before globals are frozen. A
/// `redis.call` that fails raises a Rust error; the handler takes the command's error
/// from `__ember_call_error` and reports the line of the script's frame (still on the
/// stack: `redis.call` is a C function, so even `return redis.call(...)` keeps it).
const PRELUDE: &str = r#"
local getinfo = debug.getinfo
local real = {}
__ember_set_commands = function(call, pcall) real.call = call; real.pcall = pcall end
__ember_handler = function(e)
  local level, info = 2, nil
  repeat
    info = getinfo(level, 'Sl')
    level = level + 1
  until info == nil or info.source == '@user_script' or info.source == '@user_function'
  if type(e) ~= 'table' then
    local failed = __ember_call_error()
    if failed ~= nil then
      e = {err = failed}
    else
      e = {err = 'ERR ' .. tostring(e)}
    end
  end
  if info then
    e.source = info.source
    e.line = info.currentline
  end
  return e
end
local call_f, call_keys, call_args
local function call_function()
  local f, keys, args = call_f, call_keys, call_args
  call_f, call_keys, call_args = nil, nil, nil
  return f(keys, args)
end
__ember_run = function(f, keys, args)
  if keys == nil then return xpcall(f, __ember_handler) end
  call_f, call_keys, call_args = f, keys, args
  return xpcall(call_function, __ember_handler)
end
redis = setmetatable({}, {
  __index = real,
  __newindex = function() error('Attempt to modify a readonly table', 2) end,
  __metatable = false,
})
__ember_redis = real
"#;

/// Freezes the globals, after which nothing can be defined, changed or read undefined,
/// as Redis's read-only tables: the globals table is left empty (every write meets
/// `__newindex`), its values and read-only views of the library tables behind it.
const FREEZE: &str = r#"
debug = nil
local G, error, tostring, setmetatable, rawset = _G, error, tostring, setmetatable, rawset
local readonly = function() error('Attempt to modify a readonly table', 2) end
local backing = {}
for k, v in pairs(_G) do
  if type(v) == 'table' and k ~= '_G' and k ~= 'redis' and k ~= '__ember_redis' then
    v = setmetatable({}, {__index = v, __newindex = readonly, __metatable = false})
  end
  backing[k] = v
end
for k in pairs(backing) do rawset(G, k, nil) end
setmetatable(backing, {
  __index = function(_, k)
    error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
  end,
})
setmetatable(G, {__index = backing, __newindex = readonly, __metatable = false})
"#;

/// A script run on a connection's thread that has not written yet after this long is
/// abandoned and handed to the script thread (see [`super`]).
pub const INLINE_BUDGET: Duration = Duration::from_millis(1);

/// A run on the script thread shorter than this makes its script known short.
pub const SHORT: Duration = Duration::from_micros(500);

/// A pair of VMs (scripts and functions) and what one thread keeps with them: the
/// script thread has one, and so has every connection thread that ran a short script.
struct Vm {
    lua: Engine,
    /// The client scripts' commands run as.
    client: Client,
    compiled: HashMap<String, Function, foldhash::fast::RandomState>,
    generation: u64,
    /// Where `FCALL` runs: a VM of its own, as in Redis, rebuilt when libraries change.
    functions: FunctionsVm,
    watch: Watch,
}

/// The libraries' VM and their callbacks by function name.
struct FunctionsVm {
    lua: Engine,
    libraries: Arc<Libraries>,
    callbacks: HashMap<String, Function>,
}

/// One Lua state and its entry point (kept: looking it up on every run costs).
struct Engine {
    lua: Lua,
    /// `__ember_run(f, keys, args)`: runs `f` under the error handler.
    runner: Function,
    /// The names `KEYS` and `ARGV`, as Lua strings.
    names: (mlua::LuaString, mlua::LuaString),
}

/// What a VM's instruction hook watches.
#[derive(Clone)]
struct Watch {
    /// `SCRIPT KILL` / `FUNCTION KILL` (the node's [`super::Scripts`]' flags).
    kill: Arc<AtomicBool>,
    wrote: Arc<AtomicBool>,
    budget: Rc<Budget>,
}

/// When a run on a connection's thread gives up.
#[derive(Default)]
struct Budget {
    /// Unset on the script thread.
    deadline: Cell<Option<Instant>>,
    /// The deadline passed before the script wrote: the run is abandoned.
    over: Cell<bool>,
    /// The script did what cannot be undone without writing (`PUBLISH`): the run cannot
    /// be abandoned (nor can a run that wrote).
    committed: Cell<bool>,
}

impl Budget {
    /// A run on a connection's thread starts: it may take `budget`.
    fn arm(&self, budget: Duration) {
        self.deadline.set(Some(Instant::now() + budget));
    }

    /// The run ended: no deadline, and nothing of it remembered.
    fn disarm(&self) {
        self.deadline.set(None);
        self.over.set(false);
        self.committed.set(false);
    }
}

impl Vm {
    fn new(state: &ServerState) -> mlua::Result<Vm> {
        let watch = Watch {
            kill: state.scripts.kill.clone(),
            wrote: state.scripts.wrote.clone(),
            budget: Rc::default(),
        };
        let lua = new_vm()?;
        hook(&lua.lua, &watch)?;
        Ok(Vm {
            lua,
            client: Client::new(Arc::new(ClientInfo::new(0, "lua".into(), String::new()))),
            compiled: HashMap::default(),
            generation: 0,
            functions: build_functions(&Arc::default(), &watch)?,
            watch,
        })
    }

    /// Runs `job` as the holder of the run token; `None`: abandoned (its budget ran out).
    fn run_job(&mut self, state: &ServerState, job: &Job) -> Option<Reply> {
        let generation = state.scripts.generation.load(Ordering::Relaxed);
        if generation != self.generation {
            self.compiled.clear();
            self.generation = generation;
        }
        let running = job.function.as_ref().map(|_| job.command.clone());
        state.scripts.begin(job.slot, running);
        let reply = run(self, state, job);
        state.scripts.end();
        reply
    }

    /// Rebuilds the functions VM if the node's libraries changed since.
    fn follow_libraries(&mut self, state: &ServerState) -> mlua::Result<()> {
        let applied = state.scripts.functions.applied();
        if !Arc::ptr_eq(&applied.libraries, &self.functions.libraries) {
            self.functions = build_functions(&applied.libraries, &self.watch)?;
        }
        Ok(())
    }
}

/// Records whether `job`'s script or function is known short.
fn known_short(state: &ServerState, job: &Job, short: bool) {
    match &job.function {
        Some(name) => {
            if let Some(s) = state.scripts.functions.applied().short.get(name) {
                s.store(short, Ordering::Relaxed);
            }
        }
        None => state.scripts.set_short(&job.sha, short),
    }
}

thread_local! {
    /// This connection thread's VMs, made on its first short script.
    static HERE: RefCell<Option<Vm>> = const { RefCell::new(None) };
}

/// Runs `job` on this thread: its reply, or `None` if another script runs or it
/// outlasted [`INLINE_BUDGET`] before its first write (nothing of it happened, and it
/// is no longer known short), and it is for the script thread.
pub(crate) fn run_here(state: &ServerState, job: &Job) -> Option<Reply> {
    let token = state.scripts.token.try_lock()?;
    let reply = HERE.with(|here| {
        let mut here = here.try_borrow_mut().ok()?;
        if here.is_none() {
            *here = Vm::new(state)
                .map_err(|e| tracing::error!("cannot create a Lua VM on this thread: {e}"))
                .ok();
        }
        let vm = here.as_mut()?;
        if job.function.is_some() {
            vm.follow_libraries(state)
                .map_err(|e| tracing::error!("cannot load the function libraries here: {e}"))
                .ok()?;
        }
        vm.watch.budget.arm(INLINE_BUDGET);
        let reply = vm.run_job(state, job);
        vm.watch.budget.disarm();
        reply
    });
    drop(token);
    if reply.is_none() {
        known_short(state, job, false);
    }
    reply
}

/// The script thread: runs jobs until the node is gone.
pub(crate) fn run_thread(state: Weak<ServerState>, jobs: std::sync::mpsc::Receiver<super::Work>) {
    let Some(vm) = state.upgrade().map(|s| Vm::new(&s)) else {
        return;
    };
    let mut vm = match vm {
        Ok(vm) => vm,
        Err(e) => {
            tracing::error!("cannot create the Lua VM: {e}");
            for work in jobs {
                if let super::Work::Run(_, reply) = work {
                    let _ = reply.send(Reply::err("ERR scripting is not available"));
                }
            }
            return;
        }
    };
    while let Ok(work) = jobs.recv() {
        let Some(state) = state.upgrade() else {
            return;
        };
        let (job, reply_to) = match work {
            super::Work::Run(job, reply_to) => (job, reply_to),
            super::Work::Libraries(version, libs) => {
                if libs != vm.functions.libraries {
                    match build_functions(&libs, &vm.watch) {
                        Ok(f) => {
                            vm.functions = f;
                            state.scripts.functions.set_applied(libs);
                        }
                        Err(e) => tracing::error!(
                            "cannot load the function libraries of topology version {version}: {e}"
                        ),
                    }
                }
                state.scripts.functions.applied_through(version);
                continue;
            }
        };
        let token = state.scripts.token.lock();
        let began = Instant::now();
        let reply = vm
            .run_job(&state, &job)
            .unwrap_or_else(|| Reply::err("ERR the script was abandoned"));
        drop(token);
        if !job.load_only {
            known_short(&state, &job, began.elapsed() < SHORT);
        }
        // The script's writes go to the replicas now (no connection turn follows).
        state.repl.wake();
        let _ = reply_to.send(reply);
    }
}

/// Every 1,000 VM instructions: `SCRIPT KILL` / `FUNCTION KILL`, and the budget of a
/// run on a connection's thread.
fn hook(lua: &Lua, watch: &Watch) -> mlua::Result<()> {
    let watch = watch.clone();
    lua.set_hook(
        HookTriggers::new().every_nth_instruction(1_000),
        move |_, _| {
            if watch.kill.load(Ordering::Relaxed) {
                return Err(mlua::Error::runtime("killed"));
            }
            let budget = &watch.budget;
            if let Some(deadline) = budget.deadline.get() {
                let undoable = !watch.wrote.load(Ordering::Relaxed) && !budget.committed.get();
                if undoable && Instant::now() >= deadline {
                    budget.over.set(true);
                    return Err(mlua::Error::runtime("abandoned"));
                }
            }
            Ok(VmState::Continue)
        },
    )
}

/// A functions VM with every library of `libs` registered (the control plane checked
/// them, so a failure here is unexpected: the caller keeps the VM it has).
fn build_functions(libs: &Arc<Libraries>, watch: &Watch) -> mlua::Result<FunctionsVm> {
    let engine = new_vm()?;
    let lua = &engine.lua;
    let globals = lua.globals();
    let redis: Table = globals.get("__ember_redis")?;
    let log: Function = redis.raw_get("log")?;
    let mut callbacks = HashMap::new();
    for lib in libs.values() {
        let (_, registered) =
            ember_core::functions::lua::register(lua, &lib.code, &globals, log.clone())
                .map_err(|e| mlua::Error::runtime(format!("library {}: {e}", lib.name)))?;
        for (info, f) in lib.functions.iter().zip(registered) {
            callbacks.insert(info.name.clone(), f);
        }
    }
    hook(lua, watch)?;
    Ok(FunctionsVm {
        lua: engine,
        libraries: libs.clone(),
        callbacks,
    })
}

fn new_vm() -> mlua::Result<Engine> {
    // SAFETY: `debug` is needed only by the error handler, which keeps `debug.getinfo`
    // in a local before `FREEZE` removes the library; scripts never see it.
    let lua = unsafe {
        Lua::unsafe_new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG,
            LuaOptions::default(),
        )
    };
    let g = lua.globals();
    for name in ["loadfile", "dofile"] {
        g.raw_set(name, Value::Nil)?;
    }
    lua.load(PRELUDE).set_name("=ember").exec()?;
    g.raw_set(
        "__ember_call_error",
        lua.create_function(|lua, ()| {
            let failed: Value = lua.named_registry_value("ember_call_error")?;
            lua.set_named_registry_value("ember_call_error", Value::Nil)?;
            Ok(failed)
        })?,
    )?;
    let real: Table = g.raw_get("__ember_redis")?;
    real.raw_set(
        "sha1hex",
        lua.create_function(|_, s: mlua::LuaString| Ok(super::sha1_hex(&s.as_bytes())))?,
    )?;
    real.raw_set(
        "error_reply",
        lua.create_function(|lua, s: mlua::LuaString| {
            let t = lua.create_table()?;
            t.raw_set("err", s)?;
            Ok(t)
        })?,
    )?;
    real.raw_set(
        "status_reply",
        lua.create_function(|lua, s: mlua::LuaString| {
            let t = lua.create_table()?;
            t.raw_set("ok", s)?;
            Ok(t)
        })?,
    )?;
    real.raw_set(
        "log",
        lua.create_function(|_, (level, msg): (i64, mlua::LuaString)| {
            let msg = msg.to_string_lossy();
            match level {
                0 => tracing::debug!(target: "ember::script", "{msg}"),
                1 | 2 => tracing::info!(target: "ember::script", "{msg}"),
                _ => tracing::warn!(target: "ember::script", "{msg}"),
            }
            Ok(())
        })?,
    )?;
    real.raw_set(
        "setresp",
        lua.create_function(|_, v: i64| {
            if v != 2 && v != 3 {
                return Err(mlua::Error::runtime("RESP version must be 2 or 3."));
            }
            with_active(|run| run.resp3 = v == 3)
        })?,
    )?;
    // Effects replication is the only mode: these exist for scripts that call them.
    real.raw_set("set_repl", lua.create_function(|_, _: i64| Ok(()))?)?;
    real.raw_set("replicate_commands", lua.create_function(|_, ()| Ok(true))?)?;
    for (name, v) in [
        ("LOG_DEBUG", 0),
        ("LOG_VERBOSE", 1),
        ("LOG_NOTICE", 2),
        ("LOG_WARNING", 3),
        ("REPL_NONE", 0),
        ("REPL_AOF", 1),
        ("REPL_SLAVE", 2),
        ("REPL_REPLICA", 2),
        ("REPL_ALL", 3),
    ] {
        real.raw_set(name, v)?;
    }
    let call =
        lua.create_function(|lua, args: mlua::Variadic<Value>| redis_call(lua, &args, true))?;
    let pcall =
        lua.create_function(|lua, args: mlua::Variadic<Value>| redis_call(lua, &args, false))?;
    g.raw_get::<Function>("__ember_set_commands")?
        .call::<()>((call, pcall))?;
    super::libs::install(&lua)?;
    let runner = g.raw_get("__ember_run")?;
    lua.load(FREEZE).set_name("=ember").exec()?;
    let names = (lua.create_string("KEYS")?, lua.create_string("ARGV")?);
    Ok(Engine { lua, runner, names })
}

/// What one execution holds while it runs.
struct Run<'s> {
    state: &'s ServerState,
    job: &'s Job,
    client: &'s mut Client,
    guard: Option<SlotGuard<'s>>,
    slot: Option<u16>,
    effects: Vec<Effect>,
    now: u64,
    /// Once over, no command runs: the run is abandoned.
    budget: &'s Budget,
    /// `redis.setresp(3)` was called.
    resp3: bool,
}

/// Runs `job` on `vm`: its reply, or `None` if it was abandoned (see [`Budget`]).
fn run(vm: &mut Vm, state: &ServerState, job: &Job) -> Option<Reply> {
    let budget = &vm.watch.budget;
    if let Some(name) = &job.function {
        let Some(f) = vm.functions.callbacks.get(name).cloned() else {
            return Some(Reply::err("ERR Function not found"));
        };
        return execute(
            &vm.functions.lua,
            &mut vm.client,
            state,
            job,
            (&f, name),
            budget,
        );
    }
    let lua = &vm.lua.lua;
    let f = match vm.compiled.get(&job.sha) {
        Some(f) => f.clone(),
        None => match lua
            .load(&job.body[..])
            .set_name("@user_script")
            .into_function()
        {
            Ok(f) => {
                vm.compiled.insert(job.sha.clone(), f.clone());
                state.scripts.insert(&job.sha, &job.original);
                f
            }
            Err(mlua::Error::SyntaxError { message, .. }) => {
                return Some(Reply::error(format!(
                    "ERR Error compiling script (new function): {message}"
                )));
            }
            Err(e) => return Some(Reply::error(format!("ERR Error compiling script: {e}"))),
        },
    };
    if job.load_only {
        return Some(Reply::Bulk(Bytes::from(job.sha.clone())));
    }
    let g = lua.globals();
    if let (Ok(keys), Ok(argv)) = (
        strings_table(lua, job.keys()),
        strings_table(lua, job.args()),
    ) {
        let _ = g.raw_set(&vm.lua.names.0, keys);
        let _ = g.raw_set(&vm.lua.names.1, argv);
    }
    let reply = execute(&vm.lua, &mut vm.client, state, job, (&f, &job.sha), budget);
    let _ = g.raw_set(&vm.lua.names.0, Value::Nil);
    let _ = g.raw_set(&vm.lua.names.1, Value::Nil);
    reply
}

/// Runs `f` (a script's chunk, or a function's callback given the keys and arguments),
/// with `redis.call` bound to this run; `name` is what errors name (the SHA1 or the
/// function).
fn execute(
    engine: &Engine,
    client: &mut Client,
    state: &ServerState,
    job: &Job,
    (f, name): (&Function, &str),
    budget: &Budget,
) -> Option<Reply> {
    let lua = &engine.lua;
    client.readonly = job.readonly_client;
    let mut r = Run {
        state,
        job,
        client,
        guard: None,
        slot: None,
        effects: Vec::new(),
        now: now_ms(),
        budget,
        resp3: false,
    };
    if let Some(slot) = job.slot {
        r.lock(slot);
    }
    let r = RefCell::new(r);
    let active = Active::set(&r);
    let args = match job.function {
        Some(_) => strings_table(lua, job.keys()).and_then(|k| {
            Ok((
                Value::Table(k),
                Value::Table(strings_table(lua, job.args())?),
            ))
        }),
        None => Ok((Value::Nil, Value::Nil)),
    };
    let out = args.and_then(|(keys, args)| {
        limited(lua, || {
            engine
                .runner
                .call::<mlua::MultiValue>((f.clone(), keys, args))
        })
    });
    drop(active);
    let killed = state.scripts.kill.load(Ordering::Relaxed);
    let reply = match out {
        Ok(out) => {
            let mut values = out.into_iter();
            let ok = matches!(values.next(), Some(Value::Boolean(true)));
            let value = values.next().unwrap_or(Value::Nil);
            match (ok, killed) {
                (true, _) => from_lua(&value),
                (false, false) => error_from_handler(&value, name, None),
                (false, true) => error_from_handler(&value, name, Some(KILLED)),
            }
        }
        Err(_) if killed => Reply::error(format!("{KILLED} script: {name}")),
        Err(mlua::Error::MemoryError(_)) => {
            lua.gc_collect().ok();
            Reply::err(MEMORY_ERROR)
        }
        Err(e) => Reply::error(format!("ERR Error running script: {e}")),
    };
    r.into_inner().finish();
    (!budget.over.get()).then_some(reply)
}

thread_local! {
    /// The run this thread executes: what `redis.call` serves (see [`Active`]).
    static ACTIVE: Cell<*const ()> = const { Cell::new(std::ptr::null()) };
}

/// Makes a run the one `redis.call` and `redis.setresp` of this thread serve, until
/// dropped. The VMs' `redis.call` functions are made once per Lua state, not per run
/// (which would cost two closures and a scope every run), so they find their run here.
struct Active(*const ());

impl Active {
    fn set(run: &RefCell<Run<'_>>) -> Active {
        Active(ACTIVE.replace(std::ptr::from_ref(run).cast()))
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVE.set(self.0);
    }
}

/// Calls `f` with the run this thread executes (an error outside of one, or from
/// within one of its own commands).
fn with_active<T>(f: impl FnOnce(&mut Run<'_>) -> T) -> mlua::Result<T> {
    let p = ACTIVE.get();
    if p.is_null() {
        return Err(mlua::Error::runtime(
            "redis.call is available only while a script runs",
        ));
    }
    // SAFETY: `p` was set by `Active::set` from a `RefCell<Run>` that outlives the
    // `Active` (both locals of `execute`, the cell declared first), and the `Active`
    // is dropped, restoring the previous pointer, before the cell is; this thread is
    // the only one that reads it. The `RefCell` refuses a second borrow.
    let cell = unsafe { &*p.cast::<RefCell<Run<'_>>>() };
    let mut run = cell
        .try_borrow_mut()
        .map_err(|_| mlua::Error::runtime("redis.call cannot be called from here"))?;
    Ok(f(&mut run))
}

/// `redis.call` (`raise`: a command's error is raised) and `redis.pcall` (returned as
/// an `{err=}` table).
fn redis_call(lua: &Lua, args: &[Value], raise: bool) -> mlua::Result<Value> {
    unlimited(lua, || {
        let (reply, resp3) = with_active(|run| (run.command(lua, args), run.resp3))?;
        if let (true, Reply::Error(e)) = (raise, &reply) {
            lua.set_named_registry_value("ember_call_error", lua.create_string(e.as_bytes())?)?;
            return Err(mlua::Error::runtime("redis.call failed"));
        }
        to_lua(lua, reply, resp3)
    })
}

/// Runs `f` (the script) with the VM's memory limit ([`MEMORY_LIMIT`]) on. Outside of
/// it, in ember's own conversions, the limit is off: mlua then calls Lua's API
/// directly, where with a limit it calls it through a protected call for every value
/// made (any allocation could fail), a closure and a `pcall` each.
fn limited<T>(lua: &Lua, f: impl FnOnce() -> T) -> T {
    let _ = lua.set_memory_limit(MEMORY_LIMIT);
    let out = f();
    let _ = lua.set_memory_limit(0);
    out
}

/// Within [`limited`]: runs `f` (a conversion of ember's) with the limit off.
fn unlimited<T>(lua: &Lua, f: impl FnOnce() -> T) -> T {
    let _ = lua.set_memory_limit(0);
    let out = f();
    let _ = lua.set_memory_limit(MEMORY_LIMIT);
    out
}

/// A script that reached [`MEMORY_LIMIT`] (Redis has no such limit, so no words).
const MEMORY_ERROR: &str = "ERR Error running script: the script used more than its memory limit";

/// As Redis words it, for functions too.
const KILLED: &str = "ERR Script killed by user with SCRIPT KILL...";

fn strings_table(lua: &Lua, items: &[Bytes]) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, s) in items.iter().enumerate() {
        t.raw_set(i + 1, lua.create_string(&s[..])?)?;
    }
    Ok(t)
}

/// The reply of a script that raised an error: the handler's `{err=, source=, line=}`
/// (with `err` replaced by `instead`, if given).
fn error_from_handler(v: &Value, sha: &str, instead: Option<&str>) -> Reply {
    let t = match v {
        Value::Table(t) => t,
        // Lua 5.1 calls no handler for a memory error: `xpcall` returns its message.
        Value::String(m) if m.as_bytes().as_ref() == b"not enough memory" => {
            return Reply::err(MEMORY_ERROR);
        }
        _ => return Reply::err("ERR Error running script"),
    };
    let err: String = t
        .raw_get::<mlua::LuaString>("err")
        .map(|s| s.to_string_lossy())
        .unwrap_or_else(|_| "ERR unknown error".into());
    let err = instead
        .map(str::to_string)
        .unwrap_or_else(|| err.strip_prefix('-').unwrap_or(&err).to_string());
    let source: Option<String> = t.raw_get("source").ok();
    let line: Option<i64> = t.raw_get("line").ok();
    match (source, line) {
        (Some(src), Some(line)) => Reply::error(format!("{err} script: {sha}, on {src}:{line}.")),
        _ => Reply::error(format!("{err} script: {sha}")),
    }
}

impl<'s> Run<'s> {
    fn lock(&mut self, slot: u16) {
        self.guard = Some(self.state.db.lock(slot));
        self.slot = Some(slot);
        self.state.scripts.set_slot(slot);
    }

    /// Publishes what the script wrote, serves clients blocked on it, releases the slot.
    fn finish(&mut self) {
        if let (Some(mut g), Some(slot)) = (self.guard.take(), self.slot) {
            g.publish(std::mem::take(&mut self.effects));
            crate::blocking::serve(self.state, self.client, &mut g, slot, self.now);
        }
    }

    /// `redis.call` / `redis.pcall`: runs one command, as Redis does from a script.
    fn command(&mut self, lua: &Lua, args: &[Value]) -> Reply {
        if self.budget.over.get() {
            return Reply::err("ERR the script is abandoned");
        }
        if args.is_empty() {
            return Reply::err("ERR Please specify at least one argument for this redis lib call");
        }
        let mut argv = Vec::with_capacity(args.len());
        for a in args {
            match a {
                Value::String(s) => argv.push(Bytes::copy_from_slice(&s.as_bytes())),
                Value::Integer(_) | Value::Number(_) => match lua.coerce_string(a.clone()) {
                    Ok(Some(s)) => argv.push(Bytes::copy_from_slice(&s.as_bytes())),
                    _ => return arg_type_error(),
                },
                _ => return arg_type_error(),
            }
        }
        let Some(idx) = lookup(&argv[0]) else {
            return Reply::err("ERR Unknown Redis command called from script");
        };
        let spec = &TABLE[idx];
        if !crate::cmd::arity_ok(spec.arity, argv.len()) {
            return Reply::err("ERR Wrong number of args calling Redis command from script");
        }
        let write = spec.flags & flags::WRITE != 0;
        let (noscript, pubsub) = script_flags(idx);
        if noscript || (write && matches!(spec.handler, Handler::Keyless(_))) {
            return Reply::err("ERR This Redis command is not allowed from script");
        }
        if write && self.job.read_only {
            return Reply::err("ERR Write commands are not allowed from read-only scripts.");
        }
        if spec.flags & flags::DENYOOM != 0
            && !self.job.allow_oom
            && crate::evict::out_of_memory(self.state)
        {
            return Reply::err(crate::evict::OOM);
        }
        if pubsub {
            self.budget.committed.set(true);
        }
        let state = self.state;
        self.client.resp3 = self.resp3;
        match spec.handler {
            Handler::Keyless(f) => {
                // Keyless commands may lock every slot: run with this one released, as
                // `EXEC` runs them.
                let held = self.slot;
                if let Some(mut g) = self.guard.take() {
                    g.publish(std::mem::take(&mut self.effects));
                }
                let mut ctx = Ctx::new(state, self.client, self.now);
                ctx.nonblocking = true;
                let r = f(&mut ctx, &argv);
                if let Some(slot) = held {
                    self.guard = Some(state.db.lock(slot));
                }
                r
            }
            Handler::Keyed(f) => {
                let slot = match crate::cmd::command_slot(spec, &argv) {
                    Ok(s) => s,
                    Err(r) => return r,
                };
                match self.slot {
                    Some(s) if s != slot => {
                        return Reply::err(
                            "ERR Script attempted to access keys that do not hash to the same slot",
                        );
                    }
                    Some(_) => {}
                    None => {
                        let replica_read = !write && self.job.readonly_client;
                        if state.cluster.route(slot, replica_read).is_err() {
                            return Reply::err(
                                "ERR Script attempted to access a non local key in a cluster node",
                            );
                        }
                        self.lock(slot);
                    }
                }
                if write {
                    if let Err(e) = crate::cmd::may_write(state) {
                        return e;
                    }
                }
                let Some(g) = self.guard.as_mut() else {
                    return Reply::err("ERR no slot locked");
                };
                let mut ctx = Ctx::new(state, self.client, self.now);
                ctx.slot = slot;
                ctx.nonblocking = true;
                ctx.observed = g.observed();
                let r = f(&mut ctx, g, &argv);
                if write {
                    if crate::cmd::changed(&ctx, &r) {
                        state.scripts.wrote.store(true, Ordering::Relaxed);
                    }
                    record_write(&mut ctx, g, &argv, &r, &mut self.effects);
                }
                r
            }
        }
    }
}

/// Command `idx`'s Redis flags that scripts care about: `noscript` (refused) and
/// `pubsub` (what it does cannot be undone, see [`Budget`]), read once.
fn script_flags(idx: usize) -> (bool, bool) {
    static FLAGS: std::sync::OnceLock<Vec<(bool, bool)>> = std::sync::OnceLock::new();
    FLAGS.get_or_init(|| {
        (0..TABLE.len())
            .map(|i| {
                let m = meta::of_command(i);
                (m.has_flag("noscript"), m.has_flag("pubsub"))
            })
            .collect()
    })[idx]
}

fn arg_type_error() -> Reply {
    Reply::err("ERR Lua redis lib command arguments must be strings or integers")
}

/// A command's reply as the script sees it.
fn to_lua(lua: &Lua, r: Reply, resp3: bool) -> mlua::Result<Value> {
    let table1 = |k: &str, v: Value| -> mlua::Result<Value> {
        let t = lua.create_table()?;
        t.raw_set(k, v)?;
        Ok(Value::Table(t))
    };
    Ok(match r {
        Reply::Integer(i) => Value::Number(i as f64),
        Reply::Bulk(b) => Value::String(lua.create_string(&b[..])?),
        Reply::Verbatim(_, b) => Value::String(lua.create_string(&b[..])?),
        Reply::Simple(s) => table1("ok", Value::String(lua.create_string(s.as_bytes())?))?,
        Reply::Error(s) => table1("err", Value::String(lua.create_string(s.as_bytes())?))?,
        Reply::Null | Reply::NullArray => match resp3 {
            true => Value::Nil,
            false => Value::Boolean(false),
        },
        Reply::Boolean(b) if resp3 => Value::Boolean(b),
        Reply::Boolean(b) => Value::Number(b as i64 as f64),
        Reply::Double(d) if resp3 => table1("double", Value::Number(d))?,
        Reply::Double(d) => {
            Value::String(lua.create_string(crate::resp::reply::fmt_double(d).as_bytes())?)
        }
        Reply::Map(pairs) if resp3 => {
            let t = lua.create_table()?;
            for (k, v) in pairs {
                t.raw_set(to_lua(lua, k, resp3)?, to_lua(lua, v, resp3)?)?;
            }
            table1("map", Value::Table(t))?
        }
        Reply::Map(pairs) => {
            let t = lua.create_table()?;
            let mut i = 0;
            for (k, v) in pairs {
                t.raw_set(i + 1, to_lua(lua, k, resp3)?)?;
                t.raw_set(i + 2, to_lua(lua, v, resp3)?)?;
                i += 2;
            }
            Value::Table(t)
        }
        Reply::Set(items) if resp3 => {
            let t = lua.create_table()?;
            for v in items {
                t.raw_set(to_lua(lua, v, resp3)?, true)?;
            }
            table1("set", Value::Table(t))?
        }
        Reply::Array(items) | Reply::Set(items) | Reply::Push(items) | Reply::Many(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, v) in items.into_iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, v, resp3)?)?;
            }
            Value::Table(t)
        }
    })
}

/// A script's return value as the client's reply.
pub fn from_lua(v: &Value) -> Reply {
    match v {
        Value::Nil => Reply::Null,
        Value::Boolean(false) => Reply::Null,
        Value::Boolean(true) => Reply::Integer(1),
        Value::Integer(i) => Reply::Integer(*i),
        Value::Number(n) => Reply::Integer(*n as i64),
        Value::String(s) => Reply::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Table(t) => table_reply(t),
        _ => Reply::Null,
    }
}

fn table_reply(t: &Table) -> Reply {
    let field = |k: &str| t.raw_get::<Value>(k).unwrap_or(Value::Nil);
    if let Value::String(e) = field("err") {
        let e = e.to_string_lossy();
        return Reply::error(e.strip_prefix('-').unwrap_or(&e).to_string());
    }
    if let Value::String(s) = field("ok") {
        return Reply::Simple(s.to_string_lossy().into());
    }
    match field("double") {
        Value::Number(d) => return Reply::Double(d),
        Value::Integer(i) => return Reply::Double(i as f64),
        _ => {}
    }
    if let Value::Table(m) = field("map") {
        let pairs = m
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, v)| (from_lua(&k), from_lua(&v)))
            .collect();
        return Reply::Map(pairs);
    }
    if let Value::Table(s) = field("set") {
        let items = s
            .pairs::<Value, Value>()
            .filter_map(Result::ok)
            .map(|(k, _)| from_lua(&k))
            .collect();
        return Reply::Set(items);
    }
    let mut items = Vec::new();
    for i in 1.. {
        match t.raw_get::<Value>(i) {
            Ok(Value::Nil) | Err(_) => break,
            Ok(v) => items.push(from_lua(&v)),
        }
    }
    Reply::Array(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vm_starts() {
        new_vm().unwrap();
    }

    #[test]
    fn a_functions_vm_registers_libraries() {
        let code = "#!lua name=l\nredis.register_function('f', function(k, a) return a[1] end)";
        let lib = ember_core::functions::lua::check(code).unwrap();
        let libs = Arc::new(Libraries::from([(lib.name.clone(), lib)]));
        let watch = Watch {
            kill: Arc::default(),
            wrote: Arc::default(),
            budget: Rc::default(),
        };
        let vm = build_functions(&libs, &watch).unwrap();
        assert!(vm.callbacks.contains_key("f"));
    }

    /// Globals and the library tables are read-only, as in Redis.
    #[test]
    fn globals_cannot_be_changed() {
        let lua = new_vm().unwrap().lua;
        for code in [
            "cjson = nil",
            "string = 1",
            "string.format = nil",
            "x = 1",
            "redis.call = 1",
        ] {
            let e = lua.load(code).exec().unwrap_err().to_string();
            assert!(
                e.contains("Attempt to modify a readonly table"),
                "{code}: {e}"
            );
        }
        let e = lua.load("return nosuch").exec().unwrap_err().to_string();
        assert!(e.contains("nonexistent global variable 'nosuch'"), "{e}");
        let v: String = lua.load("return string.format('%d', 5)").eval().unwrap();
        assert_eq!(v, "5");
    }

    use proptest::prelude::*;

    /// Replies a RESP2 command can give a script.
    fn reply() -> impl Strategy<Value = Reply> {
        let leaf = prop_oneof![
            (-(1i64 << 53)..(1i64 << 53)).prop_map(Reply::Integer),
            proptest::collection::vec(any::<u8>(), 0..12).prop_map(|b| Reply::Bulk(b.into())),
            "[a-zA-Z0-9 ]{0,10}".prop_map(|s| Reply::Simple(s.into())),
            "[A-Z]{1,5} [a-z ]{0,10}".prop_map(|s| Reply::Error(s.into())),
            Just(Reply::Null),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            proptest::collection::vec(inner, 0..6).prop_map(Reply::Array)
        })
    }

    proptest! {
        /// A reply converted to Lua and returned by the script as it is reaches the
        /// client unchanged (Redis's rules: null bulk -> false -> null bulk, status and
        /// error -> {ok=}/{err=} tables -> status and error, arrays with their nils).
        #[test]
        fn replies_survive_a_round_trip_through_lua(r in reply()) {
            let lua = new_vm().unwrap().lua;
            let v = to_lua(&lua, r.clone(), false).unwrap();
            prop_assert_eq!(from_lua(&v), r);
        }

        /// Lua numbers become integers by truncation, as Redis converts them.
        #[test]
        fn numbers_are_truncated(n in -1e15f64..1e15) {
            prop_assert_eq!(from_lua(&Value::Number(n)), Reply::Integer(n.trunc() as i64));
        }
    }
}
