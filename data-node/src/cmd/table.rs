//! The command table: name, arity, flags, key positions and handler of every command,
//! and the allocation-free, case-insensitive lookup by name.

use std::collections::HashMap;
use std::sync::LazyLock;

use bytes::Bytes;

use super::flags::*;
use super::{
    blocking, connection, functions, hashes, keys, lists, object, pubsub, scripting, server, sets,
    strings, transactions, zsets, Ctx,
};
use crate::db::SlotTable;
use crate::resp::reply::SYNTAX;
use crate::resp::Reply;

/// A command that runs on the locked table of its keys' slot.
pub type KeyedFn = fn(&mut Ctx, &mut SlotTable, &[Bytes]) -> Reply;
/// A command without keys (or one that routes its keys itself, like `MEMORY USAGE`).
pub type KeylessFn = fn(&mut Ctx, &[Bytes]) -> Reply;

#[derive(Clone, Copy)]
pub enum Handler {
    Keyed(KeyedFn),
    Keyless(KeylessFn),
}

/// Where the keys are in the arguments.
#[derive(Clone, Copy, Debug)]
pub enum KeySpec {
    /// Keys at `first`, `first + step`, ... up to `last` (negative: from the end).
    Range {
        first: usize,
        last: i32,
        step: usize,
    },
    /// `numkeys` at `pos`, followed by that many keys (`SINTERCARD`, `LMPOP`); a
    /// `numkeys` larger than the arguments left is the error `too_many`.
    NumKeys { pos: usize, too_many: &'static str },
}

/// One command.
pub struct CommandSpec {
    /// Lowercase name, as in Redis's error messages.
    pub name: &'static str,
    /// Number of arguments including the name; negative means at least `-arity`.
    pub arity: i32,
    pub flags: u32,
    pub keys: KeySpec,
    pub handler: Handler,
}

const NOKEYS: KeySpec = KeySpec::Range {
    first: 0,
    last: -1,
    step: 0,
};

macro_rules! keyed {
    ($name:expr, $arity:expr, $flags:expr, ($f:expr, $l:expr, $s:expr), $h:path) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
            keys: KeySpec::Range {
                first: $f,
                last: $l,
                step: $s,
            },
            handler: Handler::Keyed($h),
        }
    };
}

/// A command whose keys are counted by a `numkeys` argument at position 1.
macro_rules! numkeys {
    ($name:expr, $arity:expr, $flags:expr, $too_many:expr, $h:path) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
            keys: KeySpec::NumKeys {
                pos: 1,
                too_many: $too_many,
            },
            handler: Handler::Keyed($h),
        }
    };
}

/// A blocking `*MPOP`: the timeout at position 1, then `numkeys` and the keys.
macro_rules! numkeys_at_2 {
    ($name:expr, $arity:expr, $flags:expr, $h:path) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
            keys: KeySpec::NumKeys {
                pos: 2,
                too_many: SYNTAX,
            },
            handler: Handler::Keyed($h),
        }
    };
}

macro_rules! keyless {
    ($name:expr, $arity:expr, $flags:expr, $h:path) => {
        CommandSpec {
            name: $name,
            arity: $arity,
            flags: $flags,
            keys: NOKEYS,
            handler: Handler::Keyless($h),
        }
    };
}

const W: u32 = WRITE | DENYOOM;
const WF: u32 = WRITE | DENYOOM | FAST;
const D: u32 = WRITE; // deletes / never grows memory
const DF: u32 = WRITE | FAST;
const R: u32 = READONLY;
const RF: u32 = READONLY | FAST;

