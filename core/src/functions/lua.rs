//! Running a library's code to learn what it registers, as Redis's `FUNCTION LOAD` does.
//!
//! While the code runs it sees one global only, a `redis` table with
//! `register_function`, `log` and the `LOG_*` levels; anything else is "nonexistent".
//! Afterwards, its functions see `globals` (the node's sandbox, with `redis.call`).
//! Both views are read-only. The control plane runs [`check`] in a VM of its own before
//! it commits a library; a node runs [`register`] in its functions VM to get the callbacks.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mlua::{Function, HookTriggers, Lua, LuaOptions, StdLib, Table, Value, VmState};

use super::{metadata, valid_name, FunctionError, FunctionInfo, Library, FLAGS};

/// The most a library's code may run while it loads (Redis's).
pub const LOAD_TIMEOUT: Duration = Duration::from_millis(500);

/// Makes a library's environment: `api` while it loads, `globals` once `done()` is
/// called; writes are refused in both.
const ENVIRONMENT: &str = r#"
local api, globals = ...
local mt = {
  __index = api,
  __newindex = function() error('Attempt to modify a readonly table', 2) end,
  __metatable = false,
}
return setmetatable({}, mt), function() mt.__index = globals end
"#;

/// A read-only view of a table whose missing fields are errors, as Redis's load-time
/// globals and `redis` table.
const STRICT: &str = r#"
local t = ...
return setmetatable({}, {
  __index = function(_, k)
    local v = rawget(t, k)
    if v == nil then
      error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end
    return v
  end,
  __newindex = function() error('Attempt to modify a readonly table', 2) end,
  __metatable = false,
})
"#;

type Registered = Rc<RefCell<Vec<(FunctionInfo, Function)>>>;

/// Runs library `code` in `lua`: the library, and its callbacks in `functions` order.
/// `globals` is what the callbacks see when they run; `log` backs `redis.log`.
pub fn register(
    lua: &Lua,
    code: &str,
    globals: &Table,
    log: Function,
) -> Result<(Library, Vec<Function>), FunctionError> {
    let meta = metadata(code)?;
    let chunk = match lua
        .load(&code[meta.body_at..])
        .set_name("@user_function")
        .into_function()
    {
        Ok(f) => f,
        Err(mlua::Error::SyntaxError { message, .. }) => {
            return Err(FunctionError::Compile(message))
        }
        Err(e) => return Err(FunctionError::Compile(e.to_string())),
    };
    let registered: Registered = Rc::default();
    let setup = || -> mlua::Result<Function> {
        let redis = lua.create_table()?;
        redis.raw_set(
            "register_function",
            register_function(lua, registered.clone())?,
        )?;
        redis.raw_set("log", log)?;
        for (name, level) in [
            ("LOG_DEBUG", 0),
            ("LOG_VERBOSE", 1),
            ("LOG_NOTICE", 2),
            ("LOG_WARNING", 3),
        ] {
            redis.raw_set(name, level)?;
        }
        let strict = |t: Table| lua.load(STRICT).set_name("=ember").call::<Table>(t);
        let api = lua.create_table()?;
        api.raw_set("redis", strict(redis)?)?;
        let api = strict(api)?;
        let (env, done): (Table, Function) = lua
            .load(ENVIRONMENT)
            .set_name("=ember")
            .call((api, globals.clone()))?;
        chunk.set_environment(env)?;
        Ok(done)
    };
    let done = setup().map_err(|e| FunctionError::Register(e.to_string()))?;
    let ran = chunk.call::<()>(());
    let _ = done.call::<()>(());
    ran.map_err(|e| FunctionError::Register(format!("ERR {}", root_message(&e))))?;
    let registered = std::mem::take(&mut *registered.borrow_mut());
    if registered.is_empty() {
        return Err(FunctionError::NoFunctions);
    }
    let (functions, callbacks) = registered.into_iter().unzip();
    Ok((
        Library {
            name: meta.name,
            code: code.to_string(),
            functions,
        },
        callbacks,
    ))
}

