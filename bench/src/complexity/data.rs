//! The data set of one size `n`: one key of each collection type with `n` elements, and
//! `n` string keys of 64 bytes, named so that every element can be recomputed from its
//! index (the commands pick existing elements at random without asking the server).
//! Loaded pipelined, 1,000 elements per command; also where a scan's middle is found.

use anyhow::{bail, ensure};

use super::resp::{Conn, Reply};

/// The collections (and the string keyspace) of the data set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Set,
    Hash,
    ZSet,
    List,
    /// `n` keys `key:i` with 64-byte values.
    Strings,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Set, Kind::Hash, Kind::ZSet, Kind::List, Kind::Strings];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Set => "set",
            Kind::Hash => "hash",
            Kind::ZSet => "zset",
            Kind::List => "list",
            Kind::Strings => "string keys (64 B values)",
        }
    }

    /// The collection's key (`Strings` has none).
    pub fn key(self) -> &'static str {
        match self {
            Kind::Set => SET,
            Kind::Hash => HASH,
            Kind::ZSet => ZSET,
            Kind::List => LIST,
            Kind::Strings => "",
        }
    }

    /// The command counting its elements (`DBSIZE` for the string keys, which also
    /// counts the 4 collections).
    fn card(self) -> &'static str {
        match self {
            Kind::Set => "SCARD",
            Kind::Hash => "HLEN",
            Kind::ZSet => "ZCARD",
            Kind::List => "LLEN",
            Kind::Strings => "DBSIZE",
        }
    }
}

pub const SET: &str = "s";
pub const HASH: &str = "h";
pub const ZSET: &str = "z";
pub const LIST: &str = "l";

/// Set and sorted-set member `i` (10 bytes, not an integer: no intset encoding).
pub fn member(i: usize) -> String {
    format!("m:{i:08}")
}

/// Hash field `i`.
pub fn field(i: usize) -> String {
    format!("f:{i:08}")
}

/// A hash value (10 bytes).
pub fn value(i: usize) -> String {
    format!("v:{i:08}")
}

/// List element `i` (10 bytes).
pub fn element(i: usize) -> String {
    format!("e:{i:08}")
}

/// String key `i`.
pub fn string_key(i: usize) -> String {
    format!("key:{i}")
}

/// The 64-byte value of every string key.
pub const STRING_VALUE: &[u8; 64] = &[b'x'; 64];

/// Elements per loading command.
const PER_COMMAND: usize = 1000;

/// Sends `cmds` in pipelines of `batch`, reading every reply; fails on the first error.
fn pipeline(
    c: &mut Conn,
    cmds: impl Iterator<Item = Vec<Vec<u8>>>,
    batch: usize,
) -> anyhow::Result<()> {
    let mut pending = 0;
    for cmd in cmds {
        c.send(&cmd);
        pending += 1;
        if pending == batch {
            c.flush()?;
            for _ in 0..pending {
                c.read()?.ok()?;
            }
            pending = 0;
        }
    }
    c.flush()?;
    for _ in 0..pending {
        c.read()?.ok()?;
    }
    Ok(())
}

/// Loads `kind` with `n` elements (the collection must not exist; the string keys are
/// added to whatever keys there are) and checks its size.
pub fn load(c: &mut Conn, kind: Kind, n: usize) -> anyhow::Result<()> {
    let before = size(c, kind)?;
    ensure!(
        kind == Kind::Strings || before == 0,
        "{} exists already",
        kind.name()
    );
    let chunks =
        (0..n.div_ceil(PER_COMMAND)).map(|k| k * PER_COMMAND..((k + 1) * PER_COMMAND).min(n));
    let head = |name: &str| vec![name.as_bytes().to_vec(), kind.key().as_bytes().to_vec()];
    match kind {
        Kind::Set => pipeline(
            c,
            chunks.map(|r| {
                let mut cmd = head("SADD");
                cmd.extend(r.map(|i| member(i).into_bytes()));
                cmd
            }),
            10,
        )?,
        Kind::Hash => pipeline(
            c,
            chunks.map(|r| {
                let mut cmd = head("HSET");
                for i in r {
                    cmd.push(field(i).into_bytes());
                    cmd.push(value(i).into_bytes());
                }
                cmd
            }),
            10,
        )?,
        Kind::ZSet => pipeline(
            c,
            chunks.map(|r| {
                let mut cmd = head("ZADD");
                for i in r {
                    cmd.push(i.to_string().into_bytes());
                    cmd.push(member(i).into_bytes());
                }
                cmd
            }),
            10,
        )?,
        Kind::List => pipeline(
            c,
            chunks.map(|r| {
                let mut cmd = head("RPUSH");
                cmd.extend(r.map(|i| element(i).into_bytes()));
                cmd
            }),
            10,
        )?,
        Kind::Strings => pipeline(
            c,
            (0..n).map(|i| {
                vec![
                    b"SET".to_vec(),
                    string_key(i).into_bytes(),
                    STRING_VALUE.to_vec(),
                ]
            }),
            PER_COMMAND,
        )?,
    }
    let want = before + n;
    let got = size(c, kind)?;
    ensure!(
        got == want,
        "{} has {got} elements after loading, not {want}",
        kind.name()
    );
    Ok(())
}

/// The number of elements of `kind` (for `Strings`: of keys, the 4 collections included).
pub fn size(c: &mut Conn, kind: Kind) -> anyhow::Result<usize> {
    let mut cmd = vec![kind.card()];
    if kind != Kind::Strings {
        cmd.push(kind.key());
    }
    Ok(c.call(&cmd)?.int()? as usize)
}

/// A cursor from the middle of a scan: scanning from 0 (`prefix` is e.g. `HSCAN h` or
/// `SCAN`) in about 64 calls (a slow scan of 1M elements must not take minutes), the
/// first cursor returned once at least half of `total` items were seen; `"0"` if the
/// scan ends before (a small collection that Redis returns whole).
pub fn mid_cursor(
    c: &mut Conn,
    prefix: &[&str],
    per_item: usize,
    total: usize,
) -> anyhow::Result<String> {
    let count = (total / 64).max(10).to_string();
    let mut cursor = "0".to_string();
    let mut seen = 0;
    for _ in 0..1000 {
        let mut cmd: Vec<&str> = prefix.to_vec();
        cmd.extend([cursor.as_str(), "COUNT", count.as_str()]);
        let reply = c.call(&cmd)?.array_of(2)?;
        let [next, items] = <[Reply; 2]>::try_from(reply).expect("two elements");
        let next = String::from_utf8(next.bulk()?)?;
        seen += items.array()?.len() / per_item;
        if next == "0" {
            return Ok(next);
        }
        if seen >= total / 2 {
            return Ok(next);
        }
        cursor = next;
    }
    bail!(
        "{} did not reach the middle ({seen} items seen)",
        prefix.join(" ")
    )
}
