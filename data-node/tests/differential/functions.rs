//! Functions compared with redis-server: FUNCTION LOAD / LIST / DELETE / FLUSH / DUMP /
//! RESTORE / STATS / KILL, FCALL and FCALL_RO, and their errors (see `scenario.rs`).
//! Libraries register one function each and listings show one library, so that both
//! list in the same order.

use super::scenario::*;

const LIB1: &str = "#!lua name=lib1\n\
    redis.register_function('getk', function(keys, args) return redis.call('GET', keys[1]) end)";
const LIB1_V2: &str = "#!lua name=lib1\n\
    redis.register_function('getk2', function(keys, args) return {keys[1], args[1], #args} end)";
const LIB2: &str = "#!lua name=lib2\n\
    redis.register_function{function_name='setk', description='sets a key', \
    callback=function(keys, args) return redis.call('SET', keys[1], args[1]) end}";
const LIB_RO: &str = "#!lua name=libro\n\
    redis.register_function{function_name='readk', flags={'no-writes', 'allow-stale'}, \
    callback=function(keys) return redis.call('EXISTS', keys[1]) end}";
const LIB_BAD_WRITE: &str = "#!lua name=libw\n\
    redis.register_function{function_name='sneaky', flags={'no-writes'}, \
    callback=function(keys) return redis.call('SET', keys[1], 'x') end}";
const LIB_ERRORS: &str = "#!lua name=liberr\n\
    redis.register_function('boom', function() error('boom') end)\n\
    ";
const LIB_ERRORS2: &str = "#!lua name=liberr2\n\
    redis.register_function('undefined', function() return nosuch end)";
const LIB_ERRORS3: &str = "#!lua name=liberr3\n\
    redis.register_function('setglobal', function() x = 1 end)";
const LIB_ERRORS4: &str = "#!lua name=liberr4\n\
    redis.register_function('badcall', function() return redis.call('nosuchcmd') end)";
const LIB_ERRORS5: &str = "#!lua name=liberr5\n\
    redis.register_function('register', function() redis.register_function('z', function() end) end)";
const LIB_CONVERT: &str = "#!lua name=libconv\n\
    redis.register_function('conv', function(keys, args) \
    return {1, 2.9, 'x', false, {ok='fine'}, redis.status_reply('S'), string.format('%d', 3)} end)";

