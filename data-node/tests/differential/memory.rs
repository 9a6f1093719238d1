//! `maxmemory`, compared with redis-server: what is refused when nothing can be evicted
//! (`noeviction`, the default) and what keeps working; `OBJECT` (see `scenario.rs`).
//! With `maxmemory 1` both servers are always over the limit. Each scenario ends by
//! lifting the limit again.

use super::scenario::*;

const LIFT: &[&str] = &[
    "CONFIG",
    "SET",
    "maxmemory",
    "0",
    "maxmemory-policy",
    "noeviction",
];

pub fn scenarios() -> Vec<Scenario> {
    vec![
        (
            "noeviction: writes that may grow memory are refused, reads and DEL go on",
            2,
            vec![
                Run(0, &["SET", "{m}a", "1"]),
                Run(0, &["RPUSH", "{m}l", "x", "y"]),
                Run(0, &["SET", "{m}t", "v", "EX", "100"]),
                Run(1, &["MULTI"]),
                Run(1, &["SET", "{m}q", "1"]),
                Run(0, &["CONFIG", "SET", "maxmemory", "1"]),
                Run(0, &["CONFIG", "GET", "maxmemory"]),
                Run(0, &["SET", "{m}b", "1"]),
                Run(0, &["INCR", "{m}a"]),
                Run(0, &["APPEND", "{m}a", "x"]),
                Run(0, &["LPUSH", "{m}l", "z"]),
                Run(0, &["SETEX", "{m}c", "10", "v"]),
                Run(0, &["GET", "{m}a"]),
                Run(0, &["LPOP", "{m}l"]),
                Run(0, &["EXPIRE", "{m}a", "100"]),
                Run(0, &["PERSIST", "{m}t"]),
                Run(0, &["DEL", "{m}a"]),
                Run(0, &["EXISTS", "{m}a"]),
                Run(0, &["PING"]),
                // A transaction queued before: its EXEC is refused, and it is gone.
                Run(1, &["EXEC"]),
                Run(1, &["EXEC"]),
                // Inside MULTI every command but EXEC, DISCARD ... is refused.
                Run(0, &["MULTI"]),
                Run(0, &["GET", "{m}l"]),
                Run(0, &["EXEC"]),
                Run(0, &["MULTI"]),
                Run(0, &["PING"]),
                Run(0, &["DISCARD"]),
                // Commands flagged no_multi are refused in a transaction, and doom it.
                Run(0, LIFT),
                Run(0, &["MULTI"]),
                Run(0, &["SAVE"]),
                Run(0, &["SET", "{m}n", "1"]),
                Run(0, &["EXEC"]),
                Run(0, &["CONFIG", "SET", "maxmemory", "1"]),
                // Scripts: without a shebang, at their first write; with one, at their
                // start unless they do not write or allow OOM.
                Run(
                    0,
                    &["EVAL", "return redis.call('SET', KEYS[1], 1)", "1", "{m}s"],
                ),
                Run(
                    0,
                    &["EVAL", "return redis.pcall('SET', KEYS[1], 1)", "1", "{m}s"],
                ),
                Run(
                    0,
                    &[
                        "EVAL",
                        "return redis.call('LRANGE', KEYS[1], 0, -1)",
                        "1",
                        "{m}l",
                    ],
                ),
                Run(
                    0,
                    &[
                        "EVAL",
                        "#!lua\nreturn redis.call('GET', KEYS[1])",
                        "1",
                        "{m}l",
                    ],
                ),
                Run(
                    0,
                    &[
                        "EVAL",
                        "#!lua flags=no-writes\nreturn redis.call('LRANGE', KEYS[1], 0, -1)",
                        "1",
                        "{m}l",
                    ],
                ),
                Run(
                    0,
                    &[
                        "EVAL",
                        "#!lua flags=allow-oom\nreturn redis.call('SET', KEYS[1], 2)",
                        "1",
                        "{m}s",
                    ],
                ),
                Run(0, &["GET", "{m}s"]),
                Run(0, LIFT),
                Run(0, &["SET", "{m}b", "1"]),
                Run(0, &["CONFIG", "GET", "maxmemory"]),
            ],
        ),
        (
            "CONFIG of the eviction settings",
            1,
            vec![
                Run(0, &["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"]),
                Run(0, &["CONFIG", "GET", "maxmemory-policy"]),
                Run(0, &["CONFIG", "SET", "maxmemory-policy", "VOLATILE-TTL"]),
                Run(0, &["CONFIG", "GET", "maxmemory-policy"]),
                Run(0, &["CONFIG", "SET", "maxmemory-policy", "lru"]),
                Run(0, &["CONFIG", "SET", "maxmemory", "100mb"]),
                Run(0, &["CONFIG", "GET", "maxmemory"]),
                Run(0, &["CONFIG", "SET", "maxmemory", "-1"]),
                Run(0, &["CONFIG", "SET", "maxmemory", "lots"]),
                Run(0, &["CONFIG", "SET", "maxmemory-samples", "0"]),
                Run(0, &["CONFIG", "SET", "maxmemory-samples", "10"]),
                Run(0, &["CONFIG", "GET", "maxmemory-samples"]),
                Run(0, &["CONFIG", "SET", "lfu-log-factor", "-1"]),
                Run(0, &["CONFIG", "SET", "lfu-decay-time", "x"]),
                Run(
                    0,
                    &[
                        "CONFIG",
                        "SET",
                        "lfu-log-factor",
                        "10",
                        "lfu-decay-time",
                        "1",
                    ],
                ),
                // (One name each: Redis lists a pattern's matches in its dict's order.)
                Run(0, &["CONFIG", "GET", "lfu-log-factor"]),
                Run(0, &["CONFIG", "GET", "lfu-decay-time"]),
                Run(0, &["CONFIG", "SET", "maxmemory-samples", "5"]),
                Run(0, &["CONFIG", "SET", "maxmemory-clients", "foo"]),
                Run(0, &["CONFIG", "SET", "maxmemory-clients", "200%"]),
                Run(0, &["CONFIG", "SET", "maxmemory-clients", "-1"]),
                Run(0, &["CONFIG", "SET", "maxmemory-clients", "10%"]),
                Run(0, &["CONFIG", "GET", "maxmemory-clients"]),
                Run(0, &["CONFIG", "SET", "maxmemory-clients", "1mb"]),
                Run(0, &["CONFIG", "GET", "maxmemory-clients"]),
                Run(0, &["CONFIG", "SET", "maxmemory-clients", "0"]),
                Run(0, LIFT),
            ],
        ),
        (
            "OBJECT: encodings, reference counts, access frequency",
            1,
            vec![
                Run(0, &["SET", "{o}int", "12345"]),
                Run(0, &["SET", "{o}neg", "-7"]),
                Run(0, &["SET", "{o}zero", "007"]),
                Run(0, &["SET", "{o}emb", "hello"]),
                Run(
                    0,
                    &[
                        "SET",
                        "{o}raw",
                        "0123456789012345678901234567890123456789012345",
                    ],
                ),
                Run(0, &["SET", "{o}big", "99999999999999999999"]),
                Run(0, &["RPUSH", "{o}list", "a", "b"]),
                Run(0, &["HSET", "{o}hash", "f", "v"]),
                Run(
                    0,
                    &[
                        "HSET",
                        "{o}bighash",
                        "f",
                        "0123456789012345678901234567890123456789012345678901234567890123456789",
                    ],
                ),
                Run(0, &["SADD", "{o}ints", "1", "2", "-3"]),
                Run(0, &["SADD", "{o}set", "1", "a"]),
                Run(0, &["ZADD", "{o}z", "1", "a"]),
                Run(
                    0,
                    &[
                        "ZADD",
                        "{o}bigz",
                        "1",
                        "0123456789012345678901234567890123456789012345678901234567890123456789",
                    ],
                ),
                Run(0, &["OBJECT", "ENCODING", "{o}int"]),
                Run(0, &["OBJECT", "ENCODING", "{o}neg"]),
                Run(0, &["OBJECT", "ENCODING", "{o}zero"]),
                Run(0, &["OBJECT", "ENCODING", "{o}emb"]),
                Run(0, &["OBJECT", "ENCODING", "{o}raw"]),
                Run(0, &["OBJECT", "ENCODING", "{o}big"]),
                Run(0, &["OBJECT", "ENCODING", "{o}list"]),
                Run(0, &["OBJECT", "ENCODING", "{o}hash"]),
                Run(0, &["OBJECT", "ENCODING", "{o}bighash"]),
                Run(0, &["OBJECT", "ENCODING", "{o}ints"]),
                Run(0, &["OBJECT", "ENCODING", "{o}set"]),
                Run(0, &["OBJECT", "ENCODING", "{o}z"]),
                Run(0, &["OBJECT", "ENCODING", "{o}bigz"]),
                Run(0, &["OBJECT", "ENCODING", "{o}nosuch"]),
                Run(0, &["OBJECT", "REFCOUNT", "{o}int"]),
                Run(0, &["SET", "{o}small", "100"]),
                Run(0, &["OBJECT", "REFCOUNT", "{o}small"]),
                Run(0, &["OBJECT", "REFCOUNT", "{o}emb"]),
                Run(0, &["OBJECT", "REFCOUNT", "{o}nosuch"]),
                Run(0, &["OBJECT", "FREQ", "{o}emb"]),
                Run(0, &["OBJECT", "NOSUCH", "{o}emb"]),
                Run(0, &["OBJECT", "ENCODING"]),
                Run(0, &["OBJECT", "HELP"]),
                // Under an LFU policy: a new key starts at 5; its first read makes 6.
                Run(0, &["CONFIG", "SET", "maxmemory-policy", "allkeys-lfu"]),
                Run(0, &["SET", "{o}fresh", "v"]),
                Run(0, &["OBJECT", "FREQ", "{o}fresh"]),
                Run(0, &["GET", "{o}fresh"]),
                Run(0, &["OBJECT", "FREQ", "{o}fresh"]),
                Run(0, &["OBJECT", "IDLETIME", "{o}fresh"]),
                Run(0, LIFT),
            ],
        ),
    ]
}
