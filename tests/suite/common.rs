//! Shared fixtures: the real embedding model and an engine over the shipped rubric set,
//! loaded once per test binary.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use grader::config::Settings;
use grader::embed::LocalEmbedder;
use grader::engine::Engine;
use grader::judge::Calibration;
use grader::rubric::Catalog;
use grader::store::EmbeddedStore;
use tokio::sync::OnceCell;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn data(name: &str) -> PathBuf {
    root().join("tests/data").join(name)
}

/// The local model; a missing model is a clear failure telling how to fetch it.
pub fn embedder() -> LocalEmbedder {
    static E: OnceLock<LocalEmbedder> = OnceLock::new();
    E.get_or_init(|| {
        LocalEmbedder::load(&root().join("models/all-MiniLM-L6-v2"), 256, 32)
            .unwrap_or_else(|e| panic!("{e}"))
    })
    .clone()
}

pub fn settings() -> Settings {
    Settings::defaults().expect("defaults load")
}

pub fn catalog() -> Catalog {
    Catalog::load_dir(&root().join("rubrics")).unwrap_or_else(|e| panic!("{e}"))
}

/// An engine over the shipped rubrics, with an in-memory store.
pub async fn engine() -> Arc<Engine> {
    static ENGINE: OnceCell<Arc<Engine>> = OnceCell::const_new();
    ENGINE
        .get_or_init(|| async {
            let cal =
                Calibration::load(&root().join("config/calibration.toml")).expect("calibration");
            Arc::new(
                Engine::with_parts(
                    settings(),
                    catalog(),
                    Arc::new(embedder()),
                    Arc::new(EmbeddedStore::in_memory()),
                    cal,
                )
                .await
                .expect("engine"),
            )
        })
        .await
        .clone()
}

/// An HTTP client for tests (reqwest is built without a default TLS provider).
pub fn http() -> reqwest::Client {
    grader::llm::install_crypto_provider();
    reqwest::Client::new()
}