pub fn scenarios() -> Vec<Scenario> {
    vec![
        (
            "load, call, replace, delete",
            1,
            vec![
                Run(0, &["FUNCTION", "FLUSH"]),
                Run(0, &["FUNCTION", "LOAD", LIB1]),
                Run(0, &["SET", "{f}k", "v"]),
                Run(0, &["FCALL", "getk", "1", "{f}k"]),
                Run(0, &["FCALL_RO", "getk", "1", "{f}k"]),
                Run(0, &["FUNCTION", "LOAD", LIB1_V2]),
                Run(0, &["FUNCTION", "LOAD", "REPLACE", LIB1_V2]),
                Run(0, &["FCALL", "getk", "1", "{f}k"]),
                Run(0, &["FCALL", "getk2", "1", "{f}k", "a", "b"]),
                Run(0, &["FUNCTION", "LOAD", LIB2]),
                Run(0, &["FCALL", "setk", "1", "{f}k2", "value"]),
                Run(0, &["GET", "{f}k2"]),
                // (Redis lists libraries in its hash table's order: one at a time.)
                Run(0, &["FUNCTION", "LIST", "LIBRARYNAME", "*1"]),
                Run(0, &["FUNCTION", "LIST", "LIBRARYNAME", "LIB2", "WITHCODE"]),
                Run(0, &["FUNCTION", "LIST", "WITHCODE", "LIBRARYNAME", "nomatch*"]),
                Run(0, &["FUNCTION", "STATS"]),
                Run(0, &["FUNCTION", "DELETE", "lib1"]),
                Run(0, &["FUNCTION", "DELETE", "lib1"]),
                Run(0, &["FCALL", "getk2", "1", "{f}k"]),
                Run(0, &["FUNCTION", "STATS"]),
                Run(0, &["FUNCTION", "FLUSH", "SYNC"]),
                Run(0, &["FUNCTION", "LIST"]),
            ],
        ),
        (
            "flags, read-only calls, conversions",
            1,
            vec![
                Run(0, &["FUNCTION", "FLUSH", "ASYNC"]),
                Run(0, &["FUNCTION", "LOAD", LIB_RO]),
                Run(0, &["FUNCTION", "LOAD", LIB2]),
                Run(0, &["FUNCTION", "LOAD", LIB_BAD_WRITE]),
                Run(0, &["FUNCTION", "LOAD", LIB_CONVERT]),
                Run(0, &["FCALL_RO", "readk", "1", "{f}k"]),
                Run(0, &["FCALL", "readk", "1", "{f}k"]),
                Run(0, &["FCALL_RO", "setk", "1", "{f}k", "v"]),
                Run(0, &["FCALL", "sneaky", "1", "{f}k"]),
                Run(0, &["FCALL", "conv", "0"]),
                Run(0, &["FUNCTION", "LIST", "LIBRARYNAME", "libro"]),
            ],
        ),
        (
            "errors: loading, calling, arguments",
            1,
            vec![
                Run(0, &["FUNCTION", "FLUSH"]),
                Run(0, &["FUNCTION", "LOAD", "return 1"]),
                Run(0, &["FUNCTION", "LOAD", "#!lua name=x"]),
                Run(0, &["FUNCTION", "LOAD", "#!lua\nreturn 1"]),
                Run(0, &["FUNCTION", "LOAD", "#!lua name=a name=b\n"]),
                Run(0, &["FUNCTION", "LOAD", "#!lua foo=b\n"]),
                Run(0, &["FUNCTION", "LOAD", "#!js name=b\n"]),
                Run(0, &["FUNCTION", "LOAD", "#!lua name=a-b\n"]),
                Run(0, &["FUNCTION", "LOAD", "#!lua name=x\nreturn 1"]),
                Run(0, &["FUNCTION", "LOAD", "#!lua name=x\nreturn 1 +"]),
                Run(0, &["FUNCTION", "LOAD", "#!lua name=x\nstring.format('x')"]),
                Run(0, &["FUNCTION", "LOAD", "#!lua name=x\nredis.call('get', 'x')"]),
                Run(0, &["FUNCTION", "LOAD", "#!lua name=x\nx = 1"]),
                Run(0, &["FUNCTION", "LOAD", "#!lua name=x\nredis.register_function('f')"]),
                Run(0, &["FUNCTION", "LOAD", "#!lua name=x\nredis.register_function{function_name='f', callback=function() end, flags={'bogus'}}"]),
                Run(0, &["FUNCTION", "LOAD", "REPLACE"]),
                Run(0, &["FUNCTION", "LOAD", "FOO", LIB1]),
                Run(0, &["FUNCTION", "LOAD", LIB_ERRORS]),
                Run(0, &["FUNCTION", "LOAD", LIB_ERRORS2]),
                Run(0, &["FUNCTION", "LOAD", LIB_ERRORS3]),
                Run(0, &["FUNCTION", "LOAD", LIB_ERRORS4]),
                Run(0, &["FUNCTION", "LOAD", LIB_ERRORS5]),
                Run(0, &["FCALL", "boom", "0"]),
                Run(0, &["FCALL", "undefined", "0"]),
                Run(0, &["FCALL", "setglobal", "0"]),
                Run(0, &["FCALL", "badcall", "0"]),
                Run(0, &["FCALL", "register", "0"]),
                Run(0, &["FCALL", "nosuch", "0"]),
                Run(0, &["FCALL", "boom", "-1"]),
                Run(0, &["FCALL", "boom", "x"]),
                Run(0, &["FCALL", "boom", "2", "a"]),
                Run(0, &["FUNCTION", "LOAD", "#!lua name=dup\nredis.register_function('boom', function() end)"]),
                Run(0, &["FUNCTION", "DELETE", "nolib"]),
                Run(0, &["FUNCTION", "FLUSH", "NOW"]),
                Run(0, &["FUNCTION", "LIST", "FOO"]),
                Run(0, &["FUNCTION", "LIST", "LIBRARYNAME"]),
                Run(0, &["FUNCTION", "KILL"]),
                Run(0, &["FUNCTION", "NOSUCH"]),
                Run(0, &["FUNCTION", "RESTORE", "garbage"]),
                Run(0, &["FUNCTION", "RESTORE", "garbage", "BAD"]),
                Run(0, &["FUNCTION", "FLUSH"]),
            ],
        ),
    ]
}
