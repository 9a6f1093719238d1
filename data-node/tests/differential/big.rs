//! Seeded sequences on big sets, hashes and keyspaces (thousands of elements), where
//! Redis's replies depend on randomness or on its table layout:
//!
//! - `SPOP` runs on one server and its effect (the members removed) is applied to the
//!   other with `SREM`, which must remove exactly them: both stay equal.
//! - `SRANDMEMBER` / `HRANDFIELD` replies are checked for size, distinctness (positive
//!   counts), membership and values, against what redis-server holds.
//! - `SSCAN` / `HSCAN` / `SCAN` loops run on both servers with deletions and additions
//!   between calls; each must return every element present for the whole scan, and
//!   nothing that never existed.
//!
//! Every few steps, and at the end, the collections are compared whole.

use std::collections::{BTreeSet, HashMap, HashSet};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::Connection;

use super::{connect, seeds, RedisServer};

const BIG_SEEDS: &[u64] = &[11, 12, 13];
const STEPS_PER_SEED: usize = 120;
const SET: &str = "{b}set";
const HASH: &str = "{b}hash";

/// Elements with O(1) random picks, as the test's model of a collection.
#[derive(Default)]
struct Pool {
    items: Vec<String>,
    at: HashMap<String, usize>,
}

impl Pool {
    fn insert(&mut self, x: String) -> bool {
        if self.at.contains_key(&x) {
            return false;
        }
        self.at.insert(x.clone(), self.items.len());
        self.items.push(x);
        true
    }
    fn remove(&mut self, x: &str) -> bool {
        let Some(i) = self.at.remove(x) else {
            return false;
        };
        self.items.swap_remove(i);
        if let Some(moved) = self.items.get(i) {
            self.at.insert(moved.clone(), i);
        }
        true
    }
    fn random(&self, rng: &mut StdRng) -> Option<String> {
        (!self.items.is_empty()).then(|| self.items[rng.random_range(0..self.items.len())].clone())
    }
    fn len(&self) -> usize {
        self.items.len()
    }
    fn contains(&self, x: &str) -> bool {
        self.at.contains_key(x)
    }
    fn all(&self) -> BTreeSet<String> {
        self.items.iter().cloned().collect()
    }
}

struct Run {
    rng: StdRng,
    r: Connection,
    e: Connection,
    set: Pool,
    hash: HashMap<String, String>,
    fields: Pool,
    /// The string keys (the set and the hash aside).
    keys: Pool,
    next_id: usize,
    seed: u64,
}

