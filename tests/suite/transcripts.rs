//! Transcript parsing, segmentation, bad input, fuzzing, grading and reports.

use grader::transcript::parse::{Format, detect};
use grader::transcript::segment::Roles;
use grader::transcript::{TranscriptOptions, grade_transcript, pairs_of, report};
use proptest::prelude::*;

use crate::common::data;

fn read(name: &str) -> String {
    std::fs::read_to_string(data(&format!("transcripts/{name}"))).unwrap()
}

fn pairs(name: &str) -> (Format, Vec<grader::transcript::Pair>) {
    pairs_of(name, &read(name), None, &Roles::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// `check(file, format, [(question starts with, answer contains, follow-ups)])`
fn check(file: &str, format: Format, expected: &[(&str, &str, usize)]) {
    let (f, ps) = pairs(file);
    assert_eq!(f, format, "{file}: format");
    let got: Vec<&str> = ps.iter().map(|p| p.question.as_str()).collect();
    assert_eq!(ps.len(), expected.len(), "{file}: pairs {got:#?}");
    for (p, (q, a, follow)) in ps.iter().zip(expected) {
        assert!(
            p.question.starts_with(q),
            "{file}: question {:?} should start with {q:?}",
            p.question
        );
        assert!(
            p.answer.contains(a),
            "{file}: answer {:?} should contain {a:?}",
            p.answer
        );
        assert_eq!(
            p.follow_ups.len(),
            *follow,
            "{file}: follow-ups of {:?}: {:?}",
            p.question,
            p.follow_ups
        );
    }
}

#[test]
fn plain_text_with_small_talk_follow_ups_and_continuations() {
    check(
        "basic.txt",
        Format::Text,
        &[
            (
                "What is the difference between a shallow copy",
                "keeps a memo\ndictionary",
                1,
            ),
            ("What is the Global Interpreter Lock", "multiprocessing", 0),
            ("How would you tune a slow SQL query", "EXPLAIN ANALYZE", 0),
        ],
    );
    let (_, ps) = pairs("basic.txt");
    assert!(
        ps[0].answer.contains("deepcopy when I\nneed to mutate"),
        "the follow-up's answer merges in"
    );
    assert!(
        !ps.iter()
            .any(|p| p.question.contains("hear me") || p.question.contains("questions for me")),
        "small talk is skipped"
    );
    assert_eq!(ps[0].line, 3);
}

#[test]
fn q_and_a_labels() {
    check(
        "qa.txt",
        Format::Text,
        &[
            (
                "Explain the difference between `is` and `==`",
                "equality via __eq__.\nFor example",
                0,
            ),
            ("What are generators", "return ends", 0),
        ],
    );
}

#[test]
fn webvtt_voice_tags_timings_and_inferred_roles() {
    check(
        "voices.vtt",
        Format::Vtt,
        &[
            (
                "How does Python's with statement work internally?",
                "suppresses the exception",
                0,
            ),
            (
                "Explain the difference between class methods",
                "static methods get neither",
                0,
            ),
        ],
    );
    let (_, ps) = pairs("voices.vtt");
    assert_eq!(ps[0].start, Some(7.0), "cue timings kept");
    assert!(
        ps[0].answer.contains("binds the result,\nand __exit__"),
        "consecutive cues of one speaker merge"
    );
}

#[test]
fn srt_with_name_prefixes_and_unlabelled_cues() {
    check(
        "prefixes.srt",
        Format::Srt,
        &[(
            "What is the difference between a list and a tuple",
            "hash tables",
            1,
        )],
    );
    let (_, ps) = pairs("prefixes.srt");
    assert!(
        ps[0].answer.contains("O(1) average membership"),
        "an unlabelled cue continues the speaker"
    );
    assert_eq!(ps[0].start, Some(1.0));
}

#[test]
fn json_turns() {
    check(
        "turns.json",
        Format::Json,
        &[
            ("Write a decorator that retries", "functools.wraps", 0),
            (
                "What is the time complexity of list.append",
                "amortized O(1)",
                0,
            ),
        ],
    );
}

#[test]
fn messy_names_follow_ups_and_off_topic_questions() {
    check(
        "messy.txt",
        Format::Text,
        &[
            (
                "so first question - tell me about a time you optimized",
                "pyarrow",
                1,
            ),
            (
                "how do you keep up with changes in Python",
                "What's New pages",
                0,
            ),
            ("What's your favourite pizza topping?", "Mushrooms", 0),
        ],
    );
    let (_, ps) = pairs("messy.txt");
    assert!(
        ps[0].answer.contains("profile before guessing"),
        "answer to the follow-up merges"
    );
}

#[test]
fn configured_role_names() {
    let text =
        "Morgan: What is a metaclass?\nRiley: The class of a class; type is the default one.\n";
    let roles = Roles {
        interviewer_names: vec!["morgan".into()],
        candidate_names: vec!["riley".into()],
    };
    let (_, ps) = pairs_of("x", text, None, &roles).unwrap();
    assert_eq!(ps.len(), 1);
    assert!(ps[0].answer.starts_with("The class of a class"));
}

#[test]
fn detection() {
    assert_eq!(detect("WEBVTT\n\n00:00.000 --> 00:01.000\nhi"), Format::Vtt);
    assert_eq!(detect("1\n00:00:00,000 --> 00:00:01,000\nhi"), Format::Srt);
    assert_eq!(detect("[{\"speaker\":\"a\",\"text\":\"b\"}]"), Format::Json);
    assert_eq!(detect("Interviewer: hi"), Format::Text);
    assert_eq!(detect("[not json"), Format::Text);
    // Content that starts like JSON is JSON, valid or not; bracketed timestamps are text.
    assert_eq!(detect("[{\"speaker\": \"a\", \"te"), Format::Json);
    assert_eq!(detect("{\"turns\": ["), Format::Json);
    assert_eq!(detect("[00:01] Interviewer: hi"), Format::Text);
}

/// A truncated JSON transcript reports the JSON error with its line and column, not "no
/// speaker labels" (which is what reading it as text says).
#[test]
fn truncated_json_reports_the_json_error() {
    let whole = read("turns.json");
    let cut = whole[..whole.len() * 2 / 3].trim_end();
    let err = pairs_of("turns.json", cut, None, &Roles::default())
        .unwrap_err()
        .to_string();
    let last_line = cut.lines().count();
    assert!(
        err.starts_with(&format!("turns.json:{last_line}: the JSON ends early")),
        "{err}"
    );
    assert!(err.contains(&format!("line {last_line}, column ")), "{err}");
    let err = pairs_of(
        "t.json",
        "[{\"speaker\": \"a\", \"text\": \"b\"},\n {\"speaker\" \"c\"}]",
        None,
        &Roles::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("t.json:2: invalid JSON at line 2, column "),
        "{err}"
    );
}

/// Each bad file fails with the file, the line and what is wrong.
#[test]
fn bad_transcripts_name_file_and_line() {
    let cases = [
        (
            "bad/empty.txt",
            None,
            "bad/empty.txt:1: the transcript is empty",
        ),
        (
            "bad/no-labels.txt",
            None,
            "bad/no-labels.txt:1: no speaker labels",
        ),
        (
            "bad/broken-timing.vtt",
            None,
            "bad/broken-timing.vtt:6: bad end time `00:00:0x.000`",
        ),
        (
            "bad/backwards.srt",
            None,
            "bad/backwards.srt:2: cue ends (00:00:01,000) before it starts (00:00:05,000)",
        ),
        (
            "basic.txt",
            Some(Format::Vtt),
            "basic.txt:1: a WebVTT file starts with `WEBVTT`",
        ),
        (
            "basic.txt",
            Some(Format::Json),
            "basic.txt:1: expected a JSON array",
        ),
        (
            "qa.txt",
            Some(Format::Srt),
            "qa.txt:1: expected a cue number",
        ),
    ];
    for (file, format, want) in cases {
        let err = pairs_of(file, &read(file), format, &Roles::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(want),
            "{file}: {err:?} should start with {want:?}"
        );
    }
    let err = pairs_of(
        "t.json",
        r#"[{"speaker": "", "text": "hi"}]"#,
        None,
        &Roles::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("turn 0: `speaker` is missing or empty"),
        "{err}"
    );
    let err = pairs_of(
        "t.txt",
        "Amy: hello there.\nBo: hi.\n",
        None,
        &Roles::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("cannot tell who the interviewer is"), "{err}");
    assert!(
        "xml"
            .parse::<Format>()
            .unwrap_err()
            .contains("text, vtt, srt or json")
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, .. ProptestConfig::default() })]

    /// The parser never panics, whatever the bytes and whatever format is forced.
    #[test]
    fn parser_never_panics(s in "\\PC{0,400}", f in 0usize..5) {
        let format = [None, Some(Format::Text), Some(Format::Vtt), Some(Format::Srt), Some(Format::Json)][f];
        let _ = pairs_of("fuzz", &s, format, &Roles::default());
    }

    /// Structured noise: near-valid cues, labels and JSON.
    #[test]
    fn parser_never_panics_on_near_valid_input(
        lines in prop::collection::vec(prop_oneof![
            Just("WEBVTT".to_string()), Just("".to_string()), Just("1".to_string()),
            "[0-9:.,]{0,14} --> [0-9:.,]{0,14}", "<v [A-Za-z ]{0,8}>[a-z ?]{0,20}", "[A-Za-z]{1,8}: [a-z ?]{0,30}",
            Just("[{\"speaker\": \"a\", \"text\": \"b?\", \"start\": 3, \"end\": 1}]".to_string()), "\\PC{0,20}",
        ], 0..30),
        f in 0usize..5,
    ) {
        let text = lines.join("\n");
        let format = [None, Some(Format::Text), Some(Format::Vtt), Some(Format::Srt), Some(Format::Json)][f];
        let _ = pairs_of("fuzz", &text, format, &Roles::default());
    }
}

