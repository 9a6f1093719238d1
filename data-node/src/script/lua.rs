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

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

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
__ember_run = function(f, keys, args)
  return xpcall(function() return f(keys, args) end, __ember_handler)
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

struct Vm {
    lua: Lua,
    /// The client scripts' commands run as.
    client: Client,
    compiled: HashMap<String, Function>,
    generation: u64,
    /// Where `FCALL` runs: a VM of its own, as in Redis, rebuilt when libraries change.
    functions: FunctionsVm,
}

/// The libraries' VM and their callbacks by function name.
struct FunctionsVm {
    lua: Lua,
    libraries: Arc<Libraries>,
    callbacks: HashMap<String, Function>,
}

/// The script thread: runs jobs until the node is gone.
pub(crate) fn run_thread(state: Weak<ServerState>, jobs: std::sync::mpsc::Receiver<super::Work>) {
    let Some(kill) = state.upgrade().map(|s| s.scripts.kill.clone()) else {
        return;
    };
    let vms = new_vm().and_then(|lua| {
        hook_kill(&lua, kill.clone())?;
        let functions = build_functions(&Arc::default(), &kill)?;
        Ok((lua, functions))
    });
    let mut vm = match vms {
        Ok((lua, functions)) => Vm {
            lua,
            client: Client::new(Arc::new(ClientInfo::new(0, "lua".into(), String::new()))),
            compiled: HashMap::new(),
            generation: 0,
            functions,
        },
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
                    match build_functions(&libs, &kill) {
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
        let generation = state.scripts.generation.load(Ordering::Relaxed);
        if generation != vm.generation {
            vm.compiled.clear();
            vm.generation = generation;
        }
        let running = job
            .function
            .as_ref()
            .map(|f| (f.name.clone(), f.command.clone()));
        state.scripts.begin(job.slot, running);
        let reply = run(&mut vm, &state, &job);
        state.scripts.end();
        // The script's writes go to the replicas now (no connection turn follows).
        state.repl.wake();
        let _ = reply_to.send(reply);
    }
}

/// `SCRIPT KILL` / `FUNCTION KILL` are seen every 10,000 VM instructions.
fn hook_kill(lua: &Lua, kill: Arc<std::sync::atomic::AtomicBool>) -> mlua::Result<()> {
    lua.set_hook(
        HookTriggers::new().every_nth_instruction(10_000),
        move |_, _| match kill.load(Ordering::Relaxed) {
            true => Err(mlua::Error::runtime("killed")),
            false => Ok(VmState::Continue),
        },
    )
}

/// A functions VM with every library of `libs` registered (the control plane checked
/// them, so a failure here is unexpected: the caller keeps the VM it has).
fn build_functions(
    libs: &Arc<Libraries>,
    kill: &Arc<std::sync::atomic::AtomicBool>,
) -> mlua::Result<FunctionsVm> {
    let lua = new_vm()?;
    let globals = lua.globals();
    let redis: Table = globals.get("__ember_redis")?;
    let log: Function = redis.raw_get("log")?;
    let mut callbacks = HashMap::new();
    for lib in libs.values() {
        let (_, registered) =
            ember_core::functions::lua::register(&lua, &lib.code, &globals, log.clone())
                .map_err(|e| mlua::Error::runtime(format!("library {}: {e}", lib.name)))?;
        for (info, f) in lib.functions.iter().zip(registered) {
            callbacks.insert(info.name.clone(), f);
        }
    }
    hook_kill(&lua, kill.clone())?;
    Ok(FunctionsVm {
        lua,
        libraries: libs.clone(),
        callbacks,
    })
}

fn new_vm() -> mlua::Result<Lua> {
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
        lua.create_function(|lua, v: i64| {
            if v != 2 && v != 3 {
                return Err(mlua::Error::runtime("RESP version must be 2 or 3."));
            }
            lua.set_named_registry_value("ember_resp", v)?;
            Ok(())
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
    super::libs::install(&lua)?;
    lua.load(FREEZE).set_name("=ember").exec()?;
    lua.set_memory_limit(MEMORY_LIMIT)?;
    Ok(lua)
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
}

fn run(vm: &mut Vm, state: &ServerState, job: &Job) -> Reply {
    if let Some(call) = &job.function {
        let Some(f) = vm.functions.callbacks.get(&call.name).cloned() else {
            return Reply::err("ERR Function not found");
        };
        return execute(
            &vm.functions.lua,
            &mut vm.client,
            state,
            job,
            &f,
            &call.name,
        );
    }
    let lua = &vm.lua;
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
                return Reply::error(format!(
                    "ERR Error compiling script (new function): {message}"
                ));
            }
            Err(e) => return Reply::error(format!("ERR Error compiling script: {e}")),
        },
    };
    if job.load_only {
        return Reply::Bulk(Bytes::from(job.sha.clone()));
    }
    let g = lua.globals();
    if let (Ok(keys), Ok(argv)) = (strings_table(lua, &job.keys), strings_table(lua, &job.args)) {
        let _ = g.raw_set("KEYS", keys);
        let _ = g.raw_set("ARGV", argv);
    }
    let reply = execute(lua, &mut vm.client, state, job, &f, &job.sha);
    let _ = g.raw_set("KEYS", Value::Nil);
    let _ = g.raw_set("ARGV", Value::Nil);
    reply
}