/// All commands.
pub static TABLE: &[CommandSpec] = &[
    // connection / server
    keyless!("ping", -1, FAST, connection::ping),
    keyless!("echo", 2, FAST, connection::echo),
    keyless!("hello", -1, FAST | NOQUEUE, connection::hello),
    keyless!("quit", -1, FAST | NOQUEUE, connection::quit),
    keyless!("select", 2, FAST, connection::select),
    keyless!("client", -2, CONTAINER, connection::client),
    keyless!("readonly", 1, FAST, connection::readonly),
    keyless!("readwrite", 1, FAST, connection::readwrite),
    keyless!("asking", 1, FAST, connection::asking),
    keyless!("command", -1, CONTAINER, server::command),
    keyless!("config", -2, ADMIN | CONTAINER, server::config),
    keyless!("info", -1, 0, server::info),
    keyless!("dbsize", 1, RF, server::dbsize),
    keyless!("flushdb", -1, D, server::flushdb),
    keyless!("flushall", -1, D, server::flushdb),
    keyless!("time", 1, FAST, server::time),
    keyless!("shutdown", -1, ADMIN, server::shutdown),
    keyless!("memory", -2, READONLY | CONTAINER, server::memory),
    keyless!("object", -2, READONLY | CONTAINER, object::object),
    keyless!("cluster", -2, CONTAINER, server::cluster),
    keyless!("lastsave", 1, FAST, server::lastsave),
    keyless!("save", 1, ADMIN, server::save),
    keyless!("bgsave", -1, ADMIN, server::bgsave),
    keyless!("bgrewriteaof", 1, ADMIN, server::bgrewriteaof),
    keyless!("debug", -2, ADMIN, super::debug::debug),
    keyless!("replicaof", 3, ADMIN, server::replicaof),
    keyless!("role", 1, FAST, server::role),
    keyless!("slaveof", 3, ADMIN, server::replicaof),
    keyless!("wait", 3, 0, server::wait),
    // transactions
    keyless!("multi", 1, FAST | NOQUEUE, transactions::multi),
    keyless!("exec", 1, NOQUEUE, transactions::exec),
    keyless!("discard", 1, FAST | NOQUEUE, transactions::discard),
    keyed!("watch", -2, FAST | NOQUEUE, (1, -1, 1), transactions::watch),
    keyless!("unwatch", 1, FAST | NOQUEUE, transactions::unwatch),
    // keys
    keyed!("del", -2, D, (1, -1, 1), keys::del),
    keyed!("unlink", -2, DF, (1, -1, 1), keys::del),
    keyed!("exists", -2, RF, (1, -1, 1), keys::exists),
    keyed!("touch", -2, RF, (1, -1, 1), keys::exists),
    keyed!("type", 2, RF, (1, 1, 1), keys::type_),
    keyed!("expire", -3, DF, (1, 1, 1), keys::expire),
    keyed!("pexpire", -3, DF, (1, 1, 1), keys::expire),
    keyed!("expireat", -3, DF, (1, 1, 1), keys::expire),
    keyed!("pexpireat", -3, DF, (1, 1, 1), keys::expire),
    keyed!("ttl", 2, RF, (1, 1, 1), keys::ttl),
    keyed!("pttl", 2, RF, (1, 1, 1), keys::ttl),
    keyed!("expiretime", 2, RF, (1, 1, 1), keys::ttl),
    keyed!("pexpiretime", 2, RF, (1, 1, 1), keys::ttl),
    keyed!("persist", 2, DF, (1, 1, 1), keys::persist),
    keyless!("keys", 2, R, keys::keys),
    keyless!("scan", -2, R, keys::scan),
    keyless!("randomkey", 1, R, keys::randomkey),
    keyed!("rename", 3, D, (1, 2, 1), keys::rename),
    keyed!("renamenx", 3, DF, (1, 2, 1), keys::rename),
    keyed!("copy", -3, W, (1, 2, 1), keys::copy),
    // strings
    keyed!("get", 2, RF, (1, 1, 1), strings::get),
    keyed!("set", -3, W, (1, 1, 1), strings::set),
    keyed!("setnx", 3, WF, (1, 1, 1), strings::setnx),
    keyed!("setex", 4, W, (1, 1, 1), strings::setex),
    keyed!("psetex", 4, W, (1, 1, 1), strings::setex),
    keyed!("mget", -2, RF, (1, -1, 1), strings::mget),
    keyed!("mset", -3, W, (1, -1, 2), strings::mset),
    keyed!("msetnx", -3, W, (1, -1, 2), strings::mset),
    keyed!("getset", 3, WF, (1, 1, 1), strings::getset),
    keyed!("getdel", 2, DF, (1, 1, 1), strings::getdel),
    keyed!("getex", -2, DF, (1, 1, 1), strings::getex),
    keyed!("incr", 2, WF, (1, 1, 1), strings::incr),
    keyed!("decr", 2, WF, (1, 1, 1), strings::incr),
    keyed!("incrby", 3, WF, (1, 1, 1), strings::incr),
    keyed!("decrby", 3, WF, (1, 1, 1), strings::incr),
    keyed!("incrbyfloat", 3, WF, (1, 1, 1), strings::incrbyfloat),
    keyed!("append", 3, WF, (1, 1, 1), strings::append),
    keyed!("strlen", 2, RF, (1, 1, 1), strings::strlen),
    keyed!("getrange", 4, R, (1, 1, 1), strings::getrange),
    keyed!("substr", 4, R, (1, 1, 1), strings::getrange),
    keyed!("setrange", 4, W, (1, 1, 1), strings::setrange),
    // hashes
    keyed!("hset", -4, WF, (1, 1, 1), hashes::hset),
    keyed!("hmset", -4, WF, (1, 1, 1), hashes::hset),
    keyed!("hsetnx", 4, WF, (1, 1, 1), hashes::hsetnx),
    keyed!("hget", 3, RF, (1, 1, 1), hashes::hget),
    keyed!("hmget", -3, RF, (1, 1, 1), hashes::hmget),
    keyed!("hdel", -3, DF, (1, 1, 1), hashes::hdel),
    keyed!("hexists", 3, RF, (1, 1, 1), hashes::hexists),
    keyed!("hlen", 2, RF, (1, 1, 1), hashes::hlen),
    keyed!("hstrlen", 3, RF, (1, 1, 1), hashes::hstrlen),
    keyed!("hkeys", 2, R, (1, 1, 1), hashes::hgetall),
    keyed!("hvals", 2, R, (1, 1, 1), hashes::hgetall),
    keyed!("hgetall", 2, R, (1, 1, 1), hashes::hgetall),
    keyed!("hincrby", 4, WF, (1, 1, 1), hashes::hincrby),
    keyed!("hincrbyfloat", 4, WF, (1, 1, 1), hashes::hincrbyfloat),
    keyed!("hrandfield", -2, R, (1, 1, 1), hashes::hrandfield),
    keyed!("hscan", -3, R, (1, 1, 1), hashes::hscan),
    keyless!("reset", 1, FAST | NOQUEUE, connection::reset),
    // pub/sub
    keyless!("subscribe", -2, 0, pubsub::subscribe),
    keyless!("unsubscribe", -1, 0, pubsub::unsubscribe),
    keyless!("psubscribe", -2, 0, pubsub::psubscribe),
    keyless!("punsubscribe", -1, 0, pubsub::punsubscribe),
    keyless!("publish", 3, FAST, pubsub::publish),
    keyless!("pubsub", -2, CONTAINER, pubsub::pubsub),
    keyless!("ssubscribe", -2, 0, pubsub::ssubscribe),
    keyless!("sunsubscribe", -1, 0, pubsub::sunsubscribe),
    keyless!("spublish", 3, FAST, pubsub::spublish),
    // scripting
    keyless!("eval", -3, 0, scripting::eval),
    keyless!("evalsha", -3, 0, scripting::evalsha),
    keyless!("eval_ro", -3, R, scripting::eval),
    keyless!("evalsha_ro", -3, R, scripting::evalsha),
    keyless!("script", -2, CONTAINER, scripting::script),
    keyless!("fcall", -3, 0, functions::fcall),
    keyless!("fcall_ro", -3, R, functions::fcall),
    keyless!("function", -2, CONTAINER, functions::function),
    // lists
    keyed!("lpush", -3, WF, (1, 1, 1), lists::push),
    keyed!("rpush", -3, WF, (1, 1, 1), lists::push),
    keyed!("lpushx", -3, WF, (1, 1, 1), lists::push),
    keyed!("rpushx", -3, WF, (1, 1, 1), lists::push),
    keyed!("lpop", -2, DF, (1, 1, 1), lists::pop),
    keyed!("rpop", -2, DF, (1, 1, 1), lists::pop),
    keyed!("llen", 2, RF, (1, 1, 1), lists::llen),
    keyed!("lrange", 4, R, (1, 1, 1), lists::lrange),
    keyed!("lindex", 3, R, (1, 1, 1), lists::lindex),
    keyed!("lset", 4, W, (1, 1, 1), lists::lset),
    keyed!("linsert", 5, W, (1, 1, 1), lists::linsert),
    keyed!("lrem", 4, D, (1, 1, 1), lists::lrem),
    keyed!("ltrim", 4, D, (1, 1, 1), lists::ltrim),
    keyed!("lmove", 5, W, (1, 2, 1), lists::lmove),
    keyed!("rpoplpush", 3, W, (1, 2, 1), lists::lmove),
    keyed!("lpos", -3, R, (1, 1, 1), lists::lpos),
    numkeys!("lmpop", -4, D, SYNTAX, lists::lmpop),
    keyed!("blpop", -3, D, (1, -2, 1), blocking::blpop),
    keyed!("brpop", -3, D, (1, -2, 1), blocking::blpop),
    keyed!("brpoplpush", 4, W, (1, 2, 1), blocking::blmove),
    keyed!("blmove", 6, W, (1, 2, 1), blocking::blmove),
    numkeys_at_2!("blmpop", -5, D, blocking::blmpop),
    // sets
    keyed!("sadd", -3, WF, (1, 1, 1), sets::sadd),
    keyed!("srem", -3, DF, (1, 1, 1), sets::srem),
    keyed!("sismember", 3, RF, (1, 1, 1), sets::sismember),
    keyed!("smismember", -3, RF, (1, 1, 1), sets::smismember),
    keyed!("smembers", 2, R, (1, 1, 1), sets::smembers),
    keyed!("scard", 2, RF, (1, 1, 1), sets::scard),
    keyed!("spop", -2, DF, (1, 1, 1), sets::spop),
    keyed!("srandmember", -2, R, (1, 1, 1), sets::srandmember),
    keyed!("sinter", -2, R, (1, -1, 1), sets::setop),
    keyed!("sunion", -2, R, (1, -1, 1), sets::setop),
    keyed!("sdiff", -2, R, (1, -1, 1), sets::setop),
    keyed!("sinterstore", -3, W, (1, -1, 1), sets::setop),
    keyed!("sunionstore", -3, W, (1, -1, 1), sets::setop),
    keyed!("sdiffstore", -3, W, (1, -1, 1), sets::setop),
    keyed!("smove", 4, WF, (1, 2, 1), sets::smove),
    keyed!("sscan", -3, R, (1, 1, 1), sets::sscan),
    numkeys!(
        "sintercard",
        -3,
        R,
        "ERR Number of keys can't be greater than number of args",
        sets::sintercard
    ),
    // sorted sets
    keyed!("zadd", -4, WF, (1, 1, 1), zsets::zadd),
    keyed!("zincrby", 4, WF, (1, 1, 1), zsets::zincrby),
    keyed!("zscore", 3, RF, (1, 1, 1), zsets::zscore),
    keyed!("zmscore", -3, RF, (1, 1, 1), zsets::zmscore),
    keyed!("zcard", 2, RF, (1, 1, 1), zsets::zcard),
    keyed!("zcount", 4, RF, (1, 1, 1), zsets::zcount),
    keyed!("zlexcount", 4, RF, (1, 1, 1), zsets::zlexcount),
    keyed!("zrank", 3, RF, (1, 1, 1), zsets::zrank),
    keyed!("zrevrank", 3, RF, (1, 1, 1), zsets::zrank),
    keyed!("zrem", -3, DF, (1, 1, 1), zsets::zrem),
    keyed!("zrange", -4, R, (1, 1, 1), zsets::zrange),
    keyed!("zrangebyscore", -4, R, (1, 1, 1), zsets::zrange),
    keyed!("zrevrangebyscore", -4, R, (1, 1, 1), zsets::zrange),
    keyed!("zrevrange", -4, R, (1, 1, 1), zsets::zrange),
    keyed!("zrangebylex", -4, R, (1, 1, 1), zsets::zrange),
    keyed!("zrevrangebylex", -4, R, (1, 1, 1), zsets::zrange),
    keyed!("zremrangebyrank", 4, D, (1, 1, 1), zsets::zremrange),
    keyed!("zremrangebyscore", 4, D, (1, 1, 1), zsets::zremrange),
    keyed!("zremrangebylex", 4, D, (1, 1, 1), zsets::zremrange),
    keyed!("zpopmin", -2, DF, (1, 1, 1), zsets::zpop),
    keyed!("zpopmax", -2, DF, (1, 1, 1), zsets::zpop),
    keyed!("zscan", -3, R, (1, 1, 1), zsets::zscan),
    numkeys!("zmpop", -4, D, SYNTAX, zsets::zmpop),
    keyed!("bzpopmin", -3, DF, (1, -2, 1), blocking::bzpop),
    keyed!("bzpopmax", -3, DF, (1, -2, 1), blocking::bzpop),
    numkeys_at_2!("bzmpop", -5, D, blocking::bzmpop),
    keyed!("zrandmember", -2, R, (1, 1, 1), zsets::zrandmember),
];

/// Longest command name (lookup of anything longer fails without hashing).
const MAX_NAME: usize = 32;

static INDEX: LazyLock<HashMap<&'static [u8], usize, foldhash::fast::FixedState>> =
    LazyLock::new(|| {
        TABLE
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.as_bytes(), i))
            .collect()
    });

/// The index in [`TABLE`] of the command named `name` (any case), without allocating.
pub fn lookup(name: &[u8]) -> Option<usize> {
    if name.len() > MAX_NAME {
        return None;
    }
    let mut buf = [0u8; MAX_NAME];
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    INDEX.get(&*lower).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_lowercase_and_found_in_any_case() {
        assert_eq!(INDEX.len(), TABLE.len());
        for (i, c) in TABLE.iter().enumerate() {
            assert_eq!(c.name, c.name.to_ascii_lowercase());
            assert_eq!(lookup(c.name.to_ascii_uppercase().as_bytes()), Some(i));
        }
        assert_eq!(lookup(b"nosuchcommand"), None);
    }
}
