//! Helpers of the persistence tests (snapshots, the append-only file): seeded datasets
//! of every type, and datasets read back exactly (content and absolute deadlines).

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Seeded keys of every type, some with a TTL (ten minutes to an hour), one set big
/// enough to be saved in pieces. Sent in pipelines of 10,000 commands.
pub fn fill(con: &mut redis::Connection, seed: u64, n: usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut pipe = redis::pipe();
    for i in 0..n {
        let k = format!("k{seed}:{i}");
        match i % 5 {
            0 => pipe
                .cmd("SET")
                .arg(&k)
                .arg(format!("v{}", rng.random::<u32>())),
            1 => pipe
                .cmd("HSET")
                .arg(&k)
                .arg("f")
                .arg(i)
                .arg("g")
                .arg(rng.random::<u16>()),
            2 => pipe.cmd("RPUSH").arg(&k).arg("a").arg(i).arg("c"),
            3 => pipe
                .cmd("SADD")
                .arg(&k)
                .arg(i)
                .arg("x")
                .arg(rng.random::<u8>()),
            _ => pipe
                .cmd("ZADD")
                .arg(&k)
                .arg(rng.random::<f64>())
                .arg("m")
                .arg(1.5)
                .arg(i),
        };
        pipe.ignore();
        if i % 3 == 0 {
            pipe.cmd("PEXPIRE")
                .arg(&k)
                .arg(rng.random_range(600_000..3_600_000))
                .ignore();
        }
        if i % 10_000 == 9_999 {
            let _: () = std::mem::take(&mut pipe).query(con).unwrap();
        }
    }
    if !n.is_multiple_of(10_000) {
        let _: () = pipe.query(con).unwrap();
    }
    let mut pipe = redis::pipe();
    for m in 0..10_000 {
        pipe.cmd("SADD").arg(format!("big{seed}")).arg(m).ignore();
    }
    let _: () = pipe.query(con).unwrap();
}

/// Every key: its type, its content (sorted where order is not kept) and its deadline.
pub fn dataset(con: &mut redis::Connection) -> BTreeMap<String, (String, String, i64)> {
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query(con).unwrap();
    let mut out = BTreeMap::new();
    for k in keys {
        let t: String = redis::cmd("TYPE").arg(&k).query(con).unwrap();
        let content = match t.as_str() {
            "string" => redis::cmd("GET").arg(&k).query::<String>(con).unwrap(),
            "hash" => format!(
                "{:?}",
                redis::cmd("HGETALL")
                    .arg(&k)
                    .query::<BTreeMap<String, String>>(con)
                    .unwrap()
            ),
            "list" => format!(
                "{:?}",
                redis::cmd("LRANGE")
                    .arg(&k)
                    .arg(0)
                    .arg(-1)
                    .query::<Vec<String>>(con)
                    .unwrap()
            ),
            "set" => {
                let mut m: Vec<String> = redis::cmd("SMEMBERS").arg(&k).query(con).unwrap();
                m.sort();
                format!("{m:?}")
            }
            _ => format!(
                "{:?}",
                redis::cmd("ZRANGE")
                    .arg(&k)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query::<Vec<String>>(con)
                    .unwrap()
            ),
        };
        let at: i64 = redis::cmd("PEXPIRETIME").arg(&k).query(con).unwrap();
        out.insert(k, (t, content, at));
    }
    out
}

pub fn info_field(con: &mut redis::Connection, section: &str, field: &str) -> String {
    let info: String = redis::cmd("INFO").arg(section).query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("INFO {section} has no {field}: {info}"))
}

/// `DEBUG DIGEST-SLOT` of every slot of the node behind `con` (content and deadlines of
/// its keys, slot by slot).
pub fn slot_digests(con: &mut redis::Connection) -> Vec<String> {
    let mut pipe = redis::pipe();
    for slot in 0..16384 {
        pipe.cmd("DEBUG").arg("DIGEST-SLOT").arg(slot);
    }
    pipe.query(con).unwrap()
}
