//! The markdown report: ember / redis throughput ratios per command and size (the
//! defect to look for is a ratio that falls with `n`), the raw rates, and the memory
//! growth per collection type.

use super::measure::Outcome;
use super::{MemoryRun, Results};
use crate::row;

/// `10`, `1k`, `100k`, `1M`.
pub fn size_label(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1000 && n % 1000 == 0 => format!("{}k", n / 1000),
        n => n.to_string(),
    }
}

/// Ops per second, short (`61.2k`), or `error`.
pub fn fmt_outcome(o: &Outcome) -> String {
    match o {
        Outcome::Rps(r) if *r >= 1000.0 => format!("{:.1}k", r / 1000.0),
        Outcome::Rps(r) => format!("{r:.0}"),
        Outcome::Error(_) => "error".into(),
    }
}

fn ratio(e: &Outcome, r: &Outcome) -> Option<f64> {
    Some(e.rps()? / r.rps()?)
}

/// The ratio, in bold below 0.9; `error (server: message)` if either failed.
pub fn fmt_ratio(e: &Outcome, r: &Outcome) -> String {
    let failed = [("ember", e), ("redis", r)]
        .into_iter()
        .filter_map(|(name, o)| match o {
            Outcome::Error(m) => Some(format!("{name}: {}", cell_text(m))),
            Outcome::Rps(_) => None,
        })
        .collect::<Vec<_>>();
    if !failed.is_empty() {
        return format!("error ({})", failed.join("; "));
    }
    match ratio(e, r) {
        Some(x) if x < 0.9 => format!("**{x:.2}**"),
        Some(x) => format!("{x:.2}"),
        None => "?".into(),
    }
}

/// A message fit for a table cell (no pipes, no newlines, at most 80 characters).
fn cell_text(m: &str) -> String {
    let one_line: String = m.replace('|', "/").replace(['\r', '\n'], " ");
    match one_line.char_indices().nth(80) {
        Some((i, _)) => format!("{}...", &one_line[..i]),
        None => one_line,
    }
}

fn mib(b: i64) -> String {
    format!("{:.1} MiB", b as f64 / 1048576.0)
}

fn ratio_i(a: i64, b: i64) -> String {
    if b > 0 {
        format!("{:.2}", a as f64 / b as f64)
    } else {
        "n/a".into()
    }
}

/// Prints the whole report to stdout.
pub fn print(results: &Results, header: &str) {
    let sizes = &results.sizes;
    println!("{header}\n");
    let labels: Vec<String> = sizes
        .iter()
        .map(|s| format!("n={}", size_label(s.n)))
        .collect();

    println!("ember / redis throughput (bold: below 0.9; last column: the ratio at the largest n over the ratio at the smallest, below 1 when ember's cost grows faster with n):\n");
    let mut head = vec!["family".to_string(), "command".to_string()];
    head.extend(labels.iter().cloned());
    head.push("largest / smallest n".into());
    println!("{}", row(&head));
    println!("{}", row(&vec!["---".to_string(); head.len()]));
    for (ci, case) in results.cases.iter().enumerate() {
        let mut cells = vec![case.family.to_string(), format!("`{}`", case.name)];
        let mut first_last = vec![];
        for s in sizes {
            let (e, r) = &s.cells[ci];
            cells.push(fmt_ratio(e, r));
            first_last.push(ratio(e, r));
        }
        cells.push(match (first_last.first(), first_last.last()) {
            (Some(Some(a)), Some(Some(b))) if sizes.len() > 1 => format!("{:.2}", b / a),
            _ => String::new(),
        });
        println!("{}", row(&cells));
    }

    println!("\nOps per second, ember / redis (an op is one command, or the pair named):\n");
    let mut head = vec!["command".to_string()];
    head.extend(labels.iter().cloned());
    println!("{}", row(&head));
    println!("{}", row(&vec!["---".to_string(); head.len()]));
    for (ci, case) in results.cases.iter().enumerate() {
        let mut cells = vec![format!("`{}`", case.name)];
        for s in sizes {
            let (e, r) = &s.cells[ci];
            cells.push(format!("{} / {}", fmt_outcome(e), fmt_outcome(r)));
        }
        println!("{}", row(&cells));
    }

    if let Some(m) = &results.memory {
        print_memory(m);
    }

    println!("\nScan cursors used (from the middle of a scan; 0 when one call returns the whole collection):\n");
    println!(
        "{}",
        row(&[
            "n".into(),
            "SSCAN ember / redis".into(),
            "HSCAN".into(),
            "ZSCAN".into(),
            "SCAN".into()
        ])
    );
    println!("{}", row(&vec!["---".to_string(); 5]));
    for s in sizes {
        let (e, r) = &s.cursors;
        println!(
            "{}",
            row(&[
                size_label(s.n),
                format!("{} / {}", e.sscan, r.sscan),
                format!("{} / {}", e.hscan, r.hscan),
                format!("{} / {}", e.zscan, r.zscan),
                format!("{} / {}", e.scan, r.scan),
            ])
        );
    }
    let notes: Vec<&String> = sizes.iter().flat_map(|s| &s.notes).collect();
    if !notes.is_empty() {
        println!();
        for n in notes {
            println!("- {n}");
        }
    }
    let errors: Vec<String> = sizes
        .iter()
        .flat_map(|s| {
            results
                .cases
                .iter()
                .zip(&s.cells)
                .flat_map(move |(c, (e, r))| {
                    [("ember", e), ("redis", r)]
                        .into_iter()
                        .filter_map(move |(sys, o)| match o {
                            Outcome::Error(m) => {
                                Some(format!("n={}, `{}`, {sys}: {m}", size_label(s.n), c.name))
                            }
                            Outcome::Rps(_) => None,
                        })
                })
        })
        .collect();
    if !errors.is_empty() {
        println!("\nErrors:\n");
        for e in errors {
            println!("- {e}");
        }
    }
}

fn print_memory(m: &MemoryRun) {
    println!(
        "\nMemory: growth of each server while loading one type with n={} elements into it, freshly started (`used_memory`: the bytes allocated, as each server counts them; RSS: VmRSS):\n",
        size_label(m.n)
    );
    println!(
        "{}",
        row(&[
            "type".into(),
            "redis used_memory".into(),
            "ember used_memory".into(),
            "ember / redis".into(),
            "redis RSS".into(),
            "ember RSS".into(),
            "ember / redis".into(),
            "bytes per element, used_memory (redis / ember)".into(),
            "bytes per element, RSS (redis / ember)".into(),
        ])
    );
    println!("{}", row(&vec!["---".to_string(); 9]));
    let per = |b: i64| b / m.n as i64;
    for (kind, e, r) in &m.growth {
        println!(
            "{}",
            row(&[
                kind.name().into(),
                mib(r.used),
                mib(e.used),
                ratio_i(e.used, r.used),
                mib(r.rss),
                mib(e.rss),
                ratio_i(e.rss, r.rss),
                format!("{} / {}", per(r.used), per(e.used)),
                format!("{} / {}", per(r.rss), per(e.rss)),
            ])
        );
    }
}
