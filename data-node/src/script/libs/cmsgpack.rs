//! `cmsgpack`: lua-cmsgpack 0.4.0 as Redis ships it. Tables whose keys are exactly
//! 1..n pack as arrays (the empty table too), others as maps; integral numbers as the
//! smallest int, others as a float when that is exact, else a double; strings as
//! fixstr/str8/16/32; anything else as nil. Tables nested 16 deep pack as nil.

use mlua::{Lua, MultiValue, Table, Value};

use super::{arg_err, check_bytes, check_integer, function, msg, spread, Fail, Res};

/// Nesting at which tables are packed as nil (circular tables end so too).
const MAX_NESTING: usize = 16;

/// Slots a C function may use on the Lua stack (`LUAI_MAXCSTACK`); unpacking fails as
/// Redis's does where its `luaL_checkstack` calls would.
const MAX_STACK: usize = 8000;

pub(super) fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("pack", function(lua, pack)?)?;
    t.raw_set("unpack", function(lua, |l, a| unpack(l, a, 0, 0))?)?;
    t.raw_set(
        "unpack_one",
        function(lua, |l, a| {
            let offset = opt_int(l, a, 2)?;
            unpack(l, &a[..a.len().min(1)], 1, offset)
        })?,
    )?;
    t.raw_set(
        "unpack_limit",
        function(lua, |l, a| {
            let limit = check_integer(l, a, 2)?;
            let offset = opt_int(l, a, 3)?;
            unpack(l, &a[..a.len().min(1)], limit, offset)
        })?,
    )?;
    t.raw_set("_NAME", "cmsgpack")?;
    t.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.raw_set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.raw_set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    Ok(t)
}

fn opt_int(lua: &Lua, a: &[Value], n: usize) -> Res<i64> {
    match a.get(n - 1) {
        None | Some(Value::Nil) => Ok(0),
        _ => check_integer(lua, a, n),
    }
}

// ---- packing ----

fn pack(lua: &Lua, args: &[Value]) -> Res<MultiValue> {
    if args.is_empty() {
        return arg_err(0, "MessagePack pack needs input.");
    }
    let mut out = Vec::new();
    for v in args {
        encode(&mut out, v, 0)?;
    }
    Ok(MultiValue::from_vec(vec![Value::String(
        lua.create_string(out)?,
    )]))
}

fn encode(out: &mut Vec<u8>, v: &Value, level: usize) -> Res<()> {
    match v {
        Value::String(s) => {
            let s = s.as_bytes();
            let n = s.len();
            match n {
                0..=31 => out.push(0xa0 | n as u8),
                32..=0xff => out.extend_from_slice(&[0xd9, n as u8]),
                0x100..=0xffff => {
                    out.push(0xda);
                    out.extend_from_slice(&(n as u16).to_be_bytes());
                }
                _ => {
                    out.push(0xdb);
                    out.extend_from_slice(&(n as u32).to_be_bytes());
                }
            }
            out.extend_from_slice(&s);
        }
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => int(out, *i),
        Value::Number(x) => number(out, *x),
        Value::Table(t) if level < MAX_NESTING => table(out, t, level)?,
        _ => out.push(0xc0),
    }
    Ok(())
}

fn number(out: &mut Vec<u8>, x: f64) {
    // Integral and within i64 (x86 turns out-of-range conversions into i64::MIN).
    if (-9223372036854775808.0..9223372036854775808.0).contains(&x) && x.trunc() == x {
        return int(out, x as i64);
    }
    let f = x as f32;
    if f as f64 == x {
        out.push(0xca);
        out.extend_from_slice(&f.to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&x.to_be_bytes());
    }
}