/// Checks library `code` in a VM of its own, within [`LOAD_TIMEOUT`]: what it registers.
pub fn check(code: &str) -> Result<Library, FunctionError> {
    let lua = Lua::new_with(StdLib::NONE, LuaOptions::default())
        .map_err(|e| FunctionError::Register(e.to_string()))?;
    let started = Instant::now();
    let hooked = lua.set_hook(
        HookTriggers::new().every_nth_instruction(100_000),
        move |_, _| match started.elapsed() > LOAD_TIMEOUT {
            true => Err(mlua::Error::runtime("FUNCTION LOAD timeout")),
            false => Ok(VmState::Continue),
        },
    );
    let log = lua.create_function(|_, _: mlua::MultiValue| Ok(()));
    let (Ok(()), Ok(log)) = (hooked, log) else {
        return Err(FunctionError::Register("cannot prepare a Lua VM".into()));
    };
    register(&lua, code, &lua.globals(), log).map(|(lib, _)| lib)
}

/// [`check`] of each library in turn: all of them, or the first failure.
pub fn check_all(codes: &[String]) -> Result<Vec<Library>, FunctionError> {
    codes.iter().map(|code| check(code)).collect()
}

/// The message of the error that started it all (a callback's error is wrapped), without
/// the traceback mlua adds.
fn root_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => root_message(cause),
        mlua::Error::RuntimeError(m) => m.split("\nstack traceback:").next().unwrap_or(m).into(),
        other => other.to_string(),
    }
}

/// `redis.register_function(name, callback)` or `redis.register_function{function_name=,
/// callback=, flags=, description=}`.
fn register_function(lua: &Lua, registered: Registered) -> mlua::Result<Function> {
    lua.create_function(move |lua, args: mlua::MultiValue| {
        let fail = |m: &str| Err(mlua::Error::runtime(m));
        let (info, callback) = match args.len() {
            1 => {
                let Some(Value::Table(t)) = args.front() else {
                    return fail("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).");
                };
                named_args(lua, t)?
            }
            2 => {
                let Some(name) = as_string(lua, &args[0]) else {
                    return fail("first argument to redis.register_function must be a string");
                };
                let Value::Function(callback) = &args[1] else {
                    return fail("second argument to redis.register_function must be a function");
                };
                let info = FunctionInfo {
                    name,
                    description: None,
                    flags: vec![],
                };
                (info, callback.clone())
            }
            _ => return fail("wrong number of arguments to redis.register_function"),
        };
        if !valid_name(&info.name) {
            return fail(&FunctionError::BadName.to_string());
        }
        let mut registered = registered.borrow_mut();
        if registered.iter().any(|(f, _)| f.name == info.name) {
            return fail("Function already exists in the library");
        }
        registered.push((info, callback));
        Ok(())
    })
}

fn named_args(lua: &Lua, t: &Table) -> mlua::Result<(FunctionInfo, Function)> {
    let fail = |m: &str| Err(mlua::Error::runtime(m));
    let (mut name, mut description, mut callback, mut flags) = (None, None, None, vec![]);
    for pair in t.pairs::<Value, Value>() {
        let (k, v) = pair?;
        let Some(k) = as_string(lua, &k) else {
            return fail("named argument key given to redis.register_function is not a string");
        };
        match k.to_ascii_lowercase().as_str() {
            "function_name" => {
                match as_string(lua, &v) {
                    Some(s) => name = Some(s),
                    None => return fail(
                        "function_name argument given to redis.register_function must be a string",
                    ),
                }
            }
            "description" => {
                match as_string(lua, &v) {
                    Some(s) => description = Some(s),
                    None => return fail(
                        "description argument given to redis.register_function must be a string",
                    ),
                }
            }
            "callback" => match v {
                Value::Function(f) => callback = Some(f),
                _ => {
                    return fail(
                        "callback argument given to redis.register_function must be a function",
                    )
                }
            },
            "flags" => {
                let Value::Table(list) = v else {
                    return fail("flags argument to redis.register_function must be a table representing function flags");
                };
                flags = read_flags(lua, &list)
                    .ok_or_else(|| mlua::Error::runtime("unknown flag given"))?;
            }
            _ => return fail("unknown argument given to redis.register_function"),
        }
    }
    let Some(name) = name else {
        return fail("redis.register_function must get a function name argument");
    };
    let Some(callback) = callback else {
        return fail("redis.register_function must get a callback argument");
    };
    let info = FunctionInfo {
        name,
        description,
        flags,
    };
    Ok((info, callback))
}

