//! `bit`: LuaBitOp 1.0 as Redis ships it. Numbers are doubles; every operation works
//! on their 32-bit two's complement view and returns a signed 32-bit result.

use mlua::{Lua, MultiValue, Table, Value};

use super::{register, to_number, type_err, Body, Res};

pub(super) fn module(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let funcs: [(&str, Body); 12] = [
        ("tobit", |l, a| ret(bits(l, a, 1)?)),
        ("bnot", |l, a| ret(!bits(l, a, 1)?)),
        ("band", |l, a| fold(l, a, |x, y| x & y)),
        ("bor", |l, a| fold(l, a, |x, y| x | y)),
        ("bxor", |l, a| fold(l, a, |x, y| x ^ y)),
        ("lshift", |l, a| shift(l, a, |b, n| b << n)),
        ("rshift", |l, a| shift(l, a, |b, n| b >> n)),
        ("arshift", |l, a| {
            shift(l, a, |b, n| ((b as i32) >> n) as u32)
        }),
        ("rol", |l, a| shift(l, a, u32::rotate_left)),
        ("ror", |l, a| shift(l, a, u32::rotate_right)),
        ("bswap", |l, a| ret(bits(l, a, 1)?.swap_bytes())),
        ("tohex", tohex),
    ];
    for (name, body) in funcs {
        register(lua, &t, name, body)?;
    }
    Ok(t)
}

/// The 32 bits of argument `n`. Adding 2^52+2^51 puts the integer part, rounded to
/// nearest-even as the FPU does, in the low mantissa bits; anything not a number (or
/// numeric string) is an error, except that LuaBitOp only notices when the bits are 0.
fn bits(lua: &Lua, args: &[Value], n: usize) -> Res<u32> {
    let x = to_number(lua, args.get(n - 1))?;
    let b = (x.unwrap_or(0.0) + 6755399441055744.0).to_bits() as u32;
    if b == 0 && x.is_none() {
        return type_err(args, n, "number");
    }
    Ok(b)
}

fn ret(b: u32) -> Res<MultiValue> {
    Ok(MultiValue::from_vec(vec![Value::Number(b as i32 as f64)]))
}

fn fold(lua: &Lua, args: &[Value], op: fn(u32, u32) -> u32) -> Res<MultiValue> {
    let mut b = bits(lua, args, 1)?;
    // LuaBitOp reads the operands from the last to the second.
    for n in (2..=args.len()).rev() {
        b = op(b, bits(lua, args, n)?);
    }
    ret(b)
}

fn shift(lua: &Lua, args: &[Value], op: fn(u32, u32) -> u32) -> Res<MultiValue> {
    let b = bits(lua, args, 1)?;
    let n = bits(lua, args, 2)? & 31;
    ret(op(b, n))
}

fn tohex(lua: &Lua, args: &[Value]) -> Res<MultiValue> {
    let mut b = bits(lua, args, 1)?;
    let mut n = match args.len() {
        0 | 1 => 8,
        _ => bits(lua, args, 2)? as i32,
    };
    let digits: &[u8; 16] = if n < 0 {
        n = n.wrapping_neg();
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    // i32::MIN stays negative after negation: LuaBitOp then prints nothing.
    let n = n.clamp(0, 8) as usize;
    let mut out = vec![0u8; n];
    for c in out.iter_mut().rev() {
        *c = digits[(b & 15) as usize];
        b >>= 4;
    }
    Ok(MultiValue::from_vec(vec![Value::String(
        lua.create_string(out)?,
    )]))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{check, vm};

    /// Expected values are redis-server 7.0.15's replies to the same script.
    #[test]
    fn matches_redis() {
        let lua = vm();
        let cases = [
            // EVAL "return tostring(bit.tobit(0xffffffff))" 0 -> "-1"
            ("return bit.tobit(0xffffffff)", "-1"),
            ("return bit.tobit(2^32 + 5)", "5"),
            ("return bit.tobit(1.5)", "2"),
            ("return bit.tobit(2.5)", "2"),
            ("return bit.tobit(-1.5)", "-2"),
            ("return bit.tobit('10')", "10"),
            ("return bit.tohex(255)", "000000ff"),
            ("return bit.tohex(255, -4)", "00FF"),
            ("return bit.tohex(-1, 2)", "ff"),
            ("return bit.tohex(0x12345678, 20)", "12345678"),
            ("return bit.bnot(0)", "-1"),
            ("return bit.band(0xff, 0x0f, 0x3)", "3"),
            ("return bit.bor(1, 2, 4, 8)", "15"),
            ("return bit.bxor(0xf0, 0xff)", "15"),
            ("return bit.lshift(1, 31)", "-2147483648"),
            ("return bit.lshift(1, 33)", "2"),
            ("return bit.rshift(-1, 28)", "15"),
            ("return bit.arshift(-256, 4)", "-16"),
            ("return bit.rol(0x12345678, 12)", "1164411171"),
            ("return bit.ror(0x12345678, 12)", "1736516421"),
            ("return bit.bswap(0x12345678)", "2018915346"),
            (
                "return bit.band()",
                "ERR user_script:1: bad argument #1 to 'band' (number expected, got no value)",
            ),
            (
                "return bit.tobit({})",
                "ERR user_script:1: bad argument #1 to 'tobit' (number expected, got table)",
            ),
            (
                "return bit.bor(1, 'x')",
                "ERR user_script:1: bad argument #2 to 'bor' (number expected, got string)",
            ),
            (
                "return bit.tohex(1, nil)",
                "ERR user_script:1: bad argument #2 to 'tohex' (number expected, got nil)",
            ),
            ("return bit.tobit(2^52)", "0"),
        ];
        check(&lua, &cases);
    }
}
