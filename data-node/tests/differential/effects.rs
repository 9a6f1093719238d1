//! The effects ember publishes (see `ember_data_node::db::observe`) reproduce it: a
//! second, in-process keyspace that only ever applies them, in order, must equal the
//! server's after every seeded sequence of the differential test. This is what
//! replication and the append-only file rely on.

use std::sync::Arc;

use bytes::Bytes;
use ember_data_node::cluster::Cluster;
use ember_data_node::cmd::{apply_effect, execute, Client};
use ember_data_node::db::{Consumer, Effect};
use ember_data_node::state::ClientInfo;
use ember_data_node::{Config, Reply, ServerState};
use parking_lot::Mutex;

/// A keyspace fed only with a server's effects.
pub struct Follower {
    pub state: ServerState,
    client: Mutex<Client>,
    /// Effects that failed to apply (each a bug: an effect must apply cleanly).
    pub failures: Mutex<Vec<String>>,
    /// How many effects were applied.
    pub applied: std::sync::atomic::AtomicU64,
}

fn client() -> Client {
    Client::new(Arc::new(ClientInfo::new(1, "follower".into(), "".into())))
}

impl Follower {
    pub fn new() -> Arc<Follower> {
        Arc::new(Follower {
            state: ServerState::new(Arc::new(Cluster::standalone()), Config::default()),
            client: Mutex::new(client()),
            failures: Mutex::new(Vec::new()),
            applied: Default::default(),
        })
    }
}

impl Consumer for Follower {
    fn observe(&self, slot: u16, effects: &std::sync::Arc<[Effect]>) {
        for e in effects.iter() {
            self.applied
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match e {
                Effect::Command(argv) => {
                    let r = apply_effect(&self.state, &mut self.client.lock(), argv);
                    if r.is_error() {
                        self.failures.lock().push(format!("{}: {r:?}", show(argv)));
                    }
                }
                Effect::Clear => {
                    self.state.db.drop_slot(slot);
                }
                Effect::Staged(_) => unreachable!("no migration runs here"),
            }
        }
    }
}

