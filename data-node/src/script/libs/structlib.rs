//! `struct`: Roberto Ierusalimschy's struct library as Redis ships it, for an x86-64
//! build (little-endian native order, 8-byte `long`/`size_t`, maximum alignment 8).
//! Formats: `<` `>` `!n` endianness/alignment, `x` pad, `b B h H l L T i I[n]`
//! integers, `f d` floats, `c[n]` fixed strings, `s` zero-terminated strings.

use mlua::{Lua, MultiValue, Table, Value};

use super::{arg_err, check_bytes, check_number, function, msg, spread, to_number, Res};

const MAX_INT_SIZE: usize = 32;
const MAX_ALIGN: usize = 8;

pub(super) fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("pack", function(lua, pack)?)?;
    t.raw_set("unpack", function(lua, unpack)?)?;
    t.raw_set("size", function(lua, size)?)?;
    Ok(t)
}

struct Format {
    fmt: Vec<u8>,
    pos: usize,
    little: bool,
    align: usize,
}

impl Format {
    fn new(lua: &Lua, args: &[Value]) -> Res<Self> {
        let mut fmt = check_bytes(lua, args, 1)?;
        // A C string: the format ends at a NUL.
        if let Some(n) = fmt.iter().position(|&c| c == 0) {
            fmt.truncate(n);
        }
        Ok(Format {
            fmt,
            pos: 0,
            little: true,
            align: 1,
        })
    }

    fn next_opt(&mut self) -> Option<u8> {
        let c = self.fmt.get(self.pos).copied();
        self.pos += c.is_some() as usize;
        c
    }

    fn number(&mut self, default: usize) -> Res<usize> {
        if !self.fmt.get(self.pos).is_some_and(u8::is_ascii_digit) {
            return Ok(default);
        }
        let mut a: usize = 0;
        while let Some(&c) = self.fmt.get(self.pos).filter(|c| c.is_ascii_digit()) {
            let d = (c - b'0') as usize;
            if a > i32::MAX as usize / 10 || a * 10 > i32::MAX as usize - d {
                return msg("integral size overflow");
            }
            a = a * 10 + d;
            self.pos += 1;
        }
        Ok(a)
    }

    /// The size of option `opt` (0 for those with none).
    fn size(&mut self, opt: u8) -> Res<usize> {
        Ok(match opt {
            b'B' | b'b' | b'x' => 1,
            b'H' | b'h' => 2,
            b'L' | b'l' | b'T' | b'd' => 8,
            b'f' => 4,
            b'c' => self.number(1)?,
            b'i' | b'I' => {
                let n = self.number(4)?;
                if n > MAX_INT_SIZE {
                    return msg(format!(
                        "integral size {} is larger than limit of {MAX_INT_SIZE}",
                        n as i32
                    ));
                }
                n
            }
            _ => 0,
        })
    }

    /// Padding before an item of `size` at `at` (any size: the library masks with it).
    fn padding(&self, at: usize, opt: u8, size: usize) -> usize {
        if size == 0 || opt == b'c' {
            return 0;
        }
        let size = size.min(self.align);
        (size.wrapping_sub(at & size.wrapping_sub(1))) & size.wrapping_sub(1)
    }

    fn control(&mut self, opt: u8) -> Res<()> {
        match opt {
            b' ' => {}
            b'>' => self.little = false,
            b'<' => self.little = true,
            b'!' => {
                let a = self.number(MAX_ALIGN)?;
                if !a.is_power_of_two() {
                    return msg(format!("alignment {} is not a power of 2", a as i32));
                }
                self.align = a;
            }
            _ => return arg_err(1, format!("invalid format option '{}'", opt as char)),
        }
        Ok(())
    }
}

fn one(v: Value) -> Res<MultiValue> {
    Ok(MultiValue::from_vec(vec![v]))
}