fn int(out: &mut Vec<u8>, n: i64) {
    match n {
        0..=127 => out.push(n as u8),
        128..=0xff => out.extend_from_slice(&[0xcc, n as u8]),
        0x100..=0xffff => {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x10000..=0xffff_ffff => {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        0x1_0000_0000.. => {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
        -32..=-1 => out.push(n as i8 as u8),
        -128..=-33 => out.extend_from_slice(&[0xd0, n as u8]),
        -32768..=-129 => {
            out.push(0xd1);
            out.extend_from_slice(&(n as i16).to_be_bytes());
        }
        -2147483648..=-32769 => {
            out.push(0xd2);
            out.extend_from_slice(&(n as i32).to_be_bytes());
        }
        _ => {
            out.push(0xd3);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

fn header(out: &mut Vec<u8>, n: usize, fix: u8, b16: u8, b32: u8) {
    match n {
        0..=15 => out.push(fix | n as u8),
        16..=0xffff => {
            out.push(b16);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => {
            out.push(b32);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }
}

fn table(out: &mut Vec<u8>, t: &Table, level: usize) -> Res<()> {
    if is_array(t)? {
        let n = t.raw_len();
        header(out, n, 0x90, 0xdc, 0xdd);
        for i in 1..=n {
            // Read with metamethods, as lua-cmsgpack's `lua_gettable` does.
            let v: Value = t.get(i)?;
            encode(out, &v, level + 1)?;
        }
    } else {
        let mut n = 0;
        for pair in t.pairs::<Value, Value>() {
            pair?;
            n += 1;
        }
        header(out, n, 0x80, 0xde, 0xdf);
        for pair in t.pairs::<Value, Value>() {
            let (k, v) = pair?;
            encode(out, &k, level + 1)?;
            encode(out, &v, level + 1)?;
        }
    }
    Ok(())
}

/// Whether the keys are exactly 1..n (counted as C `int`s, as lua-cmsgpack does).
fn is_array(t: &Table) -> Res<bool> {
    let (mut count, mut max) = (0i64, 0i64);
    for pair in t.pairs::<Value, Value>() {
        let k = match pair?.0 {
            Value::Integer(i) => i as f64,
            Value::Number(x) => x,
            _ => return Ok(false),
        };
        if k <= 0.0 || k > i32::MAX as f64 || k.trunc() != k {
            return Ok(false);
        }
        max = max.max(k as i64);
        count += 1;
    }
    Ok(max == count)
}

// ---- unpacking ----

fn unpack(lua: &Lua, args: &[Value], limit: i64, offset: i64) -> Res<MultiValue> {
    let data = check_bytes(lua, args, 1)?;
    let len = data.len();
    let all = limit == 0 && offset == 0;
    if offset < 0 || limit < 0 {
        // Redis reports the input length where it means the limit.
        return msg(format!(
            "Invalid request to unpack with offset of {} and limit of {}.",
            offset as i32, len as i32
        ));
    }
    if offset as u64 > len as u64 {
        return msg(format!(
            "Start offset {} greater than input length {}.",
            offset as i32, len as i32
        ));
    }
    let limit = if all { i32::MAX as i64 } else { limit };
    let mut d = Decoder {
        lua,
        data: &data,
        pos: offset as usize,
    };
    // Results go straight to a table: thousands of them would not fit mlua's references.
    let results = lua.create_table()?;
    let mut n = 0;
    let first = if all { 1 } else { 2 };
    while d.pos < len && (n as i64) < limit {
        // The input string and the results so far are on the C function's stack.
        let v = d.value(1 + n)?;
        results.raw_set(first + n, v)?;
        n += 1;
    }
    if !all {
        let next = if d.pos == len { -1 } else { d.pos as i64 };
        results.raw_set(1, next)?;
        n += 1;
    }
    Ok(spread(results, n))
}

struct Decoder<'a> {
    lua: &'a Lua,
    data: &'a [u8],
    pos: usize,
}

/// A container being filled: its table, what is left to read, and for maps the key.
struct Open {
    t: Table,
    left: usize,
    map: bool,
    key: Option<Value>,
    index: i64,
}

const EOF: &str = "Missing bytes in input.";

impl Decoder<'_> {
    fn take(&mut self, n: usize) -> Res<&[u8]> {
        if self.data.len() - self.pos < n {
            return msg(EOF);
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn be(&mut self, at: usize, n: usize) -> Res<u64> {
        if self.data.len() - self.pos < at + n {
            return msg(EOF);
        }
        let s = &self.data[self.pos + at..self.pos + at + n];
        Ok(s.iter().fold(0u64, |acc, &b| acc << 8 | b as u64))
    }

    fn string(&mut self, hdr: usize, n: usize) -> Res<Value> {
        if self.data.len() - self.pos < hdr + n {
            return msg(EOF);
        }
        self.pos += hdr;
        let s = self.take(n)?.to_vec();
        Ok(Value::String(self.lua.create_string(s)?))
    }

    /// One value; `slots` is the stack lua-cmsgpack would be using, for its limits.
    /// Containers are kept in a `Vec` rather than on Rust's stack.
    fn value(&mut self, slots: usize) -> Res<Value> {
        let mut open: Vec<Open> = Vec::new();
        let mut slots = slots;
        loop {
            if self.pos >= self.data.len() {
                return msg(EOF);
            }
            if slots + 1 > MAX_STACK {
                return msg("stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)");
            }
            let mut v = match self.scalar_or_container()? {
                Item::Value(v) => v,
                Item::Container(n, map) => {
                    let t = self.lua.create_table()?;
                    if !map && slots + 2 > MAX_STACK {
                        return msg("stack overflow (in function mp_decode_to_lua_array)");
                    }
                    if n == 0 {
                        Value::Table(t)
                    } else {
                        // The table, and for arrays the index, sit below the element.
                        slots += if map { 1 } else { 2 };
                        open.push(Open {
                            t,
                            left: n,
                            map,
                            key: None,
                            index: 1,
                        });
                        continue;
                    }
                }
            };
            loop {
                let Some(top) = open.last_mut() else {
                    return Ok(v);
                };
                if top.map && top.key.is_none() {
                    // The key is read; the value goes one slot higher.
                    top.key = Some(v);
                    slots += 1;
                    break;
                }
                if top.map {
                    let k = top.key.take().unwrap_or(Value::Nil);
                    slots -= 1;
                    match &k {
                        Value::Nil => return Err(Fail::Raw("table index is nil".into())),
                        Value::Number(x) if x.is_nan() => {
                            return Err(Fail::Raw("table index is NaN".into()))
                        }
                        _ => top.t.raw_set(k, v)?,
                    }
                } else {
                    top.t.raw_set(top.index, v)?;
                    top.index += 1;
                }
                top.left -= 1;
                if top.left > 0 {
                    break;
                }
                let Some(done) = open.pop() else {
                    return Ok(Value::Nil); // `top` was there: not reached
                };
                slots -= if done.map { 1 } else { 2 };
                v = Value::Table(done.t);
            }
        }
    }

    fn scalar_or_container(&mut self) -> Res<Item> {
        let b = self.data[self.pos];
        let be = |d: &mut Self, n| d.be(1, n);
        let num = |d: &mut Self, n: usize, x: f64| {
            d.pos += n;
            Ok(Item::Value(Value::Number(x)))
        };
        match b {
            0x00..=0x7f => num(self, 1, b as f64),
            0xe0..=0xff => num(self, 1, b as i8 as f64),
            0xcc => {
                let x = be(self, 1)?;
                num(self, 2, x as f64)
            }
            0xcd => {
                let x = be(self, 2)?;
                num(self, 3, x as f64)
            }
            0xce => {
                let x = be(self, 4)?;
                num(self, 5, x as f64)
            }
            // Pushed as a Lua integer (i64) first, so the top half wraps negative.
            0xcf => {
                let x = be(self, 8)?;
                num(self, 9, x as i64 as f64)
            }
            0xd0 => {
                let x = be(self, 1)?;
                num(self, 2, x as u8 as i8 as f64)
            }
            0xd1 => {
                let x = be(self, 2)?;
                num(self, 3, x as u16 as i16 as f64)
            }
            0xd2 => {
                let x = be(self, 4)?;
                num(self, 5, x as u32 as i32 as f64)
            }
            0xd3 => {
                let x = be(self, 8)?;
                num(self, 9, x as i64 as f64)
            }
            0xc0 => {
                self.pos += 1;
                Ok(Item::Value(Value::Nil))
            }
            0xc2 | 0xc3 => {
                self.pos += 1;
                Ok(Item::Value(Value::Boolean(b == 0xc3)))
            }
            0xca => {
                let x = be(self, 4)?;
                num(self, 5, f32::from_bits(x as u32) as f64)
            }
            0xcb => {
                let x = be(self, 8)?;
                num(self, 9, f64::from_bits(x))
            }
            0xa0..=0xbf => self.string(1, (b & 0x1f) as usize).map(Item::Value),
            0xd9 => {
                let n = be(self, 1)? as usize;
                self.string(2, n).map(Item::Value)
            }
            0xda => {
                let n = be(self, 2)? as usize;
                self.string(3, n).map(Item::Value)
            }
            0xdb => {
                let n = be(self, 4)? as usize;
                self.string(5, n).map(Item::Value)
            }
            0x80..=0x9f => {
                self.pos += 1;
                Ok(Item::Container((b & 0xf) as usize, b < 0x90))
            }
            0xdc | 0xde => {
                let n = be(self, 2)? as usize;
                self.pos += 3;
                Ok(Item::Container(n, b == 0xde))
            }
            0xdd | 0xdf => {
                let n = be(self, 4)? as usize;
                self.pos += 5;
                Ok(Item::Container(n, b == 0xdf))
            }
            _ => msg("Bad data format in input."),
        }
    }
}

enum Item {
    Value(Value),
    /// Element count, and whether it is a map.
    Container(usize, bool),
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{check, vm};

    /// Expected values are redis-server 7.0.15's replies to the same script.
    #[test]
    fn matches_redis() {
        let lua = vm();
        let cases: &[(&str, &str)] = &[
            ("local s = cmsgpack.pack({1, 2, 3}) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))", "93010203"),
            ("local s = cmsgpack.pack({}) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))", "90"),
            ("local s = cmsgpack.pack({a = 1}) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))", "81a16101"),
            ("local s = cmsgpack.pack(0, 127, 128, 255, 256, 65535, 65536, 2^32 - 1, 2^32, 2^53) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))", "007fcc80ccffcd0100cdffffce00010000ceffffffffcf0000000100000000cf0020000000000000"),
            ("local s = cmsgpack.pack(-1, -32, -33, -128, -129, -32768, -32769, -2^31, -2^31 - 1, -2^63) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))", "ffe0d0dfd080d1ff7fd18000d2ffff7fffd280000000d3ffffffff7fffffffd38000000000000000"),
            ("local s = cmsgpack.pack(0.5, 0.1, 1/0, -1/0, 2^63, 1e300) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))", "ca3f000000cb3fb999999999999aca7f800000caff800000ca5f000000cb7e37e43c8800759c"),
            ("local s = cmsgpack.pack(true, false, nil, cjson.null, function() end) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))", "c3c2c0c0c0"),
            ("local s = cmsgpack.pack(string.rep('x', 31), string.rep('y', 32)) return #s .. ' ' .. s:byte(1) .. ' ' .. s:byte(33) .. ' ' .. s:byte(34)", "66 191 217 32"),
            ("local s = cmsgpack.pack(string.rep('x', 256), string.rep('y', 65536)) return #s .. ' ' .. s:byte(1) .. ' ' .. s:byte(260) .. ' ' .. s:byte(261)", "65800 218 219 0"),
            ("local s = cmsgpack.pack({[1] = 'a', [3] = 'c'}) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))", "8201a16103a163"),
            ("local s = cmsgpack.pack({[1.5] = 1, [0] = 2}) return #s", "9"),
            ("local t = {} for i = 1, 20 do t[i] = i end local s = cmsgpack.pack(t) return s:byte(1) .. ' ' .. s:byte(2) .. ' ' .. s:byte(3) .. ' ' .. #s", "220 0 20 23"),
            ("local t = {} t[1] = t local s = cmsgpack.pack(t) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))", "91919191919191919191919191919191c0"),
            ("return cmsgpack.pack()", "ERR user_script:1: bad argument #0 to 'pack' (MessagePack pack needs input.)"),
            ("return select('#', cmsgpack.unpack(cmsgpack.pack(1, 2, 3)))", "3"),
            ("return table.concat({cmsgpack.unpack(cmsgpack.pack(1, 'two', 3.5))}, ',')", "1,two,3.5"),
            ("return cmsgpack.unpack(cmsgpack.pack({10, 20, 30}))[2]", "20"),
            ("return cmsgpack.unpack(cmsgpack.pack({a = {b = 'c'}})).a.b", "c"),
            ("return cmsgpack.unpack('\\207\\255\\255\\255\\255\\255\\255\\255\\255')", "-1"),
            ("return cmsgpack.unpack('\\211\\255\\255\\255\\255\\255\\255\\255\\254')", "-2"),
            ("return cmsgpack.unpack('\\202\\63\\192\\0\\0')", "1.5"),
            ("return cmsgpack.unpack('\\208\\128')", "-128"),
            ("return cmsgpack.unpack('\\209\\255\\1')", "-255"),
            ("return cmsgpack.unpack('\\210\\128\\0\\0\\0')", "-2147483648"),
            ("return cmsgpack.unpack('\\206\\255\\255\\255\\255')", "4294967295"),
            ("return cmsgpack.unpack('\\205\\1\\0')", "256"),
            ("return cmsgpack.unpack('\\217\\3abc')", "abc"),
            ("return cmsgpack.unpack('\\218\\0\\2ab')", "ab"),
            ("return cmsgpack.unpack('\\219\\0\\0\\0\\1z')", "z"),
            ("return cmsgpack.unpack('\\220\\0\\1\\5')[1]", "5"),
            ("return cmsgpack.unpack('\\222\\0\\1\\1\\2')[1]", "2"),
            ("return cmsgpack.unpack('\\193')", "ERR user_script:1: Bad data format in input."),
            ("return cmsgpack.unpack('\\196')", "ERR user_script:1: Bad data format in input."),
            ("return cmsgpack.unpack('\\146\\1')", "ERR user_script:1: Missing bytes in input."),
            ("return cmsgpack.unpack('\\217')", "ERR user_script:1: Missing bytes in input."),
            ("return cmsgpack.unpack('\\205\\1')", "ERR user_script:1: Missing bytes in input."),
            ("return cmsgpack.unpack('\\129\\192\\1')", "ERR table index is nil"),
            ("return select('#', cmsgpack.unpack(''))", "0"),
            ("return cmsgpack.unpack({})", "ERR user_script:1: bad argument #1 to 'unpack' (string expected, got table)"),
            ("return table.concat({cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3))}, ',')", "1,1"),
            ("return table.concat({cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 2)}, ',')", "-1,3"),
            ("return table.concat({cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 3)}, ',')", "-1"),
            ("return table.concat({cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2)}, ',')", "2,1,2"),
            ("return table.concat({cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2, 1)}, ',')", "-1,2,3"),
            ("return table.concat({cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 0)}, ',')", "1,2,3"),
            ("return table.concat({cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 0, 1)}, ',')", "1"),
            ("return cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), -1)", "ERR user_script:1: Invalid request to unpack with offset of 0 and limit of 3."),
            ("return cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 4)", "ERR user_script:1: Start offset 4 greater than input length 3."),
            ("return cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), -1)", "ERR user_script:1: Invalid request to unpack with offset of -1 and limit of 3."),
            ("return cmsgpack.unpack_limit('\\1')", "ERR user_script:1: bad argument #2 to 'unpack_limit' (number expected, got no value)"),
            ("return cmsgpack.unpack_one('\\1', 'x')", "ERR user_script:1: bad argument #2 to 'unpack_one' (number expected, got string)"),
            ("return select('#', cmsgpack.unpack(string.rep('\\1', 7999)))", "7999"),
            ("return select('#', cmsgpack.unpack(string.rep('\\1', 8000)))", "ERR user_script:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)"),
            ("return type(cmsgpack.unpack(string.rep('\\145', 3999) .. '\\1'))", "table"),
            ("return cmsgpack.unpack(string.rep('\\145', 4000) .. '\\1')", "ERR user_script:1: stack overflow (in function mp_decode_to_lua_array)"),
            ("return type(cmsgpack.unpack(string.rep('\\129\\1', 3999) .. '\\1'))", "table"),
            ("return cmsgpack.unpack(string.rep('\\129\\1', 4000) .. '\\1')", "ERR user_script:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)"),
            ("return cmsgpack.unpack(string.rep('\\129\\1', 3999) .. '\\129\\1\\1')", "ERR user_script:1: stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)"),
            ("return cmsgpack._VERSION", "lua-cmsgpack 0.4.0"),
            ("return cmsgpack.unpack(cmsgpack.pack(0.1)) == 0.1", "true"),
            ("return cmsgpack.unpack(cmsgpack.pack(-0.0))", "0"),
            ("return cmsgpack.unpack('\\129\\203\\127\\248\\0\\0\\0\\0\\0\\0\\1')", "ERR table index is NaN"),
            ("local s = cmsgpack.pack(setmetatable({1, 2}, {__index = function() return 9 end})) return #s", "3"),
            ("local s = cmsgpack.pack({[2^31] = 1}) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))", "81ce8000000001"),
        ];
        check(&lua, cases);
    }
}