/// Runs `f` (a script's chunk, or a function's callback given the keys and arguments),
/// with `redis.call` bound to this run; `name` is what errors name (the SHA1 or the
/// function).
fn execute(
    lua: &Lua,
    client: &mut Client,
    state: &ServerState,
    job: &Job,
    f: &Function,
    name: &str,
) -> Reply {
    let _ = lua.set_named_registry_value("ember_resp", 2);
    client.readonly = job.readonly_client;
    let mut r = Run {
        state,
        job,
        client,
        guard: None,
        slot: None,
        effects: Vec::new(),
        now: now_ms(),
    };
    if let Some(slot) = job.slot {
        r.lock(slot);
    }
    let killed = std::cell::Cell::new(false);
    let r = std::cell::RefCell::new(r);
    let run_command = |lua: &Lua, args: &[Value], raise: bool| -> mlua::Result<Value> {
        let reply = r.borrow_mut().command(lua, args);
        if let (true, Reply::Error(e)) = (raise, &reply) {
            lua.set_named_registry_value("ember_call_error", lua.create_string(e.as_bytes())?)?;
            return Err(mlua::Error::runtime("redis.call failed"));
        }
        let resp3 = lua.named_registry_value::<i64>("ember_resp").unwrap_or(2) == 3;
        to_lua(lua, reply, resp3)
    };
    let result = lua.scope(|scope| {
        let call = scope
            .create_function(|lua, args: mlua::Variadic<Value>| run_command(lua, &args, true))?;
        let pcall = scope
            .create_function(|lua, args: mlua::Variadic<Value>| run_command(lua, &args, false))?;
        let set: Function = lua.globals().get("__ember_set_commands")?;
        set.call::<()>((call, pcall))?;
        let (keys, args) = match job.function {
            Some(_) => (
                Value::Table(strings_table(lua, &job.keys)?),
                Value::Table(strings_table(lua, &job.args)?),
            ),
            None => (Value::Nil, Value::Nil),
        };
        let runner: Function = lua.globals().get("__ember_run")?;
        let out = runner.call::<mlua::MultiValue>((f.clone(), keys, args));
        if state.scripts.kill.load(Ordering::Relaxed) {
            killed.set(true);
        }
        let out = out?;
        let mut values = out.into_iter();
        let ok = matches!(values.next(), Some(Value::Boolean(true)));
        let value = values.next().unwrap_or(Value::Nil);
        Ok(match (ok, killed.get()) {
            (true, _) => from_lua(&value),
            (false, false) => error_from_handler(&value, name, None),
            (false, true) => error_from_handler(&value, name, Some(KILLED)),
        })
    });
    let reply = match result {
        Ok(reply) => reply,
        Err(_) if killed.get() => Reply::error(format!("{KILLED} script: {name}")),
        Err(mlua::Error::MemoryError(_)) => {
            lua.gc_collect().ok();
            Reply::err("ERR Error running script: the script used more than its memory limit")
        }
        Err(e) => Reply::error(format!("ERR Error running script: {e}")),
    };
    r.into_inner().finish();
    reply
}

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
    let Value::Table(t) = v else {
        return Reply::err("ERR Error running script");
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
            g.publish(&std::mem::take(&mut self.effects));
            crate::blocking::serve(self.state, self.client, &mut g, slot, self.now);
        }
    }

    /// `redis.call` / `redis.pcall`: runs one command, as Redis does from a script.
    fn command(&mut self, lua: &Lua, args: &[Value]) -> Reply {
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
        let noscript = meta::of_command(idx).has_flag("noscript");
        if noscript || (write && matches!(spec.handler, Handler::Keyless(_))) {
            return Reply::err("ERR This Redis command is not allowed from script");
        }
        if write && self.job.read_only {
            return Reply::err("ERR Write commands are not allowed from read-only scripts.");
        }
        let state = self.state;
        self.client.resp3 = lua.named_registry_value::<i64>("ember_resp").unwrap_or(2) == 3;
        match spec.handler {
            Handler::Keyless(f) => {
                // Keyless commands may lock every slot: run with this one released, as
                // `EXEC` runs them.
                let held = self.slot;
                if let Some(mut g) = self.guard.take() {
                    g.publish(&std::mem::take(&mut self.effects));
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
        let vm = build_functions(&libs, &Arc::default()).unwrap();
        assert!(vm.callbacks.contains_key("f"));
    }

    /// Globals and the library tables are read-only, as in Redis.
    #[test]
    fn globals_cannot_be_changed() {
        let lua = new_vm().unwrap();
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
            let lua = new_vm().unwrap();
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
