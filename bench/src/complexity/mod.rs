//! The complexity benchmark (`bin/complexity.rs`): for each collection size `n`, fresh
//! servers (redis-server and one ember data node, [`servers`]) are loaded with one key of
//! each type holding `n` elements and `n` string keys ([`data`]), then every command of
//! [`cases`] is run for a fixed time on each server in turn ([`measure`]); [`report`]
//! prints the ember / redis ratios. Memory is measured apart: for each type, fresh
//! servers loaded with that type alone.
//!
//! A ratio that falls as `n` grows means ember's cost grows faster with `n` than
//! Redis's: a complexity defect, whatever the ratio at small `n`.

pub mod cases;
pub mod data;
pub mod measure;
pub mod report;
pub mod resp;
pub mod servers;

use std::time::Duration;

use cases::{Case, Cursors, Env};
use data::Kind;
use measure::Outcome;
use resp::Conn;
use servers::{Memory, Servers, Sys};

/// What to run.
pub struct Config {
    pub sizes: Vec<usize>,
    /// Time per cell (per server).
    pub duration: Duration,
    /// Concurrent connections per cell.
    pub conns: usize,
    /// Rounds per cell (the median round's ratio is reported).
    pub rounds: usize,
    pub seed: u64,
    /// Only the cases whose name contains this (any case).
    pub only: Option<String>,
    /// Elements per type for the memory measurement (none: skip it).
    pub memory_n: Option<usize>,
}

/// Memory growth of one server while one kind was loaded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Growth {
    pub used: i64,
    pub rss: i64,
}

impl Growth {
    fn between(a: Memory, b: Memory) -> Self {
        Self {
            used: b.used as i64 - a.used as i64,
            rss: b.rss as i64 - a.rss as i64,
        }
    }
}

/// Everything measured at one size.
pub struct SizeRun {
    pub n: usize,
    /// Per case (in [`Results::cases`] order): (ember, redis).
    pub cells: Vec<(Outcome, Outcome)>,
    /// Scan cursors used: (ember, redis).
    pub cursors: (Cursors, Cursors),
    /// Anything worth a footnote (repaired collections).
    pub notes: Vec<String>,
}

/// Memory growth of each server while loading one type with `n` elements into it,
/// freshly started.
pub struct MemoryRun {
    pub n: usize,
    /// Per kind: (ember, redis).
    pub growth: Vec<(Kind, Growth, Growth)>,
}

pub struct Results {
    pub cases: Vec<Case>,
    pub sizes: Vec<SizeRun>,
    pub memory: Option<MemoryRun>,
    pub versions: (String, String),
}

const BOTH: [Sys; 2] = [Sys::Ember, Sys::Redis];

/// Runs the whole benchmark, printing progress to stderr.
pub fn run(cfg: &Config) -> anyhow::Result<Results> {
    let cases: Vec<Case> = cases::all()
        .into_iter()
        .filter(|c| {
            cfg.only
                .as_ref()
                .is_none_or(|o| c.name.to_lowercase().contains(&o.to_lowercase()))
        })
        .collect();
    let mut results = Results {
        cases,
        sizes: vec![],
        memory: None,
        versions: Default::default(),
    };
    if let Some(n) = cfg.memory_n {
        results.memory = Some(memory(n)?);
    }
    for &n in &cfg.sizes {
        let run = run_size(cfg, &results.cases, n, &mut results.versions)?;
        results.sizes.push(run);
    }
    Ok(results)
}

/// For each kind, fresh servers, loaded with `n` elements of it alone.
fn memory(n: usize) -> anyhow::Result<MemoryRun> {
    let mut growth = vec![];
    for kind in Kind::ALL {
        let servers = Servers::start()?;
        let t0 = std::time::Instant::now();
        let mut g = [Growth::default(); 2];
        for (i, sys) in BOTH.iter().enumerate() {
            let server = servers.get(*sys);
            let mut c = Conn::connect(server.port)?;
            let before = server.memory()?;
            data::load(&mut c, kind, n)
                .map_err(|e| e.context(format!("loading {} on {}", kind.name(), sys.name())))?;
            // Let Redis finish an incremental rehash (it holds both tables meanwhile).
            std::thread::sleep(Duration::from_millis(500));
            g[i] = Growth::between(before, server.memory()?);
        }
        eprintln!(
            "memory, {n} x {}: ember {:?}, redis {:?} ({:.1} s)",
            kind.name(),
            g[0],
            g[1],
            t0.elapsed().as_secs_f64()
        );
        growth.push((kind, g[0], g[1]));
    }
    Ok(MemoryRun { n, growth })
}

