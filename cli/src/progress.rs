//! Progress of running migrations: the numbers ([`Tally`]: slots, keys, bytes, rate,
//! ETA), their human formatting, and the [`Reporter`] that shows them the one way that
//! suits the output: an indicatif bar on a terminal's stderr, one line per finished
//! migration otherwise, or JSON events with `--json` (README-JSON.md, "Migration events").
//!
//! Everything but [`Reporter`] is pure and unit-tested.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::output;

/// JSON `progress` events are printed at most this often.
const JSON_PROGRESS_EVERY: Duration = Duration::from_millis(500);

// ------------------------------------------------------------------ formatting

/// `33000` -> `33,000`.
pub fn fmt_count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Decimal units, one decimal above a kilobyte: `512 B`, `3.1 MB`.
pub fn fmt_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = 0;
    while v >= 999.95 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Short elapsed times: `0.4s`, `1.2s`, `2m05s`, `1h02m`.
pub fn fmt_elapsed(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

/// Whole seconds for an ETA (`4s`, `2m05s`), `-` when unknown.
pub fn fmt_eta(eta: Option<Duration>) -> String {
    match eta {
        None => "-".into(),
        Some(d) if d.as_secs() < 60 => format!("{}s", d.as_secs()),
        Some(d) => fmt_elapsed(d),
    }
}

/// Keys expected in all the moves: what the started ones have (exactly, from their
/// snapshot totals), extrapolated by slot count to the ones not started. `known` holds
/// `(slots, keys)` per started move whose total is known. None until one is.
pub fn expected_keys(known: &[(usize, u64)], slots_total: usize) -> Option<u64> {
    let slots: usize = known.iter().map(|(s, _)| s).sum();
    let keys: u64 = known.iter().map(|(_, k)| k).sum();
    if slots == 0 {
        return None;
    }
    Some((keys as f64 * slots_total as f64 / slots as f64).round() as u64)
}

/// Where a run of migrations stands.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Tally {
    /// Slots of committed moves.
    pub slots_done: usize,
    pub slots_total: usize,
    /// Migrations in flight.
    pub running: usize,
    /// Copied so far: finished moves plus the running ones' last reports.
    pub keys: u64,
    pub bytes: u64,
    /// See [`expected_keys`].
    pub keys_expected: Option<u64>,
    /// Since the first migration started.
    pub elapsed: Duration,
}

impl Tally {
    /// Keys copied per second since the start (0 before anything was copied).
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs <= 0.0 {
            0.0
        } else {
            self.keys as f64 / secs
        }
    }

    /// Time left at the current rate, once both a rate and a total are known.
    pub fn eta(&self) -> Option<Duration> {
        let rate = self.rate();
        let expected = self.keys_expected?;
        if rate <= 0.0 {
            return None;
        }
        let left = expected.saturating_sub(self.keys) as f64;
        Some(Duration::from_secs_f64(left / rate))
    }

    /// The bar's message: `33,000 keys, 3.1 MB copied, 11,000 keys/s, ETA 4s`.
    pub fn message(&self) -> String {
        format!(
            "{} keys, {} copied, {} keys/s, ETA {}",
            fmt_count(self.keys),
            fmt_bytes(self.bytes),
            fmt_count(self.rate().round() as u64),
            fmt_eta(self.eta())
        )
    }
}

/// How one migration ended, as reported on a line or in a `finished` event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub id: String,
    pub source: String,
    pub target: String,
    /// Compacted ranges, e.g. `5462-10922`.
    pub ranges: String,
    pub slot_count: usize,
    pub committed: bool,
    pub reason: String,
    pub keys: u64,
    pub bytes: u64,
    pub millis: u64,
}

