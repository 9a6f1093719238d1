//! `cjson`: Lua CJSON 2.1.0 as Redis 7.0 builds it. Numbers print as `%.14g`, `/` is
//! escaped, a table is an array when its keys are all positive integers (and it is
//! not too sparse), else an object; the empty table is `{}`. JSON `null` decodes to
//! `cjson.null`, a NULL light userdata. Decoding goes through `strtod`, so with the
//! default `decode_invalid_numbers` hex, `inf`, `nan` and leading `+`/zeros pass.

use std::sync::{Arc, Mutex};

use mlua::{Function, LightUserData, Lua, MultiValue, Table, Value};

use super::{arg_err, check_bytes, check_integer, fmt_g, function, msg, type_name, Res};

/// Deepest nesting handled whatever the settings. In Redis the Lua stack (8000 slots)
/// bounds it at 4000-8000 levels; here Rust's stack and mlua's reference slots do, so
/// raising `encode_max_depth`/`decode_max_depth` past the default has no effect.
const MAX_NESTING: i32 = 1000;

#[derive(Clone, Copy)]
struct Config {
    sparse_convert: bool,
    sparse_ratio: i32,
    sparse_safe: i32,
    encode_max_depth: i32,
    decode_max_depth: i32,
    /// 0 off, 1 on, 2 "null".
    encode_invalid_numbers: usize,
    decode_invalid_numbers: bool,
    keep_buffer: bool,
    precision: i32,
}

const DEFAULT: Config = Config {
    sparse_convert: false,
    sparse_ratio: 2,
    sparse_safe: 10,
    encode_max_depth: 1000,
    decode_max_depth: 1000,
    encode_invalid_numbers: 0,
    decode_invalid_numbers: true,
    keep_buffer: true,
    precision: 14,
};

type Shared = Arc<Mutex<Config>>;

fn get(cfg: &Shared) -> Config {
    *cfg.lock().unwrap_or_else(|e| e.into_inner())
}

fn set(cfg: &Shared, f: impl FnOnce(&mut Config)) {
    f(&mut cfg.lock().unwrap_or_else(|e| e.into_inner()));
}

fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

fn one(v: Value) -> Res<MultiValue> {
    Ok(MultiValue::from_vec(vec![v]))
}

/// A fresh `cjson` table with its own settings (what `cjson.new()` returns too).
pub(super) fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let cfg: Shared = Arc::new(Mutex::new(DEFAULT));
    let c = cfg.clone();
    // Lua's own `next` (raw, as CJSON's `lua_next`), taken before scripts can touch it.
    let next: Function = lua.globals().raw_get("next")?;
    t.raw_set(
        "encode",
        function(lua, move |l, a| encode(l, a, get(&c), &next))?,
    )?;
    let c = cfg.clone();
    t.raw_set("decode", function(lua, move |l, a| decode(l, a, get(&c)))?)?;
    let c = cfg.clone();
    t.raw_set(
        "encode_sparse_array",
        function(lua, move |l, a| {
            max_args(a, 3)?;
            // Each setting is stored before the next is checked, as CJSON does.
            let convert = bool_option(l, a, 1, &c, |x| &mut x.sparse_convert)?;
            let ratio = int_option(l, a, 2, &c, |x| &mut x.sparse_ratio, 0, i32::MAX)?;
            let safe = int_option(l, a, 3, &c, |x| &mut x.sparse_safe, 0, i32::MAX)?;
            Ok(MultiValue::from_vec(vec![convert, ratio, safe]))
        })?,
    )?;
    let ints: [(&str, Field<i32>, i32, i32); 3] = [
        ("encode_max_depth", |c| &mut c.encode_max_depth, 1, i32::MAX),
        ("decode_max_depth", |c| &mut c.decode_max_depth, 1, i32::MAX),
        ("encode_number_precision", |c| &mut c.precision, 1, 14),
    ];
    for (name, field, min, max) in ints {
        let c = cfg.clone();
        let f = function(lua, move |l, a| {
            max_args(a, 1)?;
            one(int_option(l, a, 1, &c, field, min, max)?)
        })?;
        t.raw_set(name, f)?;
    }
    let flags: [(&str, Field<bool>); 2] = [
        ("encode_keep_buffer", |c| &mut c.keep_buffer),
        ("decode_invalid_numbers", |c| &mut c.decode_invalid_numbers),
    ];
    for (name, field) in flags {
        let c = cfg.clone();
        let f = function(lua, move |l, a| {
            max_args(a, 1)?;
            one(bool_option(l, a, 1, &c, field)?)
        })?;
        t.raw_set(name, f)?;
    }
    let c = cfg.clone();
    t.raw_set(
        "encode_invalid_numbers",
        function(lua, move |l, a| {
            max_args(a, 1)?;
            let mut v = get(&c).encode_invalid_numbers;
            let r = enum_option(l, a, 1, &mut v, &["off", "on", "null"])?;
            set(&c, |x| x.encode_invalid_numbers = v);
            one(r)
        })?,
    )?;
    t.raw_set("new", function(lua, |l, _| one(Value::Table(module(l)?)))?)?;
    t.raw_set("null", null())?;
    t.raw_set("_NAME", "cjson")?;
    t.raw_set("_VERSION", "2.1.0")?;
    Ok(t)
}