fn show(argv: &[Bytes]) -> String {
    argv.iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn run(state: &ServerState, args: &[&[u8]]) -> Reply {
    let args: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
    execute(state, &mut client(), &args)
}

/// Every key of `state` with its type, deadline and content, in a comparable form.
/// Keys whose deadline is within `margin_ms` of now are left out: the two sides read
/// them a moment apart, so one may see them expired and the other not.
fn dump(state: &ServerState, margin_ms: u64) -> Vec<String> {
    let Reply::Array(keys) = run(state, &[b"KEYS", b"*"]) else {
        panic!("KEYS did not answer an array");
    };
    let now = ember_data_node::db::now_ms() as i64;
    let mut out = Vec::new();
    for k in keys {
        let Reply::Bulk(key) = k else { continue };
        let key: &[u8] = &key;
        let deadline = match run(state, &[b"PEXPIRETIME", key]) {
            Reply::Integer(-2) => continue,
            Reply::Integer(d) => d,
            other => panic!("PEXPIRETIME answered {other:?}"),
        };
        if deadline >= 0 && deadline < now + margin_ms as i64 {
            continue;
        }
        let Reply::Simple(ty) = run(state, &[b"TYPE", key]) else {
            continue;
        };
        let content = match &*ty {
            "string" => format!("{:?}", run(state, &[b"GET", key])),
            "list" => format!("{:?}", run(state, &[b"LRANGE", key, b"0", b"-1"])),
            "zset" => format!(
                "{:?}",
                run(state, &[b"ZRANGE", key, b"0", b"-1", b"WITHSCORES"])
            ),
            "set" => sorted(run(state, &[b"SMEMBERS", key])),
            "hash" => sorted(run(state, &[b"HGETALL", key])),
            "none" => continue,
            other => panic!("unknown type {other}"),
        };
        out.push(format!(
            "{} {ty} deadline={deadline} {content}",
            String::from_utf8_lossy(key)
        ));
    }
    out.sort();
    out
}

fn sorted(r: Reply) -> String {
    let mut items: Vec<String> = match r {
        Reply::Array(v) | Reply::Set(v) => v.iter().map(|x| format!("{x:?}")).collect(),
        Reply::Map(v) => v.iter().map(|(k, x)| format!("{k:?}={x:?}")).collect(),
        other => vec![format!("{other:?}")],
    };
    items.sort();
    items.join(",")
}

/// Panics unless `follower` equals `server` (and applied every effect cleanly).
pub fn assert_follows(server: &ServerState, follower: &Follower, context: &str) {
    let failures = std::mem::take(&mut *follower.failures.lock());
    assert!(
        failures.is_empty(),
        "{context}: effects that did not apply:\n  {}",
        failures.join("\n  ")
    );
    let want = dump(server, 200);
    let got = dump(&follower.state, 200);
    if want != got {
        let only_server: Vec<_> = want.iter().filter(|x| !got.contains(x)).collect();
        let only_follower: Vec<_> = got.iter().filter(|x| !want.contains(x)).collect();
        panic!(
            "{context}: the keyspace rebuilt from effects differs ({} keys vs {})\n  only on the server: {only_server:?}\n  only rebuilt: {only_follower:?}",
            want.len(),
            got.len()
        );
    }
}

/// What each rewritten write publishes: absolute, deterministic commands; nothing for a
/// write that changed nothing; `DEL` for a key found expired, before the command.
#[test]
fn writes_publish_absolute_deterministic_effects() {
    use ember_data_node::db::observe::Recorder;
    let state = ServerState::new(Arc::new(Cluster::standalone()), Config::default());
    let rec = Arc::new(Recorder::default());
    state.db.observers.subscribe(rec.clone());
    let published = |args: &[&[u8]]| -> Vec<String> {
        run(&state, args);
        rec.take()
            .into_iter()
            .map(|(_, e)| match e {
                Effect::Command(argv) => show(&argv),
                Effect::Clear => "CLEAR".into(),
                Effect::Staged(_) => "STAGED".into(),
            })
            .collect()
    };
    let now = ember_data_node::db::now_ms();
    let near = |text: &str, prefix: &str, want: u64| {
        let at: u64 = text
            .strip_prefix(prefix)
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("{text:?} is not {prefix}<ms>"));
        assert!(
            (want..want + 5_000).contains(&at),
            "{text}: deadline {at} not about {want}"
        );
    };

    assert_eq!(published(&[b"SET", b"k", b"v", b"NX", b"GET"]), ["SET k v"]);
    assert!(published(&[b"SET", b"k", b"w", b"NX"]).is_empty(), "no-op");
    let e = published(&[b"SET", b"k", b"v", b"EX", b"100"]);
    near(&e[0], "SET k v PXAT ", now + 100_000);
    let e = published(&[b"EXPIRE", b"k", b"50"]);
    near(&e[0], "PEXPIREAT k ", now + 50_000);
    let e = published(&[b"SETEX", b"k", b"10", b"x"]);
    near(&e[0], "SET k x PXAT ", now + 10_000);
    let e = published(&[b"GETEX", b"k", b"PX", b"7000"]);
    near(&e[0], "PEXPIREAT k ", now + 7_000);
    assert_eq!(published(&[b"GETEX", b"k", b"PERSIST"]), ["PERSIST k"]);
    assert!(
        published(&[b"GETEX", b"k"]).is_empty(),
        "a plain GETEX reads"
    );
    assert_eq!(published(&[b"EXPIRE", b"k", b"-1"]), ["DEL k"]);
    assert_eq!(
        published(&[b"INCRBYFLOAT", b"f", b"1.5"]),
        ["SET f 1.5 KEEPTTL"]
    );
    assert_eq!(
        published(&[b"HINCRBYFLOAT", b"h", b"x", b"2.5"]),
        ["HSET h x 2.5"]
    );
    assert_eq!(published(&[b"INCR", b"n"]), ["INCR n"]);

    // SPOP: the members chosen, then the key's end.
    run(&state, &[b"SADD", b"s", b"a", b"b", b"c"]);
    rec.take();
    let e = published(&[b"SPOP", b"s"]);
    let popped = e[0].strip_prefix("SREM s ").expect("SPOP publishes SREM");
    assert!(["a", "b", "c"].contains(&popped), "{e:?}");
    assert_eq!(published(&[b"SPOP", b"s", b"5"]), ["DEL s"]);
    assert!(published(&[b"SPOP", b"s"]).is_empty(), "SPOP of nothing");

    // A key found expired is published as DEL, by reads too.
    run(&state, &[b"SET", b"t", b"1", b"PX", b"1"]);
    rec.take();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while run(&state, &[b"EXISTS", b"t"]) != Reply::Integer(0) {
        assert!(std::time::Instant::now() < deadline, "t never expired");
    }
    assert_eq!(rec.take().len(), 1, "one DEL for the expired key");

    // A transaction is published as one batch, in order.
    let mut c = client();
    for args in [
        &["MULTI"][..],
        &["SET", "m", "1"],
        &["INCR", "m"],
        &["EXEC"],
    ] {
        let args: Vec<Bytes> = args.iter().map(|a| Bytes::from(*a)).collect();
        execute(&state, &mut c, &args);
    }
    let batches = rec.take_batches();
    assert_eq!(batches.len(), 1, "{batches:?}");
    assert_eq!(
        batches[0].1,
        [
            Effect::Command(vec!["SET".into(), "m".into(), "1".into()]),
            Effect::Command(vec!["INCR".into(), "m".into()]),
        ]
    );

    // FLUSHALL: every non-empty slot cleared.
    let e = published(&[b"FLUSHALL"]);
    assert!(!e.is_empty() && e.iter().all(|x| x == "CLEAR"), "{e:?}");
}

