//! Writer threads: unique keys and INCR counters through the `redis` crate's cluster
//! client, every acknowledgement recorded with its time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::sleep;
use std::time::{Duration, Instant};

use ember_tests::TestCluster;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::cluster::{ClusterClient, ClusterConnection};

/// A writer without an acknowledgement for this long records a stall.
pub const STALL: Duration = Duration::from_millis(200);
/// Tries of one unique-key SET before its outcome counts as unknown.
const SET_TRIES: usize = 10;
pub const COUNTERS_PER_WRITER: usize = 50;
const KEY_VALUE_LEN: usize = 32;

#[derive(Default)]
pub struct Counter {
    pub acked: u64,
    /// INCRs that failed: applied or not, nobody knows.
    pub unknown: u64,
    pub first_ack: Option<Instant>,
    /// INCR replies outside [acked, acked + unknown].
    pub anomalies: u64,
    pub first_anomaly: Option<Instant>,
}

/// Everything one writer thread saw.
pub struct WriterLog {
    pub id: usize,
    /// Acknowledged unique keys: (index, time of the acknowledgement).
    pub acked: Vec<(u32, Instant)>,
    /// Unique keys whose every try failed.
    pub uncertain: Vec<u32>,
    pub counters: Vec<Counter>,
    pub ops: u64,
    pub errors: u64,
    /// Errors by message (its first 60 characters): how many, and when first seen.
    pub error_kinds: BTreeMap<String, (u64, Instant)>,
    pub reconnects: u64,
    /// Intervals without any acknowledgement longer than [`STALL`].
    pub stalls: Vec<(Instant, Instant)>,
}

pub fn unique_key(w: usize, i: u32) -> String {
    format!("soak:{w}:{i}")
}

pub fn unique_value(w: usize, i: u32) -> String {
    padded(format!("w{w}:{i}:"), KEY_VALUE_LEN)
}

pub fn counter_key(w: usize, c: usize) -> String {
    format!("soakctr:{w}:{c}")
}

pub fn padded(mut s: String, len: usize) -> String {
    while s.len() < len {
        s.push('.');
    }
    s
}

/// One writer thread's state.
struct Writer {
    client: ClusterClient,
    conn: Option<ClusterConnection>,
    failures_in_row: u32,
    last_ack: Instant,
    log: WriterLog,
}

impl Writer {
    fn new(id: usize, client: ClusterClient) -> Self {
        Self {
            client,
            conn: None,
            failures_in_row: 0,
            last_ack: Instant::now(),
            log: WriterLog {
                id,
                acked: vec![],
                uncertain: vec![],
                counters: (0..COUNTERS_PER_WRITER)
                    .map(|_| Counter::default())
                    .collect(),
                ops: 0,
                errors: 0,
                error_kinds: BTreeMap::new(),
                reconnects: 0,
                stalls: vec![],
            },
        }
    }

    /// Writes paced to `per_sec` (one unique key and one INCR each) until `stop`.
    fn run(mut self, per_sec: f64, seed: u64, stop: &AtomicBool) -> WriterLog {
        let period = Duration::from_secs_f64(1.0 / per_sec);
        let mut rng = StdRng::seed_from_u64(seed);
        let mut next = Instant::now();
        let mut i = 0u32;
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            if next > now {
                sleep(next - now);
            }
            next = next.max(now) + period;
            self.write_key(i, stop);
            i += 1;
            self.incr(rng.random_range(0..COUNTERS_PER_WRITER));
        }
        self.log
    }

    fn write_key(&mut self, i: u32, stop: &AtomicBool) {
        let (key, value) = (unique_key(self.log.id, i), unique_value(self.log.id, i));
        for _ in 0..SET_TRIES {
            if self
                .query::<()>(redis::cmd("SET").arg(&key).arg(&value))
                .is_some()
            {
                self.log.acked.push((i, Instant::now()));
                return;
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        self.log.uncertain.push(i);
    }

    fn incr(&mut self, c: usize) {
        let key = counter_key(self.log.id, c);
        let reply = self.query::<u64>(redis::cmd("INCR").arg(&key));
        let ctr = &mut self.log.counters[c];
        let Some(v) = reply else {
            ctr.unknown += 1;
            return;
        };
        let now = Instant::now();
        ctr.acked += 1;
        ctr.first_ack.get_or_insert(now);
        if v < ctr.acked || v > ctr.acked + ctr.unknown {
            ctr.anomalies += 1;
            ctr.first_anomaly.get_or_insert(now);
        }
    }

    /// Runs `cmd` once; `None` on an error (counted, with a short backoff; the
    /// connection is rebuilt after 5 errors in a row).
    pub fn query<T: redis::FromRedisValue>(&mut self, cmd: &redis::Cmd) -> Option<T> {
        self.log.ops += 1;
        let res = match self.connection() {
            Ok(conn) => cmd.query::<T>(conn),
            Err(e) => Err(e),
        };
        match res {
            Ok(v) => {
                self.acknowledged();
                Some(v)
            }
            Err(e) => {
                self.failed(&e);
                None
            }
        }
    }

    fn connection(&mut self) -> redis::RedisResult<&mut ClusterConnection> {
        if self.conn.is_none() {
            self.conn = Some(self.client.get_connection()?);
            self.log.reconnects += 1;
        }
        Ok(self.conn.as_mut().expect("just set"))
    }

    fn acknowledged(&mut self) {
        let now = Instant::now();
        if now - self.last_ack > STALL {
            self.log.stalls.push((self.last_ack, now));
        }
        self.last_ack = now;
        self.failures_in_row = 0;
    }

    fn failed(&mut self, e: &redis::RedisError) {
        self.log.errors += 1;
        let kind: String = e.to_string().chars().take(60).collect();
        let now = Instant::now();
        self.log.error_kinds.entry(kind).or_insert((0, now)).0 += 1;
        self.failures_in_row += 1;
        if self.failures_in_row >= 5 {
            self.conn = None;
        }
        sleep(Duration::from_millis(
            25 * u64::from(self.failures_in_row.min(10)),
        ));
    }
}

fn writer_client(c: &TestCluster) -> ClusterClient {
    ClusterClient::builder(c.specs.iter().map(|s| s.url()).collect::<Vec<_>>())
        .connection_timeout(Duration::from_secs(2))
        // Longer than any pause, so the client never re-sends a command the node is
        // still about to run (an INCR applied twice would look like a duplicate).
        .response_timeout(Duration::from_secs(10))
        // Retry waits of 10-100 ms: the crate's default (at least 1.28 s after each
        // CLUSTERDOWN, growing) would measure the client's backoff rather than ember.
        .retries(32)
        .min_retry_wait(10)
        .max_retry_wait(100)
        .retry_wait_formula(10, 2)
        .build()
        .expect("cluster client")
}

/// Starts `n` writers at `per_sec` each, until `stop`; each returns its log.
pub fn spawn_writers(
    c: &TestCluster,
    n: usize,
    per_sec: f64,
    seed: u64,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<WriterLog>> {
    (0..n)
        .map(|w| {
            let (client, stop) = (writer_client(c), stop.clone());
            let seed = seed.wrapping_mul(1000).wrapping_add(w as u64);
            std::thread::spawn(move || Writer::new(w, client).run(per_sec, seed, &stop))
        })
        .collect()
}