fn pack(lua: &Lua, args: &[Value]) -> Res<MultiValue> {
    let mut f = Format::new(lua, args)?;
    // The library pushes a nil after the arguments: a missing first one reads as nil.
    let args = &[args, &[Value::Nil]].concat()[..];
    let mut out: Vec<u8> = Vec::new();
    let mut arg = 2;
    while let Some(opt) = f.next_opt() {
        let mut size = f.size(opt)?;
        let pad = f.padding(out.len(), opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let x = check_number(lua, args, arg)?;
                arg += 1;
                // Negative numbers go through a signed conversion, others unsigned.
                let mut v = if x < 0.0 { x as i64 as u64 } else { x as u64 };
                let mut bytes = vec![0u8; size];
                for i in 0..size {
                    let at = if f.little { i } else { size - 1 - i };
                    bytes[at] = v as u8;
                    v = v.checked_shr(8).unwrap_or(0);
                }
                out.extend_from_slice(&bytes);
            }
            b'x' => out.push(0),
            b'f' | b'd' => {
                let x = check_number(lua, args, arg)?;
                arg += 1;
                let bytes = match (opt, f.little) {
                    (b'f', true) => (x as f32).to_le_bytes().to_vec(),
                    (b'f', false) => (x as f32).to_be_bytes().to_vec(),
                    (_, true) => x.to_le_bytes().to_vec(),
                    (_, false) => x.to_be_bytes().to_vec(),
                };
                out.extend_from_slice(&bytes);
            }
            b'c' | b's' => {
                let s = check_bytes(lua, args, arg)?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    // The library blames the argument after the string.
                    return arg_err(arg, "string too short");
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            _ => f.control(opt)?,
        }
    }
    one(Value::String(lua.create_string(out)?))
}

fn unpack(lua: &Lua, args: &[Value]) -> Res<MultiValue> {
    let mut f = Format::new(lua, args)?;
    let data = check_bytes(lua, args, 2)?;
    let ld = data.len();
    let start = match args.get(2) {
        None | Some(Value::Nil) => 1,
        _ => check_number(lua, args, 3)? as i64,
    };
    if start == 0 {
        return arg_err(3, "offset must be 1 or greater");
    }
    // A negative offset is a huge `size_t` in the library: always too short.
    let mut pos = (start as u64).wrapping_sub(1) as usize;
    let results = lua.create_table()?;
    let mut n = 0usize;
    let mut last: Option<Value> = None;
    while let Some(opt) = f.next_opt() {
        let mut size = f.size(opt)?;
        pos = pos.wrapping_add(f.padding(pos, opt, size));
        if size > ld || pos > ld - size {
            return arg_err(2, "data string too short");
        }
        if args.len() + n + 2 > 8000 {
            return msg("stack overflow (too many results)");
        }
        let item = &data[pos..pos + size];
        let v = match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => Some(Value::Number(
                integer(item, f.little, opt.is_ascii_lowercase()),
            )),
            b'f' => {
                let b: [u8; 4] = item.try_into().unwrap_or_default();
                let x = if f.little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                };
                Some(Value::Number(x as f64))
            }
            b'd' => {
                let b: [u8; 8] = item.try_into().unwrap_or_default();
                let x = if f.little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                Some(Value::Number(x))
            }
            b'c' => {
                if size == 0 {
                    // `c0` takes its length from the previous result, which it consumes.
                    let prev = match (n, last.take()) {
                        (0, _) | (_, None) => None,
                        (_, Some(v)) => to_number(lua, Some(&v))?,
                    };
                    let Some(len) = prev else {
                        return msg("format 'c0' needs a previous size");
                    };
                    n -= 1;
                    size = if len < 0.0 { usize::MAX } else { len as usize };
                    if size > ld || pos > ld - size {
                        return arg_err(2, "data string too short");
                    }
                }
                Some(Value::String(lua.create_string(&data[pos..pos + size])?))
            }
            b's' => {
                let Some(end) = data[pos..].iter().position(|&c| c == 0) else {
                    return msg("unfinished string in data");
                };
                size = end + 1;
                Some(Value::String(lua.create_string(&data[pos..pos + end])?))
            }
            b'x' => None,
            _ => {
                f.control(opt)?;
                None
            }
        };
        if let Some(v) = v {
            n += 1;
            results.raw_set(n, v.clone())?;
            last = Some(v);
        }
        pos = pos.wrapping_add(size);
    }
    n += 1;
    results.raw_set(n, Value::Number(pos as f64 + 1.0))?;
    Ok(spread(results, n))
}

