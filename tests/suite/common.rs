//! Shared fixtures for the suite and the benchmarks (which include this file by path): the real
//! embedding model, the shipped rubric set indexed ONCE per test run, and one engine builder.
//!
//! Indexing the 55 rubrics takes 20 s on 2 cores, so it happens once: the first caller builds
//! an embedded-store snapshot under `CARGO_TARGET_TMPDIR`, keyed by every rubric's index hash
//! (content + model + index schema), and every engine after that (in this process, in the
//! benchmarks, in `grader` processes the CLI tests start) loads or copies it. A changed rubric
//! changes the key, so a stale snapshot is never used.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use grader::config::Settings;
use grader::embed::{Embedder, LocalEmbedder};
use grader::engine::Engine;
use grader::index::{Collections, index_catalog, rubric_hash};
use grader::judge::Calibration;
use grader::rubric::{Catalog, content_hash};
use grader::store::EmbeddedStore;
use tokio::sync::OnceCell;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn data(name: &str) -> PathBuf {
    root().join("tests/data").join(name)
}

/// A JSONL file of `tests/data`, one value per non-blank line; a bad line fails with its
/// file and line number.
pub fn jsonl<T: serde::de::DeserializeOwned>(name: &str) -> Vec<T> {
    let path = data(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}

/// Where the model is: `GRADER__EMBEDDING__MODEL_DIR` when set, else where `grader` looks by
/// default (the per-user cache folder, where `scripts/fetch-models.sh` and
/// `grader models fetch` put it).
pub fn model_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| match std::env::var_os("GRADER__EMBEDDING__MODEL_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => grader::assets::model_dir(&Settings::defaults().expect("defaults"), &root())
            .unwrap_or_else(|e| panic!("{e}")),
    })
    .clone()
}

/// The local model; a missing model is a clear failure telling how to fetch it.
pub fn embedder() -> LocalEmbedder {
    static E: OnceLock<LocalEmbedder> = OnceLock::new();
    E.get_or_init(|| {
        LocalEmbedder::load(&model_dir(), Default::default()).unwrap_or_else(|e| panic!("{e}"))
    })
    .clone()
}

/// The defaults, with the model where the tests find it.
pub fn settings() -> Settings {
    let mut s = Settings::defaults().expect("defaults load");
    // The suite's engines share one embedding worker (`embedder()`), so each sees the others'
    // work as its own delay; admission by delay is tested where it is set.
    s.limits.max_queue_delay_ms = 600_000;
    s.embedding.model_dir = model_dir();
    s
}

/// Which rubrics an engine grades against.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rubrics {
    /// The shipped set (55 rubrics), from the snapshot.
    Shipped,
    /// `tests/data/fixtures/rubrics` (core.copy only): small and quick to index.
    Fixture,
}

pub fn catalog(which: Rubrics) -> Catalog {
    let dir = match which {
        Rubrics::Shipped => root().join("rubrics"),
        Rubrics::Fixture => data("fixtures/rubrics"),
    };
    Catalog::load_dir(&dir).unwrap_or_else(|e| panic!("{e}"))
}

pub fn calibration() -> Calibration {
    Calibration::load(&root().join("config/calibration.toml")).expect("calibration")
}