/// `observe::rebuild` recreates keys of every type, big ones in batches, with their
/// deadlines.
#[test]
fn rebuild_recreates_every_type() {
    use ember_data_node::db::observe::{rebuild, REBUILD_BATCH};
    let state = ServerState::new(Arc::new(Cluster::standalone()), Config::default());
    let n = REBUILD_BATCH * 3 + 5;
    for script in [
        "SET {k}s hello",
        "SET {k}t bye PX 600000",
        "DEBUG-FILL",
        "ZADD {k}z 1.5 a -inf b inf c 0.1 d",
        "HSET {k}h f1 v1 f2 v2",
    ] {
        if script == "DEBUG-FILL" {
            for i in 0..n {
                let (i, s) = (i.to_string(), (i as f64 / 3.0).to_string());
                run(&state, &[b"RPUSH", b"{k}l", i.as_bytes()]);
                run(&state, &[b"SADD", b"{k}set", i.as_bytes()]);
                run(&state, &[b"HSET", b"{k}bigh", i.as_bytes(), s.as_bytes()]);
                run(&state, &[b"ZADD", b"{k}bigz", s.as_bytes(), i.as_bytes()]);
            }
            continue;
        }
        let args: Vec<&[u8]> = script.split(' ').map(str::as_bytes).collect();
        assert!(!run(&state, &args).is_error(), "{script}");
    }
    assert_eq!(run(&state, &[b"LLEN", b"{k}l"]), Reply::Integer(n as i64));
    let copy = Follower::new();
    let slot = ember_core::key_slot(b"{k}");
    let commands = state.db.with_slot(slot, |t| {
        let keys: Vec<Vec<u8>> = t.keys().map(<[u8]>::to_vec).collect();
        keys.iter()
            .flat_map(|k| {
                let at = t.expire_at(k);
                rebuild(k, t.get(k, 0).expect("present"), at)
            })
            .collect::<Vec<_>>()
    });
    assert!(
        commands.iter().all(|c| c.len() <= 2 + 2 * REBUILD_BATCH),
        "a command over the batch size"
    );
    copy.observe(slot, &commands.into_iter().map(Effect::Command).collect());
    assert_follows(&state, &copy, "rebuilt");
    assert_eq!(dump(&state, 0).len(), 8);
}

/// Seeded writes whose replies cannot be compared with Redis's (random picks, relative
/// deadlines that pass during the run, expiry by reads and by the sweep, transactions,
/// flushes): the keyspace rebuilt from the effects equals the server's after each round.
#[test]
fn effects_rebuild_the_keyspace_under_random_writes() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    for seed in [1u64, 2, 3, 4] {
        let state = ServerState::new(Arc::new(Cluster::standalone()), Config::default());
        let follower = Follower::new();
        state.db.observers.subscribe(follower.clone());
        let mut rng = StdRng::seed_from_u64(seed);
        let mut c = client();
        for round in 0..20 {
            for _ in 0..300 {
                let k = format!("{{t}}{}", rng.random_range(0..12));
                let m = rng.random_range(0..40).to_string();
                let n = rng.random_range(1..30).to_string();
                let ms = rng.random_range(1..40).to_string();
                let cmd: Vec<&str> = match rng.random_range(0..22) {
                    0 | 1 => vec!["SADD", &k, &m, &n],
                    2 => vec!["SPOP", &k],
                    3 => vec!["SPOP", &k, &n],
                    4 => vec!["SET", &k, &m, "PX", &ms],
                    5 => vec!["PEXPIRE", &k, &ms],
                    6 => vec!["EXPIRE", &k, &n, "GT"],
                    7 => vec!["SETEX", &k, &n, &m],
                    8 => vec!["INCRBYFLOAT", &k, "0.1"],
                    9 => vec!["HINCRBYFLOAT", &k, &m, "1.5"],
                    10 => vec!["GETEX", &k, "PX", &ms],
                    11 => vec!["GETEX", &k, "PERSIST"],
                    12 => vec!["ZADD", &k, &n, &m],
                    13 => vec!["ZPOPMIN", &k, &n],
                    14 => vec!["RPUSH", &k, &m, &n],
                    15 => vec!["LMOVE", &k, "{t}0", "LEFT", "RIGHT"],
                    16 => vec!["HSET", &k, &m, &n],
                    17 => vec!["GET", &k],
                    18 => vec!["SRANDMEMBER", &k, "-3"],
                    19 => vec!["EXISTS", &k],
                    20 => vec!["INCR", &k],
                    _ => vec!["COPY", &k, "{t}copy", "REPLACE"],
                };
                let args: Vec<Bytes> = cmd.iter().map(|a| Bytes::from(a.to_string())).collect();
                if rng.random_bool(0.05) {
                    // The same write inside a transaction.
                    execute(&state, &mut c, &["MULTI".into()]);
                    execute(&state, &mut c, &args);
                    execute(&state, &mut c, &["INCR".into(), "{t}tx".into()]);
                    execute(&state, &mut c, &["EXEC".into()]);
                } else {
                    execute(&state, &mut c, &args);
                }
            }
            if round % 7 == 6 {
                run(&state, &[b"FLUSHALL"]);
            }
            state.db.active_expire_cycle(0, ember_data_node::db::SLOTS);
            assert_follows(&state, &follower, &format!("seed {seed}, round {round}"));
        }
    }
}