/// A flags list (strings, any case) as canonical names in [`FLAGS`] order; `None` if one
/// is unknown.
fn read_flags(lua: &Lua, list: &Table) -> Option<Vec<String>> {
    let mut given = Vec::new();
    for v in list.sequence_values::<Value>() {
        let flag = as_string(lua, &v.ok()?)?.to_ascii_lowercase();
        if !FLAGS.contains(&flag.as_str()) {
            return None;
        }
        given.push(flag);
    }
    Some(
        FLAGS
            .iter()
            .filter(|f| given.iter().any(|g| g == *f))
            .map(|f| f.to_string())
            .collect(),
    )
}

/// A string or a number, as Lua's `lua_isstring` accepts them.
fn as_string(lua: &Lua, v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.to_string_lossy()),
        Value::Integer(_) | Value::Number(_) => lua
            .coerce_string(v.clone())
            .ok()
            .flatten()
            .map(|s| s.to_string_lossy()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: &str) -> String {
        check(&format!("#!lua name=l\n{code}"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_library_registers_its_functions() {
        let lib = check(
            "#!lua name=lib1\nlocal x = 1\n\
             redis.register_function('f1', function(keys, args) return 1 end)\n\
             redis.register_function{function_name='f2', callback=function() end, \
             flags={'ALLOW-OOM', 'no-writes'}, description='two'}\n\
             redis.register_function(5, function() end)",
        )
        .unwrap();
        assert_eq!(lib.name, "lib1");
        let names: Vec<_> = lib.functions.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["f1", "f2", "5"]);
        assert_eq!(lib.functions[1].flags, ["no-writes", "allow-oom"]);
        assert_eq!(lib.functions[1].description.as_deref(), Some("two"));
    }

    /// Each message as redis-server 7.0.15 answers it.
    #[test]
    fn bad_libraries_fail_as_in_redis() {
        assert_eq!(err("return 1"), "No functions registered");
        assert_eq!(
            err("return 1 +"),
            "Error compiling function: user_function:2: unexpected symbol near '<eof>'"
        );
        assert_eq!(err("string.format('x')"), "Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'string'");
        assert_eq!(err("redis.call('get','x')"), "Error registering functions: ERR user_function:2: Script attempted to access nonexistent global variable 'call'");
        assert_eq!(
            err("x = 5"),
            "Error registering functions: ERR user_function:2: Attempt to modify a readonly table"
        );
        assert_eq!(err("redis.register_function('f')"), "Error registering functions: ERR calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).");
        assert_eq!(
            err("redis.register_function('f', 5)"),
            "Error registering functions: ERR second argument to redis.register_function must be a function"
        );
        assert_eq!(
            err("redis.register_function{function_name='f'}"),
            "Error registering functions: ERR redis.register_function must get a callback argument"
        );
        assert_eq!(
            err("redis.register_function{function_name='f', callback=function() end, flags={'bad'}}"),
            "Error registering functions: ERR unknown flag given"
        );
        assert_eq!(
            err("redis.register_function{function_name='f', callback=function() end, foo=1}"),
            "Error registering functions: ERR unknown argument given to redis.register_function"
        );
        assert_eq!(err("redis.register_function('bad-name', function() end)"), "Error registering functions: ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long");
        assert_eq!(
            err("redis.register_function('f', function() end) redis.register_function('f', function() end)"),
            "Error registering functions: ERR Function already exists in the library"
        );
        assert_eq!(
            err("redis.register_function('f', function() end, 3)"),
            "Error registering functions: ERR wrong number of arguments to redis.register_function"
        );
        assert_eq!(
            err("while true do end"),
            "Error registering functions: ERR FUNCTION LOAD timeout"
        );
    }
}
