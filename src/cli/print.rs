//! Human-readable output of the commands (`--json` prints the library's types instead).

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

use grader::grade::{Grade, Verdict};
use grader::transcript::batch::BatchSummary;

pub(super) fn print_batch(summaries: &[BatchSummary]) {
    for s in summaries {
        match (s.status, s.overall) {
            ("failed", _) => println!("FAILED  {}: {}", s.file, s.error.as_deref().unwrap_or("")),
            (status, Some(o)) => println!(
                "{status:<7} {}: {o:.1}/10 over {} questions",
                s.file,
                s.pairs.len()
            ),
            (status, None) => println!(
                "{status:<7} {}: nothing graded ({} questions)",
                s.file,
                s.pairs.len()
            ),
        }
    }
}

pub(super) fn print_grade(g: &Grade) {
    println!("{}  {:.1} / {}", g.rubric_id, g.score, g.max_score);
    println!("{}", g.question);
    for c in &g.criteria {
        let mark = match c.verdict {
            Verdict::Met => "met    ",
            Verdict::Partial => "partial",
            Verdict::Missed => "missed ",
        };
        if c.evidence.is_empty() {
            println!("  [{mark}] {} (w{})", c.id, c.weight);
        } else {
            println!(
                "  [{mark}] {} (w{}): \"{}\"",
                c.id,
                c.weight,
                one_line(&c.evidence, 100)
            );
        }
    }
    for m in &g.misconceptions {
        println!(
            "  [wrong  ] {} (-{}): \"{}\"",
            m.id,
            m.penalty,
            one_line(&m.evidence, 100)
        );
    }
    if !g.gaps.is_empty() {
        println!("gaps:");
        for gap in &g.gaps {
            println!("  - {gap}");
        }
    }
    println!("{}", g.feedback);
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
        println!("flags: {}", flags.join(", "));
    }
    println!(
        "judge: {} ({}), {} ms",
        g.judge.kind, g.judge.model, g.latency_ms
    );
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > max {
        format!("{}…", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}

pub(super) fn progress(n: usize) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        let pb = ProgressBar::new(n as u64);
        pb.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} answers {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb
    } else {
        ProgressBar::hidden()
    }
}