fn max_args(args: &[Value], n: usize) -> Res<()> {
    if args.len() > n {
        return arg_err(n + 1, "found too many arguments");
    }
    Ok(())
}

type Field<T> = fn(&mut Config) -> &mut T;

/// An integer setting: nil leaves it, anything else must be in `min..=max` (CJSON
/// always blames argument 1, and keeps only the low 32 bits as C's `int` does).
fn int_option(
    lua: &Lua,
    a: &[Value],
    n: usize,
    cfg: &Shared,
    field: Field<i32>,
    min: i32,
    max: i32,
) -> Res<Value> {
    if !matches!(a.get(n - 1), None | Some(Value::Nil)) {
        let x = check_integer(lua, a, n)? as i32;
        if x < min || x > max {
            return arg_err(1, format!("expected integer between {min} and {max}"));
        }
        set(cfg, |c| *field(c) = x);
    }
    Ok(Value::Integer(*field(&mut get(cfg)) as i64))
}

fn bool_option(lua: &Lua, a: &[Value], n: usize, cfg: &Shared, field: Field<bool>) -> Res<Value> {
    let mut i = *field(&mut get(cfg)) as usize;
    let r = enum_option(lua, a, n, &mut i, &["off", "on"])?;
    set(cfg, |c| *field(c) = i == 1);
    Ok(r)
}

/// An option given as a boolean or one of `names` (`luaL_checkoption`); reported back
/// as a boolean while it is off/on.
fn enum_option(lua: &Lua, a: &[Value], n: usize, v: &mut usize, names: &[&str]) -> Res<Value> {
    match a.get(n - 1) {
        None | Some(Value::Nil) => {}
        Some(Value::Boolean(b)) => *v = *b as usize,
        Some(_) => {
            let s = check_bytes(lua, a, n)?;
            match names.iter().position(|x| x.as_bytes() == s) {
                Some(i) => *v = i,
                None => {
                    let s = String::from_utf8_lossy(&s);
                    return arg_err(n, format!("invalid option '{s}'"));
                }
            }
        }
    }
    Ok(match *v {
        0 | 1 => Value::Boolean(*v == 1),
        i => Value::String(lua.create_string(names[i])?),
    })
}

// ---- encoding ----

fn encode(lua: &Lua, args: &[Value], cfg: Config, next: &Function) -> Res<MultiValue> {
    if args.len() != 1 {
        return arg_err(1, "expected 1 argument");
    }
    let mut out = Vec::new();
    Encoder { cfg, out: &mut out }.value(args[0].clone(), next)?;
    one(Value::String(lua.create_string(out)?))
}

struct Encoder<'a> {
    cfg: Config,
    out: &'a mut Vec<u8>,
}

fn cannot<T>(v: &Value, why: &str) -> Res<T> {
    msg(format!("Cannot serialise {}: {why}", type_name(Some(v))))
}

/// A table being written. Objects resume with Lua's `next` from the last key, so that
/// nesting costs neither Rust stack nor more than two mlua references per level.
enum Open {
    Array { t: Table, i: i32, n: i32 },
    Object { t: Table, key: Value },
}