#[tokio::test]
async fn grades_a_transcript_and_writes_reports() {
    let engine = crate::server_engine().await;
    let opts = TranscriptOptions::new(4);
    let found = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let on_event = |e: grader::transcript::PairEvent<'_>| match e {
        grader::transcript::PairEvent::Found(n) => {
            found.store(n, std::sync::atomic::Ordering::SeqCst);
        }
        grader::transcript::PairEvent::Done(_) => {
            done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    };
    let r = grade_transcript(&engine, "basic.txt", &read("basic.txt"), &opts, &on_event)
        .await
        .unwrap();
    assert_eq!(
        found.load(std::sync::atomic::Ordering::SeqCst),
        r.pairs.len()
    );
    assert_eq!(
        done.load(std::sync::atomic::Ordering::SeqCst),
        r.pairs.len()
    );
    // The fixture catalog has only core.copy: the copy question is graded, the rest unmatched.
    assert_eq!(r.pairs[0].rubric_id.as_deref(), Some("core.copy"));
    let g = r.pairs[0].grade.as_ref().expect("graded");
    assert!(g.score >= 5.0, "a good answer: {}", g.score);
    assert!(
        r.pairs[1..]
            .iter()
            .all(|p| p.rubric_id.is_none() && p.grade.is_none() && !p.candidates.is_empty())
    );
    assert_eq!(r.unmatched, 2);
    assert_eq!(
        r.overall,
        Some((g.score / g.max_score * 100.0).round() / 10.0)
    );
    assert_eq!(r.topics.len(), 1);
    assert_eq!(
        r.content_hash,
        grader::rubric::content_hash(&read("basic.txt"))
    );
    let md = report::markdown(&r);
    assert!(
        md.contains("# Interview report: basic.txt") && md.contains("not in the rubric set"),
        "{md}"
    );
    let html = report::html(&r);
    assert!(
        html.starts_with("<!doctype html>")
            && !html.contains("http://")
            && !html.contains("https://")
            && !html.contains("<script"),
        "self-contained"
    );
    assert!(
        html.contains("&lt;") || !r.pairs.iter().any(|p| p.answer.contains('<')),
        "escaped"
    );
}