/// The folder holding the shipped set's index (`<dir>/store`), built on first use.
pub async fn index_snapshot() -> PathBuf {
    static DIR: OnceCell<PathBuf> = OnceCell::const_new();
    DIR.get_or_init(|| async {
        let catalog = catalog(Rubrics::Shipped);
        let embedder = embedder();
        let prefix = settings().store.collection_prefix;
        let hashes: Vec<String> = catalog
            .iter()
            .map(|r| rubric_hash(r, embedder.model_id()))
            .collect();
        let key = content_hash(&format!("{prefix}|{}", hashes.join(",")));
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("index-{key}"));
        if dir.join("ready").is_file() {
            return dir;
        }
        // Build beside it and rename: a process that loses the race keeps the winner's.
        let tmp = dir.with_extension(format!("tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        let store = EmbeddedStore::open(&tmp.join("store")).expect("snapshot store");
        index_catalog(
            &catalog,
            &store,
            &embedder,
            &Collections::new(&prefix),
            &|_, _| {},
        )
        .await
        .expect("index the rubric set");
        std::fs::write(tmp.join("ready"), key).unwrap();
        if std::fs::rename(&tmp, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        dir
    })
    .await
    .clone()
}

/// A data dir for a `grader` process (`<to>/store` copied from the snapshot), so the process
/// starts with the shipped set already indexed.
pub async fn data_dir_from_snapshot(to: &Path) {
    copy_dir(&index_snapshot().await.join("store"), &to.join("store"));
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}

/// An engine over `which` rubrics with test settings changed by `tweak`, on an in-memory store
/// (the shipped set's starts from the snapshot, so nothing is embedded again).
pub async fn engine_with(which: Rubrics, tweak: impl FnOnce(&mut Settings)) -> Engine {
    let mut s = settings();
    tweak(&mut s);
    let store = match which {
        Rubrics::Shipped => {
            EmbeddedStore::load_detached(&index_snapshot().await.join("store")).expect("snapshot")
        }
        Rubrics::Fixture => EmbeddedStore::in_memory(),
    };
    Engine::with_parts(
        s,
        catalog(which),
        Arc::new(embedder()),
        Arc::new(store),
        calibration(),
        &|_, _| {},
    )
    .await
    .expect("engine")
}

/// The engine over the shipped rubrics with default settings, shared by the whole binary.
pub async fn engine() -> Arc<Engine> {
    static ENGINE: OnceCell<Arc<Engine>> = OnceCell::const_new();
    ENGINE
        .get_or_init(|| async { Arc::new(engine_with(Rubrics::Shipped, |_| {}).await) })
        .await
        .clone()
}

/// An HTTP client for tests (reqwest is built without a default TLS provider).
pub fn http() -> reqwest::Client {
    grader::llm::install_crypto_provider();
    reqwest::Client::new()
}

/// A test that needs an outside service says why it did not run, so a skip never looks like a
/// pass: such tests are `#[ignore = "..."]` and run by `.ci/run` when the service is there.
pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: this test is ignored by default; run it with the service up and {name} set (see .ci/run)")
    })
}

/// The real embedder behind a gate: while the gate is closed every `embed` call says it arrived
/// and waits, so a test holds work in flight at a known point instead of sleeping and hoping.
pub struct Gated {
    inner: LocalEmbedder,
    open: tokio::sync::watch::Sender<bool>,
    arrivals: tokio::sync::Notify,
    /// A closed gate holds only calls of more texts than this (0: every call).
    hold_over: usize,
}

impl Gated {
    pub fn new(open: bool) -> Arc<Self> {
        Arc::new(Gated {
            inner: embedder(),
            open: tokio::sync::watch::channel(open).0,
            arrivals: tokio::sync::Notify::new(),
            hold_over: 0,
        })
    }

    /// A closed gate that holds only calls of more than `texts` texts (indexing's large calls,
    /// not a short answer's).
    pub fn holding_calls_over(texts: usize) -> Arc<Self> {
        Arc::new(Gated {
            inner: embedder(),
            open: tokio::sync::watch::channel(false).0,
            arrivals: tokio::sync::Notify::new(),
            hold_over: texts,
        })
    }

    pub fn close(&self) {
        self.open.send_replace(false);
    }

    pub fn open(&self) {
        self.open.send_replace(true);
    }

    /// Resolves once a call is waiting at the closed gate.
    pub async fn arrived(&self) {
        self.arrivals.notified().await;
    }
}

impl grader::embed::Embedder for Gated {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn model_id(&self) -> &str {
        self.inner.model_id()
    }

    fn embed<'a>(
        &'a self,
        texts: &'a [String],
    ) -> futures::future::BoxFuture<'a, Result<Vec<Vec<f32>>, grader::embed::EmbedError>> {
        Box::pin(async move {
            let mut open = self.open.subscribe();
            if !*open.borrow_and_update() && texts.len() > self.hold_over {
                self.arrivals.notify_one();
                let _ = open.wait_for(|o| *o).await;
            }
            self.inner.embed(texts).await
        })
    }
}

/// CPU seconds (user + system) this process has used (benchmarks; in 10 ms ticks).
pub fn cpu_seconds() -> f64 {
    stat_cpu_seconds("/proc/self/stat")
}

/// CPU seconds (user + system) another process has used.
pub fn process_cpu_seconds(pid: u32) -> f64 {
    stat_cpu_seconds(&format!("/proc/{pid}/stat"))
}

fn stat_cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}
