//! The binary as a newcomer meets it: run from an empty directory that is not the repository,
//! with nothing in the environment but HOME and the per-user cache and data folders. The rubric
//! set and calibration come from inside the binary, the model from the cache folder, the index
//! from the data folder. Also: failed starts leave nothing behind, a closed pipe ends quietly,
//! logs carry no colour codes off a terminal, and `serve` logs its way up and down.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{copy_dir, data, data_dir_from_snapshot, model_dir};

/// A home for one test: `home/`, `cache/`, `data/` and an empty working directory `work/`, all
/// in a temporary folder outside the repository.
struct Home {
    _tmp: tempfile::TempDir,
    root: PathBuf,
}

impl Home {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        for d in ["home", "cache", "data", "work"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        Home { _tmp: tmp, root }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// The model where `grader` looks by default: `$XDG_CACHE_HOME/grader/models/...` (a link to
    /// the suite's copy, to spare 90 MB).
    fn with_model(self) -> Self {
        let to = self.dir("cache/grader/models/all-MiniLM-L6-v2");
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(model_dir(), &to).unwrap();
        #[cfg(not(unix))]
        copy_dir(&model_dir(), &to);
        self
    }

    /// The shipped set's index where `grader` looks by default, `$XDG_DATA_HOME/grader/store`
    /// (a copy of the suite's snapshot, so the test does not spend a minute indexing).
    async fn with_index(self) -> Self {
        data_dir_from_snapshot(&self.dir("data/grader")).await;
        self
    }

    /// `grader ARGS` in `work/` with only HOME and the cache and data folders set.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_grader"));
        cmd.args(args)
            .current_dir(self.dir("work"))
            .env_clear()
            .env("HOME", self.dir("home"))
            .env("XDG_CACHE_HOME", self.dir("cache"))
            .env("XDG_DATA_HOME", self.dir("data"));
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Every file and folder under `name`, relative to it.
    fn tree(&self, name: &str) -> Vec<String> {
        fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                out.push(p.strip_prefix(base).unwrap().display().to_string());
                if p.is_dir() && !p.is_symlink() {
                    walk(base, &p, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.dir(name), &self.dir(name), &mut out);
        out.sort();
        out
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        stderr(out)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

const ANSWER: &str = "A shallow copy (copy.copy) makes a new outer list, but the nested lists are shared with the original, so changing an inner list shows through both. copy.deepcopy copies the nested objects recursively, using a memo dict for shared references and cycles.";

#[tokio::test]
async fn grades_from_an_empty_directory_with_only_home_cache_and_data_set() {
    let home = Home::new().with_model().with_index().await;
    let v = json(&home.run(&[
        "grade",
        "--question-id",
        "core.copy",
        "--answer",
        ANSWER,
        "--json",
    ]));
    assert_eq!(v["rubric_id"], "core.copy");
    assert!(v["score"].as_f64().unwrap() >= 5.0, "{v}");
    let by_text = json(&home.run(&[
        "grade",
        "--question",
        "What is the difference between a shallow copy and a deep copy in Python?",
        "--answer",
        ANSWER,
        "--json",
    ]));
    assert_eq!(by_text["rubric_id"], "core.copy");
    assert_eq!(by_text["score"], v["score"]);
    // The index it used is the one in the data folder: nothing needed embedding.
    let index = json(&home.run(&["index", "--json"]));
    assert_eq!(index["points_written"], 0, "{index}");
    assert_eq!(index["unchanged"], 55, "{index}");
    assert!(home.tree("work").is_empty(), "{:?}", home.tree("work"));
    let list = json(&home.run(&["rubrics", "list", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 55);
    let lint = home.run(&["rubrics", "lint"]);
    assert!(
        String::from_utf8_lossy(&lint.stdout).contains("55 rubrics OK in the built-in rubric set"),
        "{}",
        stderr(&lint)
    );
}

#[test]
fn a_missing_model_is_a_clear_error_and_a_failed_start_creates_nothing() {
    let home = Home::new();
    let out = home.run(&["grade", "--question-id", "core.copy", "--answer", ANSWER]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let expected = home.dir("cache/grader/models/all-MiniLM-L6-v2");
    assert!(
        err.contains(&expected.display().to_string()) && err.contains("run `grader models fetch`"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "one line, no backtrace: {err}");
    let serve = home.run(&["serve", "--port", "0"]);
    assert_eq!(serve.status.code(), Some(2), "{}", stderr(&serve));
    assert!(stderr(&serve).contains("grader models fetch"));
    // A rubric folder that is not there fails the same way.
    let home = home.with_model();
    let out = home
        .command(&["grade", "--question-id", "core.copy", "--answer", ANSWER])
        .env("GRADER__RUBRICS_DIR", "my-rubrics")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("my-rubrics"), "{}", stderr(&out));
    let cal = home
        .command(&["grade", "--question-id", "core.copy", "--answer", ANSWER])
        .env("GRADER__JUDGE__CALIBRATION", "mine.toml")
        .output()
        .unwrap();
    assert_eq!(cal.status.code(), Some(2));
    assert!(
        stderr(&cal).contains("judge.calibration = ")
            && stderr(&cal).contains("leave judge.calibration empty"),
        "{}",
        stderr(&cal)
    );
    for d in ["work", "data", "home"] {
        assert!(home.tree(d).is_empty(), "{d}: {:?}", home.tree(d));
    }
    assert_eq!(
        home.tree("cache"),
        ["grader", "grader/models", "grader/models/all-MiniLM-L6-v2"],
        "only the model link this test made"
    );
}

#[test]
fn first_run_logs_indexing_progress_without_colour_codes() {
    let home = Home::new().with_model();
    let out = home
        .command(&["index"])
        .env("GRADER__RUBRICS_DIR", data("fixtures/rubrics"))
        .output()
        .unwrap();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("indexing the rubric set:") && err.contains("indexed the rubric set:"),
        "{err}"
    );
    assert!(
        !err.contains('\u{1b}'),
        "no ANSI escapes off a terminal: {err:?}"
    );
    assert!(home.dir("data/grader/store").is_dir());
}

#[test]
fn a_reader_that_closes_early_ends_rubrics_list_quietly() {
    let home = Home::new();
    // The reader is gone before anything is written: the first write fails.
    let mut child = home
        .command(&["rubrics", "list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
    // `| head -1`: read a line, then close, many times over (the race the issue saw).
    for _ in 0..20 {
        let mut child = home
            .command(&["rubrics", "list"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.starts_with("advanced."), "{first}");
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
}

#[tokio::test]
async fn an_address_in_use_is_said_once() {
    let home = Home::new().with_model().with_index().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = home.run(&["serve", "--port", &port]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert_eq!(err.matches("in use").count(), 1, "{err}");
}

/// `grader serve` on a fresh data folder: it listens before indexing, says how indexing goes,
/// serves, and on SIGTERM logs that it stopped.
#[cfg(unix)]
#[test]
fn serve_listens_at_once_and_logs_its_last_line_on_sigterm() {
    let home = Home::new().with_model();
    let mut child = home
        .command(&["serve", "--port", "0", "--log-json"])
        .env("GRADER__RUBRICS_DIR", data("fixtures/rubrics"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            all.push_str(&line);
            all.push('\n');
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                let _ = tx.send(v);
            }
        }
        all
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let next = |what: &str| loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let v = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no `{what}` log line"));
        if v["message"].as_str().unwrap_or_default().starts_with(what) {
            return v;
        }
    };
    let listening = next("listening");
    let addr: std::net::SocketAddr = listening["addr"].as_str().unwrap().parse().unwrap();
    next("indexing the rubric set:");
    next("grader is serving");
    assert!(
        std::net::TcpStream::connect(addr).is_ok(),
        "serving on {addr}"
    );
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    let logs = reader.join().unwrap();
    assert!(status.success(), "{status}: {logs}");
    let last = logs.lines().last().unwrap_or_default();
    assert!(last.contains("grader stopped"), "last line: {last}\n{logs}");
    assert!(logs.contains("shutdown signal received"), "{logs}");
}

#[test]
fn the_built_in_rubric_set_is_the_repository_one() {
    let shipped = grader::rubric::Catalog::shipped().unwrap();
    let on_disk = crate::common::catalog(crate::common::Rubrics::Shipped);
    assert_eq!(shipped.len(), on_disk.len());
    assert_eq!(shipped.version(), on_disk.version());
    let copied = tempfile::tempdir().unwrap();
    copy_dir(&crate::common::root().join("rubrics"), copied.path());
    assert_eq!(
        grader::rubric::Catalog::load_dir(copied.path())
            .unwrap()
            .version(),
        shipped.version()
    );
}