impl Encoder<'_> {
    fn value(&mut self, v: Value, next: &Function) -> Res<()> {
        let mut open: Vec<Open> = Vec::new();
        let mut pending = Some(v);
        loop {
            if let Some(v) = pending.take() {
                if let Value::Table(t) = v {
                    let depth = open.len() as i32 + 1;
                    if depth > self.cfg.encode_max_depth.min(MAX_NESTING) {
                        return msg(format!("Cannot serialise, excessive nesting ({depth})"));
                    }
                    match self.array_length(&Value::Table(t.clone()), &t)? {
                        Some(n) if n > 0 => {
                            self.out.push(b'[');
                            open.push(Open::Array { t, i: 0, n });
                        }
                        _ => {
                            self.out.push(b'{');
                            open.push(Open::Object { t, key: Value::Nil });
                        }
                    }
                } else {
                    self.scalar(&v)?;
                }
            }
            let Some(top) = open.last_mut() else {
                return Ok(());
            };
            match top {
                Open::Array { t, i, n } if *i < *n => {
                    *i += 1;
                    if *i > 1 {
                        self.out.push(b',');
                    }
                    pending = Some(t.raw_get(*i)?);
                }
                Open::Array { .. } => {
                    self.out.push(b']');
                    open.pop();
                }
                Open::Object { t, key } => {
                    let first = key.is_nil();
                    let (k, v): (Value, Value) = next.call((t.clone(), key.clone()))?;
                    if k.is_nil() {
                        self.out.push(b'}');
                        open.pop();
                        continue;
                    }
                    if !first {
                        self.out.push(b',');
                    }
                    self.key(&k)?;
                    *key = k;
                    pending = Some(v);
                }
            }
        }
    }

    fn scalar(&mut self, v: &Value) -> Res<()> {
        match v {
            Value::String(s) => self.string(&s.as_bytes()),
            Value::Integer(i) => self.number(v, *i as f64)?,
            Value::Number(x) => self.number(v, *x)?,
            Value::Boolean(b) => self
                .out
                .extend_from_slice(if *b { b"true" } else { b"false" }),
            Value::Nil => self.out.extend_from_slice(b"null"),
            Value::LightUserData(p) if p.0.is_null() => self.out.extend_from_slice(b"null"),
            _ => return cannot(v, "type not supported"),
        }
        Ok(())
    }

    fn key(&mut self, k: &Value) -> Res<()> {
        match k {
            Value::Integer(i) => self.number_key(k, *i as f64),
            Value::Number(x) => self.number_key(k, *x),
            Value::String(s) => {
                self.string(&s.as_bytes());
                self.out.push(b':');
                Ok(())
            }
            _ => cannot(k, "table key must be a number or string"),
        }
    }

    fn number_key(&mut self, k: &Value, x: f64) -> Res<()> {
        self.out.push(b'"');
        self.number(k, x)?;
        self.out.extend_from_slice(b"\":");
        Ok(())
    }

    fn string(&mut self, s: &[u8]) {
        self.out.push(b'"');
        for &c in s {
            match c {
                b'"' => self.out.extend_from_slice(b"\\\""),
                b'\\' => self.out.extend_from_slice(b"\\\\"),
                b'/' => self.out.extend_from_slice(b"\\/"),
                b'\x08' => self.out.extend_from_slice(b"\\b"),
                b'\t' => self.out.extend_from_slice(b"\\t"),
                b'\n' => self.out.extend_from_slice(b"\\n"),
                b'\x0c' => self.out.extend_from_slice(b"\\f"),
                b'\r' => self.out.extend_from_slice(b"\\r"),
                0..=0x1f | 0x7f => self.out.extend_from_slice(format!("\\u{c:04x}").as_bytes()),
                _ => self.out.push(c),
            }
        }
        self.out.push(b'"');
    }

    fn number(&mut self, v: &Value, x: f64) -> Res<()> {
        if !x.is_finite() {
            match self.cfg.encode_invalid_numbers {
                0 => return cannot(v, "must not be NaN or Inf"),
                1 if x.is_nan() => {
                    self.out.extend_from_slice(b"nan");
                    return Ok(());
                }
                1 => {}
                _ => {
                    self.out.extend_from_slice(b"null");
                    return Ok(());
                }
            }
        }
        let s = fmt_g(x, self.cfg.precision as usize);
        self.out.extend_from_slice(s.as_bytes());
        Ok(())
    }

    /// The array length if every key is a positive integer, as CJSON computes it: its
    /// maximum key is a C `int`, and a key beyond that range makes it negative (x86's
    /// conversion), which turns the table into an object.
    fn array_length(&self, v: &Value, t: &Table) -> Res<Option<i32>> {
        let (mut max, mut items) = (0i32, 0i32);
        for pair in t.pairs::<Value, Value>() {
            let (k, _) = pair?;
            let k = match k {
                Value::Integer(i) => i as f64,
                Value::Number(x) => x,
                _ => return Ok(None),
            };
            if k < 1.0 || k.floor() != k {
                return Ok(None);
            }
            if k > max as f64 {
                max = if k < 2147483648.0 { k as i32 } else { i32::MIN };
            }
            items = items.wrapping_add(1);
        }
        let c = &self.cfg;
        if c.sparse_ratio > 0 && max > items.wrapping_mul(c.sparse_ratio) && max > c.sparse_safe {
            if !c.sparse_convert {
                return cannot(v, "excessively sparse array");
            }
            return Ok(None);
        }
        Ok(Some(max))
    }
}

// ---- decoding ----

fn decode(lua: &Lua, args: &[Value], cfg: Config) -> Res<MultiValue> {
    if args.len() != 1 {
        return arg_err(1, "expected 1 argument");
    }
    let data = check_bytes(lua, args, 1)?;
    if data.len() >= 2 && (data[0] == 0 || data[1] == 0) {
        return msg("JSON parser does not support UTF-16 or UTF-32");
    }
    let mut p = Parser {
        lua,
        cfg,
        data: &data,
        pos: 0,
        depth: 0,
        tmp: Vec::new(),
    };
    let tok = p.next()?;
    let v = p.value(tok)?;
    let tok = p.next()?;
    if !matches!(tok.kind, Kind::End) {
        return p.unexpected("the end", &tok);
    }
    one(v)
}

enum Kind {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str(Vec<u8>),
    Num(f64),
    Bool(bool),
    Null,
    Colon,
    Comma,
    End,
    Error(&'static str),
}

struct Token {
    kind: Kind,
    /// 0-based offset reported (plus one) in errors.
    at: usize,
}

struct Parser<'a> {
    lua: &'a Lua,
    cfg: Config,
    data: &'a [u8],
    pos: usize,
    depth: i32,
    tmp: Vec<u8>,
}

