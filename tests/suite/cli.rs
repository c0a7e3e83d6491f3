//! The `grader` binary end to end (real model, embedded store in a data dir copied from the
//! suite's index snapshot).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

use crate::common::{data, data_dir_from_snapshot, model_dir, root};

/// One data dir for the CLI tests, with the shipped set already indexed (a copy of the
/// snapshot: `grader` processes in parallel read it and find nothing to index). It lives in
/// cargo's per-target temporary folder and is replaced on the next run, so nothing piles up
/// in the system's temporary folder.
fn data_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli-data");
        let _ = std::fs::remove_dir_all(&dir);
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(data_dir_from_snapshot(&dir));
        let out = grader_in(&dir, &["index", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["points_written"], 0, "the snapshot is up to date");
        dir
    })
}

fn grader_in(dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grader"))
        .args(args)
        .current_dir(root())
        .env("GRADER__DATA_DIR", dir)
        .env("GRADER__EMBEDDING__MODEL_DIR", model_dir())
        .env("GRADER__LOG__LEVEL", "warn")
        .env_remove("OPENAI_API_KEY")
        .output()
        .unwrap()
}

fn grader(args: &[&str]) -> Output {
    grader_in(data_dir(), args)
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[test]
fn rubrics_list_and_lint() {
    let v = json(&grader(&["rubrics", "list", "--json"]));
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 55);
    for r in rows {
        for key in ["id", "topic", "question", "criteria", "exemplars"] {
            assert!(r.get(key).is_some(), "{key} missing in {r}");
        }
        assert!(r["criteria"].as_u64().unwrap() >= 4 && r["exemplars"].as_u64().unwrap() >= 3);
    }
    let out = grader(&["rubrics", "lint"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("55 rubrics OK"));
}

#[test]
fn lint_reports_every_bad_file_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("core")).unwrap();
    let good = std::fs::read_to_string(data("fixtures/rubrics/core/copy.toml")).unwrap();
    std::fs::write(
        dir.path().join("core/copy.toml"),
        good.replacen("weight = 1", "weight = 0", 1),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("core/other.toml"),
        good.replace("core.copy", "core.other")
            .replace("aliases = [", "aliases = [\"x\"]\nold_aliases = ["),
    )
    .unwrap();
    let out = grader(&["rubrics", "lint", "--dir", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("core/copy.toml: criteria[2].weight: must be > 0"),
        "{err}"
    );
    assert!(
        err.contains("core/other.toml") && err.contains("old_aliases"),
        "{err}"
    );
    assert!(err.contains("2 error(s)"), "{err}");
}

#[test]
fn match_prints_json() {
    let v = json(&grader(&[
        "match",
        "How does Python's garbage collector deal with reference cycles?",
        "--json",
    ]));
    assert_eq!(v["rubric_id"], "core.memory-management");
    assert!(v["similarity"].as_f64().unwrap() > 0.5);
    assert!(v["candidates"].as_array().unwrap().len() >= 2);
    let v = json(&grader(&[
        "match",
        "What temperature should I bake sourdough at?",
        "--json",
    ]));
    assert!(v["rubric_id"].is_null(), "{v}");
    // A rubric's own question: a dot product of unit vectors, never printed above 1.
    let v = json(&grader(&[
        "match",
        "Difference between deepcopy and shallow copy? When to use each?",
        "--json",
    ]));
    assert_eq!(v["rubric_id"], "core.copy");
    for c in v["candidates"].as_array().unwrap() {
        assert!(c["similarity"].as_f64().unwrap() <= 1.0, "{v}");
    }
    assert!(v["similarity"].as_f64().unwrap() <= 1.0, "{v}");
}