/// `moved 5461 slots (5462-10922) n1 -> n2: 33,000 keys, 3.1 MB in 1.2s`, or for an
/// aborted one `failed to move ... after 1.2s: REASON (n1 kept every key)`.
pub fn outcome_line(o: &Outcome) -> String {
    let what = format!(
        "{} slots ({}) {} -> {}",
        o.slot_count, o.ranges, o.source, o.target
    );
    let took = fmt_elapsed(Duration::from_millis(o.millis));
    if o.committed {
        format!(
            "moved {what}: {} keys, {} in {took}",
            fmt_count(o.keys),
            fmt_bytes(o.bytes)
        )
    } else {
        format!(
            "failed to move {what} after {took}: {} ({} kept every key)",
            o.reason, o.source
        )
    }
}

// ------------------------------------------------------------------ JSON events

/// `{"event":"started",...}`.
#[derive(Debug, Serialize)]
pub struct StartedEvent<'a> {
    pub event: &'static str,
    pub id: &'a str,
    pub source_id: String,
    pub target_id: String,
    pub slots: Vec<String>,
    pub slot_count: usize,
}

/// `{"event":"progress",...}`.
#[derive(Debug, Serialize)]
struct ProgressEvent {
    event: &'static str,
    slots_done: usize,
    slots_total: usize,
    running: usize,
    keys: u64,
    bytes: u64,
    keys_per_sec: u64,
    eta_secs: Option<u64>,
}

/// `{"event":"finished",...}`.
#[derive(Debug, Serialize)]
struct FinishedEvent<'a> {
    event: &'static str,
    id: &'a str,
    committed: bool,
    reason: &'a str,
    keys: u64,
    bytes: u64,
    millis: u64,
    slot_count: usize,
}

/// `{"event":"done",...}`.
#[derive(Debug, Serialize)]
struct DoneEvent {
    event: &'static str,
    moved_slots: usize,
    moves: usize,
    failed: usize,
}

// ------------------------------------------------------------------ reporter

enum Sink {
    Bar(ProgressBar),
    Lines,
    Json { last_progress: Option<Instant> },
}

/// Shows a run of migrations while it goes; see the module docs for the three forms.
pub struct Reporter {
    sink: Sink,
}