impl Parser<'_> {
    /// The byte at `i`, 0 past the end: CJSON reads a NUL-terminated C string, so an
    /// embedded NUL ends the input as well.
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    fn starts_with(&self, s: &[u8]) -> bool {
        self.data[self.pos.min(self.data.len())..].starts_with(s)
    }

    fn error(&self, what: &'static str) -> Token {
        Token {
            kind: Kind::Error(what),
            at: self.pos,
        }
    }

    fn next(&mut self) -> Res<Token> {
        while matches!(self.at(self.pos), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        let at = self.pos;
        let single = |kind| Token { kind, at };
        let c = self.at(at);
        let kind = match c {
            b'{' => Kind::ObjBegin,
            b'}' => Kind::ObjEnd,
            b'[' => Kind::ArrBegin,
            b']' => Kind::ArrEnd,
            b',' => Kind::Comma,
            b':' => Kind::Colon,
            0 => return Ok(single(Kind::End)),
            b'"' => return Ok(self.string()),
            b'-' | b'0'..=b'9' => {
                if !self.cfg.decode_invalid_numbers && self.invalid_number() {
                    return Ok(self.error("invalid number"));
                }
                return Ok(self.number());
            }
            b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'+' => {
                for (word, kind) in [
                    (&b"true"[..], Kind::Bool(true)),
                    (b"false", Kind::Bool(false)),
                    (b"null", Kind::Null),
                ] {
                    if self.starts_with(word) {
                        self.pos += word.len();
                        return Ok(single(kind));
                    }
                }
                if self.cfg.decode_invalid_numbers && self.invalid_number() {
                    return Ok(self.number());
                }
                return Ok(self.error("invalid token"));
            }
            _ => return Ok(self.error("invalid token")),
        };
        self.pos += 1;
        Ok(single(kind))
    }

    /// Forms `strtod` takes but JSON does not: `+`, hex, leading zeros, inf, nan.
    fn invalid_number(&self) -> bool {
        let mut p = self.pos;
        match self.at(p) {
            b'+' => return true,
            b'-' => p += 1,
            _ => {}
        }
        let c = self.at(p);
        if c == b'0' {
            let c2 = self.at(p + 1);
            return c2 | 0x20 == b'x' || c2.is_ascii_digit();
        }
        if c <= b'9' {
            return false;
        }
        let word = |w: &[u8]| (0..3).all(|i| self.at(p + i).to_ascii_lowercase() == w[i]);
        word(b"inf") || word(b"nan")
    }

    fn number(&mut self) -> Token {
        match strtod(&self.data[self.pos..]) {
            Some((x, len)) if len > 0 => {
                let at = self.pos;
                self.pos += len;
                Token {
                    kind: Kind::Num(x),
                    at,
                }
            }
            _ => self.error("invalid number"),
        }
    }

    fn string(&mut self) -> Token {
        let at = self.pos;
        self.pos += 1;
        self.tmp.clear();
        loop {
            let c = self.at(self.pos);
            match c {
                b'"' => break,
                0 => return self.error("unexpected end of string"),
                b'\\' => {
                    let e = match self.at(self.pos + 1) {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => b'\x08',
                        b't' => b'\t',
                        b'n' => b'\n',
                        b'f' => b'\x0c',
                        b'r' => b'\r',
                        b'u' => {
                            if !self.unicode_escape() {
                                return self.error("invalid unicode escape code");
                            }
                            continue;
                        }
                        _ => return self.error("invalid escape code"),
                    };
                    self.tmp.push(e);
                    self.pos += 2;
                }
                _ => {
                    self.tmp.push(c);
                    self.pos += 1;
                }
            }
        }
        self.pos += 1;
        Token {
            kind: Kind::Str(std::mem::take(&mut self.tmp)),
            at,
        }
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        (0..4).try_fold(0u32, |acc, i| {
            let d = (self.at(at + i) as char).to_digit(16)?;
            Some(acc << 4 | d)
        })
    }

    /// `\uXXXX` (or a surrogate pair of them) at `pos`, appended as UTF-8.
    fn unicode_escape(&mut self) -> bool {
        let Some(mut cp) = self.hex4(self.pos + 2) else {
            return false;
        };
        let mut len = 6;
        if cp & 0xF800 == 0xD800 {
            if cp & 0x400 != 0 || self.at(self.pos + 6) != b'\\' || self.at(self.pos + 7) != b'u' {
                return false;
            }
            match self.hex4(self.pos + 8) {
                Some(low) if low & 0xFC00 == 0xDC00 => {
                    cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
                    len = 12;
                }
                _ => return false,
            }
        }
        // Surrogate-free code points up to 0x10FFFF are all valid chars.
        let Some(ch) = char::from_u32(cp) else {
            return false;
        };
        let mut buf = [0u8; 4];
        self.tmp
            .extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        self.pos += len;
        true
    }

    fn unexpected<T>(&self, expected: &str, tok: &Token) -> Res<T> {
        let found = match &tok.kind {
            Kind::Error(e) => e,
            Kind::ObjBegin => "T_OBJ_BEGIN",
            Kind::ObjEnd => "T_OBJ_END",
            Kind::ArrBegin => "T_ARR_BEGIN",
            Kind::ArrEnd => "T_ARR_END",
            Kind::Str(_) => "T_STRING",
            Kind::Num(_) => "T_NUMBER",
            Kind::Bool(_) => "T_BOOLEAN",
            Kind::Null => "T_NULL",
            Kind::Colon => "T_COLON",
            Kind::Comma => "T_COMMA",
            Kind::End => "T_END",
        };
        msg(format!(
            "Expected {expected} but found {found} at character {}",
            tok.at + 1
        ))
    }

    fn descend(&mut self) -> Res<()> {
        self.depth += 1;
        if self.depth > self.cfg.decode_max_depth.min(MAX_NESTING) {
            let (d, at) = (self.depth, self.pos);
            return msg(format!(
                "Found too many nested data structures ({d}) at character {at}"
            ));
        }
        Ok(())
    }

    /// The value starting with `tok`, the containers being filled kept in a `Vec` (not
    /// on Rust's stack, which deep nesting would exhaust).
    fn value(&mut self, mut tok: Token) -> Res<Value> {
        let mut open: Vec<(Table, Option<mlua::LuaString>, i64)> = Vec::new();
        loop {
            let at = tok.at;
            let mut v = match tok.kind {
                Kind::Str(s) => Value::String(self.lua.create_string(s)?),
                Kind::Num(x) => Value::Number(x),
                Kind::Bool(b) => Value::Boolean(b),
                Kind::Null => null(),
                k @ (Kind::ObjBegin | Kind::ArrBegin) => {
                    let is_obj = matches!(k, Kind::ObjBegin);
                    self.descend()?;
                    let t = self.lua.create_table()?;
                    tok = self.next()?;
                    let empty = if is_obj { Kind::ObjEnd } else { Kind::ArrEnd };
                    if std::mem::discriminant(&tok.kind) == std::mem::discriminant(&empty) {
                        self.depth -= 1;
                        Value::Table(t)
                    } else {
                        if is_obj {
                            let key = self.key(tok)?;
                            open.push((t, Some(key), 1));
                            tok = self.next()?;
                        } else {
                            open.push((t, None, 1));
                        }
                        continue;
                    }
                }
                kind => return self.unexpected("value", &Token { kind, at }),
            };
            // Store `v` in its container; each container that ends is itself stored.
            loop {
                let Some((t, key, i)) = open.last_mut() else {
                    return Ok(v);
                };
                let next = self.next()?;
                match key {
                    Some(k) => t.raw_set(k.clone(), v)?,
                    None => {
                        t.raw_set(*i, v)?;
                        *i += 1;
                    }
                }
                match (next.kind, key.is_some()) {
                    (Kind::Comma, false) => {
                        tok = self.next()?;
                        break;
                    }
                    (Kind::Comma, true) => {
                        let t = self.next()?;
                        *key = Some(self.key(t)?);
                        tok = self.next()?;
                        break;
                    }
                    (Kind::ArrEnd, false) | (Kind::ObjEnd, true) => {
                        self.depth -= 1;
                        let Some((t, _, _)) = open.pop() else {
                            return Ok(Value::Nil); // `last_mut` found it: not reached
                        };
                        v = Value::Table(t);
                    }
                    (kind, is_obj) => {
                        let what = if is_obj {
                            "comma or object end"
                        } else {
                            "comma or array end"
                        };
                        return self.unexpected(what, &Token { kind, at: next.at });
                    }
                }
            }
        }
    }

    /// An object key and its colon.
    fn key(&mut self, tok: Token) -> Res<mlua::LuaString> {
        let Kind::Str(key) = tok.kind else {
            return self.unexpected("object key string", &tok);
        };
        let key = self.lua.create_string(key)?;
        let colon = self.next()?;
        if !matches!(colon.kind, Kind::Colon) {
            return self.unexpected("colon", &colon);
        }
        Ok(key)
    }
}

