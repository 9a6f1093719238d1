//! The measured commands: one [`Case`] per row of the table. An op is one request (or a
//! pair that keeps the collection at `n` elements: `SPOP` + `SADD` of the popped
//! member, `ZPOPMIN` + `ZADD` back, ...) with its reply checked, so that a server that
//! answers an error, or something of the wrong shape, fails the cell instead of
//! counting as fast.
//!
//! Elements are picked by index (`rng` over `0..n`), every server getting the same
//! sequence; "middle" means index or rank `n / 2`.

use anyhow::ensure;
use rand::rngs::StdRng;
use rand::Rng;

use super::data::{
    element, field, member, string_key, value, Kind, HASH, LIST, SET, STRING_VALUE, ZSET,
};
use super::resp::{Conn, Reply};

/// Cursors from the middle of a scan of one server (they differ between servers).
#[derive(Debug, Clone, Default)]
pub struct Cursors {
    pub sscan: String,
    pub hscan: String,
    pub zscan: String,
    /// `SCAN` over the whole keyspace (`n` string keys plus the 4 collections).
    pub scan: String,
}

/// What an op needs to know about the server's data set.
pub struct Env {
    pub n: usize,
    pub cursors: Cursors,
}

impl Env {
    fn pick(&self, rng: &mut StdRng) -> usize {
        rng.random_range(0..self.n)
    }

    fn mid(&self) -> usize {
        self.n / 2
    }
}

/// One op against one server.
pub type Op = fn(&mut Conn, &mut StdRng, &Env) -> anyhow::Result<()>;

/// One row of the table.
pub struct Case {
    pub family: &'static str,
    pub name: &'static str,
    pub op: Op,
    /// The collection the op changes (checked, and repaired if needed, after the cell).
    pub mutates: Option<Kind>,
}

const fn case(family: &'static str, name: &'static str, op: Op) -> Case {
    Case {
        family,
        name,
        op,
        mutates: None,
    }
}

const fn writes(family: &'static str, name: &'static str, kind: Kind, op: Op) -> Case {
    Case {
        family,
        name,
        op,
        mutates: Some(kind),
    }
}

fn expect_int(r: Reply, want: i64) -> anyhow::Result<()> {
    let got = r.int()?;
    ensure!(got == want, "expected :{want}, got :{got}");
    Ok(())
}

/// `n` random indexes as strings made by `f`.
fn picks(rng: &mut StdRng, e: &Env, k: usize, f: fn(usize) -> String) -> Vec<String> {
    (0..k).map(|_| f(e.pick(rng))).collect()
}

/// Reads a `[cursor, items]` scan reply.
fn scan_reply(r: Reply) -> anyhow::Result<()> {
    let mut a = r.array_of(2)?;
    a.pop().expect("two").array()?;
    a.pop().expect("two").bulk()?;
    Ok(())
}