fn run_size(
    cfg: &Config,
    cases: &[Case],
    n: usize,
    versions: &mut (String, String),
) -> anyhow::Result<SizeRun> {
    let servers = Servers::start()?;
    *versions = (servers.ember.version()?, servers.redis.version()?);
    let t0 = std::time::Instant::now();

    let mut conns = [
        Conn::connect(servers.ember.port)?,
        Conn::connect(servers.redis.port)?,
    ];
    for kind in Kind::ALL {
        for (i, sys) in BOTH.iter().enumerate() {
            data::load(&mut conns[i], kind, n)
                .map_err(|e| e.context(format!("loading {} on {}", kind.name(), sys.name())))?;
        }
    }
    let mut cursors: Vec<Cursors> = vec![];
    for c in &mut conns {
        cursors.push(Cursors {
            sscan: data::mid_cursor(c, &["SSCAN", data::SET], 1, n)?,
            hscan: data::mid_cursor(c, &["HSCAN", data::HASH], 2, n)?,
            zscan: data::mid_cursor(c, &["ZSCAN", data::ZSET], 2, n)?,
            scan: data::mid_cursor(c, &["SCAN"], 1, n + 4)?,
        });
    }
    let redis_cursors = cursors.pop().expect("two");
    let ember_cursors = cursors.pop().expect("two");
    eprintln!(
        "n={n}: loaded in {:.1} s; mid cursors ember {ember_cursors:?}, redis {redis_cursors:?}",
        t0.elapsed().as_secs_f64()
    );
    let envs = [
        Env {
            n,
            cursors: ember_cursors,
        },
        Env {
            n,
            cursors: redis_cursors,
        },
    ];

    let mut cells = vec![];
    let mut notes = vec![];
    for (ci, case) in cases.iter().enumerate() {
        // Each round: two halves per server in the order A B B A, A alternating from
        // round to round, so that a drift in the machine's speed during the round hits
        // both alike. The cell is the round with the median ratio, so that one burst of
        // the shared machine's noise does not decide it.
        let mut rounds: Vec<(Outcome, Outcome)> = vec![];
        for round in 0..cfg.rounds {
            let order = if (ci + round) % 2 == 0 {
                [0, 1, 1, 0]
            } else {
                [1, 0, 0, 1]
            };
            let mut halves: [Vec<Outcome>; 2] = [vec![], vec![]];
            for (k, i) in order.into_iter().enumerate() {
                let seed = cfg.seed
                    ^ ((n as u64) << 20)
                    ^ ((ci as u64) << 2)
                    ^ ((round as u64) << 40)
                    ^ (k as u64 / 2);
                let server = servers.get(BOTH[i]);
                let o = measure::cell(
                    server.port,
                    case,
                    &envs[i],
                    cfg.conns,
                    cfg.duration / 2,
                    seed,
                );
                if let Some(kind) = case.mutates {
                    restore_size(&mut conns[i], BOTH[i], case, kind, n, &mut notes)?;
                }
                halves[i].push(o);
            }
            let [e, r] = halves.map(|h| Outcome::mean(&h));
            rounds.push((e, r));
        }
        let (e, r) = measure::median_round(rounds);
        eprintln!(
            "n={n} {:<50} ember {:>10}  redis {:>10}  {}",
            case.name,
            report::fmt_outcome(&e),
            report::fmt_outcome(&r),
            report::fmt_ratio(&e, &r)
        );
        cells.push((e, r));
    }
    eprintln!("n={n}: done in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(SizeRun {
        n,
        cells,
        cursors: (envs[0].cursors.clone(), envs[1].cursors.clone()),
        notes,
    })
}

/// After a cell of a mutating case: the collection it changed is back at `n` elements,
/// else it is reloaded (and noted). The string keys are only overwritten, so a changed
/// DBSIZE there is a bug, not a drift to repair.
fn restore_size(
    conn: &mut Conn,
    sys: Sys,
    case: &Case,
    kind: Kind,
    n: usize,
    notes: &mut Vec<String>,
) -> anyhow::Result<()> {
    let size = data::size(conn, kind)?;
    let want = if kind == Kind::Strings { n + 4 } else { n };
    anyhow::ensure!(
        size == want || kind != Kind::Strings,
        "{}: DBSIZE is {size} on {}, not {want}",
        case.name,
        sys.name()
    );
    if size != want {
        notes.push(format!(
            "n={n}, {}: {} {} had {size} elements after the cell, reloaded",
            case.name,
            sys.name(),
            kind.name()
        ));
        conn.call(&["DEL", kind.key()])?.ok()?;
        data::load(conn, kind, n)?;
    }
    Ok(())
}