/// C's `strtod` on the start of `s`: the value and how many bytes it took, `None` for
/// no number. Takes decimal and hex forms, `inf`/`infinity` and `nan[(...)]`.
pub(crate) fn strtod(s: &[u8]) -> Option<(f64, usize)> {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let mut i = 0;
    let neg = match at(0) {
        b'-' => {
            i = 1;
            true
        }
        b'+' => {
            i = 1;
            false
        }
        _ => false,
    };
    let sign = |x: f64| if neg { -x } else { x };
    let word = |i: usize, w: &[u8]| (0..w.len()).all(|j| at(i + j).to_ascii_lowercase() == w[j]);
    if word(i, b"inf") {
        let len = if word(i, b"infinity") { i + 8 } else { i + 3 };
        return Some((sign(f64::INFINITY), len));
    }
    if word(i, b"nan") {
        let mut len = i + 3;
        if at(len) == b'(' {
            let mut j = len + 1;
            while at(j).is_ascii_alphanumeric() || at(j) == b'_' {
                j += 1;
            }
            if at(j) == b')' {
                len = j + 1;
            }
        }
        return Some((sign(f64::NAN), len));
    }
    if at(i) == b'0' && at(i + 1) | 0x20 == b'x' {
        if let Some((x, len)) = hex_float(&s[i + 2..]) {
            return Some((sign(x), i + 2 + len));
        }
    }
    let digits = |mut j: usize| {
        while at(j).is_ascii_digit() {
            j += 1;
        }
        j
    };
    let int_end = digits(i);
    let mut end = int_end;
    let mut frac_end = int_end;
    if at(int_end) == b'.' {
        frac_end = digits(int_end + 1);
        end = frac_end;
    }
    let mantissa_digits = (int_end - i) + frac_end.saturating_sub(int_end + 1);
    if mantissa_digits == 0 {
        // "0x" with no hex digits still reads as the 0 before the x.
        return None;
    }
    if at(end) | 0x20 == b'e' {
        let mut j = end + 1;
        if matches!(at(j), b'+' | b'-') {
            j += 1;
        }
        let exp_end = digits(j);
        if exp_end > j {
            end = exp_end;
        }
    }
    let text = std::str::from_utf8(&s[i..end]).ok()?;
    let text = if text.starts_with('.') {
        format!("0{text}")
    } else {
        text.to_string()
    };
    let text = text.replace(".e", ".0e").replace(".E", ".0E");
    let text = text.strip_suffix('.').unwrap_or(&text);
    let x: f64 = text.parse().ok()?;
    Some((sign(x), end))
}