#[test]
fn grade_from_argument_file_and_stdin() {
    let answer = "The GIL lets only one thread run Python bytecode at a time, so CPU-bound threads don't run in parallel; it is released during blocking I/O.";
    let v = json(&grader(&[
        "grade",
        "--question-id",
        "concurrency.gil",
        "--answer",
        answer,
        "--json",
    ]));
    assert_eq!(v["rubric_id"], "concurrency.gil");
    assert!(v["score"].as_f64().unwrap() > 0.0);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("answer.txt");
    std::fs::write(&f, answer).unwrap();
    let v2 = json(&grader(&[
        "grade",
        "--question-id",
        "concurrency.gil",
        "--answer-file",
        f.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(v2["score"], v["score"]);
    let mut child = Command::new(env!("CARGO_BIN_EXE_grader"))
        .args(["grade", "--question", "What is the GIL?", "-"])
        .current_dir(root())
        .env("GRADER__DATA_DIR", data_dir())
        .env("GRADER__EMBEDDING__MODEL_DIR", model_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("concurrency.gil "), "human output: {text}");
    assert!(text.contains("[met"), "a line per criterion: {text}");
    let out = grader(&["grade", "--question-id", "nope.nope", "--answer", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown question id `nope.nope`"));
}

#[test]
fn eval_reports_metrics_and_skips_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("set.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(data("labelled.jsonl"))
        .unwrap()
        .lines()
        .take(12)
        .map(str::to_string)
        .collect();
    std::fs::write(&f, format!("{}\nnot json\n{{\"question\": \"What is a hash map?\", \"reference_answer\": \"A hash map stores key-value pairs in buckets chosen by hashing the key. Lookups are O(1) on average.\", \"answer\": \"It hashes keys into buckets for O(1) lookups.\", \"score\": 8, \"scale_max\": 10}}\n", lines.join("\n"))).unwrap();
    let out = grader(&["eval", f.to_str().unwrap(), "--json"]);
    let v = json(&out);
    assert_eq!(v["n"], 13);
    for key in [
        "pearson",
        "spearman",
        "qwk",
        "rmse",
        "mae",
        "answers_per_second",
    ] {
        assert!(v[key].is_number(), "{key}: {v}");
    }
    // All on 0–10: metrics on that scale, no classification (11 levels), the 10 worst items.
    assert_eq!(v["scale_max"], 10.0);
    assert!(v["classification"].is_null(), "{v}");
    assert_eq!(v["worst"].as_array().map(Vec::len), Some(10), "{v}");
    assert!(v["worst"][0]["answer"].as_str().unwrap().chars().count() <= 120);
    assert_eq!(v["skipped_lines"][0]["line"], 13);
    assert!(String::from_utf8_lossy(&out.stderr).contains(":13: skipped"));
    let predictions = dir.path().join("predictions.jsonl");
    let v = json(&grader(&[
        "eval",
        f.to_str().unwrap(),
        "--json",
        "--limit",
        "5",
        "--predictions",
        predictions.to_str().unwrap(),
    ]));
    assert_eq!(v["n"], 5);
    // One line per graded item, in file order, with the human score from the file and the
    // grade's own score on the item's scale.
    let rows: Vec<Value> = std::fs::read_to_string(&predictions)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 5);
    for (i, (row, line)) in rows.iter().zip(&lines).enumerate() {
        let item: Value = serde_json::from_str(line).unwrap();
        assert_eq!(row["line"], i + 1, "{row}");
        assert_eq!(row["human"].as_f64(), item["score"].as_f64(), "{row}");
        let grade = &row["grade"];
        let expected = grade["score"].as_f64().unwrap() / grade["max_score"].as_f64().unwrap()
            * item["scale_max"].as_f64().unwrap();
        assert!(
            (row["predicted"].as_f64().unwrap() - expected).abs() < 1e-6,
            "{row}"
        );
        assert!(
            grade["criteria"].as_array().is_some_and(|c| !c.is_empty()),
            "{row}"
        );
    }
    // A path that cannot be written is refused before any grading, naming the flag.
    let out = grader(&[
        "eval",
        f.to_str().unwrap(),
        "--predictions",
        dir.path().join("no/such/dir/p.jsonl").to_str().unwrap(),
    ]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--predictions"), "{err}");
}

#[test]
fn batch_writes_reports_resumes_and_reports_failures() {
    let out_dir = tempfile::tempdir().unwrap();
    let t = |n: &str| {
        data(&format!("transcripts/{n}"))
            .to_str()
            .unwrap()
            .to_string()
    };
    let args = |extra: &[&str]| {
        let mut a: Vec<String> = vec![
            "batch".into(),
            t("basic.txt"),
            t("voices.vtt"),
            t("bad/empty.txt"),
            "--out".into(),
            out_dir.path().to_str().unwrap().into(),
            "--json".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let run = |a: Vec<String>| grader(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let out = run(args(&[]));
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed transcript makes the exit code non-zero"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["status"], "graded");
    assert!(rows[0]["overall"].is_number());
    let pairs = rows[0]["pairs"].as_array().unwrap();
    assert_eq!(pairs[0]["rubric_id"], "core.copy");
    assert!(pairs[0]["score"].is_number() && pairs[0]["max_score"] == 10.0);
    assert_eq!(rows[1]["status"], "graded");
    assert_eq!(rows[2]["status"], "failed");
    assert!(
        rows[2]["error"]
            .as_str()
            .unwrap()
            .contains("empty.txt:1: the transcript is empty")
    );
    for ext in ["json", "md", "html"] {
        assert!(
            out_dir.path().join(format!("basic.{ext}")).exists(),
            "basic.{ext}"
        );
        assert!(out_dir.path().join(format!("voices.{ext}")).exists());
    }
    let again: Value = serde_json::from_slice(&run(args(&[])).stdout).unwrap();
    assert_eq!(
        again[0]["status"], "skipped",
        "same content and rubric set: not graded again"
    );
    assert_eq!(again[0]["overall"], rows[0]["overall"]);
    let forced: Value = serde_json::from_slice(&run(args(&["--force"])).stdout).unwrap();
    assert_eq!(forced[0]["status"], "graded");
}

/// Inputs that share a name (`a/interview.txt`, `b/interview.txt`) and an input named like a
/// renamed report (`interview-2.vtt`) each get their own report, under names that stay the same
/// on the next run, which then skips all three.
#[test]
fn batch_report_names_never_collide() {
    let dir = tempfile::tempdir().unwrap();
    let put = |rel: &str, from: &str, tweak: &str| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let text = std::fs::read_to_string(data(&format!("transcripts/{from}"))).unwrap();
        std::fs::write(&p, format!("{text}{tweak}")).unwrap();
        p.to_str().unwrap().to_string()
    };
    let files = [
        put("a/interview.txt", "basic.txt", ""),
        put(
            "b/interview.txt",
            "basic.txt",
            "Interviewer: One more: what is a generator?\nCandidate: A function that yields values lazily.\n",
        ),
        put("interview-2.vtt", "voices.vtt", ""),
    ];
    let out = dir.path().join("out");
    let run = || {
        let mut args = vec!["batch"];
        args.extend(files.iter().map(String::as_str));
        args.extend(["--out", out.to_str().unwrap(), "--json"]);
        grader(&args)
    };
    let first = json(&run());
    let rows = first.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r["status"] == "graded"), "{first}");
    let mut reports: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".json"))
        .collect();
    reports.sort();
    assert_eq!(reports.len(), 3, "one report per input: {reports:?}");
    assert!(
        reports.contains(&"interview-2.json".to_string()),
        "{reports:?}"
    );
    // Each report is its input's.
    for f in &files {
        let owner = reports.iter().filter(|r| {
            let v: Value =
                serde_json::from_str(&std::fs::read_to_string(out.join(r.as_str())).unwrap())
                    .unwrap();
            v["file"] == f.as_str()
        });
        assert_eq!(owner.count(), 1, "{f}");
    }
    let again = json(&run());
    assert!(
        again
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] == "skipped"),
        "the same names on the next run: {again}"
    );
}

/// `grader train` on labelled pairs writes a head file that parses, names its data by sha256,
/// measures itself on held-out questions, and is better than chance there; a catalog item (no
/// reference answer) is refused with its line.
#[test]
fn train_writes_a_head_that_learned_something() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("head.toml");
    let data_file = data("semeval/train-600.jsonl");
    let o = grader(&[
        "train",
        data_file.to_str().unwrap(),
        "--epochs",
        "60",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    let head = grader::judge::Head::parse(&text, "test").unwrap();
    assert!(head.is_trained());
    assert_eq!(head.info.pairs, 600);
    assert!(
        head.info.data[0].contains("sha256:"),
        "{:?}",
        head.info.data
    );
    assert!(
        head.info.holdout_auc > 0.6,
        "held-out AUC {}",
        head.info.holdout_auc
    );
    assert!(
        text.starts_with("# The correctness head"),
        "the header says how to retrain"
    );
    assert!(head.hidden_bias.is_empty(), "logistic unless --hidden");
    // With a hidden layer: its units are in the file, and so is the command that made it.
    let o = grader(&[
        "train",
        data_file.to_str().unwrap(),
        "--hidden",
        "8",
        "--epochs",
        "20",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let head = grader::judge::Head::parse(&std::fs::read_to_string(&out).unwrap(), "test").unwrap();
    assert_eq!(head.hidden_bias.len(), 8);
    assert!(
        head.info.command.contains("--hidden 8 --epochs 20"),
        "{}",
        head.info.command
    );
    assert!(
        head.info.holdout_auc > 0.6,
        "held-out AUC with a hidden layer {}",
        head.info.holdout_auc
    );
    let o = grader(&[
        "train",
        data("labelled.jsonl").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("labelled.jsonl:1") && err.contains("reference_answer"),
        "{err}"
    );
}

/// `grade --save` stores the grade (with its id and candidate) in the per-user SQLite store;
/// `export-reviews` writes nothing while nothing is reviewed; `purge --candidate` deletes the
/// candidate's grades, and a second purge finds none.
#[tokio::test]
async fn saved_grades_are_exported_and_purged_by_candidate() {
    let dir = tempfile::tempdir().unwrap();
    data_dir_from_snapshot(dir.path()).await;
    let g = grader_in(
        dir.path(),
        &[
            "grade",
            "--question-id",
            "core.copy",
            "--answer",
            "A shallow copy shares the nested objects; copy.deepcopy copies them recursively.",
            "--save",
            "--candidate",
            "cand-7",
            "--json",
        ],
    );
    let v = json(&g);
    let id = v["id"].as_str().unwrap();
    assert_ne!(
        id, "00000000-0000-0000-0000-000000000000",
        "a saved grade has an id"
    );
    let e = grader_in(dir.path(), &["export-reviews"]);
    assert!(e.status.success(), "{}", String::from_utf8_lossy(&e.stderr));
    assert!(
        e.stdout.is_empty(),
        "no reviews yet: {}",
        String::from_utf8_lossy(&e.stdout)
    );
    let p = json(&grader_in(
        dir.path(),
        &["purge", "--candidate", "cand-7", "--json"],
    ));
    assert_eq!(p["grades"], 1, "{p}");
    let p = json(&grader_in(
        dir.path(),
        &["purge", "--candidate", "cand-7", "--json"],
    ));
    assert_eq!(p["grades"], 0, "{p}");
}
