//! What `COMMAND` / `COMMAND INFO` / `COMMAND DOCS` / `COMMAND GETKEYS` report about
//! each command, in Redis 7's terms: flags, ACL categories, tips, key specifications and
//! the subcommands of container commands (`CLIENT`, `CONFIG`, `CLUSTER`, `MEMORY`,
//! `COMMAND`).
//!
//! The values are Redis 7.0's own (what `COMMAND INFO` / `COMMAND DOCS` of redis-server
//! 7.0.15 answer for the same commands; `CLIENT SETINFO` and `CLUSTER MYSHARDID` as
//! Redis 7.2 defines them), so that cluster clients route by them exactly as with
//! Redis. The differential test compares every entry with a running redis-server, and
//! the unit tests below check that the command table's arity, key positions and
//! read/write flags agree with them. A subcommand is listed only if ember implements it.

/// One command or subcommand (`container|sub`).
pub struct Meta {
    /// Lowercase; `container|sub` for a subcommand.
    pub name: &'static str,
    pub arity: i32,
    /// Space-separated, as `COMMAND INFO` lists them.
    pub flags: &'static str,
    /// The legacy `(first key, last key, step)`.
    pub keys: (i64, i64, i64),
    /// Space-separated ACL categories (`@read @string @fast`).
    pub acl: &'static str,
    /// Space-separated command tips.
    pub tips: &'static str,
    pub key_specs: &'static [KeySpecMeta],
}

/// A key specification (Redis 7).
pub struct KeySpecMeta {
    pub notes: Option<&'static str>,
    /// Space-separated (`RW access delete`).
    pub flags: &'static str,
    pub begin: Begin,
    pub find: Find,
}

/// Where the search for the keys starts.
pub enum Begin {
    Index(i64),
    Keyword {
        keyword: &'static str,
        startfrom: i64,
    },
}

/// How the keys are found from there.
pub enum Find {
    Range {
        lastkey: i64,
        keystep: i64,
        limit: i64,
    },
    Keynum {
        keynumidx: i64,
        firstkey: i64,
        keystep: i64,
    },
}

/// `COMMAND DOCS`: the fields ember reports (no `arguments` or `history`).
pub struct Doc {
    pub name: &'static str,
    pub summary: &'static str,
    pub since: &'static str,
    pub group: &'static str,
    pub complexity: &'static str,
}

const fn m(
    name: &'static str,
    arity: i32,
    flags: &'static str,
    keys: (i64, i64, i64),
    acl: &'static str,
    tips: &'static str,
    key_specs: &'static [KeySpecMeta],
) -> Meta {
    Meta {
        name,
        arity,
        flags,
        keys,
        acl,
        tips,
        key_specs,
    }
}

const fn ks(flags: &'static str, begin: Begin, find: Find) -> KeySpecMeta {
    KeySpecMeta {
        notes: None,
        flags,
        begin,
        find,
    }
}

const fn ksn(notes: &'static str, flags: &'static str, begin: Begin, find: Find) -> KeySpecMeta {
    KeySpecMeta {
        notes: Some(notes),
        flags,
        begin,
        find,
    }
}

const fn idx(i: i64) -> Begin {
    Begin::Index(i)
}

#[allow(dead_code)]
const fn kw(keyword: &'static str, startfrom: i64) -> Begin {
    Begin::Keyword { keyword, startfrom }
}

const fn range(lastkey: i64, keystep: i64, limit: i64) -> Find {
    Find::Range {
        lastkey,
        keystep,
        limit,
    }
}

const fn keynum(keynumidx: i64, firstkey: i64, keystep: i64) -> Find {
    Find::Keynum {
        keynumidx,
        firstkey,
        keystep,
    }
}

const fn d(
    name: &'static str,
    summary: &'static str,
    since: &'static str,
    group: &'static str,
    complexity: &'static str,
) -> Doc {
    Doc {
        name,
        summary,
        since,
        group,
        complexity,
    }
}