fn strings(con: &mut Connection, args: &[String]) -> Vec<String> {
    let mut c = redis::cmd(&args[0]);
    c.arg(&args[1..]);
    c.query::<Vec<String>>(con)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn int(con: &mut Connection, args: &[String]) -> i64 {
    let mut c = redis::cmd(&args[0]);
    c.arg(&args[1..]);
    c.query::<i64>(con)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// One page of a `*SCAN`: the next cursor and the elements.
fn scan_page(con: &mut Connection, args: &[String]) -> (String, Vec<String>) {
    let mut c = redis::cmd(&args[0]);
    c.arg(&args[1..]);
    c.query::<(String, Vec<String>)>(con)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

impl Run {
    fn new(seed: u64, redis_url: &str, ember_url: &str) -> Run {
        Run {
            rng: StdRng::seed_from_u64(seed),
            r: connect(redis_url),
            e: connect(ember_url),
            set: Pool::default(),
            hash: HashMap::new(),
            fields: Pool::default(),
            keys: Pool::default(),
            next_id: 0,
            seed,
        }
    }

    fn both_int(&mut self, args: &[String]) -> i64 {
        let (want, got) = (int(&mut self.r, args), int(&mut self.e, args));
        assert_eq!(got, want, "seed {}: {args:?}", self.seed);
        want
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!(
            "{prefix}{}-{}",
            self.next_id,
            self.rng.random_range(0..1000)
        )
    }

    fn add_members(&mut self, n: usize) -> Vec<String> {
        let members: Vec<String> = (0..n).map(|_| self.fresh("m")).collect();
        for chunk in members.chunks(500) {
            let mut args = vec!["SADD".to_string(), SET.into()];
            args.extend(chunk.iter().cloned());
            self.both_int(&args);
        }
        for m in &members {
            self.set.insert(m.clone());
        }
        members
    }

    fn add_fields(&mut self, n: usize) -> Vec<String> {
        let pairs: Vec<(String, String)> =
            (0..n).map(|_| (self.fresh("f"), self.fresh("v"))).collect();
        for chunk in pairs.chunks(500) {
            let mut args = vec!["HSET".to_string(), HASH.into()];
            for (f, v) in chunk {
                args.extend([f.clone(), v.clone()]);
            }
            self.both_int(&args);
        }
        let mut fields = Vec::new();
        for (f, v) in pairs {
            self.fields.insert(f.clone());
            self.hash.insert(f.clone(), v);
            fields.push(f);
        }
        fields
    }

    fn add_keys(&mut self, n: usize) -> Vec<String> {
        let mut keys = Vec::new();
        for _ in 0..n {
            // A third share one slot (so its table is paged), the rest spread.
            let k = if self.rng.random_bool(0.33) {
                self.fresh("{b}k")
            } else {
                self.fresh("k")
            };
            for con in [&mut self.r, &mut self.e] {
                let _: () = redis::cmd("SET").arg(&k).arg("v").query(con).unwrap();
            }
            self.keys.insert(k.clone());
            keys.push(k);
        }
        keys
    }

    /// Removes `n` random members / fields / keys from both servers and adds `n` new
    /// ones: what happens between two calls of a scan.
    fn churn(&mut self, what: &str, n: usize) -> (Vec<String>, Vec<String>) {
        let mut removed = Vec::new();
        for _ in 0..n {
            let victim = match what {
                "set" => self.set.random(&mut self.rng),
                "hash" => self.fields.random(&mut self.rng),
                _ => self.keys.random(&mut self.rng),
            };
            let Some(v) = victim else { break };
            let args = match what {
                "set" => vec!["SREM".into(), SET.into(), v.clone()],
                "hash" => vec!["HDEL".into(), HASH.into(), v.clone()],
                _ => vec!["DEL".into(), v.clone()],
            };
            assert_eq!(self.both_int(&args), 1);
            match what {
                "set" => self.set.remove(&v),
                "hash" => {
                    self.hash.remove(&v);
                    self.fields.remove(&v)
                }
                _ => self.keys.remove(&v),
            };
            removed.push(v);
        }
        let added = match what {
            "set" => self.add_members(n),
            "hash" => self.add_fields(n),
            _ => self.add_keys(n),
        };
        (removed, added)
    }

    /// `SPOP` on one server, its effect applied to the other with `SREM`.
    fn spop(&mut self) {
        let count = match self.rng.random_range(0..4) {
            0 => None,
            1 => Some(0),
            _ => Some(self.rng.random_range(1..400)),
        };
        let ember_first = self.rng.random_bool(0.5);
        let mut args = s(&["SPOP", SET]);
        if let Some(c) = count {
            args.push(c.to_string());
        }
        let card = self.set.len();
        let (popper, other) = if ember_first {
            (&mut self.e, &mut self.r)
        } else {
            (&mut self.r, &mut self.e)
        };
        let popped: Vec<String> = match count {
            None => redis::cmd("SPOP")
                .arg(SET)
                .query::<Option<String>>(popper)
                .unwrap()
                .into_iter()
                .collect(),
            Some(_) => strings(popper, &args),
        };
        let seed = self.seed;
        assert_eq!(
            popped.len(),
            count.unwrap_or(1).min(card),
            "seed {seed}: {args:?} (ember first: {ember_first})"
        );
        let distinct: HashSet<&String> = popped.iter().collect();
        assert_eq!(
            distinct.len(),
            popped.len(),
            "seed {seed}: {args:?} repeats"
        );
        if !popped.is_empty() {
            let mut srem = vec!["SREM".to_string(), SET.into()];
            srem.extend(popped.iter().cloned());
            assert_eq!(
                int(other, &srem),
                popped.len() as i64,
                "seed {seed}: {args:?} popped non-members (ember first: {ember_first})"
            );
        }
        for m in &popped {
            assert!(self.set.remove(m), "seed {seed}: {m} popped twice");
        }
    }

    fn srandmember(&mut self) {
        let c: i64 = self.rng.random_range(-600..600);
        let args = vec!["SRANDMEMBER".into(), SET.into(), c.to_string()];
        let (mine, theirs) = (strings(&mut self.e, &args), strings(&mut self.r, &args));
        assert_eq!(mine.len(), theirs.len(), "seed {}: {args:?}", self.seed);
        self.check_picks(&args, c, &mine, |run, m| run.set.contains(m));
    }

    fn hrandfield(&mut self) {
        let c: i64 = self.rng.random_range(-600..600);
        let with = self.rng.random_bool(0.5);
        let mut args = vec!["HRANDFIELD".into(), HASH.into(), c.to_string()];
        if with {
            args.push("WITHVALUES".into());
        }
        let (mine, theirs) = (strings(&mut self.e, &args), strings(&mut self.r, &args));
        assert_eq!(mine.len(), theirs.len(), "seed {}: {args:?}", self.seed);
        let fields: Vec<String> = if with {
            for pair in mine.chunks(2) {
                assert_eq!(
                    self.hash.get(&pair[0]),
                    Some(&pair[1]),
                    "seed {}: {args:?}",
                    self.seed
                );
            }
            mine.chunks(2).map(|p| p[0].clone()).collect()
        } else {
            mine
        };
        self.check_picks(&args, c, &fields, |run, f| run.fields.contains(f));
    }

    fn check_picks(
        &self,
        args: &[String],
        count: i64,
        picks: &[String],
        member: impl Fn(&Run, &str) -> bool,
    ) {
        let seed = self.seed;
        let len = if args[0] == "SRANDMEMBER" {
            self.set.len()
        } else {
            self.fields.len()
        };
        if len == 0 {
            assert!(picks.is_empty(), "seed {seed}: {args:?} of a missing key");
        } else if count >= 0 {
            assert_eq!(
                picks.len(),
                (count as usize).min(len),
                "seed {seed}: {args:?}"
            );
            let distinct: HashSet<&String> = picks.iter().collect();
            assert_eq!(distinct.len(), picks.len(), "seed {seed}: {args:?} repeats");
        } else {
            assert_eq!(
                picks.len(),
                count.unsigned_abs() as usize,
                "seed {seed}: {args:?}"
            );
        }
        for p in picks {
            assert!(
                member(self, p),
                "seed {seed}: {args:?} gave {p}, not an element"
            );
        }
    }

    /// A whole scan on both servers, interleaved, with churn between calls.
    fn scan(&mut self, what: &str) {
        let count = self.rng.random_range(5..150).to_string();
        let pattern = self.rng.random_bool(0.2).then(|| {
            match what {
                "set" => "m1*",
                "hash" => "f2*",
                _ => "{b}*",
            }
            .to_string()
        });
        let args = |cursor: &str| {
            let mut v = match what {
                "set" => s(&["SSCAN", SET, cursor]),
                "hash" => s(&["HSCAN", HASH, cursor]),
                _ => s(&["SCAN", cursor]),
            };
            v.extend(["COUNT".to_string(), count.clone()]);
            if let Some(p) = &pattern {
                v.extend(["MATCH".to_string(), p.clone()]);
            }
            v
        };
        let start = match what {
            "set" => self.set.all(),
            "hash" => self.fields.all(),
            _ => self.keys.all(),
        };
        let mut removed = BTreeSet::new();
        let mut ever: BTreeSet<String> = start.clone();
        let mut cursors = [Some("0".to_string()), Some("0".to_string())];
        let mut seen = [BTreeSet::new(), BTreeSet::new()];
        let mut calls = 0;
        while cursors.iter().any(Option::is_some) {
            for (i, con) in [&mut self.r, &mut self.e].into_iter().enumerate() {
                let Some(c) = cursors[i].take() else { continue };
                let (next, page) = scan_page(con, &args(&c));
                if what == "hash" {
                    for pair in page.chunks(2) {
                        assert_eq!(
                            self.hash.get(&pair[0]),
                            Some(&pair[1]),
                            "seed {}: HSCAN value",
                            self.seed
                        );
                        seen[i].insert(pair[0].clone());
                    }
                } else {
                    seen[i].extend(page);
                }
                cursors[i] = (next != "0").then_some(next);
            }
            calls += 1;
            assert!(calls < 20_000, "seed {}: the scan does not end", self.seed);
            let n = self.rng.random_range(0..6);
            let (gone, new) = self.churn(what, n);
            removed.extend(gone);
            ever.extend(new);
        }
        let matches = |x: &String| match &pattern {
            None => true,
            Some(p) => x.starts_with(p.trim_end_matches('*')),
        };
        for (server, seen) in ["redis", "ember"].iter().zip(&seen) {
            for x in start.iter().filter(|x| !removed.contains(*x) && matches(x)) {
                assert!(
                    seen.contains(x),
                    "seed {}: {what} scan on {server} missed {x}, present throughout ({} calls)",
                    self.seed,
                    calls
                );
            }
            for x in seen {
                let known = ever.contains(x) || (what == "keys" && (x == SET || x == HASH));
                assert!(
                    known && matches(x),
                    "seed {}: {server} scan gave {x}",
                    self.seed
                );
            }
        }
    }

    fn compare_whole(&mut self) {
        let seed = self.seed;
        let smembers = |con: &mut Connection| -> BTreeSet<String> {
            redis::cmd("SMEMBERS").arg(SET).query(con).unwrap()
        };
        let (want, got) = (smembers(&mut self.r), smembers(&mut self.e));
        assert_eq!(got, want, "seed {seed}: sets differ");
        assert_eq!(want, self.set.all(), "seed {seed}: the model drifted");
        let hgetall = |con: &mut Connection| -> HashMap<String, String> {
            redis::cmd("HGETALL").arg(HASH).query(con).unwrap()
        };
        let (want, got) = (hgetall(&mut self.r), hgetall(&mut self.e));
        assert_eq!(got, want, "seed {seed}: hashes differ");
        let collections = usize::from(self.set.len() > 0) + usize::from(self.fields.len() > 0);
        assert_eq!(
            self.both_int(&s(&["DBSIZE"])) as usize,
            self.keys.len() + collections
        );
    }
}

fn run_big_seed(seed: u64, redis_url: &str, ember_url: &str) {
    let mut run = Run::new(seed, redis_url, ember_url);
    for con in [&mut run.r, &mut run.e] {
        redis::cmd("FLUSHALL").query::<()>(con).unwrap();
    }
    let n = run.rng.random_range(2000..5000);
    run.add_members(n);
    let n = run.rng.random_range(2000..5000);
    run.add_fields(n);
    let n = run.rng.random_range(1500..3000);
    run.add_keys(n);
    for step in 0..STEPS_PER_SEED {
        match run.rng.random_range(0..12) {
            0..=2 => run.spop(),
            3 | 4 => run.srandmember(),
            5 | 6 => run.hrandfield(),
            7 => run.scan("set"),
            8 => run.scan("hash"),
            9 => run.scan("keys"),
            10 => {
                let n = run.rng.random_range(0..300);
                run.add_members(n);
            }
            _ => {
                let n = run.rng.random_range(0..5);
                run.churn("hash", n);
            }
        }
        if step % 8 == 7 {
            run.compare_whole();
        }
    }
    run.compare_whole();
    // SPOP of more than the set holds pops it whole, on both.
    let card = run.set.len() as i64;
    let big = s(&["SPOP", SET, "1000000"]);
    for con in [&mut run.r, &mut run.e] {
        assert_eq!(strings(con, &big).len() as i64, card, "seed {seed}");
    }
    assert_eq!(run.both_int(&s(&["EXISTS", SET])), 0);
}

#[test]
fn ember_matches_redis_on_big_sets_hashes_and_keyspaces() {
    let redis = RedisServer::start();
    let ember = super::common::start_in_thread();
    let ember_url = format!("redis://{ember}/");
    for seed in seeds(BIG_SEEDS) {
        eprintln!("differential (big collections): seed {seed}");
        run_big_seed(seed, &redis.url(), &ember_url);
    }
}
