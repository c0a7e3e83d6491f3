//! Human-readable output of the commands (`--json` prints the library's types instead).
//!
//! Everything goes through [`out!`], which returns the write error instead of panicking as
//! `println!` does: `grader rubrics list | head -5` closes the pipe early, and `main` treats
//! that as a normal end.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use grader::grade::{Grade, Verdict};
use grader::transcript::Tally;
use grader::transcript::batch::BatchSummary;

/// `println!` that returns `std::io::Result<()>`.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}
pub(super) use out;

pub(super) fn print_batch(summaries: &[BatchSummary]) -> std::io::Result<()> {
    for s in summaries {
        let tally = Tally::of(
            s.pairs
                .iter()
                .map(|p| (p.rubric_id.is_some(), p.score.is_some())),
        );
        match (s.status, s.overall) {
            ("failed", _) => out!("FAILED  {}: {}", s.file, s.error.as_deref().unwrap_or(""))?,
            (status, Some(o)) => out!("{status:<7} {}: {o:.1}/10 ({tally})", s.file)?,
            (status, None) => out!("{status:<7} {}: nothing graded ({tally})", s.file)?,
        }
    }
    Ok(())
}

pub(super) fn print_grade(g: &Grade) -> std::io::Result<()> {
    out!("{}  {:.1} / {}", g.rubric_id, g.score, g.max_score)?;
    out!("{}", g.question)?;
    for c in &g.criteria {
        let mark = match c.verdict {
            Verdict::Met => "met    ",
            Verdict::Partial => "partial",
            Verdict::Missed => "missed ",
        };
        if c.evidence.is_empty() {
            out!("  [{mark}] {} (w{})", c.id, c.weight)?;
        } else {
            out!(
                "  [{mark}] {} (w{}): \"{}\"",
                c.id,
                c.weight,
                one_line(&c.evidence, 100)
            )?;
        }
    }
    for m in &g.misconceptions {
        out!(
            "  [wrong  ] {} (-{}): \"{}\"",
            m.id,
            m.penalty,
            one_line(&m.evidence, 100)
        )?;
    }
    if !g.gaps.is_empty() {
        out!("gaps:")?;
        for gap in &g.gaps {
            out!("  - {gap}")?;
        }
    }
    out!("{}", g.feedback)?;
    if !g.flags.is_empty() {
        let flags: Vec<String> = g
            .flags
            .iter()
            .map(|f| {
                serde_json::to_string(f)
                    .unwrap_or_default()
                    .trim_matches('"')
                    .to_string()
            })
            .collect();
        out!("flags: {}", flags.join(", "))?;
    }
    out!(
        "judge: {} ({}), {} ms",
        g.judge.kind,
        g.judge.model,
        g.latency_ms
    )
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}

/// A bar for `n` answers on a terminal; hidden otherwise (pipes and logs get no bar).
pub(super) fn progress(n: usize) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        bar(n, "{bar:40} {pos}/{len} answers {per_sec} eta {eta}")
    } else {
        ProgressBar::hidden()
    }
}

/// A progress bar on stderr with `template`, redrawn while work is slow to report.
pub(super) fn bar(len: usize, template: &str) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    pb.enable_steady_tick(std::time::Duration::from_millis(250));
    pb
}
