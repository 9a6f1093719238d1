//! The libraries Redis gives scripts as globals besides Lua's own: `cjson` (JSON),
//! `cmsgpack` (MessagePack), `bit` (LuaBitOp) and `struct` (binary packing), written
//! in Rust to behave as Redis 7.0's C versions do: same encodings, number formatting,
//! limits and error messages, so scripts written for Redis run unchanged.
//!
//! Errors are raised the way Redis's C functions raise them: as plain Lua strings
//! (what `pcall` returns), prefixed with the calling line (`luaL_error`), and argument
//! errors name the function as the script called it (`luaL_argerror`). An mlua callback
//! cannot do that (its errors are userdata), so each library function is a small C
//! closure ([`raise_shim`]) around the Rust one, which reports failures as values.

mod bit;
mod cjson;
mod cmsgpack;
mod structlib;

use std::os::raw::c_int;

use mlua::{ffi, Function, Lua, MultiValue, Table, Value};

/// Creates the `cjson`, `cmsgpack`, `bit` and `struct` globals.
pub fn install(lua: &Lua) -> mlua::Result<()> {
    let g = lua.globals();
    g.raw_set("cjson", cjson::module(lua)?)?;
    g.raw_set("cmsgpack", cmsgpack::module(lua)?)?;
    g.raw_set("bit", bit::module(lua)?)?;
    g.raw_set("struct", structlib::module(lua)?)?;
    Ok(())
}

/// How a library function fails.
pub(crate) enum Fail {
    /// `luaL_error(msg)`.
    Msg(String),
    /// `luaL_argerror(narg, msg)`.
    Arg(i32, String),
    /// `lua_error(msg)`: no position, as the VM's own errors inside a C function.
    Raw(String),
    /// An error of the VM itself (memory, ...), passed on as mlua raised it.
    Vm(mlua::Error),
}

impl From<mlua::Error> for Fail {
    fn from(e: mlua::Error) -> Self {
        Fail::Vm(e)
    }
}

pub(crate) type Res<T> = std::result::Result<T, Fail>;

pub(crate) fn msg<T>(s: impl Into<String>) -> Res<T> {
    Err(Fail::Msg(s.into()))
}

pub(crate) fn arg_err<T>(narg: usize, s: impl Into<String>) -> Res<T> {
    Err(Fail::Arg(narg as i32, s.into()))
}

/// Lua's name of a value's type (`luaL_typename`); `None` is an absent argument.
pub(crate) fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::LightUserData(_)) | Some(Value::UserData(_)) => "userdata",
        Some(Value::Integer(_)) | Some(Value::Number(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(_)) => "table",
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        Some(_) => "userdata",
    }
}

/// `luaL_checknumber` of argument `n` (1-based): numbers and numeric strings.
pub(crate) fn check_number(lua: &Lua, args: &[Value], n: usize) -> Res<f64> {
    match to_number(lua, args.get(n - 1))? {
        Some(x) => Ok(x),
        None => type_err(args, n, "number"),
    }
}

/// `lua_tonumber`: `None` when the value is not a number or a numeric string.
pub(crate) fn to_number(lua: &Lua, v: Option<&Value>) -> Res<Option<f64>> {
    Ok(match v {
        Some(Value::Number(x)) => Some(*x),
        Some(Value::Integer(i)) => Some(*i as f64),
        Some(v @ Value::String(_)) => lua.coerce_number(v.clone())?,
        _ => None,
    })
}

/// `luaL_checkinteger`: a number truncated towards zero.
pub(crate) fn check_integer(lua: &Lua, args: &[Value], n: usize) -> Res<i64> {
    check_number(lua, args, n).map(|x| x as i64)
}

/// `luaL_checklstring`: strings, and numbers as Lua formats them.
pub(crate) fn check_bytes(lua: &Lua, args: &[Value], n: usize) -> Res<Vec<u8>> {
    match args.get(n - 1) {
        Some(Value::String(s)) => Ok(s.as_bytes().to_vec()),
        Some(v @ (Value::Integer(_) | Value::Number(_))) => match lua.coerce_string(v.clone())? {
            Some(s) => Ok(s.as_bytes().to_vec()),
            None => type_err(args, n, "string"),
        },
        _ => type_err(args, n, "string"),
    }
}