/// The hex digits (with an optional fraction and binary exponent) after "0x".
fn hex_float(s: &[u8]) -> Option<(f64, usize)> {
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    let hex = |c: u8| (c as char).to_digit(16);
    let (mut i, mut mant, mut exp, mut any) = (0, 0u64, 0i64, false);
    let mut push = |d: u32, frac: bool, exp: &mut i64| {
        if mant >> 60 == 0 {
            mant = mant << 4 | d as u64;
            if frac {
                *exp -= 4;
            }
        } else {
            // Beyond 60 bits only the scale matters (and whether anything was lost).
            mant |= (d != 0) as u64;
            if !frac {
                *exp += 4;
            }
        }
    };
    while let Some(d) = hex(at(i)) {
        push(d, false, &mut exp);
        any = true;
        i += 1;
    }
    if at(i) == b'.' {
        let mut j = i + 1;
        while let Some(d) = hex(at(j)) {
            push(d, true, &mut exp);
            any = true;
            j += 1;
        }
        if any {
            i = j;
        }
    }
    if !any {
        return None;
    }
    if at(i) | 0x20 == b'p' {
        let mut j = i + 1;
        let neg = match at(j) {
            b'-' => {
                j += 1;
                true
            }
            b'+' => {
                j += 1;
                false
            }
            _ => false,
        };
        let start = j;
        let mut e: i64 = 0;
        while at(j).is_ascii_digit() {
            e = (e * 10 + (at(j) - b'0') as i64).min(1 << 20);
            j += 1;
        }
        if j > start {
            exp += if neg { -e } else { e };
            i = j;
        }
    }
    // Two steps so that a tiny scale does not flush a large mantissa to zero.
    let e = exp.clamp(-2200, 2200) as i32;
    Some(((mant as f64) * 2f64.powi(e / 2) * 2f64.powi(e - e / 2), i))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{check, vm};

    /// Expected values are redis-server 7.0.15's replies to the same script.
    #[test]
    fn matches_redis() {
        let lua = vm();
        // Run in order in one VM, as they were on one redis-server: settings carry over.
        let cases: &[(&str, &str)] = &[
            ("return cjson.encode({1, 2, 3})", "[1,2,3]"),
            ("return cjson.encode({})", "{}"),
            ("return cjson.encode({a = 1})", "{\"a\":1}"),
            ("return cjson.encode('a/b\"c\\\\d\\n\\t\\1\\127')", "\"a\\/b\\\"c\\\\d\\n\\t\\u0001\\u007f\""),
            ("return cjson.encode(0.1)", "0.1"),
            ("return cjson.encode(1/3)", "0.33333333333333"),
            ("return cjson.encode(1e20)", "1e+20"),
            ("return cjson.encode(-0.0)", "-0"),
            ("return cjson.encode(123456789012345678)", "1.2345678901235e+17"),
            ("return cjson.encode(3)", "3"),
            ("return cjson.encode({[1] = 1, [2] = 2, [4] = 4})", "[1,2,null,4]"),
            ("return cjson.encode({[1] = 'a', [12] = 'b'})", "ERR user_script:1: Cannot serialise table: excessively sparse array"),
            ("return cjson.encode({[0] = 'a'})", "{\"0\":\"a\"}"),
            ("return cjson.encode({[1.5] = 'a'})", "{\"1.5\":\"a\"}"),
            ("return cjson.encode({[-1] = 'a'})", "{\"-1\":\"a\"}"),
            ("return cjson.encode({[3] = 'x'})", "[null,null,\"x\"]"),
            ("return cjson.encode({true, false, cjson.null})", "[true,false,null]"),
            ("return cjson.encode({{{}}})", "[[{}]]"),
            ("return cjson.encode(nil)", "null"),
            ("return cjson.encode()", "ERR user_script:1: bad argument #1 to 'encode' (expected 1 argument)"),
            ("return cjson.encode(1, 2)", "ERR user_script:1: bad argument #1 to 'encode' (expected 1 argument)"),
            ("return cjson.encode(function() end)", "ERR user_script:1: Cannot serialise function: type not supported"),
            ("return cjson.encode({[true] = 1})", "ERR user_script:1: Cannot serialise boolean: table key must be a number or string"),
            ("return cjson.encode(1/0)", "ERR user_script:1: Cannot serialise number: must not be NaN or Inf"),
            ("return cjson.encode(0/0)", "ERR user_script:1: Cannot serialise number: must not be NaN or Inf"),
            ("return cjson.encode({[1/0] = 1})", "ERR user_script:1: Cannot serialise number: must not be NaN or Inf"),
            ("local t = {} t[2^40] = 1 return cjson.encode(t)", "{\"1099511627776\":1}"),
            ("local t = {} t[1] = t return cjson.encode(t)", "ERR user_script:1: Cannot serialise, excessive nesting (1001)"),
            ("local t = {} for i = 1, 1000 do t = {t} end return #cjson.encode(t)", "ERR user_script:1: Cannot serialise, excessive nesting (1001)"),
            ("local t = {} for i = 1, 1001 do t = {t} end return cjson.encode(t)", "ERR user_script:1: Cannot serialise, excessive nesting (1001)"),
            ("cjson.encode_number_precision(3) local s = cjson.encode(math.pi) cjson.encode_number_precision(14) return s", "3.14"),
            ("return cjson.encode_number_precision(15)", "ERR user_script:1: bad argument #1 to 'encode_number_precision' (expected integer between 1 and 14)"),
            ("return cjson.encode_number_precision()", "14"),
            ("return cjson.encode_number_precision('x')", "ERR user_script:1: bad argument #1 to 'encode_number_precision' (number expected, got string)"),
            ("local r = cjson.encode_number_precision('5') cjson.encode_number_precision(14) return r", "5"),
            ("return cjson.encode_number_precision(1, 2)", "ERR user_script:1: bad argument #2 to 'encode_number_precision' (found too many arguments)"),
            ("local a, b, c = cjson.encode_sparse_array() return tostring(a) .. b .. c", "false210"),
            ("cjson.encode_sparse_array(true) local s = cjson.encode({[1] = 'a', [12] = 'b'}) cjson.encode_sparse_array(false) return s", "{\"1\":\"a\",\"12\":\"b\"}"),
            ("return cjson.encode_sparse_array(nil, -1)", "ERR user_script:1: bad argument #1 to 'encode_sparse_array' (expected integer between 0 and 2147483647)"),
            ("return cjson.encode_sparse_array('maybe')", "ERR user_script:1: bad argument #1 to 'encode_sparse_array' (invalid option 'maybe')"),
            ("return tostring(cjson.encode_keep_buffer())", "true"),
            ("return tostring(cjson.encode_invalid_numbers())", "false"),
            ("cjson.encode_invalid_numbers('null') local s = cjson.encode({1/0, 0/0}) cjson.encode_invalid_numbers(false) return s", "[null,null]"),
            ("cjson.encode_invalid_numbers(true) local s = cjson.encode({1/0, -1/0, 0/0}) cjson.encode_invalid_numbers(false) return s", "[inf,-inf,nan]"),
            ("return cjson.encode_invalid_numbers('null') .. tostring(cjson.encode_invalid_numbers('off'))", "nullfalse"),
            ("return tostring(cjson.decode_invalid_numbers())", "true"),
            ("return cjson.decode('[1,2,3]')[3]", "3"),
            ("return cjson.decode('{\"a\":{\"b\":[true,null]}}').a.b[2] == cjson.null", "true"),
            ("return type(cjson.null) .. tostring(cjson.null == nil)", "userdatafalse"),
            ("return cjson.decode('\"\\\\u00e9\\\\ud83d\\\\ude00\\\\/\\\\n\"')", "é😀/\n"),
            ("return cjson.decode(' 12.5e1 ')", "125"),
            ("return cjson.decode('0x10')", "16"),
            ("return cjson.decode('-Infinity')", "-inf"),
            ("return tostring(cjson.decode('nan'))", "nan"),
            ("return cjson.decode('+7')", "7"),
            ("return cjson.decode('007')", "7"),
            ("return cjson.decode('1.')", "1"),
            ("return cjson.decode('.5')", "ERR user_script:1: Expected value but found invalid token at character 1"),
            ("return cjson.decode(42)", "42"),
            ("return cjson.decode('x')", "ERR user_script:1: Expected value but found invalid token at character 1"),
            ("return cjson.decode('')", "ERR user_script:1: Expected value but found T_END at character 1"),
            ("return cjson.decode('[1,2')", "ERR user_script:1: Expected comma or array end but found T_END at character 5"),
            ("return cjson.decode('[1 2]')", "ERR user_script:1: Expected comma or array end but found T_NUMBER at character 4"),
            ("return cjson.decode('{\"a\" 1}')", "ERR user_script:1: Expected colon but found T_NUMBER at character 6"),
            ("return cjson.decode('{1:2}')", "ERR user_script:1: Expected object key string but found T_NUMBER at character 2"),
            ("return cjson.decode('{\"a\":1,}')", "ERR user_script:1: Expected object key string but found T_OBJ_END at character 8"),
            ("return cjson.decode('\"abc')", "ERR user_script:1: Expected value but found unexpected end of string at character 5"),
            ("return cjson.decode('\"a\\\\qb\"')", "ERR user_script:1: Expected value but found invalid escape code at character 3"),
            ("return cjson.decode('\"\\\\u12\"')", "ERR user_script:1: Expected value but found invalid unicode escape code at character 2"),
            ("return cjson.decode('\"\\\\udc00\"')", "ERR user_script:1: Expected value but found invalid unicode escape code at character 2"),
            ("return cjson.decode('tru')", "ERR user_script:1: Expected value but found invalid token at character 1"),
            ("return cjson.decode('[1] x')", "ERR user_script:1: Expected the end but found invalid token at character 5"),
            ("return cjson.decode('-')", "ERR user_script:1: Expected value but found invalid number at character 1"),
            ("return cjson.decode('-x')", "ERR user_script:1: Expected value but found invalid number at character 1"),
            ("return cjson.decode('{}') and cjson.encode(cjson.decode('{}'))", "{}"),
            ("return cjson.encode(cjson.decode('[]'))", "{}"),
            ("return cjson.decode('[1]\\0garbage')[1]", "1"),
            ("return cjson.decode('\\0[')", "ERR user_script:1: JSON parser does not support UTF-16 or UTF-32"),
            ("return cjson.decode({})", "ERR user_script:1: bad argument #1 to 'decode' (string expected, got table)"),
            ("return cjson.decode()", "ERR user_script:1: bad argument #1 to 'decode' (expected 1 argument)"),
            ("return cjson.decode(string.rep('[', 1000) .. string.rep(']', 1000)) and 'ok'", "ok"),
            ("return cjson.decode(string.rep('[', 1001) .. string.rep(']', 1001))", "ERR user_script:1: Found too many nested data structures (1001) at character 1001"),
            ("return cjson.decode(string.rep('{\"a\":', 1001))", "ERR user_script:1: Found too many nested data structures (1001) at character 5001"),
            ("cjson.decode_invalid_numbers(false) local ok, e = pcall(cjson.decode, '0x10') cjson.decode_invalid_numbers(true) return e", "Expected value but found invalid number at character 1"),
            ("cjson.decode_invalid_numbers(false) local ok, e = pcall(cjson.decode, '[-inf]') cjson.decode_invalid_numbers(true) return e", "Expected value but found invalid number at character 2"),
            ("cjson.decode_invalid_numbers(false) local ok, e = pcall(cjson.decode, 'nan') cjson.decode_invalid_numbers(true) return e", "Expected value but found invalid token at character 1"),
            ("return cjson.encode(cjson.decode('{\"x\":[1,2,{\"y\":\"z\"}],\"n\":null,\"t\":true}'))", "{\"x\":[1,2,{\"y\":\"z\"}],\"t\":true,\"n\":null}"),
            ("return cjson.encode({a = {1, 2}, b = 'c', [5] = 5})", "{\"a\":[1,2],\"5\":5,\"b\":\"c\"}"),
            ("return cjson.encode(cjson.decode('1e400'))", "ERR user_script:1: Cannot serialise number: must not be NaN or Inf"),
            ("return cjson.decode('1e-400')", "0"),
            ("return cjson.encode(12345678901234)", "12345678901234"),
            ("return cjson.encode(0.000012345)", "1.2345e-05"),
            ("return cjson._NAME .. cjson._VERSION", "cjson2.1.0"),
            ("return cjson.encode(cjson.new().decode('[5]'))", "[5]"),
            ("return cjson.decode('\"\\\\u0000x\"') == '\\0x'", "true"),
            ("local ok = pcall(cjson.encode_sparse_array, true, -1) local s = pcall(cjson.encode, {[1] = 'a', [12] = 'b'}) cjson.encode_sparse_array(false) return tostring(s)", "true"),
            ("return cjson.encode({[1] = 1, [2] = 2, [3] = 3, [11] = 11})", "ERR user_script:1: Cannot serialise table: excessively sparse array"),
            ("return cjson.encode({[1] = 1, [2] = 2, [3] = 3, [4] = 4, [5] = 5, [6] = 6, [12] = 12})", "[1,2,3,4,5,6,null,null,null,null,null,12]"),
            ("return cjson.encode({[1] = 1, [2] = 2, [3] = 3, [4] = 4, [5] = 5, [6] = 6, [13] = 13})", "[1,2,3,4,5,6,null,null,null,null,null,null,13]"),
            ("return cjson.encode(cjson.decode('[1.5e300, -2, 0.5, 1e-7, 100000000000000]'))", "[1.5e+300,-2,0.5,1e-07,1e+14]"),
            ("return cjson.encode(-123.456)", "-123.456"),
            ("return cjson.encode({['\\0'] = '\\0\\31'})", "{\"\\u0000\":\"\\u0000\\u001f\"}"),
        ];
        check(&lua, cases);
    }

    /// Redis (Lua-stack bound) encodes 3999 nested objects and decodes 5000 nested
    /// arrays once the depth settings allow it; here nesting stops at 1000 regardless.
    #[test]
    fn nesting_is_capped() {
        let lua = vm();
        let cases: &[(&str, &str)] = &[
            ("cjson.encode_max_depth(5000) local t = {} for i = 1, 1500 do t = {a = t} end return cjson.encode(t)", "ERR user_script:1: Cannot serialise, excessive nesting (1001)"),
            ("cjson.decode_max_depth(10000) return cjson.decode(string.rep('[', 1500))", "ERR user_script:1: Found too many nested data structures (1001) at character 1001"),
            ("return cjson.encode_max_depth() .. ' ' .. cjson.decode_max_depth()", "5000 10000"),
        ];
        check(&lua, cases);
    }
}