impl Reporter {
    pub fn new(json: bool, slots_total: usize) -> Self {
        let sink = if json {
            Sink::Json {
                last_progress: None,
            }
        } else if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(
                Some(slots_total as u64),
                ProgressDrawTarget::stderr(),
            );
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} slots  {msg}")
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            Sink::Bar(bar)
        } else {
            Sink::Lines
        };
        Self { sink }
    }

    /// Prints a human line without tearing the bar.
    pub fn say(&self, line: &str) {
        match &self.sink {
            Sink::Bar(bar) => bar.suspend(|| output::emit(line)),
            Sink::Lines => output::emit(line),
            Sink::Json { .. } => {}
        }
    }

    /// A note for people (stderr), e.g. that the control plane is busy.
    pub fn note(&self, line: &str) {
        match &self.sink {
            Sink::Bar(bar) => bar.suspend(|| eprintln!("{line}")),
            _ => eprintln!("{line}"),
        }
    }

    pub fn started(&self, ev: &StartedEvent<'_>) {
        if let Sink::Json { .. } = self.sink {
            output::emit_json(ev);
        }
    }

    pub fn progress(&mut self, t: &Tally) {
        match &mut self.sink {
            Sink::Bar(bar) => {
                bar.set_position(t.slots_done as u64);
                bar.set_message(t.message());
            }
            Sink::Lines => {}
            Sink::Json { last_progress } => {
                if last_progress.is_some_and(|at| at.elapsed() < JSON_PROGRESS_EVERY) {
                    return;
                }
                *last_progress = Some(Instant::now());
                output::emit_json(&ProgressEvent {
                    event: "progress",
                    slots_done: t.slots_done,
                    slots_total: t.slots_total,
                    running: t.running,
                    keys: t.keys,
                    bytes: t.bytes,
                    keys_per_sec: t.rate().round() as u64,
                    eta_secs: t.eta().map(|d| d.as_secs()),
                });
            }
        }
    }

    pub fn finished(&self, o: &Outcome) {
        match &self.sink {
            Sink::Json { .. } => output::emit_json(&FinishedEvent {
                event: "finished",
                id: &o.id,
                committed: o.committed,
                reason: &o.reason,
                keys: o.keys,
                bytes: o.bytes,
                millis: o.millis,
                slot_count: o.slot_count,
            }),
            _ => self.say(&outcome_line(o)),
        }
    }

    /// Ends the display; JSON gets the `done` event.
    pub fn done(self, moved_slots: usize, moves: usize, failed: usize) {
        match self.sink {
            Sink::Bar(bar) => bar.finish_and_clear(),
            Sink::Lines => {}
            Sink::Json { .. } => output::emit_json(&DoneEvent {
                event: "done",
                moved_slots,
                moves,
                failed,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_bytes_and_durations_read_well() {
        assert_eq!(fmt_count(0), "0");
        assert_eq!(fmt_count(999), "999");
        assert_eq!(fmt_count(33_000), "33,000");
        assert_eq!(fmt_count(1_234_567), "1,234,567");
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_bytes(3_100_000), "3.1 MB");
        assert_eq!(fmt_bytes(999_990), "1.0 MB");
        assert_eq!(fmt_bytes(1_500), "1.5 kB");
        assert_eq!(fmt_bytes(2_000_000_000_000), "2.0 TB");
        assert_eq!(fmt_elapsed(Duration::from_millis(1_200)), "1.2s");
        assert_eq!(fmt_elapsed(Duration::from_millis(400)), "0.4s");
        assert_eq!(fmt_elapsed(Duration::from_secs(125)), "2m05s");
        assert_eq!(fmt_elapsed(Duration::from_secs(3_720)), "1h02m");
        assert_eq!(fmt_eta(None), "-");
        assert_eq!(fmt_eta(Some(Duration::from_millis(4_900))), "4s");
        assert_eq!(fmt_eta(Some(Duration::from_secs(125))), "2m05s");
    }

    #[test]
    fn rate_and_eta_follow_the_copied_keys() {
        let mut t = Tally {
            slots_done: 100,
            slots_total: 400,
            running: 2,
            keys: 10_000,
            bytes: 3_100_000,
            keys_expected: Some(40_000),
            elapsed: Duration::from_secs(2),
        };
        assert_eq!(t.rate(), 5_000.0);
        assert_eq!(t.eta(), Some(Duration::from_secs(6)));
        assert_eq!(
            t.message(),
            "10,000 keys, 3.1 MB copied, 5,000 keys/s, ETA 6s"
        );
        // Nothing copied yet, or no total: no ETA.
        t.keys = 0;
        assert_eq!(t.eta(), None);
        t.keys = 10;
        t.keys_expected = None;
        assert_eq!(t.eta(), None);
        // Past the estimate: zero, not an underflow.
        t.keys_expected = Some(5);
        assert_eq!(t.eta(), Some(Duration::ZERO));
        t.elapsed = Duration::ZERO;
        assert_eq!((t.rate(), t.eta()), (0.0, None));
    }

    #[test]
    fn expected_keys_extrapolate_by_slots() {
        assert_eq!(expected_keys(&[], 100), None);
        assert_eq!(expected_keys(&[(0, 0)], 100), None);
        assert_eq!(expected_keys(&[(50, 1_000)], 100), Some(2_000));
        assert_eq!(expected_keys(&[(50, 1_000), (50, 3_000)], 100), Some(4_000));
    }

    #[test]
    fn outcome_lines() {
        let mut o = Outcome {
            id: "x".into(),
            source: "n1".into(),
            target: "n2".into(),
            ranges: "5462-10922".into(),
            slot_count: 5461,
            committed: true,
            reason: String::new(),
            keys: 33_000,
            bytes: 3_100_000,
            millis: 1_200,
        };
        assert_eq!(
            outcome_line(&o),
            "moved 5461 slots (5462-10922) n1 -> n2: 33,000 keys, 3.1 MB in 1.2s"
        );
        o.committed = false;
        o.reason = "n2 stopped answering".into();
        assert_eq!(
            outcome_line(&o),
            "failed to move 5461 slots (5462-10922) n1 -> n2 after 1.2s: n2 stopped answering (n1 kept every key)"
        );
    }
}