pub(crate) fn type_err<T>(args: &[Value], n: usize, expected: &str) -> Res<T> {
    let got = type_name(args.get(n - 1));
    arg_err(n, format!("{expected} expected, got {got}"))
}

/// The body of a library function: arguments in, results out.
pub(crate) type Body = fn(&Lua, &[Value]) -> Res<MultiValue>;

/// Sets `t[name]` to the library function `body`.
pub(crate) fn register(lua: &Lua, t: &Table, name: &str, body: Body) -> mlua::Result<()> {
    t.raw_set(name, function(lua, body)?)
}

/// Wraps a Rust body as a Lua function raising string errors as Redis's C functions do.
pub(crate) fn function(
    lua: &Lua,
    body: impl Fn(&Lua, &[Value]) -> Res<MultiValue> + 'static,
) -> mlua::Result<Function> {
    // The body reports `true, results...`, or `false, message[, narg | false]`.
    let inner = lua.create_function(move |lua, args: MultiValue| {
        let args: Vec<Value> = args.into_iter().collect();
        let mut out = MultiValue::new();
        match body(lua, &args) {
            Ok(results) => {
                out.push_back(Value::Boolean(true));
                out.extend(results);
            }
            Err(Fail::Msg(m)) => {
                out.push_back(Value::Boolean(false));
                out.push_back(Value::String(lua.create_string(m)?));
            }
            Err(Fail::Arg(narg, m)) => {
                out.push_back(Value::Boolean(false));
                out.push_back(Value::String(lua.create_string(m)?));
                out.push_back(Value::Integer(narg as i64));
            }
            Err(Fail::Raw(m)) => {
                out.push_back(Value::Boolean(false));
                out.push_back(Value::String(lua.create_string(m)?));
                out.push_back(Value::Boolean(false));
            }
            Err(Fail::Vm(e)) => return Err(e),
        }
        Ok(out)
    })?;
    // SAFETY: the closure only pushes the function as the shim's upvalue.
    unsafe {
        lua.exec_raw::<Function>(inner, |l| {
            ffi::lua_pushcclosure(l, raise_shim, 1);
        })
    }
}

/// Marks results kept in a table (see [`spread`]).
static SPREAD: u8 = 0;

/// Results `t[1..=n]`, for more of them than mlua can return (or hold references to):
/// the shim moves them to the stack.
pub(crate) fn spread(t: Table, n: usize) -> MultiValue {
    let mark = mlua::LightUserData(&SPREAD as *const u8 as *mut std::ffi::c_void);
    MultiValue::from_vec(vec![
        Value::LightUserData(mark),
        Value::Table(t),
        Value::Integer(n as i64),
    ])
}

/// Calls its upvalue with its arguments and turns a reported failure into a Lua error
/// raised from this C function, so that `luaL_where`/`luaL_argerror` see what they see
/// in Redis (the script's line, the name the script called the function by).
unsafe extern "C-unwind" fn raise_shim(l: *mut ffi::lua_State) -> c_int {
    // No Rust value that needs dropping lives here: `lua_error` long-jumps.
    let n = ffi::lua_gettop(l);
    ffi::lua_pushvalue(l, ffi::lua_upvalueindex(1));
    ffi::lua_insert(l, 1);
    ffi::lua_call(l, n, ffi::LUA_MULTRET);
    if ffi::lua_toboolean(l, 1) != 0 {
        let mark = &SPREAD as *const u8 as *mut std::ffi::c_void;
        if ffi::lua_gettop(l) == 4 && ffi::lua_touserdata(l, 2) == mark {
            let n = ffi::lua_tointeger(l, 4) as c_int;
            ffi::lua_settop(l, 3);
            ffi::lua_replace(l, 1);
            ffi::lua_settop(l, 1);
            // The C one: mlua's wrapper asks for LUA_MINSTACK more.
            ffi::luaL_checkstack_(l, n, c"too many results".as_ptr());
            for i in 1..=n {
                ffi::lua_rawgeti(l, 1, i as _);
            }
            ffi::lua_remove(l, 1);
            return n;
        }
        ffi::lua_remove(l, 1);
        return ffi::lua_gettop(l);
    }
    if ffi::lua_type(l, 3) == ffi::LUA_TBOOLEAN {
        ffi::lua_settop(l, 2);
        ffi::lua_error(l);
    }
    if ffi::lua_gettop(l) >= 3 {
        let narg = ffi::lua_tointeger(l, 3) as c_int;
        let m = ffi::lua_tolstring(l, 2, std::ptr::null_mut());
        return ffi::luaL_argerror(l, narg, m);
    }
    ffi::luaL_where(l, 1);
    ffi::lua_pushvalue(l, 2);
    ffi::lua_concat(l, 2);
    ffi::lua_error(l)
}