/// The HTML report renders in headless Chromium: every question and score is on the page,
/// and a screenshot is produced. Ignored by default (it needs Chromium); `.ci/run` installs
/// Chromium and runs it.
#[tokio::test]
#[ignore = "needs Chromium on PATH; .ci/run installs it and runs this test"]
async fn html_report_renders_in_chromium() {
    let Some(chromium) = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            std::process::Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
    else {
        panic!("no chromium on PATH: apt-get install chromium (.ci/run does)");
    };
    let engine = crate::server_engine().await;
    let r = grade_transcript(
        &engine,
        "basic.txt",
        &read("basic.txt"),
        &TranscriptOptions::new(4),
        &|_| {},
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("report.html");
    std::fs::write(&page, report::html(&r)).unwrap();
    let flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
    ];
    let profile = dir.path().join("profile");
    let run = |extra: Vec<String>| {
        std::process::Command::new(chromium)
            .args(flags)
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(format!("file://{}", page.display()))
            .output()
            .unwrap()
    };
    let dom = run(vec!["--dump-dom".into()]);
    let dom = String::from_utf8_lossy(&dom.stdout);
    for p in &r.pairs {
        let q = p.question.replace('\'', "&#39;").replace('"', "&quot;");
        assert!(
            dom.contains(&q[..q.len().min(40)])
                || dom.contains(&p.question[..p.question.len().min(40)]),
            "question {} missing from the rendered page",
            p.question
        );
        if let Some(g) = &p.grade {
            assert!(
                dom.contains(&format!("{:.1} / {}", g.score, g.max_score)),
                "score of {} missing",
                p.question
            );
        }
    }
    let shot = dir.path().join("report.png");
    let out = run(vec![
        format!("--screenshot={}", shot.display()),
        "--window-size=1000,1400".into(),
    ]);
    assert!(
        shot.exists(),
        "no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 10_000,
        "a blank page would be tiny: {} bytes",
        png.len()
    );
    if let Ok(keep) = std::env::var("GRADER_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}

/// `grader batch` grades at most `--concurrency` answers at once across all its transcripts
/// (one semaphore shared by them), not `concurrency` per transcript read at once.
#[tokio::test]
async fn a_batch_grades_at_most_its_concurrency_at_once() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::routing::post;
    use serde_json::{Value, json};

    // An LLM endpoint that takes 80 ms a call and counts the calls in flight.
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post({
            let (now, peak) = (now.clone(), peak.clone());
            move |body: axum::body::Bytes| {
                let (now, peak) = (now.clone(), peak.clone());
                async move {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(80)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let ids = req["response_format"]["json_schema"]["schema"]["properties"]
                        ["criteria"]["items"]["properties"]["id"]["enum"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    let out = json!({
                        "criteria": ids.iter().map(|id| json!({"id": id, "verdict": "missed", "evidence": "", "reason": "r"})).collect::<Vec<_>>(),
                        "misconceptions": [], "gaps": [], "feedback": "f"
                    });
                    axum::Json(json!({"id": "x", "object": "chat.completion", "created": 1, "model": "fake",
                        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": out.to_string()}}],
                        "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}}))
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let engine = Arc::new(
        crate::common::engine_with(crate::common::Rubrics::Shipped, |s| {
            s.llm.base_url = base;
            s.judge.kind = grader::config::JudgeKind::Llm;
            s.judge.llm_hints = false;
            s.judge.exemplars_k = 0;
        })
        .await,
    );
    // Four transcripts of three questions on different rubrics each.
    let dir = tempfile::tempdir().unwrap();
    // Questions that read as questions (a `?`), so each is a pair of its own.
    let rubrics: Vec<_> = engine
        .catalog()
        .iter()
        .filter(|r| r.question.trim_end().ends_with('?'))
        .take(12)
        .cloned()
        .collect();
    assert_eq!(rubrics.len(), 12);
    let files: Vec<std::path::PathBuf> = rubrics
        .chunks(3)
        .enumerate()
        .map(|(i, rs)| {
            let text: String = rs
                .iter()
                .map(|r| {
                    format!(
                        "Interviewer: {}\nCandidate: {}\n",
                        r.question,
                        r.model_answers[0].text.replace('\n', " ")
                    )
                })
                .collect();
            let p = dir.path().join(format!("t{i}.txt"));
            std::fs::write(&p, text).unwrap();
            p
        })
        .collect();
    let opts = grader::transcript::batch::BatchOptions {
        out: dir.path().join("out"),
        concurrency: 2,
        format: None,
        judge: None,
        force: false,
    };
    let summaries = grader::transcript::batch::run(engine, &files, &opts, &|_| {})
        .await
        .unwrap();
    let graded: usize = summaries
        .iter()
        .map(|s| s.pairs.iter().filter(|p| p.score.is_some()).count())
        .sum();
    assert_eq!(graded, 12, "{summaries:?}");
    assert_eq!(peak.load(Ordering::SeqCst), 2, "answers in flight at most");
}