/// The commands in [`super::TABLE`] order, each container followed by its subcommands.
#[rustfmt::skip]
pub static META: &[Meta] = &[
    m("ping", -1, "fast", (0, 0, 0), "@fast @connection", "request_policy:all_shards response_policy:all_succeeded", &[]),
    m("echo", 2, "loading stale fast", (0, 0, 0), "@fast @connection", "", &[]),
    m("hello", -1, "noscript loading stale fast no_auth allow_busy", (0, 0, 0), "@fast @connection", "", &[]),
    m("quit", -1, "noscript loading stale fast no_auth allow_busy", (0, 0, 0), "@fast @connection", "", &[]),
    m("select", 2, "loading stale fast", (0, 0, 0), "@fast @connection", "", &[]),
    m("client", -2, "", (0, 0, 0), "@slow", "", &[]),
    m("client|id", 2, "noscript loading stale", (0, 0, 0), "@slow @connection", "", &[]),
    m("client|setname", 3, "noscript loading stale", (0, 0, 0), "@slow @connection", "", &[]),
    m("client|getname", 2, "noscript loading stale", (0, 0, 0), "@slow @connection", "", &[]),
    m("client|setinfo", 4, "noscript loading stale", (0, 0, 0), "@slow @connection", "", &[]),
    m("client|info", 2, "noscript loading stale", (0, 0, 0), "@slow @connection", "nondeterministic_output", &[]),
    m("client|list", -2, "admin noscript loading stale", (0, 0, 0), "@admin @slow @dangerous @connection", "nondeterministic_output", &[]),
    m("client|unblock", -3, "admin noscript loading stale", (0, 0, 0), "@admin @slow @dangerous @connection", "", &[]),
    m("client|kill", -3, "admin noscript loading stale", (0, 0, 0), "@admin @slow @dangerous @connection", "", &[]),
    m("client|reply", 3, "noscript loading stale", (0, 0, 0), "@slow @connection", "", &[]),
    m("client|tracking", -3, "noscript loading stale", (0, 0, 0), "@slow @connection", "", &[]),
    m("client|caching", 3, "noscript loading stale", (0, 0, 0), "@slow @connection", "", &[]),
    m("client|getredir", 2, "noscript loading stale", (0, 0, 0), "@slow @connection", "", &[]),
    m("client|trackinginfo", 2, "noscript loading stale", (0, 0, 0), "@slow @connection", "", &[]),
    m("client|pause", -3, "admin noscript loading stale", (0, 0, 0), "@admin @slow @dangerous @connection", "", &[]),
    m("client|unpause", 2, "admin noscript loading stale", (0, 0, 0), "@admin @slow @dangerous @connection", "", &[]),
    m("client|no-evict", 3, "admin noscript loading stale", (0, 0, 0), "@admin @slow @dangerous @connection", "", &[]),
    m("client|help", 2, "loading stale", (0, 0, 0), "@slow @connection", "", &[]),
    m("readonly", 1, "loading stale fast", (0, 0, 0), "@fast @connection", "", &[]),
    m("readwrite", 1, "loading stale fast", (0, 0, 0), "@fast @connection", "", &[]),
    m("asking", 1, "fast", (0, 0, 0), "@fast @connection", "", &[]),
    m("command", -1, "loading stale", (0, 0, 0), "@slow @connection", "nondeterministic_output_order", &[]),
    m("command|count", 2, "loading stale", (0, 0, 0), "@slow @connection", "", &[]),
    m("command|info", -2, "loading stale", (0, 0, 0), "@slow @connection", "nondeterministic_output_order", &[]),
    m("command|docs", -2, "loading stale", (0, 0, 0), "@slow @connection", "nondeterministic_output_order", &[]),
    m("command|list", -2, "loading stale", (0, 0, 0), "@slow @connection", "nondeterministic_output_order", &[]),
    m("command|getkeys", -4, "loading stale", (0, 0, 0), "@slow @connection", "", &[]),
    m("command|getkeysandflags", -4, "loading stale", (0, 0, 0), "@slow @connection", "", &[]),
    m("command|help", 2, "loading stale", (0, 0, 0), "@slow @connection", "", &[]),
    m("config", -2, "", (0, 0, 0), "@slow", "", &[]),
    m("config|get", -3, "admin noscript loading stale", (0, 0, 0), "@admin @slow @dangerous", "", &[]),
    m("config|set", -4, "admin noscript loading stale", (0, 0, 0), "@admin @slow @dangerous", "request_policy:all_nodes response_policy:all_succeeded", &[]),
    m("config|resetstat", 2, "admin noscript loading stale", (0, 0, 0), "@admin @slow @dangerous", "", &[]),
    m("config|rewrite", 2, "admin noscript loading stale", (0, 0, 0), "@admin @slow @dangerous", "", &[]),
    m("config|help", 2, "loading stale", (0, 0, 0), "@slow", "", &[]),
    m("info", -1, "loading stale", (0, 0, 0), "@slow @dangerous", "nondeterministic_output request_policy:all_shards response_policy:special", &[]),
    m("dbsize", 1, "readonly fast", (0, 0, 0), "@keyspace @read @fast", "request_policy:all_shards response_policy:agg_sum", &[]),
    m("flushdb", -1, "write", (0, 0, 0), "@keyspace @write @slow @dangerous", "request_policy:all_shards response_policy:all_succeeded", &[]),
    m("flushall", -1, "write", (0, 0, 0), "@keyspace @write @slow @dangerous", "request_policy:all_shards response_policy:all_succeeded", &[]),
    m("shutdown", -1, "admin noscript loading stale no_multi allow_busy", (0, 0, 0), "@admin @slow @dangerous", "", &[]),
    m("time", 1, "loading stale fast", (0, 0, 0), "@fast", "nondeterministic_output", &[]),
    m("memory", -2, "", (0, 0, 0), "@slow", "", &[]),
    m("memory|usage", -3, "readonly", (2, 2, 1), "@read @slow", "", &[ks("RO", idx(2), range(0, 1, 0))]),
    m("memory|stats", 2, "", (0, 0, 0), "@slow", "nondeterministic_output request_policy:all_shards response_policy:special", &[]),
    m("memory|doctor", 2, "", (0, 0, 0), "@slow", "nondeterministic_output request_policy:all_shards response_policy:special", &[]),
    m("memory|help", 2, "loading stale", (0, 0, 0), "@slow", "", &[]),
    m("object", -2, "", (0, 0, 0), "@slow", "", &[]),
    m("object|encoding", 3, "readonly", (2, 2, 1), "@keyspace @read @slow", "nondeterministic_output", &[ks("RO", idx(2), range(0, 1, 0))]),
    m("object|freq", 3, "readonly", (2, 2, 1), "@keyspace @read @slow", "nondeterministic_output", &[ks("RO", idx(2), range(0, 1, 0))]),
    m("object|help", 2, "loading stale", (0, 0, 0), "@keyspace @slow", "", &[]),
    m("object|idletime", 3, "readonly", (2, 2, 1), "@keyspace @read @slow", "nondeterministic_output", &[ks("RO", idx(2), range(0, 1, 0))]),
    m("object|refcount", 3, "readonly", (2, 2, 1), "@keyspace @read @slow", "nondeterministic_output", &[ks("RO", idx(2), range(0, 1, 0))]),
    m("cluster", -2, "", (0, 0, 0), "@slow", "", &[]),
    m("cluster|info", 2, "stale", (0, 0, 0), "@slow", "nondeterministic_output", &[]),
    m("cluster|nodes", 2, "stale", (0, 0, 0), "@slow", "nondeterministic_output", &[]),
    m("cluster|slots", 2, "stale", (0, 0, 0), "@slow", "nondeterministic_output", &[]),
    m("cluster|shards", 2, "stale", (0, 0, 0), "@slow", "nondeterministic_output", &[]),
    m("cluster|myid", 2, "stale", (0, 0, 0), "@slow", "", &[]),
    m("cluster|myshardid", 2, "stale", (0, 0, 0), "@slow", "nondeterministic_output", &[]),
    m("cluster|keyslot", 3, "stale", (0, 0, 0), "@slow", "", &[]),
    m("cluster|countkeysinslot", 3, "stale", (0, 0, 0), "@slow", "", &[]),
    m("cluster|getkeysinslot", 4, "stale", (0, 0, 0), "@slow", "nondeterministic_output", &[]),
    m("cluster|replicas", 3, "admin stale", (0, 0, 0), "@admin @slow @dangerous", "nondeterministic_output", &[]),
    m("cluster|slaves", 3, "admin stale", (0, 0, 0), "@admin @slow @dangerous", "nondeterministic_output", &[]),
    m("cluster|links", 2, "stale", (0, 0, 0), "@slow", "nondeterministic_output", &[]),
    m("cluster|help", 2, "loading stale", (0, 0, 0), "@slow", "", &[]),
    m("cluster|drop-orphaned", 2, "admin write", (0, 0, 0), "@admin @write @slow @dangerous", "", &[]),
    m("lastsave", 1, "loading stale fast", (0, 0, 0), "@admin @fast @dangerous", "nondeterministic_output", &[]),
    m("save", 1, "admin noscript no_async_loading no_multi", (0, 0, 0), "@admin @slow @dangerous", "", &[]),
    m("bgsave", -1, "admin noscript no_async_loading", (0, 0, 0), "@admin @slow @dangerous", "", &[]),
    m("bgrewriteaof", 1, "admin noscript no_async_loading", (0, 0, 0), "@admin @slow @dangerous", "", &[]),
    m("debug", -2, "admin noscript loading stale", (0, 0, 0), "@admin @slow @dangerous", "", &[]),
    m("role", 1, "noscript loading stale fast", (0, 0, 0), "@admin @fast @dangerous", "", &[]),
    m("wait", 3, "noscript", (0, 0, 0), "@slow @connection", "request_policy:all_shards response_policy:agg_min", &[]),
    m("replicaof", 3, "admin noscript stale no_async_loading", (0, 0, 0), "@admin @slow @dangerous", "", &[]),
    m("slaveof", 3, "admin noscript stale no_async_loading", (0, 0, 0), "@admin @slow @dangerous", "", &[]),
    m("multi", 1, "noscript loading stale fast allow_busy", (0, 0, 0), "@fast @transaction", "", &[]),
    m("exec", 1, "noscript loading stale skip_slowlog", (0, 0, 0), "@slow @transaction", "", &[]),
    m("discard", 1, "noscript loading stale fast allow_busy", (0, 0, 0), "@fast @transaction", "", &[]),
    m("watch", -2, "noscript loading stale fast allow_busy", (1, -1, 1), "@fast @transaction", "", &[ks("RO", idx(1), range(-1, 1, 0))]),
    m("unwatch", 1, "noscript loading stale fast allow_busy", (0, 0, 0), "@fast @transaction", "", &[]),
    m("del", -2, "write", (1, -1, 1), "@keyspace @write @slow", "request_policy:multi_shard response_policy:agg_sum", &[ks("RM delete", idx(1), range(-1, 1, 0))]),
    m("unlink", -2, "write fast", (1, -1, 1), "@keyspace @write @fast", "request_policy:multi_shard response_policy:agg_sum", &[ks("RM delete", idx(1), range(-1, 1, 0))]),
    m("exists", -2, "readonly fast", (1, -1, 1), "@keyspace @read @fast", "request_policy:multi_shard response_policy:agg_sum", &[ks("RO", idx(1), range(-1, 1, 0))]),
    m("touch", -2, "readonly fast", (1, -1, 1), "@keyspace @read @fast", "request_policy:multi_shard response_policy:agg_sum", &[ks("RO", idx(1), range(-1, 1, 0))]),
    m("type", 2, "readonly fast", (1, 1, 1), "@keyspace @read @fast", "", &[ks("RO", idx(1), range(0, 1, 0))]),
    m("expire", -3, "write fast", (1, 1, 1), "@keyspace @write @fast", "", &[ks("RW update", idx(1), range(0, 1, 0))]),
    m("pexpire", -3, "write fast", (1, 1, 1), "@keyspace @write @fast", "", &[ks("RW update", idx(1), range(0, 1, 0))]),
    m("expireat", -3, "write fast", (1, 1, 1), "@keyspace @write @fast", "", &[ks("RW update", idx(1), range(0, 1, 0))]),
    m("pexpireat", -3, "write fast", (1, 1, 1), "@keyspace @write @fast", "", &[ks("RW update", idx(1), range(0, 1, 0))]),
    m("ttl", 2, "readonly fast", (1, 1, 1), "@keyspace @read @fast", "nondeterministic_output", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("pttl", 2, "readonly fast", (1, 1, 1), "@keyspace @read @fast", "nondeterministic_output", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("expiretime", 2, "readonly fast", (1, 1, 1), "@keyspace @read @fast", "", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("pexpiretime", 2, "readonly fast", (1, 1, 1), "@keyspace @read @fast", "", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("persist", 2, "write fast", (1, 1, 1), "@keyspace @write @fast", "", &[ks("RW update", idx(1), range(0, 1, 0))]),
    m("keys", 2, "readonly", (0, 0, 0), "@keyspace @read @slow @dangerous", "request_policy:all_shards nondeterministic_output_order", &[]),
    m("scan", -2, "readonly", (0, 0, 0), "@keyspace @read @slow", "nondeterministic_output request_policy:special", &[]),
    m("randomkey", 1, "readonly", (0, 0, 0), "@keyspace @read @slow", "request_policy:all_shards nondeterministic_output", &[]),
    m("rename", 3, "write", (1, 2, 1), "@keyspace @write @slow", "", &[ks("RW access delete", idx(1), range(0, 1, 0)), ks("OW update", idx(2), range(0, 1, 0))]),
    m("renamenx", 3, "write fast", (1, 2, 1), "@keyspace @write @fast", "", &[ks("RW access delete", idx(1), range(0, 1, 0)), ks("OW insert", idx(2), range(0, 1, 0))]),
    m("copy", -3, "write denyoom", (1, 2, 1), "@keyspace @write @slow", "", &[ks("RO access", idx(1), range(0, 1, 0)), ks("OW update", idx(2), range(0, 1, 0))]),
    m("get", 2, "readonly fast", (1, 1, 1), "@read @string @fast", "", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("set", -3, "write denyoom", (1, 1, 1), "@write @string @slow", "", &[ksn("RW and ACCESS due to the optional `GET` argument", "RW access update variable_flags", idx(1), range(0, 1, 0))]),
    m("setnx", 3, "write denyoom fast", (1, 1, 1), "@write @string @fast", "", &[ks("OW insert", idx(1), range(0, 1, 0))]),
    m("setex", 4, "write denyoom", (1, 1, 1), "@write @string @slow", "", &[ks("OW update", idx(1), range(0, 1, 0))]),
    m("psetex", 4, "write denyoom", (1, 1, 1), "@write @string @slow", "", &[ks("OW update", idx(1), range(0, 1, 0))]),
    m("mget", -2, "readonly fast", (1, -1, 1), "@read @string @fast", "request_policy:multi_shard", &[ks("RO access", idx(1), range(-1, 1, 0))]),
    m("mset", -3, "write denyoom", (1, -1, 2), "@write @string @slow", "request_policy:multi_shard response_policy:all_succeeded", &[ks("OW update", idx(1), range(-1, 2, 0))]),
    m("msetnx", -3, "write denyoom", (1, -1, 2), "@write @string @slow", "request_policy:multi_shard response_policy:agg_min", &[ks("OW insert", idx(1), range(-1, 2, 0))]),
    m("getset", 3, "write denyoom fast", (1, 1, 1), "@write @string @fast", "", &[ks("RW access update", idx(1), range(0, 1, 0))]),
    m("getdel", 2, "write fast", (1, 1, 1), "@write @string @fast", "", &[ks("RW access delete", idx(1), range(0, 1, 0))]),
    m("getex", -2, "write fast", (1, 1, 1), "@write @string @fast", "", &[ksn("RW and UPDATE because it changes the TTL", "RW access update", idx(1), range(0, 1, 0))]),
    m("incr", 2, "write denyoom fast", (1, 1, 1), "@write @string @fast", "", &[ks("RW access update", idx(1), range(0, 1, 0))]),
    m("decr", 2, "write denyoom fast", (1, 1, 1), "@write @string @fast", "", &[ks("RW access update", idx(1), range(0, 1, 0))]),
    m("incrby", 3, "write denyoom fast", (1, 1, 1), "@write @string @fast", "", &[ks("RW access update", idx(1), range(0, 1, 0))]),
    m("decrby", 3, "write denyoom fast", (1, 1, 1), "@write @string @fast", "", &[ks("RW access update", idx(1), range(0, 1, 0))]),
    m("incrbyfloat", 3, "write denyoom fast", (1, 1, 1), "@write @string @fast", "", &[ks("RW access update", idx(1), range(0, 1, 0))]),
    m("append", 3, "write denyoom fast", (1, 1, 1), "@write @string @fast", "", &[ks("RW insert", idx(1), range(0, 1, 0))]),
    m("strlen", 2, "readonly fast", (1, 1, 1), "@read @string @fast", "", &[ks("RO", idx(1), range(0, 1, 0))]),
    m("getrange", 4, "readonly", (1, 1, 1), "@read @string @slow", "", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("substr", 4, "readonly", (1, 1, 1), "@read @string @slow", "", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("setrange", 4, "write denyoom", (1, 1, 1), "@write @string @slow", "", &[ks("RW update", idx(1), range(0, 1, 0))]),
    m("hset", -4, "write denyoom fast", (1, 1, 1), "@write @hash @fast", "", &[ks("RW update", idx(1), range(0, 1, 0))]),
    m("hmset", -4, "write denyoom fast", (1, 1, 1), "@write @hash @fast", "", &[ks("RW update", idx(1), range(0, 1, 0))]),
    m("hsetnx", 4, "write denyoom fast", (1, 1, 1), "@write @hash @fast", "", &[ks("RW insert", idx(1), range(0, 1, 0))]),
    m("hget", 3, "readonly fast", (1, 1, 1), "@read @hash @fast", "", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("hmget", -3, "readonly fast", (1, 1, 1), "@read @hash @fast", "", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("hdel", -3, "write fast", (1, 1, 1), "@write @hash @fast", "", &[ks("RW delete", idx(1), range(0, 1, 0))]),
    m("hexists", 3, "readonly fast", (1, 1, 1), "@read @hash @fast", "", &[ks("RO", idx(1), range(0, 1, 0))]),
    m("hlen", 2, "readonly fast", (1, 1, 1), "@read @hash @fast", "", &[ks("RO", idx(1), range(0, 1, 0))]),
    m("hstrlen", 3, "readonly fast", (1, 1, 1), "@read @hash @fast", "", &[ks("RO", idx(1), range(0, 1, 0))]),
    m("hkeys", 2, "readonly", (1, 1, 1), "@read @hash @slow", "nondeterministic_output_order", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("hvals", 2, "readonly", (1, 1, 1), "@read @hash @slow", "nondeterministic_output_order", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("hgetall", 2, "readonly", (1, 1, 1), "@read @hash @slow", "nondeterministic_output_order", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("hincrby", 4, "write denyoom fast", (1, 1, 1), "@write @hash @fast", "", &[ks("RW access update", idx(1), range(0, 1, 0))]),
    m("hincrbyfloat", 4, "write denyoom fast", (1, 1, 1), "@write @hash @fast", "", &[ks("RW access update", idx(1), range(0, 1, 0))]),
    m("hrandfield", -2, "readonly", (1, 1, 1), "@read @hash @slow", "nondeterministic_output", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("hscan", -3, "readonly", (1, 1, 1), "@read @hash @slow", "nondeterministic_output", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("reset", 1, "noscript loading stale fast no_auth allow_busy", (0, 0, 0), "@fast @connection", "", &[]),
    m("subscribe", -2, "pubsub noscript loading stale", (0, 0, 0), "@pubsub @slow", "", &[]),
    m("unsubscribe", -1, "pubsub noscript loading stale", (0, 0, 0), "@pubsub @slow", "", &[]),
    m("psubscribe", -2, "pubsub noscript loading stale", (0, 0, 0), "@pubsub @slow", "", &[]),
    m("punsubscribe", -1, "pubsub noscript loading stale", (0, 0, 0), "@pubsub @slow", "", &[]),
    m("publish", 3, "pubsub loading stale fast", (0, 0, 0), "@pubsub @fast", "", &[]),
    m("pubsub", -2, "", (0, 0, 0), "@slow", "", &[]),
    m("pubsub|channels", -2, "pubsub loading stale", (0, 0, 0), "@pubsub @slow", "", &[]),
    m("pubsub|numsub", -2, "pubsub loading stale", (0, 0, 0), "@pubsub @slow", "", &[]),
    m("pubsub|numpat", 2, "pubsub loading stale", (0, 0, 0), "@pubsub @slow", "", &[]),
    m("pubsub|shardchannels", -2, "pubsub loading stale", (0, 0, 0), "@pubsub @slow", "", &[]),
    m("pubsub|shardnumsub", -2, "pubsub loading stale", (0, 0, 0), "@pubsub @slow", "", &[]),
    m("pubsub|help", 2, "loading stale", (0, 0, 0), "@slow", "", &[]),
    m("ssubscribe", -2, "pubsub noscript loading stale", (1, -1, 1), "@pubsub @slow", "", &[ks("not_key", idx(1), range(-1, 1, 0))]),
    m("sunsubscribe", -1, "pubsub noscript loading stale", (1, -1, 1), "@pubsub @slow", "", &[ks("not_key", idx(1), range(-1, 1, 0))]),
    m("spublish", 3, "pubsub loading stale fast", (1, 1, 1), "@pubsub @fast", "", &[ks("not_key", idx(1), range(0, 1, 0))]),
    m("eval", -3, "noscript stale skip_monitor no_mandatory_keys movablekeys", (0, 0, 0), "@slow @scripting", "", &[ksn("We cannot tell how the keys will be used so we assume the worst, RW and UPDATE", "RW access update", idx(2), keynum(0, 1, 1))]),
    m("evalsha", -3, "noscript stale skip_monitor no_mandatory_keys movablekeys", (0, 0, 0), "@slow @scripting", "", &[ks("RW access update", idx(2), keynum(0, 1, 1))]),
    m("eval_ro", -3, "readonly noscript stale skip_monitor no_mandatory_keys movablekeys", (0, 0, 0), "@slow @scripting", "", &[ksn("We cannot tell how the keys will be used so we assume the worst, RO and ACCESS", "RO access", idx(2), keynum(0, 1, 1))]),
    m("evalsha_ro", -3, "readonly noscript stale skip_monitor no_mandatory_keys movablekeys", (0, 0, 0), "@slow @scripting", "", &[ks("RO access", idx(2), keynum(0, 1, 1))]),
    m("script", -2, "", (0, 0, 0), "@slow", "", &[]),
    m("script|flush", -2, "noscript", (0, 0, 0), "@slow @scripting", "request_policy:all_nodes response_policy:all_succeeded", &[]),
    m("script|exists", -3, "noscript", (0, 0, 0), "@slow @scripting", "request_policy:all_shards response_policy:agg_logical_and", &[]),
    m("script|help", 2, "loading stale", (0, 0, 0), "@slow @scripting", "", &[]),
    m("script|load", 3, "noscript stale", (0, 0, 0), "@slow @scripting", "request_policy:all_nodes response_policy:all_succeeded", &[]),
    m("script|kill", 2, "noscript allow_busy", (0, 0, 0), "@slow @scripting", "request_policy:all_shards response_policy:one_succeeded", &[]),
    m("fcall", -3, "noscript stale skip_monitor no_mandatory_keys movablekeys", (0, 0, 0), "@slow @scripting", "", &[ksn("We cannot tell how the keys will be used so we assume the worst, RW and UPDATE", "RW access update", idx(2), keynum(0, 1, 1))]),
    m("fcall_ro", -3, "readonly noscript stale skip_monitor no_mandatory_keys movablekeys", (0, 0, 0), "@slow @scripting", "", &[ksn("We cannot tell how the keys will be used so we assume the worst, RO and ACCESS", "RO access", idx(2), keynum(0, 1, 1))]),
    m("function", -2, "", (0, 0, 0), "@slow", "", &[]),
    m("function|load", -3, "write denyoom noscript", (0, 0, 0), "@write @slow @scripting", "request_policy:all_shards response_policy:all_succeeded", &[]),
    m("function|delete", 3, "write noscript", (0, 0, 0), "@write @slow @scripting", "request_policy:all_shards response_policy:all_succeeded", &[]),
    m("function|list", -2, "noscript", (0, 0, 0), "@slow @scripting", "nondeterministic_output_order", &[]),
    m("function|flush", -2, "write noscript", (0, 0, 0), "@write @slow @scripting", "request_policy:all_shards response_policy:all_succeeded", &[]),
    m("function|dump", 2, "noscript", (0, 0, 0), "@slow @scripting", "", &[]),
    m("function|restore", -3, "write denyoom noscript", (0, 0, 0), "@write @slow @scripting", "request_policy:all_shards response_policy:all_succeeded", &[]),
    m("function|stats", 2, "noscript allow_busy", (0, 0, 0), "@slow @scripting", "nondeterministic_output request_policy:all_shards response_policy:special", &[]),
    m("function|kill", 2, "noscript allow_busy", (0, 0, 0), "@slow @scripting", "request_policy:all_shards response_policy:one_succeeded", &[]),
    m("function|help", 2, "loading stale", (0, 0, 0), "@slow @scripting", "", &[]),
    m("lpush", -3, "write denyoom fast", (1, 1, 1), "@write @list @fast", "", &[ks("RW insert", idx(1), range(0, 1, 0))]),
    m("rpush", -3, "write denyoom fast", (1, 1, 1), "@write @list @fast", "", &[ks("RW insert", idx(1), range(0, 1, 0))]),
    m("lpushx", -3, "write denyoom fast", (1, 1, 1), "@write @list @fast", "", &[ks("RW insert", idx(1), range(0, 1, 0))]),
    m("rpushx", -3, "write denyoom fast", (1, 1, 1), "@write @list @fast", "", &[ks("RW insert", idx(1), range(0, 1, 0))]),
    m("lpop", -2, "write fast", (1, 1, 1), "@write @list @fast", "", &[ks("RW access delete", idx(1), range(0, 1, 0))]),
    m("rpop", -2, "write fast", (1, 1, 1), "@write @list @fast", "", &[ks("RW access delete", idx(1), range(0, 1, 0))]),
    m("llen", 2, "readonly fast", (1, 1, 1), "@read @list @fast", "", &[ks("RO", idx(1), range(0, 1, 0))]),
    m("lrange", 4, "readonly", (1, 1, 1), "@read @list @slow", "", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("lindex", 3, "readonly", (1, 1, 1), "@read @list @slow", "", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("lset", 4, "write denyoom", (1, 1, 1), "@write @list @slow", "", &[ks("RW update", idx(1), range(0, 1, 0))]),
    m("linsert", 5, "write denyoom", (1, 1, 1), "@write @list @slow", "", &[ks("RW insert", idx(1), range(0, 1, 0))]),
    m("lrem", 4, "write", (1, 1, 1), "@write @list @slow", "", &[ks("RW delete", idx(1), range(0, 1, 0))]),
    m("ltrim", 4, "write", (1, 1, 1), "@write @list @slow", "", &[ks("RW delete", idx(1), range(0, 1, 0))]),
    m("lmove", 5, "write denyoom", (1, 2, 1), "@write @list @slow", "", &[ks("RW access delete", idx(1), range(0, 1, 0)), ks("RW insert", idx(2), range(0, 1, 0))]),
    m("rpoplpush", 3, "write denyoom", (1, 2, 1), "@write @list @slow", "", &[ks("RW access delete", idx(1), range(0, 1, 0)), ks("RW insert", idx(2), range(0, 1, 0))]),
    m("lpos", -3, "readonly", (1, 1, 1), "@read @list @slow", "", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("lmpop", -4, "write movablekeys", (0, 0, 0), "@write @list @slow", "", &[ks("RW access delete", idx(1), keynum(0, 1, 1))]),
    m("blpop", -3, "write noscript blocking", (1, -2, 1), "@write @list @slow @blocking", "", &[ks("RW access delete", idx(1), range(-2, 1, 0))]),
    m("brpop", -3, "write noscript blocking", (1, -2, 1), "@write @list @slow @blocking", "", &[ks("RW access delete", idx(1), range(-2, 1, 0))]),
    m("brpoplpush", 4, "write denyoom noscript blocking", (1, 2, 1), "@write @list @slow @blocking", "", &[ks("RW access delete", idx(1), range(0, 1, 0)), ks("RW insert", idx(2), range(0, 1, 0))]),
    m("blmove", 6, "write denyoom noscript blocking", (1, 2, 1), "@write @list @slow @blocking", "", &[ks("RW access delete", idx(1), range(0, 1, 0)), ks("RW insert", idx(2), range(0, 1, 0))]),
    m("blmpop", -5, "write blocking movablekeys", (0, 0, 0), "@write @list @slow @blocking", "", &[ks("RW access delete", idx(2), keynum(0, 1, 1))]),
    m("sadd", -3, "write denyoom fast", (1, 1, 1), "@write @set @fast", "", &[ks("RW insert", idx(1), range(0, 1, 0))]),
    m("srem", -3, "write fast", (1, 1, 1), "@write @set @fast", "", &[ks("RW delete", idx(1), range(0, 1, 0))]),
    m("sismember", 3, "readonly fast", (1, 1, 1), "@read @set @fast", "", &[ks("RO", idx(1), range(0, 1, 0))]),
    m("smismember", -3, "readonly fast", (1, 1, 1), "@read @set @fast", "", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("smembers", 2, "readonly", (1, 1, 1), "@read @set @slow", "nondeterministic_output_order", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("scard", 2, "readonly fast", (1, 1, 1), "@read @set @fast", "", &[ks("RO", idx(1), range(0, 1, 0))]),
    m("spop", -2, "write fast", (1, 1, 1), "@write @set @fast", "nondeterministic_output", &[ks("RW access delete", idx(1), range(0, 1, 0))]),
    m("srandmember", -2, "readonly", (1, 1, 1), "@read @set @slow", "nondeterministic_output", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("sinter", -2, "readonly", (1, -1, 1), "@read @set @slow", "nondeterministic_output_order", &[ks("RO access", idx(1), range(-1, 1, 0))]),
    m("sunion", -2, "readonly", (1, -1, 1), "@read @set @slow", "nondeterministic_output_order", &[ks("RO access", idx(1), range(-1, 1, 0))]),
    m("sdiff", -2, "readonly", (1, -1, 1), "@read @set @slow", "nondeterministic_output_order", &[ks("RO access", idx(1), range(-1, 1, 0))]),
    m("sinterstore", -3, "write denyoom", (1, -1, 1), "@write @set @slow", "", &[ks("RW update", idx(1), range(0, 1, 0)), ks("RO access", idx(2), range(-1, 1, 0))]),
    m("sunionstore", -3, "write denyoom", (1, -1, 1), "@write @set @slow", "", &[ks("OW update", idx(1), range(0, 1, 0)), ks("RO access", idx(2), range(-1, 1, 0))]),
    m("sdiffstore", -3, "write denyoom", (1, -1, 1), "@write @set @slow", "", &[ks("OW update", idx(1), range(0, 1, 0)), ks("RO access", idx(2), range(-1, 1, 0))]),
    m("smove", 4, "write fast", (1, 2, 1), "@write @set @fast", "", &[ks("RW access delete", idx(1), range(0, 1, 0)), ks("RW insert", idx(2), range(0, 1, 0))]),
    m("sscan", -3, "readonly", (1, 1, 1), "@read @set @slow", "nondeterministic_output", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("zadd", -4, "write denyoom fast", (1, 1, 1), "@write @sortedset @fast", "", &[ks("RW update", idx(1), range(0, 1, 0))]),
    m("zincrby", 4, "write denyoom fast", (1, 1, 1), "@write @sortedset @fast", "", &[ks("RW access update", idx(1), range(0, 1, 0))]),
    m("zscore", 3, "readonly fast", (1, 1, 1), "@read @sortedset @fast", "", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("zmscore", -3, "readonly fast", (1, 1, 1), "@read @sortedset @fast", "", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("zcard", 2, "readonly fast", (1, 1, 1), "@read @sortedset @fast", "", &[ks("RO", idx(1), range(0, 1, 0))]),
    m("zcount", 4, "readonly fast", (1, 1, 1), "@read @sortedset @fast", "", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("zlexcount", 4, "readonly fast", (1, 1, 1), "@read @sortedset @fast", "", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("zrank", 3, "readonly fast", (1, 1, 1), "@read @sortedset @fast", "", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("zrevrank", 3, "readonly fast", (1, 1, 1), "@read @sortedset @fast", "", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("zrem", -3, "write fast", (1, 1, 1), "@write @sortedset @fast", "", &[ks("RW delete", idx(1), range(0, 1, 0))]),
    m("zrange", -4, "readonly", (1, 1, 1), "@read @sortedset @slow", "", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("zrangebyscore", -4, "readonly", (1, 1, 1), "@read @sortedset @slow", "", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("zrevrangebyscore", -4, "readonly", (1, 1, 1), "@read @sortedset @slow", "", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("zrevrange", -4, "readonly", (1, 1, 1), "@read @sortedset @slow", "", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("zrangebylex", -4, "readonly", (1, 1, 1), "@read @sortedset @slow", "", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("zrevrangebylex", -4, "readonly", (1, 1, 1), "@read @sortedset @slow", "", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("zremrangebyrank", 4, "write", (1, 1, 1), "@write @sortedset @slow", "", &[ks("RW delete", idx(1), range(0, 1, 0))]),
    m("zremrangebyscore", 4, "write", (1, 1, 1), "@write @sortedset @slow", "", &[ks("RW delete", idx(1), range(0, 1, 0))]),
    m("zremrangebylex", 4, "write", (1, 1, 1), "@write @sortedset @slow", "", &[ks("RW delete", idx(1), range(0, 1, 0))]),
    m("zpopmin", -2, "write fast", (1, 1, 1), "@write @sortedset @fast", "", &[ks("RW access delete", idx(1), range(0, 1, 0))]),
    m("zpopmax", -2, "write fast", (1, 1, 1), "@write @sortedset @fast", "", &[ks("RW access delete", idx(1), range(0, 1, 0))]),
    m("zscan", -3, "readonly", (1, 1, 1), "@read @sortedset @slow", "nondeterministic_output", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("zmpop", -4, "write movablekeys", (0, 0, 0), "@write @sortedset @slow", "", &[ks("RW access delete", idx(1), keynum(0, 1, 1))]),
    m("bzpopmin", -3, "write noscript blocking fast", (1, -2, 1), "@write @sortedset @fast @blocking", "", &[ks("RW access delete", idx(1), range(-2, 1, 0))]),
    m("bzpopmax", -3, "write noscript blocking fast", (1, -2, 1), "@write @sortedset @fast @blocking", "", &[ks("RW access delete", idx(1), range(-2, 1, 0))]),
    m("bzmpop", -5, "write blocking movablekeys", (0, 0, 0), "@write @sortedset @slow @blocking", "", &[ks("RW access delete", idx(2), keynum(0, 1, 1))]),
    m("zrandmember", -2, "readonly", (1, 1, 1), "@read @sortedset @slow", "nondeterministic_output", &[ks("RO access", idx(1), range(0, 1, 0))]),
    m("sintercard", -3, "readonly movablekeys", (0, 0, 0), "@read @set @slow", "", &[ks("RO access", idx(1), keynum(0, 1, 1))]),
];

/// `COMMAND DOCS`, in the order of [`META`].
#[rustfmt::skip]
pub static DOCS: &[Doc] = &[
    d("ping", "Ping the server", "1.0.0", "connection", "O(1)"),
    d("echo", "Echo the given string", "1.0.0", "connection", "O(1)"),
    d("hello", "Handshake with Redis", "6.0.0", "connection", "O(1)"),
    d("quit", "Close the connection", "1.0.0", "connection", "O(1)"),
    d("select", "Change the selected database for the current connection", "1.0.0", "connection", "O(1)"),
    d("client", "A container for client connection commands", "2.4.0", "connection", "Depends on subcommand."),
    d("client|id", "Returns the client ID for the current connection", "5.0.0", "connection", "O(1)"),
    d("client|setname", "Set the current connection name", "2.6.9", "connection", "O(1)"),
    d("client|getname", "Get the current connection name", "2.6.9", "connection", "O(1)"),
    d("client|setinfo", "Sets information specific to the client or connection.", "7.2.0", "connection", "O(1)"),
    d("client|info", "Returns information about the current client connection.", "6.2.0", "connection", "O(1)"),
    d("client|list", "Get the list of client connections", "2.4.0", "connection", "O(N) where N is the number of client connections"),
    d("client|unblock", "Unblock a client blocked in a blocking command from a different connection", "5.0.0", "connection", "O(log N) where N is the number of client connections"),
    d("client|kill", "Kill the connection of a client", "2.4.0", "connection", "O(N) where N is the number of client connections"),
    d("client|reply", "Instruct the server whether to reply to commands", "3.2.0", "connection", "O(1)"),
    d("client|tracking", "Enable or disable server assisted client side caching support", "6.0.0", "connection", "O(1). Some options may introduce additional complexity."),
    d("client|caching", "Instruct the server about tracking or not keys in the next request", "6.0.0", "connection", "O(1)"),
    d("client|getredir", "Get tracking notifications redirection client ID if any", "6.0.0", "connection", "O(1)"),
    d("client|trackinginfo", "Return information about server assisted client side caching for the current connection", "6.2.0", "connection", "O(1)"),
    d("client|pause", "Stop processing commands from clients for some time", "2.9.50", "connection", "O(1)"),
    d("client|unpause", "Resume processing of clients that were paused", "6.2.0", "connection", "O(N) Where N is the number of paused clients"),
    d("client|no-evict", "Set client eviction mode for the current connection", "7.0.0", "connection", "O(1)"),
    d("client|help", "Show helpful text about the different subcommands", "5.0.0", "connection", "O(1)"),
    d("readonly", "Enables read queries for a connection to a cluster replica node", "3.0.0", "cluster", "O(1)"),
    d("readwrite", "Disables read queries for a connection to a cluster replica node", "3.0.0", "cluster", "O(1)"),
    d("asking", "Sent by cluster clients after an -ASK redirect", "3.0.0", "cluster", "O(1)"),
    d("command", "Get array of Redis command details", "2.8.13", "server", "O(N) where N is the total number of Redis commands"),
    d("command|count", "Get total number of Redis commands", "2.8.13", "server", "O(1)"),
    d("command|info", "Get array of specific Redis command details, or all when no argument is given.", "2.8.13", "server", "O(N) where N is the number of commands to look up"),
    d("command|docs", "Get array of specific Redis command documentation", "7.0.0", "server", "O(N) where N is the number of commands to look up"),
    d("command|list", "Get an array of Redis command names", "7.0.0", "server", "O(N) where N is the total number of Redis commands"),
    d("command|getkeys", "Extract keys given a full Redis command", "2.8.13", "server", "O(N) where N is the number of arguments to the command"),
    d("command|getkeysandflags", "Extract keys and access flags given a full Redis command", "7.0.0", "server", "O(N) where N is the number of arguments to the command"),
    d("command|help", "Show helpful text about the different subcommands", "5.0.0", "server", "O(1)"),
    d("config", "A container for server configuration commands", "2.0.0", "server", "Depends on subcommand."),
    d("config|get", "Get the values of configuration parameters", "2.0.0", "server", "O(N) when N is the number of configuration parameters provided"),
    d("config|set", "Set configuration parameters to the given values", "2.0.0", "server", "O(N) when N is the number of configuration parameters provided"),
    d("config|resetstat", "Reset the stats returned by INFO", "2.0.0", "server", "O(1)"),
    d("config|rewrite", "Rewrite the configuration file with the in memory configuration", "2.8.0", "server", "O(1)"),
    d("config|help", "Show helpful text about the different subcommands", "5.0.0", "server", "O(1)"),
    d("info", "Get information and statistics about the server", "1.0.0", "server", "O(1)"),
    d("dbsize", "Return the number of keys in the selected database", "1.0.0", "server", "O(1)"),
    d("flushdb", "Remove all keys from the current database", "1.0.0", "server", "O(N) where N is the number of keys in the selected database"),
    d("flushall", "Remove all keys from all databases", "1.0.0", "server", "O(N) where N is the total number of keys in all databases"),
    d("shutdown", "Synchronously save the dataset to disk and then shut down the server", "1.0.0", "server", "O(N) when saving, where N is the total number of keys in all databases when saving data, otherwise O(1)"),
    d("time", "Return the current server time", "2.6.0", "server", "O(1)"),
    d("memory", "A container for memory diagnostics commands", "4.0.0", "server", "Depends on subcommand."),
    d("memory|usage", "Estimate the memory usage of a key", "4.0.0", "server", "O(N) where N is the number of samples."),
    d("memory|stats", "Show memory usage details", "4.0.0", "server", "O(1)"),
    d("memory|doctor", "Outputs memory problems report", "4.0.0", "server", "O(1)"),
    d("memory|help", "Show helpful text about the different subcommands", "4.0.0", "server", "O(1)"),
    d("object", "A container for object introspection commands", "2.2.3", "generic", "Depends on subcommand."),
    d("object|encoding", "Inspect the internal encoding of a Redis object", "2.2.3", "generic", "O(1)"),
    d("object|freq", "Get the logarithmic access frequency counter of a Redis object", "4.0.0", "generic", "O(1)"),
    d("object|help", "Show helpful text about the different subcommands", "6.2.0", "generic", "O(1)"),
    d("object|idletime", "Get the time since a Redis object was last accessed", "2.2.3", "generic", "O(1)"),
    d("object|refcount", "Get the number of references to the value of the key", "2.2.3", "generic", "O(1)"),
    d("cluster", "A container for cluster commands", "3.0.0", "cluster", "Depends on subcommand."),
    d("cluster|info", "Provides info about Redis Cluster node state", "3.0.0", "cluster", "O(1)"),
    d("cluster|nodes", "Get Cluster config for the node", "3.0.0", "cluster", "O(N) where N is the total number of Cluster nodes"),
    d("cluster|slots", "Get array of Cluster slot to node mappings", "3.0.0", "cluster", "O(N) where N is the total number of Cluster nodes"),
    d("cluster|shards", "Get array of cluster slots to node mappings", "7.0.0", "cluster", "O(N) where N is the total number of cluster nodes"),
    d("cluster|myid", "Return the node id", "3.0.0", "cluster", "O(1)"),
    d("cluster|myshardid", "Returns the shard ID of a node.", "7.2.0", "cluster", "O(1)"),
    d("cluster|keyslot", "Returns the hash slot of the specified key", "3.0.0", "cluster", "O(N) where N is the number of bytes in the key"),
    d("cluster|countkeysinslot", "Return the number of local keys in the specified hash slot", "3.0.0", "cluster", "O(1)"),
    d("cluster|getkeysinslot", "Return local key names in the specified hash slot", "3.0.0", "cluster", "O(log(N)) where N is the number of requested keys"),
    d("cluster|replicas", "List replica nodes of the specified master node", "5.0.0", "cluster", "O(1)"),
    d("cluster|slaves", "List replica nodes of the specified master node", "3.0.0", "cluster", "O(1)"),
    d("cluster|links", "Returns a list of all TCP links to and from peer nodes in cluster", "7.0.0", "cluster", "O(N) where N is the total number of Cluster nodes"),
    d("cluster|help", "Show helpful text about the different subcommands", "5.0.0", "cluster", "O(1)"),
    d("cluster|drop-orphaned", "Deletes the keys of slots this node does not hold (ember)", "ember", "cluster", "O(N) where N is the number of such keys"),
    d("lastsave", "Get the UNIX time stamp of the last successful save to disk", "1.0.0", "server", "O(1)"),
    d("save", "Synchronously save the dataset to disk", "1.0.0", "server", "O(N) where N is the total number of keys in all databases"),
    d("bgsave", "Asynchronously save the dataset to disk", "1.0.0", "server", "O(1)"),
    d("bgrewriteaof", "Asynchronously rewrite the append-only file", "1.0.0", "server", "O(1)"),
    d("debug", "A container for debugging commands", "1.0.0", "server", "Depends on subcommand."),
    d("role", "Return the role of the instance in the context of replication", "2.8.12", "server", "O(1)"),
    d("wait", "Wait for the synchronous replication of all the write commands sent in the context of the current connection", "3.0.0", "generic", "O(1)"),
    d("replicaof", "Make the server a replica of another instance, or promote it as master.", "5.0.0", "server", "O(1)"),
    d("slaveof", "Make the server a replica of another instance, or promote it as master.", "1.0.0", "server", "O(1)"),
    d("multi", "Mark the start of a transaction block", "1.2.0", "transactions", "O(1)"),
    d("exec", "Execute all commands issued after MULTI", "1.2.0", "transactions", "Depends on commands in the transaction"),
    d("discard", "Discard all commands issued after MULTI", "2.0.0", "transactions", "O(N), when N is the number of queued commands"),
    d("watch", "Watch the given keys to determine execution of the MULTI/EXEC block", "2.2.0", "transactions", "O(1) for every key."),
    d("unwatch", "Forget about all watched keys", "2.2.0", "transactions", "O(1)"),
    d("del", "Delete a key", "1.0.0", "generic", "O(N) where N is the number of keys that will be removed. When a key to remove holds a value other than a string, the individual complexity for this key is O(M) where M is the number of elements in the list, set, sorted set or hash. Removing a single key that holds a string value is O(1)."),
    d("unlink", "Delete a key asynchronously in another thread. Otherwise it is just as DEL, but non blocking.", "4.0.0", "generic", "O(1) for each key removed regardless of its size. Then the command does O(N) work in a different thread in order to reclaim memory, where N is the number of allocations the deleted objects where composed of."),
    d("exists", "Determine if a key exists", "1.0.0", "generic", "O(N) where N is the number of keys to check."),
    d("touch", "Alters the last access time of a key(s). Returns the number of existing keys specified.", "3.2.1", "generic", "O(N) where N is the number of keys that will be touched."),
    d("type", "Determine the type stored at key", "1.0.0", "generic", "O(1)"),
    d("expire", "Set a key's time to live in seconds", "1.0.0", "generic", "O(1)"),
    d("pexpire", "Set a key's time to live in milliseconds", "2.6.0", "generic", "O(1)"),
    d("expireat", "Set the expiration for a key as a UNIX timestamp", "1.2.0", "generic", "O(1)"),
    d("pexpireat", "Set the expiration for a key as a UNIX timestamp specified in milliseconds", "2.6.0", "generic", "O(1)"),
    d("ttl", "Get the time to live for a key in seconds", "1.0.0", "generic", "O(1)"),
    d("pttl", "Get the time to live for a key in milliseconds", "2.6.0", "generic", "O(1)"),
    d("expiretime", "Get the expiration Unix timestamp for a key", "7.0.0", "generic", "O(1)"),
    d("pexpiretime", "Get the expiration Unix timestamp for a key in milliseconds", "7.0.0", "generic", "O(1)"),
    d("persist", "Remove the expiration from a key", "2.2.0", "generic", "O(1)"),
    d("keys", "Find all keys matching the given pattern", "1.0.0", "generic", "O(N) with N being the number of keys in the database, under the assumption that the key names in the database and the given pattern have limited length."),
    d("scan", "Incrementally iterate the keys space", "2.8.0", "generic", "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection."),
    d("randomkey", "Return a random key from the keyspace", "1.0.0", "generic", "O(1)"),
    d("rename", "Rename a key", "1.0.0", "generic", "O(1)"),
    d("renamenx", "Rename a key, only if the new key does not exist", "1.0.0", "generic", "O(1)"),
    d("copy", "Copy a key", "6.2.0", "generic", "O(N) worst case for collections, where N is the number of nested items. O(1) for string values."),
    d("get", "Get the value of a key", "1.0.0", "string", "O(1)"),
    d("set", "Set the string value of a key", "1.0.0", "string", "O(1)"),
    d("setnx", "Set the value of a key, only if the key does not exist", "1.0.0", "string", "O(1)"),
    d("setex", "Set the value and expiration of a key", "2.0.0", "string", "O(1)"),
    d("psetex", "Set the value and expiration in milliseconds of a key", "2.6.0", "string", "O(1)"),
    d("mget", "Get the values of all the given keys", "1.0.0", "string", "O(N) where N is the number of keys to retrieve."),
    d("mset", "Set multiple keys to multiple values", "1.0.1", "string", "O(N) where N is the number of keys to set."),
    d("msetnx", "Set multiple keys to multiple values, only if none of the keys exist", "1.0.1", "string", "O(N) where N is the number of keys to set."),
    d("getset", "Set the string value of a key and return its old value", "1.0.0", "string", "O(1)"),
    d("getdel", "Get the value of a key and delete the key", "6.2.0", "string", "O(1)"),
    d("getex", "Get the value of a key and optionally set its expiration", "6.2.0", "string", "O(1)"),
    d("incr", "Increment the integer value of a key by one", "1.0.0", "string", "O(1)"),
    d("decr", "Decrement the integer value of a key by one", "1.0.0", "string", "O(1)"),
    d("incrby", "Increment the integer value of a key by the given amount", "1.0.0", "string", "O(1)"),
    d("decrby", "Decrement the integer value of a key by the given number", "1.0.0", "string", "O(1)"),
    d("incrbyfloat", "Increment the float value of a key by the given amount", "2.6.0", "string", "O(1)"),
    d("append", "Append a value to a key", "2.0.0", "string", "O(1). The amortized time complexity is O(1) assuming the appended value is small and the already present value is of any size, since the dynamic string library used by Redis will double the free space available on every reallocation."),
    d("strlen", "Get the length of the value stored in a key", "2.2.0", "string", "O(1)"),
    d("getrange", "Get a substring of the string stored at a key", "2.4.0", "string", "O(N) where N is the length of the returned string. The complexity is ultimately determined by the returned length, but because creating a substring from an existing string is very cheap, it can be considered O(1) for small strings."),
    d("substr", "Get a substring of the string stored at a key", "1.0.0", "string", "O(N) where N is the length of the returned string. The complexity is ultimately determined by the returned length, but because creating a substring from an existing string is very cheap, it can be considered O(1) for small strings."),
    d("setrange", "Overwrite part of a string at key starting at the specified offset", "2.2.0", "string", "O(1), not counting the time taken to copy the new string in place. Usually, this string is very small so the amortized complexity is O(1). Otherwise, complexity is O(M) with M being the length of the value argument."),
    d("hset", "Set the string value of a hash field", "2.0.0", "hash", "O(1) for each field/value pair added, so O(N) to add N field/value pairs when the command is called with multiple field/value pairs."),
    d("hmset", "Set multiple hash fields to multiple values", "2.0.0", "hash", "O(N) where N is the number of fields being set."),
    d("hsetnx", "Set the value of a hash field, only if the field does not exist", "2.0.0", "hash", "O(1)"),
    d("hget", "Get the value of a hash field", "2.0.0", "hash", "O(1)"),
    d("hmget", "Get the values of all the given hash fields", "2.0.0", "hash", "O(N) where N is the number of fields being requested."),
    d("hdel", "Delete one or more hash fields", "2.0.0", "hash", "O(N) where N is the number of fields to be removed."),
    d("hexists", "Determine if a hash field exists", "2.0.0", "hash", "O(1)"),
    d("hlen", "Get the number of fields in a hash", "2.0.0", "hash", "O(1)"),
    d("hstrlen", "Get the length of the value of a hash field", "3.2.0", "hash", "O(1)"),
    d("hkeys", "Get all the fields in a hash", "2.0.0", "hash", "O(N) where N is the size of the hash."),
    d("hvals", "Get all the values in a hash", "2.0.0", "hash", "O(N) where N is the size of the hash."),
    d("hgetall", "Get all the fields and values in a hash", "2.0.0", "hash", "O(N) where N is the size of the hash."),
    d("hincrby", "Increment the integer value of a hash field by the given number", "2.0.0", "hash", "O(1)"),
    d("hincrbyfloat", "Increment the float value of a hash field by the given amount", "2.6.0", "hash", "O(1)"),
    d("hrandfield", "Get one or multiple random fields from a hash", "6.2.0", "hash", "O(N) where N is the number of fields returned"),
    d("hscan", "Incrementally iterate hash fields and associated values", "2.8.0", "hash", "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.."),
    d("reset", "Reset the connection", "6.2.0", "connection", "O(1)"),
    d("subscribe", "Listen for messages published to the given channels", "2.0.0", "pubsub", "O(N) where N is the number of channels to subscribe to."),
    d("unsubscribe", "Stop listening for messages posted to the given channels", "2.0.0", "pubsub", "O(N) where N is the number of clients already subscribed to a channel."),
    d("psubscribe", "Listen for messages published to channels matching the given patterns", "2.0.0", "pubsub", "O(N) where N is the number of patterns the client is already subscribed to."),
    d("punsubscribe", "Stop listening for messages posted to channels matching the given patterns", "2.0.0", "pubsub", "O(N+M) where N is the number of patterns the client is already subscribed and M is the number of total patterns subscribed in the system (by any client)."),
    d("publish", "Post a message to a channel", "2.0.0", "pubsub", "O(N+M) where N is the number of clients subscribed to the receiving channel and M is the total number of subscribed patterns (by any client)."),
    d("pubsub", "A container for Pub/Sub commands", "2.8.0", "pubsub", "Depends on subcommand."),
    d("pubsub|channels", "List active channels", "2.8.0", "pubsub", "O(N) where N is the number of active channels, and assuming constant time pattern matching (relatively short channels and patterns)"),
    d("pubsub|numsub", "Get the count of subscribers for channels", "2.8.0", "pubsub", "O(N) for the NUMSUB subcommand, where N is the number of requested channels"),
    d("pubsub|numpat", "Get the count of unique patterns pattern subscriptions", "2.8.0", "pubsub", "O(1)"),
    d("pubsub|shardchannels", "List active shard channels", "7.0.0", "pubsub", "O(N) where N is the number of active shard channels, and assuming constant time pattern matching (relatively short shard channels)."),
    d("pubsub|shardnumsub", "Get the count of subscribers for shard channels", "7.0.0", "pubsub", "O(N) for the SHARDNUMSUB subcommand, where N is the number of requested shard channels"),
    d("pubsub|help", "Show helpful text about the different subcommands", "6.2.0", "pubsub", "O(1)"),
    d("ssubscribe", "Listen for messages published to the given shard channels", "7.0.0", "pubsub", "O(N) where N is the number of shard channels to subscribe to."),
    d("sunsubscribe", "Stop listening for messages posted to the given shard channels", "7.0.0", "pubsub", "O(N) where N is the number of clients already subscribed to a shard channel."),
    d("spublish", "Post a message to a shard channel", "7.0.0", "pubsub", "O(N) where N is the number of clients subscribed to the receiving shard channel."),
    d("eval", "Execute a Lua script server side", "2.6.0", "scripting", "Depends on the script that is executed."),
    d("evalsha", "Execute a Lua script server side", "2.6.0", "scripting", "Depends on the script that is executed."),
    d("eval_ro", "Execute a read-only Lua script server side", "7.0.0", "scripting", "Depends on the script that is executed."),
    d("evalsha_ro", "Execute a read-only Lua script server side", "7.0.0", "scripting", "Depends on the script that is executed."),
    d("script", "A container for Lua scripts management commands", "2.6.0", "scripting", "Depends on subcommand."),
    d("script|flush", "Remove all the scripts from the script cache.", "2.6.0", "scripting", "O(N) with N being the number of scripts in cache"),
    d("script|exists", "Check existence of scripts in the script cache.", "2.6.0", "scripting", "O(N) with N being the number of scripts to check (so checking a single script is an O(1) operation)."),
    d("script|help", "Show helpful text about the different subcommands", "5.0.0", "scripting", "O(1)"),
    d("script|load", "Load the specified Lua script into the script cache.", "2.6.0", "scripting", "O(N) with N being the length in bytes of the script body."),
    d("script|kill", "Kill the script currently in execution.", "2.6.0", "scripting", "O(1)"),
    d("fcall", "Invoke a function", "7.0.0", "scripting", "Depends on the function that is executed."),
    d("fcall_ro", "Invoke a read-only function", "7.0.0", "scripting", "Depends on the function that is executed."),
    d("function", "A container for function commands", "7.0.0", "scripting", "Depends on subcommand."),
    d("function|load", "Create a function with the given arguments (name, code, description)", "7.0.0", "scripting", "O(1) (considering compilation time is redundant)"),
    d("function|delete", "Delete a function by name", "7.0.0", "scripting", "O(1)"),
    d("function|list", "List information about all the functions", "7.0.0", "scripting", "O(N) where N is the number of functions"),
    d("function|flush", "Deleting all functions", "7.0.0", "scripting", "O(N) where N is the number of functions deleted"),
    d("function|dump", "Dump all functions into a serialized binary payload", "7.0.0", "scripting", "O(N) where N is the number of functions"),
    d("function|restore", "Restore all the functions on the given payload", "7.0.0", "scripting", "O(N) where N is the number of functions on the payload"),
    d("function|stats", "Return information about the function currently running (name, description, duration)", "7.0.0", "scripting", "O(1)"),
    d("function|kill", "Kill the function currently in execution.", "7.0.0", "scripting", "O(1)"),
    d("function|help", "Show helpful text about the different subcommands", "7.0.0", "scripting", "O(1)"),
    d("lpush", "Prepend one or multiple elements to a list", "1.0.0", "list", "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments."),
    d("rpush", "Append one or multiple elements to a list", "1.0.0", "list", "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments."),
    d("lpushx", "Prepend an element to a list, only if the list exists", "2.2.0", "list", "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments."),
    d("rpushx", "Append an element to a list, only if the list exists", "2.2.0", "list", "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments."),
    d("lpop", "Remove and get the first elements in a list", "1.0.0", "list", "O(N) where N is the number of elements returned"),
    d("rpop", "Remove and get the last elements in a list", "1.0.0", "list", "O(N) where N is the number of elements returned"),
    d("llen", "Get the length of a list", "1.0.0", "list", "O(1)"),
    d("lrange", "Get a range of elements from a list", "1.0.0", "list", "O(S+N) where S is the distance of start offset from HEAD for small lists, from nearest end (HEAD or TAIL) for large lists; and N is the number of elements in the specified range."),
    d("lindex", "Get an element from a list by its index", "1.0.0", "list", "O(N) where N is the number of elements to traverse to get to the element at index. This makes asking for the first or the last element of the list O(1)."),
    d("lset", "Set the value of an element in a list by its index", "1.0.0", "list", "O(N) where N is the length of the list. Setting either the first or the last element of the list is O(1)."),
    d("linsert", "Insert an element before or after another element in a list", "2.2.0", "list", "O(N) where N is the number of elements to traverse before seeing the value pivot. This means that inserting somewhere on the left end on the list (head) can be considered O(1) and inserting somewhere on the right end (tail) is O(N)."),
    d("lrem", "Remove elements from a list", "1.0.0", "list", "O(N+M) where N is the length of the list and M is the number of elements removed."),
    d("ltrim", "Trim a list to the specified range", "1.0.0", "list", "O(N) where N is the number of elements to be removed by the operation."),
    d("lmove", "Pop an element from a list, push it to another list and return it", "6.2.0", "list", "O(1)"),
    d("rpoplpush", "Remove the last element in a list, prepend it to another list and return it", "1.2.0", "list", "O(1)"),
    d("lpos", "Return the index of matching elements on a list", "6.0.6", "list", "O(N) where N is the number of elements in the list, for the average case. When searching for elements near the head or the tail of the list, or when the MAXLEN option is provided, the command may run in constant time."),
    d("lmpop", "Pop elements from a list", "7.0.0", "list", "O(N+M) where N is the number of provided keys and M is the number of elements returned."),
    d("blpop", "Remove and get the first element in a list, or block until one is available", "2.0.0", "list", "O(N) where N is the number of provided keys."),
    d("brpop", "Remove and get the last element in a list, or block until one is available", "2.0.0", "list", "O(N) where N is the number of provided keys."),
    d("brpoplpush", "Pop an element from a list, push it to another list and return it; or block until one is available", "2.2.0", "list", "O(1)"),
    d("blmove", "Pop an element from a list, push it to another list and return it; or block until one is available", "6.2.0", "list", "O(1)"),
    d("blmpop", "Pop elements from a list, or block until one is available", "7.0.0", "list", "O(N+M) where N is the number of provided keys and M is the number of elements returned."),
    d("sadd", "Add one or more members to a set", "1.0.0", "set", "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments."),
    d("srem", "Remove one or more members from a set", "1.0.0", "set", "O(N) where N is the number of members to be removed."),
    d("sismember", "Determine if a given value is a member of a set", "1.0.0", "set", "O(1)"),
    d("smismember", "Returns the membership associated with the given elements for a set", "6.2.0", "set", "O(N) where N is the number of elements being checked for membership"),
    d("smembers", "Get all the members in a set", "1.0.0", "set", "O(N) where N is the set cardinality."),
    d("scard", "Get the number of members in a set", "1.0.0", "set", "O(1)"),
    d("spop", "Remove and return one or multiple random members from a set", "1.0.0", "set", "Without the count argument O(1), otherwise O(N) where N is the value of the passed count."),
    d("srandmember", "Get one or multiple random members from a set", "1.0.0", "set", "Without the count argument O(1), otherwise O(N) where N is the absolute value of the passed count."),
    d("sinter", "Intersect multiple sets", "1.0.0", "set", "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets."),
    d("sunion", "Add multiple sets", "1.0.0", "set", "O(N) where N is the total number of elements in all given sets."),
    d("sdiff", "Subtract multiple sets", "1.0.0", "set", "O(N) where N is the total number of elements in all given sets."),
    d("sinterstore", "Intersect multiple sets and store the resulting set in a key", "1.0.0", "set", "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets."),
    d("sunionstore", "Add multiple sets and store the resulting set in a key", "1.0.0", "set", "O(N) where N is the total number of elements in all given sets."),
    d("sdiffstore", "Subtract multiple sets and store the resulting set in a key", "1.0.0", "set", "O(N) where N is the total number of elements in all given sets."),
    d("smove", "Move a member from one set to another", "1.0.0", "set", "O(1)"),
    d("sscan", "Incrementally iterate Set elements", "2.8.0", "set", "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.."),
    d("zadd", "Add one or more members to a sorted set, or update its score if it already exists", "1.2.0", "sorted-set", "O(log(N)) for each item added, where N is the number of elements in the sorted set."),
    d("zincrby", "Increment the score of a member in a sorted set", "1.2.0", "sorted-set", "O(log(N)) where N is the number of elements in the sorted set."),
    d("zscore", "Get the score associated with the given member in a sorted set", "1.2.0", "sorted-set", "O(1)"),
    d("zmscore", "Get the score associated with the given members in a sorted set", "6.2.0", "sorted-set", "O(N) where N is the number of members being requested."),
    d("zcard", "Get the number of members in a sorted set", "1.2.0", "sorted-set", "O(1)"),
    d("zcount", "Count the members in a sorted set with scores within the given values", "2.0.0", "sorted-set", "O(log(N)) with N being the number of elements in the sorted set."),
    d("zlexcount", "Count the number of members in a sorted set between a given lexicographical range", "2.8.9", "sorted-set", "O(log(N)) with N being the number of elements in the sorted set."),
    d("zrank", "Determine the index of a member in a sorted set", "2.0.0", "sorted-set", "O(log(N))"),
    d("zrevrank", "Determine the index of a member in a sorted set, with scores ordered from high to low", "2.0.0", "sorted-set", "O(log(N))"),
    d("zrem", "Remove one or more members from a sorted set", "1.2.0", "sorted-set", "O(M*log(N)) with N being the number of elements in the sorted set and M the number of elements to be removed."),
    d("zrange", "Return a range of members in a sorted set", "1.2.0", "sorted-set", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements returned."),
    d("zrangebyscore", "Return a range of members in a sorted set, by score", "1.0.5", "sorted-set", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned. If M is constant (e.g. always asking for the first 10 elements with LIMIT), you can consider it O(log(N))."),
    d("zrevrangebyscore", "Return a range of members in a sorted set, by score, with scores ordered from high to low", "2.2.0", "sorted-set", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned. If M is constant (e.g. always asking for the first 10 elements with LIMIT), you can consider it O(log(N))."),
    d("zrevrange", "Return a range of members in a sorted set, by index, with scores ordered from high to low", "1.2.0", "sorted-set", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements returned."),
    d("zrangebylex", "Return a range of members in a sorted set, by lexicographical range", "2.8.9", "sorted-set", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned. If M is constant (e.g. always asking for the first 10 elements with LIMIT), you can consider it O(log(N))."),
    d("zrevrangebylex", "Return a range of members in a sorted set, by lexicographical range, ordered from higher to lower strings.", "2.8.9", "sorted-set", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned. If M is constant (e.g. always asking for the first 10 elements with LIMIT), you can consider it O(log(N))."),
    d("zremrangebyrank", "Remove all members in a sorted set within the given indexes", "2.0.0", "sorted-set", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation."),
    d("zremrangebyscore", "Remove all members in a sorted set within the given scores", "1.2.0", "sorted-set", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation."),
    d("zremrangebylex", "Remove all members in a sorted set between the given lexicographical range", "2.8.9", "sorted-set", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation."),
    d("zpopmin", "Remove and return members with the lowest scores in a sorted set", "5.0.0", "sorted-set", "O(log(N)*M) with N being the number of elements in the sorted set, and M being the number of elements popped."),
    d("zpopmax", "Remove and return members with the highest scores in a sorted set", "5.0.0", "sorted-set", "O(log(N)*M) with N being the number of elements in the sorted set, and M being the number of elements popped."),
    d("zscan", "Incrementally iterate sorted sets elements and associated scores", "2.8.0", "sorted-set", "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.."),
    d("zmpop", "Remove and return members with scores in a sorted set", "7.0.0", "sorted-set", "O(K) + O(M*log(N)) where K is the number of provided keys, N being the number of elements in the sorted set, and M being the number of elements popped."),
    d("bzpopmin", "Remove and return the member with the lowest score from one or more sorted sets, or block until one is available", "5.0.0", "sorted-set", "O(log(N)) with N being the number of elements in the sorted set."),
    d("bzpopmax", "Remove and return the member with the highest score from one or more sorted sets, or block until one is available", "5.0.0", "sorted-set", "O(log(N)) with N being the number of elements in the sorted set."),
    d("bzmpop", "Remove and return members with scores in a sorted set or block until one is available", "7.0.0", "sorted-set", "O(K) + O(M*log(N)) where K is the number of provided keys, N being the number of elements in the sorted set, and M being the number of elements popped."),
    d("zrandmember", "Get one or multiple random elements from a sorted set", "6.2.0", "sorted-set", "O(N) where N is the number of elements returned"),
    d("sintercard", "Intersect multiple sets and return the cardinality of the result", "7.0.0", "set", "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets."),
];

use std::collections::HashMap;
use std::sync::LazyLock;

use super::TABLE;

struct Index {
    /// Name (`get`, `config|get`) → index in [`META`].
    by_name: HashMap<&'static str, usize>,
    /// For each [`TABLE`] entry: its index in [`META`].
    of_command: Vec<usize>,
    /// For each [`TABLE`] entry: the [`META`] indexes of its subcommands.
    subcommands: Vec<Vec<usize>>,
}

static INDEX: LazyLock<Index> = LazyLock::new(|| {
    let by_name: HashMap<&'static str, usize> =
        META.iter().enumerate().map(|(i, m)| (m.name, i)).collect();
    let of_command = TABLE
        .iter()
        .map(|c| by_name.get(c.name).copied().unwrap_or(usize::MAX))
        .collect();
    let subcommands = TABLE
        .iter()
        .map(|c| {
            META.iter()
                .enumerate()
                .filter(|(_, m)| {
                    m.name
                        .split_once('|')
                        .is_some_and(|(container, _)| container == c.name)
                })
                .map(|(i, _)| i)
                .collect()
        })
        .collect();
    Index {
        by_name,
        of_command,
        subcommands,
    }
});

/// The metadata of a command or `container|sub` name (any case).
pub fn lookup(name: &[u8]) -> Option<&'static Meta> {
    let lower = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
    INDEX.by_name.get(lower.as_str()).map(|&i| &META[i])
}

/// The metadata of [`TABLE`]`[idx]`.
pub fn of_command(idx: usize) -> &'static Meta {
    &META[INDEX.of_command[idx]]
}

/// The subcommands of [`TABLE`]`[idx]` (empty unless it is a container).
pub fn subcommands(idx: usize) -> impl Iterator<Item = &'static Meta> {
    INDEX.subcommands[idx].iter().map(|&i| &META[i])
}

/// The position among [`subcommands`] of `TABLE[idx]` of the one named `sub` (any case).
pub fn subcommand_position(idx: usize, sub: &[u8]) -> Option<usize> {
    INDEX.subcommands[idx].iter().position(|&i| {
        META[i]
            .name
            .split_once('|')
            .is_some_and(|(_, s)| s.as_bytes().eq_ignore_ascii_case(sub))
    })
}

/// The `n`th subcommand of `TABLE[idx]`.
pub fn subcommand(idx: usize, n: usize) -> Option<&'static Meta> {
    INDEX.subcommands[idx].get(n).map(|&i| &META[i])
}

/// The documentation entry of a command or subcommand.
pub fn doc(name: &str) -> Option<&'static Doc> {
    DOCS.iter().find(|d| d.name == name)
}

impl Meta {
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.split(' ').any(|f| f == flag)
    }

    /// Redis's `getKeysUsingKeySpecs`: the positions in `args` (the command's own
    /// arguments, name first) of its keys with their key-spec flags, or `None` when the
    /// arguments do not fit the specifications.
    pub fn key_positions(&self, args: &[bytes::Bytes]) -> Option<Vec<(usize, &'static str)>> {
        let argc = args.len() as i64;
        let mut out = Vec::new();
        for spec in self.key_specs {
            if spec.flags.split(' ').any(|f| f == "not_key") {
                continue;
            }
            let first = match spec.begin {
                Begin::Index(i) => i,
                Begin::Keyword { keyword, startfrom } => {
                    // Forwards from `startfrom` to the second-last argument, or
                    // backwards from `argc + startfrom` to the second one.
                    let is_kw =
                        |i: &i64| args[*i as usize].eq_ignore_ascii_case(keyword.as_bytes());
                    let found = if startfrom > 0 {
                        (startfrom..argc - 1).find(is_kw)
                    } else {
                        (2..(argc + startfrom + 1).min(argc)).rev().find(is_kw)
                    };
                    match found {
                        Some(i) => i + 1,
                        None => continue,
                    }
                }
            };
            let (first, last, step) = match spec.find {
                Find::Range {
                    lastkey,
                    keystep,
                    limit,
                } => {
                    let last = if lastkey >= 0 {
                        first + lastkey
                    } else if limit == 0 {
                        argc + lastkey
                    } else {
                        first + ((argc - first) / limit + lastkey)
                    };
                    (first, last, keystep)
                }
                Find::Keynum {
                    keynumidx,
                    firstkey,
                    keystep,
                } => {
                    let at = usize::try_from(first + keynumidx).ok()?;
                    let n = crate::resp::parse::parse_i64(args.get(at)?).filter(|&n| n >= 0)?;
                    let first = first + firstkey;
                    (first, first.checked_add(n)? - 1, keystep)
                }
            };
            if last >= argc || last < first || first >= argc || step < 1 {
                return None;
            }
            let mut i = first;
            while i <= last {
                out.push((i as usize, spec.flags));
                i += step;
            }
            if spec.flags.split(' ').any(|f| f == "incomplete") {
                return None;
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{flags, KeySpec, TABLE};
    use super::*;

    #[test]
    fn every_command_has_metadata_that_agrees_with_the_table() {
        assert_eq!(META.len(), DOCS.len());
        for (m, d) in META.iter().zip(DOCS) {
            assert_eq!(m.name, d.name);
        }
        for (i, c) in TABLE.iter().enumerate() {
            let m = of_command(i);
            assert_eq!(m.name, c.name);
            assert_eq!(m.arity, c.arity, "arity of {}", c.name);
            let container = subcommands(i).next().is_some();
            if container {
                continue;
            }
            assert_eq!(
                m.has_flag("write"),
                c.flags & flags::WRITE != 0,
                "write flag of {}",
                c.name
            );
            assert_eq!(
                m.has_flag("readonly"),
                c.flags & flags::READONLY != 0,
                "readonly flag of {}",
                c.name
            );
            match c.keys {
                KeySpec::Range { first, last, step } if step > 0 => assert_eq!(
                    m.keys,
                    (first as i64, last as i64, step as i64),
                    "key positions of {}",
                    c.name
                ),
                // Shard channels are "keys" flagged not_key: the command routes them itself.
                KeySpec::Range { .. } if m.key_specs.iter().all(|k| k.flags == "not_key") => {}
                KeySpec::Range { .. } => assert_eq!(m.keys, (0, 0, 0), "{} has no keys", c.name),
                KeySpec::NumKeys { .. } => {
                    assert!(m.has_flag("movablekeys"), "{} has movable keys", c.name)
                }
            }
        }
        // Every subcommand belongs to a command of the table.
        for m in META {
            if let Some((container, _)) = m.name.split_once('|') {
                assert!(TABLE.iter().any(|c| c.name == container), "{}", m.name);
            }
        }
    }

    #[test]
    fn keys_from_specs() {
        let a = |v: &[&str]| -> Vec<bytes::Bytes> {
            v.iter()
                .map(|s| bytes::Bytes::copy_from_slice(s.as_bytes()))
                .collect()
        };
        let pos = |name: &str, args: &[&str]| {
            lookup(name.as_bytes())
                .unwrap()
                .key_positions(&a(args))
                .map(|v| v.into_iter().map(|(p, _)| p).collect::<Vec<_>>())
        };
        assert_eq!(pos("get", &["get", "k"]), Some(vec![1]));
        assert_eq!(pos("mset", &["mset", "a", "1", "b", "2"]), Some(vec![1, 3]));
        assert_eq!(
            pos("memory|usage", &["memory", "usage", "k"]),
            Some(vec![2])
        );
        assert_eq!(
            pos("sintercard", &["sintercard", "2", "a", "b"]),
            Some(vec![2, 3])
        );
        assert_eq!(pos("sintercard", &["sintercard", "5", "a", "b"]), None);
        assert_eq!(pos("sintercard", &["sintercard", "0", "a"]), None);
        assert_eq!(pos("lmpop", &["lmpop", "x", "a", "left"]), None);
    }
}