/// `%.<prec>g` of C's printf (Lua and cjson format numbers so).
pub(crate) fn fmt_g(x: f64, prec: usize) -> String {
    if x.is_nan() {
        return if x.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if x.is_infinite() {
        return if x < 0.0 { "-inf" } else { "inf" }.into();
    }
    let prec = prec.max(1);
    let sci = format!("{:.*e}", prec - 1, x);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= prec as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", strip_zeros(mantissa), exp.abs())
    } else {
        let fixed = format!("{:.*}", (prec as i32 - 1 - exp) as usize, x);
        strip_zeros(&fixed).to_string()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    /// A VM with the libraries, as ember's script VM has them.
    pub fn vm() -> mlua::Lua {
        let lua = mlua::Lua::new();
        super::install(&lua).expect("install");
        lua
    }

    /// Runs each case's code in `lua`, in order, and checks its result.
    pub fn check(lua: &mlua::Lua, cases: &[(&str, &str)]) {
        for (code, want) in cases {
            assert_eq!(eval(lua, code), *want, "{code}");
        }
    }

    /// Runs `code` (a chunk that returns one value) and returns it as a string: what
    /// `tostring` gives, or the error message for a failure.
    pub fn eval(lua: &mlua::Lua, code: &str) -> String {
        let wrapped = format!(
            "local ok, r = pcall(function() {code} end) return ok and tostring(r) or ('ERR ' .. tostring(r))"
        );
        match lua
            .load(&wrapped)
            .set_name("@user_script")
            .eval::<mlua::LuaString>()
        {
            Ok(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
            Err(e) => format!("VM error: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fmt_g;
    use super::testutil::{eval, vm};

    #[test]
    fn g_format_matches_printf() {
        assert_eq!(fmt_g(0.1, 14), "0.1");
        assert_eq!(fmt_g(100.0, 14), "100");
        assert_eq!(fmt_g(1e14, 14), "1e+14");
        assert_eq!(fmt_g(123456789012345.0, 14), "1.2345678901234e+14");
        assert_eq!(fmt_g(0.0001, 14), "0.0001");
        assert_eq!(fmt_g(0.00001, 14), "1e-05");
        assert_eq!(fmt_g(-0.0, 14), "-0");
        assert_eq!(fmt_g(1.0 / 3.0, 14), "0.33333333333333");
        assert_eq!(fmt_g(2.5, 1), "2");
    }

    #[test]
    fn errors_are_strings_with_the_callers_line() {
        let lua = vm();
        // Redis 7.0.15: EVAL "local p = struct.pack; return {pcall(function() return p('z') end)}" 0
        assert_eq!(
            eval(&lua, "local p = struct.pack; return p('z')"),
            "ERR user_script:1: bad argument #1 to 'p' (invalid format option 'z')"
        );
        // Redis 7.0.15: EVAL "return {pcall(struct.pack, 'z')}" 0
        assert_eq!(
            eval(
                &lua,
                "local ok, e = pcall(struct.pack, 'z') return type(e) .. ' ' .. e"
            ),
            "string bad argument #1 to '?' (invalid format option 'z')"
        );
        // Redis 7.0.15: EVAL "return {pcall(function() return struct:pack('z') end)}" 0
        assert_eq!(
            eval(&lua, "return struct:pack('z')"),
            "ERR user_script:1: calling 'pack' on bad self (string expected, got table)"
        );
    }
}