/// An integer of up to 32 bytes kept, as the library does, in 64 bits (larger ones
/// lose their high bytes, and their sign mask is shifted modulo 64 as x86 does).
fn integer(b: &[u8], little: bool, signed: bool) -> f64 {
    let mut v: u64 = 0;
    let mut push = |c: u8| v = v.wrapping_shl(8) | c as u64;
    if little {
        b.iter().rev().for_each(|&c| push(c));
    } else {
        b.iter().for_each(|&c| push(c));
    }
    if !signed {
        return v as f64;
    }
    let bits = (b.len() * 8) as u32;
    let mask = u64::MAX.wrapping_shl(bits.wrapping_sub(1));
    if v & mask != 0 {
        v |= mask;
    }
    v as i64 as f64
}

fn size(lua: &Lua, args: &[Value]) -> Res<MultiValue> {
    let mut f = Format::new(lua, args)?;
    let mut pos = 0usize;
    while let Some(opt) = f.next_opt() {
        let size = f.size(opt)?;
        pos += f.padding(pos, opt, size);
        if opt == b's' {
            return arg_err(1, "option 's' has no fixed size");
        }
        if opt == b'c' && size == 0 {
            return arg_err(1, "option 'c0' has no fixed size");
        }
        if !opt.is_ascii_alphanumeric() {
            f.control(opt)?;
        }
        pos += size;
    }
    one(Value::Integer(pos as i64))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{check, vm};

    /// Expected values are redis-server 7.0.15's replies to the same script.
    #[test]
    fn matches_redis() {
        let lua = vm();
        let cases: &[(&str, &str)] = &[
            ("local s = struct.pack('>i', 1) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))", "00000001"),
            ("local s = struct.pack('<i', -2) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))", "feffffff"),
            ("local s = struct.pack('bBhHlLT', -1, 255, -2, 65535, -3, 4, 5) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))", "fffffefffffffdffffffffffffff04000000000000000500000000000000"),
            ("local s = struct.pack('>i3I10', -1, 258) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))", "ffffff00000000000000000102"),
            ("local s = struct.pack('!4bi', 1, 2) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))", "0100000002000000"),
            ("local s = struct.pack('!bd', 1, 2) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))", "01000000000000000000000000000040"),
            ("local s = struct.pack('!2bxhi3', 1, 2, 3) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))", "01000200030000"),
            ("local s = struct.pack('>fd', 1.5, -0.25) return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))", "3fc00000bfd0000000000000"),
            ("local s = struct.pack('c3sc0', 'abcdef', 'xy', 'zz') return (s:gsub('.', function(c) return string.format('%02x', c:byte()) end))", "6162637879007a7a"),
            ("return struct.pack('c5', 'abc')", "ERR user_script:1: bad argument #3 to 'pack' (string too short)"),
            ("return struct.pack('i', 'x')", "ERR user_script:1: bad argument #2 to 'pack' (number expected, got string)"),
            ("return struct.pack('i')", "ERR user_script:1: bad argument #2 to 'pack' (number expected, got nil)"),
            ("return struct.pack('z')", "ERR user_script:1: bad argument #1 to 'pack' (invalid format option 'z')"),
            ("return struct.pack('i33', 1)", "ERR user_script:1: integral size 33 is larger than limit of 32"),
            ("return struct.pack('i99999999999', 1)", "ERR user_script:1: integral size overflow"),
            ("return struct.pack('!3i', 1)", "ERR user_script:1: alignment 3 is not a power of 2"),
            ("return struct.pack({})", "ERR user_script:1: bad argument #1 to 'pack' (string expected, got table)"),
            ("return struct.pack('i', '12') == struct.pack('i', 12)", "true"),
            ("return table.concat({struct.unpack('>i', '\\0\\0\\1\\0')}, ',')", "256,5"),
            ("return table.concat({struct.unpack('<hH', '\\255\\255\\255\\255')}, ',')", "-1,65535,5"),
            ("return table.concat({struct.unpack('bB', '\\200\\200')}, ',')", "-56,200,3"),
            ("return table.concat({struct.unpack('i3', '\\255\\255\\127')}, ',')", "8388607,4"),
            ("return table.concat({struct.unpack('i3', '\\255\\255\\255')}, ',')", "-1,4"),
            ("return table.concat({struct.unpack('<l', '\\255\\255\\255\\255\\255\\255\\255\\255')}, ',')", "-1,9"),
            ("return table.concat({struct.unpack('<L', '\\0\\0\\0\\0\\0\\0\\0\\128')}, ',')", "9.2233720368548e+18,9"),
            ("return table.concat({struct.unpack('>fd', struct.pack('>fd', 1.5, -0.25))}, ',')", "1.5,-0.25,13"),
            ("return table.concat({struct.unpack('c2s', 'abcd\\0ef')}, ',')", "ab,cd,6"),
            ("return table.concat({struct.unpack('bc0', '\\3abcd')}, ',')", "abc,5"),
            ("return table.concat({struct.unpack('c0', 'abc')}, ',')", "ERR user_script:1: format 'c0' needs a previous size"),
            ("return table.concat({struct.unpack('i', '\\1\\0\\0\\0\\2\\0\\0\\0', 5)}, ',')", "2,9"),
            ("return table.concat({struct.unpack('xb', '\\1\\2')}, ',')", "2,3"),
            ("return table.concat({struct.unpack('!4bi', struct.pack('!4bi', 7, 9))}, ',')", "7,9,9"),
            ("return struct.unpack('i', '\\1\\0')", "ERR user_script:1: bad argument #2 to 'unpack' (data string too short)"),
            ("return struct.unpack('i', '\\1\\0\\0\\0', 0)", "ERR user_script:1: bad argument #3 to 'unpack' (offset must be 1 or greater)"),
            ("return struct.unpack('i', '\\1\\0\\0\\0', -1)", "ERR user_script:1: bad argument #2 to 'unpack' (data string too short)"),
            ("return struct.unpack('s', 'abc')", "ERR user_script:1: unfinished string in data"),
            ("return struct.unpack('z', 'abc')", "ERR user_script:1: bad argument #1 to 'unpack' (invalid format option 'z')"),
            ("return struct.unpack('i')", "ERR user_script:1: bad argument #2 to 'unpack' (string expected, got no value)"),
            ("return struct.unpack('<', 'ab', 4)", "ERR user_script:1: bad argument #2 to 'unpack' (data string too short)"),
            ("return table.concat({struct.unpack('i1i1', '\\1\\2')}, ',')", "1,2,3"),
            ("return select('#', struct.unpack(string.rep('b', 7995), string.rep('\\1', 8000)))", "7996"),
            ("return select('#', struct.unpack(string.rep('b', 7996), string.rep('\\1', 8000)))", "7997"),
            ("return struct.size('bhi')", "7"),
            ("return struct.size('!bhid')", "16"),
            ("return struct.size('<i3c7x')", "11"),
            ("return struct.size('s')", "ERR user_script:1: bad argument #1 to 'size' (option 's' has no fixed size)"),
            ("return struct.size('c0')", "ERR user_script:1: bad argument #1 to 'size' (option 'c0' has no fixed size)"),
            ("return struct.size('z')", "0"),
            ("return struct.size('%')", "ERR user_script:1: bad argument #1 to 'size' (invalid format option '%')"),
            ("return struct.size('!5')", "ERR user_script:1: alignment 5 is not a power of 2"),
            ("return struct.pack('c', 'ab') .. '|' .. struct.pack('i0', 5) .. '|'", "a||"),
            ("return struct.pack(' <i>h', 1, 2):len()", "6"),
        ];
        check(&lua, cases);
    }
}