/// Every row, in table order.
pub fn all() -> Vec<Case> {
    vec![
        // --- strings (the baseline) ---
        case("string", "GET key", |c, rng, e| {
            c.call(&["GET", &string_key(e.pick(rng))])?.bulk()?;
            Ok(())
        }),
        writes("string", "SET key (64 B)", Kind::Strings, |c, rng, e| {
            let k = string_key(e.pick(rng));
            let r = c.call(&[b"SET".as_slice(), k.as_bytes(), STRING_VALUE.as_slice()])?;
            ensure!(
                r == Reply::Simple("OK".into()),
                "expected +OK, got {}",
                r.brief()
            );
            Ok(())
        }),
        // --- sets ---
        case("set", "SISMEMBER s member", |c, rng, e| {
            expect_int(c.call(&["SISMEMBER", SET, &member(e.pick(rng))])?, 1)
        }),
        case("set", "SMISMEMBER s (10 members)", |c, rng, e| {
            let mut cmd = vec!["SMISMEMBER".to_string(), SET.into()];
            cmd.extend(picks(rng, e, 10, member));
            c.call(&cmd)?.array_of(10)?;
            Ok(())
        }),
        writes("set", "SADD s existing", Kind::Set, |c, rng, e| {
            expect_int(c.call(&["SADD", SET, &member(e.pick(rng))])?, 0)
        }),
        case("set", "SRANDMEMBER s", |c, _, _| {
            c.call(&["SRANDMEMBER", SET])?.bulk()?;
            Ok(())
        }),
        case("set", "SRANDMEMBER s 10", |c, _, e| {
            c.call(&["SRANDMEMBER", SET, "10"])?.array_of(e.n.min(10))?;
            Ok(())
        }),
        case("set", "SRANDMEMBER s -10", |c, _, _| {
            c.call(&["SRANDMEMBER", SET, "-10"])?.array_of(10)?;
            Ok(())
        }),
        writes("set", "SPOP s + SADD s (popped)", Kind::Set, |c, _, _| {
            let m = c.call(&["SPOP", SET])?.bulk()?;
            expect_int(c.call(&[b"SADD".as_slice(), SET.as_bytes(), &m])?, 1)
        }),
        writes(
            "set",
            "SREM s m + SADD s m (pipelined)",
            Kind::Set,
            |c, rng, e| {
                let m = member(e.pick(rng));
                c.send(&["SREM", SET, &m]);
                c.send(&["SADD", SET, &m]);
                c.flush()?;
                expect_int(c.read()?, 1)?;
                expect_int(c.read()?, 1)
            },
        ),
        case("set", "SSCAN s (mid cursor) COUNT 10", |c, _, e| {
            scan_reply(c.call(&["SSCAN", SET, &e.cursors.sscan, "COUNT", "10"])?)
        }),
        case("set", "SCARD s", |c, _, e| {
            expect_int(c.call(&["SCARD", SET])?, e.n as i64)
        }),
        // --- hashes ---
        case("hash", "HGET h field", |c, rng, e| {
            c.call(&["HGET", HASH, &field(e.pick(rng))])?.bulk()?;
            Ok(())
        }),
        case("hash", "HMGET h (10 fields)", |c, rng, e| {
            let mut cmd = vec!["HMGET".to_string(), HASH.into()];
            cmd.extend(picks(rng, e, 10, field));
            c.call(&cmd)?.array_of(10)?;
            Ok(())
        }),
        case("hash", "HEXISTS h field", |c, rng, e| {
            expect_int(c.call(&["HEXISTS", HASH, &field(e.pick(rng))])?, 1)
        }),
        writes("hash", "HSET h existing field", Kind::Hash, |c, rng, e| {
            let i = e.pick(rng);
            expect_int(c.call(&["HSET", HASH, &field(i), &value(i)])?, 0)
        }),
        writes(
            "hash",
            "HDEL h f + HSET h f (pipelined)",
            Kind::Hash,
            |c, rng, e| {
                let i = e.pick(rng);
                c.send(&["HDEL", HASH, &field(i)]);
                c.send(&["HSET", HASH, &field(i), &value(i)]);
                c.flush()?;
                expect_int(c.read()?, 1)?;
                expect_int(c.read()?, 1)
            },
        ),
        case("hash", "HRANDFIELD h", |c, _, _| {
            c.call(&["HRANDFIELD", HASH])?.bulk()?;
            Ok(())
        }),
        case("hash", "HRANDFIELD h -10 WITHVALUES", |c, _, _| {
            c.call(&["HRANDFIELD", HASH, "-10", "WITHVALUES"])?
                .array_of(20)?;
            Ok(())
        }),
        case("hash", "HSCAN h (mid cursor) COUNT 10", |c, _, e| {
            scan_reply(c.call(&["HSCAN", HASH, &e.cursors.hscan, "COUNT", "10"])?)
        }),
        case("hash", "HLEN h", |c, _, e| {
            expect_int(c.call(&["HLEN", HASH])?, e.n as i64)
        }),
        // --- sorted sets (member m(i) has score i, so rank i) ---
        case("zset", "ZSCORE z member", |c, rng, e| {
            c.call(&["ZSCORE", ZSET, &member(e.pick(rng))])?.bulk()?;
            Ok(())
        }),
        case("zset", "ZMSCORE z (10 members)", |c, rng, e| {
            let mut cmd = vec!["ZMSCORE".to_string(), ZSET.into()];
            cmd.extend(picks(rng, e, 10, member));
            c.call(&cmd)?.array_of(10)?;
            Ok(())
        }),
        case("zset", "ZRANK z m(n/2)", |c, _, e| {
            c.call(&["ZRANK", ZSET, &member(e.mid())])?.int()?;
            Ok(())
        }),
        case("zset", "ZREVRANK z m(n/2)", |c, _, e| {
            c.call(&["ZREVRANK", ZSET, &member(e.mid())])?.int()?;
            Ok(())
        }),
        writes(
            "zset",
            "ZADD z (score update) member",
            Kind::ZSet,
            |c, rng, e| {
                // A new score within +-0.4 of i: the member keeps its rank.
                let i = e.pick(rng);
                let score = i as f64 + rng.random_range(-0.4..0.4);
                expect_int(c.call(&["ZADD", ZSET, &score.to_string(), &member(i)])?, 0)
            },
        ),
        case("zset", "ZRANGE z n/2 n/2+9", |c, _, e| {
            let (a, b) = (e.mid(), e.mid() + 9);
            c.call(&["ZRANGE", ZSET, &a.to_string(), &b.to_string()])?
                .array_of(10.min(e.n - e.mid()))?;
            Ok(())
        }),
        case("zset", "ZREVRANGE z n/2 n/2+9", |c, _, e| {
            let (a, b) = (e.mid(), e.mid() + 9);
            c.call(&["ZREVRANGE", ZSET, &a.to_string(), &b.to_string()])?
                .array_of(10.min(e.n - e.mid()))?;
            Ok(())
        }),
        case("zset", "ZRANGE z n/2 +inf BYSCORE LIMIT 0 10", |c, _, e| {
            let r = c.call(&[
                "ZRANGE",
                ZSET,
                &e.mid().to_string(),
                "+inf",
                "BYSCORE",
                "LIMIT",
                "0",
                "10",
            ])?;
            ensure!(!r.array()?.is_empty(), "empty range");
            Ok(())
        }),
        case(
            "zset",
            "ZRANGE z -inf +inf BYSCORE LIMIT n/2 10",
            |c, _, e| {
                let r = c.call(&[
                    "ZRANGE",
                    ZSET,
                    "-inf",
                    "+inf",
                    "BYSCORE",
                    "LIMIT",
                    &e.mid().to_string(),
                    "10",
                ])?;
                r.array_of(10.min(e.n - e.mid()))?;
                Ok(())
            },
        ),
        case("zset", "ZRANGEBYSCORE z n/2 n/2+9", |c, _, e| {
            let (a, b) = (e.mid(), e.mid() + 9);
            let r = c.call(&["ZRANGEBYSCORE", ZSET, &a.to_string(), &b.to_string()])?;
            ensure!(!r.array()?.is_empty(), "empty range");
            Ok(())
        }),
        case("zset", "ZCOUNT z n/4 3n/4", |c, _, e| {
            let (a, b) = (e.n / 4, 3 * e.n / 4);
            c.call(&["ZCOUNT", ZSET, &a.to_string(), &b.to_string()])?
                .int()?;
            Ok(())
        }),
        writes(
            "zset",
            "ZPOPMIN z + ZADD z (popped)",
            Kind::ZSet,
            |c, _, _| {
                let mut a = c.call(&["ZPOPMIN", ZSET])?.array_of(2)?;
                let score = a.pop().expect("two").bulk()?;
                let m = a.pop().expect("two").bulk()?;
                expect_int(
                    c.call(&[b"ZADD".as_slice(), ZSET.as_bytes(), &score, &m])?,
                    1,
                )
            },
        ),
        writes(
            "zset",
            "ZREMRANGEBYRANK z n/2 n/2 + ZADD back (pipelined)",
            Kind::ZSet,
            |c, _, e| {
                let h = e.mid();
                c.send(&["ZREMRANGEBYRANK", ZSET, &h.to_string(), &h.to_string()]);
                c.send(&["ZADD", ZSET, &h.to_string(), &member(h)]);
                c.flush()?;
                expect_int(c.read()?, 1)?;
                c.read()?.int()?;
                Ok(())
            },
        ),
        writes(
            "zset",
            "ZREM z m + ZADD z m (pipelined)",
            Kind::ZSet,
            |c, rng, e| {
                let i = e.pick(rng);
                c.send(&["ZREM", ZSET, &member(i)]);
                c.send(&["ZADD", ZSET, &i.to_string(), &member(i)]);
                c.flush()?;
                expect_int(c.read()?, 1)?;
                expect_int(c.read()?, 1)
            },
        ),
        case("zset", "ZRANDMEMBER z", |c, _, _| {
            c.call(&["ZRANDMEMBER", ZSET])?.bulk()?;
            Ok(())
        }),
        case("zset", "ZRANDMEMBER z -10 WITHSCORES", |c, _, _| {
            c.call(&["ZRANDMEMBER", ZSET, "-10", "WITHSCORES"])?
                .array_of(20)?;
            Ok(())
        }),
        case("zset", "ZSCAN z (mid cursor) COUNT 10", |c, _, e| {
            scan_reply(c.call(&["ZSCAN", ZSET, &e.cursors.zscan, "COUNT", "10"])?)
        }),
        case("zset", "ZCARD z", |c, _, e| {
            expect_int(c.call(&["ZCARD", ZSET])?, e.n as i64)
        }),
        // --- lists ---
        case("list", "LINDEX l n/2", |c, _, e| {
            c.call(&["LINDEX", LIST, &e.mid().to_string()])?.bulk()?;
            Ok(())
        }),
        case("list", "LRANGE l n/2 n/2+9", |c, _, e| {
            let (a, b) = (e.mid(), e.mid() + 9);
            c.call(&["LRANGE", LIST, &a.to_string(), &b.to_string()])?
                .array_of(10.min(e.n - e.mid()))?;
            Ok(())
        }),
        writes("list", "LSET l n/2", Kind::List, |c, rng, e| {
            let r = c.call(&["LSET", LIST, &e.mid().to_string(), &element(e.pick(rng))])?;
            ensure!(
                r == Reply::Simple("OK".into()),
                "expected +OK, got {}",
                r.brief()
            );
            Ok(())
        }),
        writes(
            "list",
            "LPUSH l + RPOP l (pipelined)",
            Kind::List,
            |c, rng, e| {
                c.send(&["LPUSH", LIST, &element(e.pick(rng))]);
                c.send(&["RPOP", LIST]);
                c.flush()?;
                c.read()?.int()?;
                c.read()?.bulk()?;
                Ok(())
            },
        ),
        case("list", "LLEN l", |c, _, e| {
            expect_int(c.call(&["LLEN", LIST])?, e.n as i64)
        }),
        // --- keyspace (n string keys + the 4 collections) ---
        case("keyspace", "SCAN (mid cursor) COUNT 10", |c, _, e| {
            scan_reply(c.call(&["SCAN", &e.cursors.scan, "COUNT", "10"])?)
        }),
        case("keyspace", "RANDOMKEY", |c, _, _| {
            c.call(&["RANDOMKEY"])?.bulk()?;
            Ok(())
        }),
        case("keyspace", "EXPIRE h + PERSIST h (pipelined)", |c, _, _| {
            c.send(&["EXPIRE", HASH, "100000"]);
            c.send(&["PERSIST", HASH]);
            c.flush()?;
            expect_int(c.read()?, 1)?;
            expect_int(c.read()?, 1)
        }),
    ]
}
