//! Rendering a transcript report as Markdown and as a self-contained HTML page (inline CSS,
//! score bars in CSS, no external assets) that an interviewer can open or attach.

use std::fmt::Write;

use super::{PairReport, TranscriptReport};
use crate::grade::Verdict;

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn md_inline(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn score_of(p: &PairReport) -> Option<(f32, f32)> {
    p.grade.as_ref().map(|g| (g.score, g.max_score))
}

fn timecode(t: Option<f64>) -> String {
    t.map(|s| {
        let s = s as u64;
        format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    })
    .unwrap_or_default()
}

pub fn markdown(r: &TranscriptReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Interview report: {}\n", md_inline(&r.file));
    match r.overall {
        Some(o) => {
            let _ = writeln!(
                s,
                "**Overall: {o:.1} / 10** ({}). Judge: {}.\n",
                r.tally(),
                r.judge
            );
        }
        None => {
            let _ = writeln!(s, "No answer could be graded ({}).\n", r.tally());
        }
    }
    if !r.strongest.is_empty() {
        let _ = writeln!(s, "- Strongest: {}", r.strongest.join(", "));
    }
    if !r.weakest.is_empty() {
        let _ = writeln!(s, "- Weakest: {}", r.weakest.join(", "));
    }
    if !r.topics.is_empty() {
        let _ = writeln!(
            s,
            "\n## By topic\n\n| topic | average | answers |\n|---|---:|---:|"
        );
        for t in &r.topics {
            let _ = writeln!(s, "| {} | {:.1} | {} |", t.topic, t.average, t.answers);
        }
    }
    if !r.key_gaps.is_empty() {
        let _ = writeln!(s, "\n## Gaps that matter most\n");
        for g in &r.key_gaps {
            let _ = writeln!(s, "- {}", md_inline(g));
        }
    }
    let _ = writeln!(s, "\n## Questions\n");
    for p in &r.pairs {
        let score = match score_of(p) {
            Some((sc, max)) => format!("{sc:.1} / {max}"),
            None if p.rubric_id.is_none() => "not in the rubric set".into(),
            None => p.error.clone().unwrap_or_else(|| "not graded".into()),
        };
        let _ = writeln!(
            s,
            "### {}. {} — {}\n",
            p.index + 1,
            md_inline(&p.question),
            score
        );
        match &p.rubric_id {
            Some(id) => {
                let _ = writeln!(
                    s,
                    "Rubric `{id}` (similarity {:.2}){}",
                    p.similarity,
                    if p.start.is_some() {
                        format!(", at {}", timecode(p.start))
                    } else {
                        String::new()
                    }
                );
            }
            None => {
                let close: Vec<String> = p
                    .candidates
                    .iter()
                    .take(3)
                    .map(|c| format!("`{}` ({:.2})", c.rubric_id, c.similarity))
                    .collect();
                let _ = writeln!(
                    s,
                    "Unmatched (closest: {})",
                    if close.is_empty() {
                        "none".into()
                    } else {
                        close.join(", ")
                    }
                );
            }
        }
        let _ = writeln!(
            s,
            "\n> {}\n",
            p.answer.lines().collect::<Vec<_>>().join("\n> ")
        );
        if let Some(g) = &p.grade {
            for c in &g.criteria {
                let mark = match c.verdict {
                    Verdict::Met => "✅",
                    Verdict::Partial => "🟡",
                    Verdict::Missed => "❌",
                };
                let ev = if c.evidence.is_empty() {
                    String::new()
                } else {
                    format!(
                        " — \"{}\"",
                        md_inline(&crate::grade::short(&c.evidence, 160))
                    )
                };
                let _ = writeln!(s, "- {mark} {}{ev}", c.id);
            }
            for gap in &g.gaps {
                let _ = writeln!(s, "- Gap: {}", md_inline(gap));
            }
            let _ = writeln!(s);
        }
    }
    s
}

const CSS: &str = r#"
:root { --fg:#1d2430; --muted:#5b6576; --line:#e3e7ee; --bg:#f7f8fa; --good:#2f9e5b; --mid:#d69e2e; --bad:#d64545; }
* { box-sizing: border-box; }
body { font: 15px/1.5 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: var(--fg); background: var(--bg); margin: 0; }
main { max-width: 920px; margin: 0 auto; padding: 32px 20px 64px; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 10px; }
.muted { color: var(--muted); }
.card { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 16px 18px; margin: 12px 0; }
.overall { display: flex; align-items: center; gap: 18px; }
.big { font-size: 40px; font-weight: 700; }
.bar { background: #edf0f5; border-radius: 6px; height: 10px; overflow: hidden; min-width: 120px; flex: 1; }
.bar > span { display: block; height: 100%; border-radius: 6px; }
.good { background: var(--good); } .mid { background: var(--mid); } .bad { background: var(--bad); }
table { border-collapse: collapse; width: 100%; } td, th { padding: 6px 8px; border-bottom: 1px solid var(--line); text-align: left; }
.q { display: flex; justify-content: space-between; gap: 12px; align-items: baseline; }
.q h3 { font-size: 16px; margin: 0; }
.score { font-weight: 700; white-space: nowrap; }
blockquote { margin: 10px 0; padding: 8px 12px; background: var(--bg); border-left: 3px solid var(--line); white-space: pre-wrap; }
ul.crit { list-style: none; padding: 0; margin: 8px 0; } ul.crit li { padding: 3px 0; }
.tag { display: inline-block; min-width: 64px; text-align: center; font-size: 12px; font-weight: 600; border-radius: 4px; padding: 1px 6px; color: #fff; margin-right: 6px; }
.unmatched { border-style: dashed; }
.gap { color: var(--bad); }
"#;

fn bar(score: f32, max: f32) -> String {
    let pct = if max > 0.0 {
        (score / max * 100.0).clamp(0.0, 100.0)
    } else {
        0.0
    };
    let class = if pct >= 70.0 {
        "good"
    } else if pct >= 40.0 {
        "mid"
    } else {
        "bad"
    };
    format!(
        r#"<div class="bar" role="img" aria-label="{score:.1} of {max}"><span class="{class}" style="width:{pct:.0}%"></span></div>"#
    )
}

pub fn html(r: &TranscriptReport) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>Interview report: {}</title><style>{CSS}</style></head><body><main>",
        esc(&r.file)
    );
    let _ = write!(
        s,
        "<h1>Interview report</h1><div class=\"muted\">{} · {} · judge {} · rubric set {}</div>",
        esc(&r.file),
        r.tally(),
        esc(r.judge.as_str()),
        esc(&r.rubric_version)
    );
    let _ = write!(s, "<div class=\"card overall\">");
    match r.overall {
        Some(o) => {
            let _ = write!(
                s,
                "<div class=\"big\" id=\"overall\">{o:.1}<span class=\"muted\" style=\"font-size:18px\"> / 10</span></div>{}",
                bar(o, 10.0)
            );
        }
        None => s.push_str("<div>No answer could be graded.</div>"),
    }
    s.push_str("</div>");
    let mut sw = Vec::new();
    if !r.strongest.is_empty() {
        sw.push(format!(
            "<b>Strongest:</b> {}",
            esc(&r.strongest.join(", "))
        ));
    }
    if !r.weakest.is_empty() {
        sw.push(format!("<b>Weakest:</b> {}", esc(&r.weakest.join(", "))));
    }
    if !sw.is_empty() {
        let _ = write!(s, "<div class=\"card\">{}</div>", sw.join("<br>"));
    }
    if !r.topics.is_empty() {
        s.push_str("<h2>By topic</h2><div class=\"card\"><table><tr><th>Topic</th><th>Average</th><th></th><th>Answers</th></tr>");
        for t in &r.topics {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>",
                esc(&t.topic),
                t.average,
                bar(t.average, 10.0),
                t.answers
            );
        }
        s.push_str("</table></div>");
    }
    if !r.key_gaps.is_empty() {
        s.push_str("<h2>Gaps that matter most</h2><div class=\"card\"><ul>");
        for g in &r.key_gaps {
            let _ = write!(s, "<li>{}</li>", esc(g));
        }
        s.push_str("</ul></div>");
    }
    s.push_str("<h2>Questions</h2>");
    for p in &r.pairs {
        let unmatched = p.rubric_id.is_none();
        let _ = write!(
            s,
            "<section class=\"card{}\" data-question=\"{}\">",
            if unmatched { " unmatched" } else { "" },
            p.index + 1
        );
        let score = match score_of(p) {
            Some((sc, max)) => format!("<span class=\"score\">{sc:.1} / {max}</span>"),
            None if unmatched => "<span class=\"score muted\">not in the rubric set</span>".into(),
            None => format!(
                "<span class=\"score muted\">{}</span>",
                esc(p.error.as_deref().unwrap_or("not graded"))
            ),
        };
        let _ = write!(
            s,
            "<div class=\"q\"><h3>{}. {}</h3>{score}</div>",
            p.index + 1,
            esc(&p.question)
        );
        if let Some((sc, max)) = score_of(p) {
            s.push_str(&bar(sc, max));
        }
        match &p.rubric_id {
            Some(id) => {
                let _ = write!(
                    s,
                    "<div class=\"muted\">rubric <code>{}</code> · similarity {:.2}{}</div>",
                    esc(id),
                    p.similarity,
                    if p.start.is_some() {
                        format!(" · at {}", timecode(p.start))
                    } else {
                        String::new()
                    }
                );
            }
            None => {
                let close: Vec<String> = p
                    .candidates
                    .iter()
                    .take(3)
                    .map(|c| format!("{} ({:.2})", c.rubric_id, c.similarity))
                    .collect();
                let _ = write!(
                    s,
                    "<div class=\"muted\">unmatched · closest: {}</div>",
                    esc(&close.join(", "))
                );
            }
        }
        for f in &p.follow_ups {
            let _ = write!(s, "<div class=\"muted\">follow-up: {}</div>", esc(f));
        }
        let _ = write!(s, "<blockquote>{}</blockquote>", esc(&p.answer));
        if let Some(g) = &p.grade {
            s.push_str("<ul class=\"crit\">");
            for c in &g.criteria {
                let (label, class) = match c.verdict {
                    Verdict::Met => ("met", "good"),
                    Verdict::Partial => ("partial", "mid"),
                    Verdict::Missed => ("missed", "bad"),
                };
                let ev = if c.evidence.is_empty() {
                    String::new()
                } else {
                    format!(
                        " — <i>“{}”</i>",
                        esc(&crate::grade::short(&c.evidence, 200))
                    )
                };
                let _ = write!(
                    s,
                    "<li><span class=\"tag {class}\">{label}</span>{}{ev}</li>",
                    esc(&c.id)
                );
            }
            s.push_str("</ul>");
            for gap in &g.gaps {
                let _ = write!(s, "<div class=\"gap\">• {}</div>", esc(gap));
            }
        }
        s.push_str("</section>");
    }
    s.push_str("</main></body></html>\n");
    s
}
