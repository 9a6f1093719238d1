//! Client-side caching compared with redis-server: `CLIENT TRACKING` in its modes,
//! `CLIENT CACHING`, `GETREDIR`, `TRACKINGINFO`, and the invalidations themselves: RESP3
//! pushes on the tracking connection, and over RESP2 the `__redis__:invalidate` messages
//! of a redirect target (see `scenario.rs`).

use super::scenario::*;

/// Options and their errors (the same over both protocols).
fn options() -> Scenario {
    (
        "tracking options and their errors",
        1,
        vec![
            Run(0, &["CLIENT", "TRACKINGINFO"]),
            Run(0, &["CLIENT", "GETREDIR"]),
            Run(0, &["CLIENT", "TRACKING", "maybe"]),
            Run(0, &["CLIENT", "TRACKING", "on", "PREFIX", "a"]),
            Run(0, &["CLIENT", "TRACKING", "on", "OPTIN", "OPTOUT"]),
            Run(0, &["CLIENT", "TRACKING", "on", "BCAST", "OPTIN"]),
            Run(0, &["CLIENT", "TRACKING", "on", "REDIRECT", "999999"]),
            Run(0, &["CLIENT", "TRACKING", "on", "REDIRECT", "x"]),
            Run(
                0,
                &[
                    "CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a", "PREFIX", "ab",
                ],
            ),
            Run(0, &["CLIENT", "TRACKING", "on", "FOO"]),
            Run(0, &["CLIENT", "CACHING", "yes"]),
            Run(0, &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "a"]),
            Run(0, &["CLIENT", "TRACKING", "on"]),
            Run(0, &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "b"]),
            Run(0, &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "bc"]),
            Run(0, &["CLIENT", "TRACKINGINFO"]),
            Run(0, &["CLIENT", "GETREDIR"]),
            Run(0, &["CLIENT", "TRACKING", "off"]),
            Run(0, &["CLIENT", "TRACKING", "on", "OPTOUT", "NOLOOP"]),
            Run(0, &["CLIENT", "CACHING", "yes"]),
            Run(0, &["CLIENT", "CACHING", "no"]),
            Run(0, &["CLIENT", "TRACKINGINFO"]),
            Run(0, &["CLIENT", "TRACKINGINFO"]),
            Run(0, &["CLIENT", "TRACKING", "on", "OPTIN"]),
            Run(0, &["CLIENT", "TRACKING", "off"]),
            Run(0, &["CLIENT", "TRACKING", "on", "OPTIN"]),
            Run(0, &["CLIENT", "CACHING", "maybe"]),
            Run(0, &["CLIENT", "CACHING", "no"]),
            Run(0, &["RESET"]),
            Run(0, &["CLIENT", "TRACKINGINFO"]),
        ],
    )
}

pub fn resp3() -> Vec<Scenario> {
    vec![
        options(),
        (
            "RESP3: invalidations of what was read, once; BCAST; OPTIN; flush",
            2,
            vec![
                Run(0, &["CLIENT", "TRACKING", "on"]),
                Run(1, &["MSET", "{c}a", "1", "{c}b", "2"]),
                Run(0, &["GET", "{c}a"]),
                Run(0, &["MGET", "{c}a", "{c}b"]),
                Run(1, &["SET", "{c}a", "3"]),
                Read(0),
                // Forgotten once told: a second write sends nothing until read again.
                Run(1, &["SET", "{c}a", "4"]),
                Run(1, &["DEL", "{c}b"]),
                Read(0),
                Run(0, &["HGET", "{c}h", "f"]),
                Run(1, &["HSET", "{c}h", "f", "v"]),
                Read(0),
                Run(0, &["GET", "{c}e"]),
                Run(1, &["SET", "{c}e", "v", "PX", "1"]),
                Read(0),
                Run(0, &["GET", "{c}a"]),
                Run(1, &["FLUSHALL"]),
                Read(0),
                Run(0, &["CLIENT", "TRACKING", "off"]),
                Run(0, &["CLIENT", "TRACKING", "on", "BCAST", "PREFIX", "{c}x"]),
                Run(1, &["SET", "{c}y", "1"]),
                Run(1, &["SET", "{c}x1", "1"]),
                Read(0),
                Run(1, &["LPUSH", "{c}x2", "1"]),
                Read(0),
                Run(0, &["CLIENT", "TRACKING", "off"]),
                Run(0, &["CLIENT", "TRACKING", "on", "OPTIN"]),
                Run(0, &["GET", "{c}o1"]),
                Run(0, &["CLIENT", "CACHING", "yes"]),
                Run(0, &["GET", "{c}o2"]),
                Run(1, &["MSET", "{c}o1", "1", "{c}o2", "2"]),
                Read(0),
            ],
        ),
    ]
}

pub fn resp2() -> Vec<Scenario> {
    vec![
        options(),
        (
            "RESP2: invalidations as __redis__:invalidate messages of the redirect target",
            3,
            vec![
                Run(1, &["SUBSCRIBE", "__redis__:invalidate"]),
                Redirect(0, 1, &[]),
                Run(0, &["GET", "{c}a"]),
                Run(0, &["SMEMBERS", "{c}s"]),
                Run(2, &["SET", "{c}a", "1"]),
                Read(1),
                Run(2, &["SADD", "{c}s", "m"]),
                Read(1),
                Run(0, &["GET", "{c}a"]),
                Run(0, &["SET", "{c}a", "2"]),
                Read(1),
                Run(0, &["CLIENT", "TRACKING", "off"]),
                Redirect(0, 1, &["NOLOOP"]),
                Run(0, &["GET", "{c}a"]),
                Run(0, &["SET", "{c}a", "3"]),
                Run(2, &["GET", "{c}a"]),
                Run(0, &["GET", "{c}a"]),
                Run(2, &["SET", "{c}a", "4"]),
                Read(1),
                Run(2, &["FLUSHALL"]),
                Read(1),
            ],
        ),
    ]
}
