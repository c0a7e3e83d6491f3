//! What ships inside the binary, and where per-user files live.
//!
//! The binary carries the rubric set (`rubrics/`, listed by `build.rs`), the configuration
//! defaults, the coverage judge's calibration and the LLM judge's prompts, so `grader` grades
//! from any directory with nothing beside it. Each has a setting that points at a file or folder
//! instead (`rubrics_dir`, `judge.calibration`); an empty setting means the built-in copy.
//!
//! What does not ship: the embedding model (90 MB, fetched by `grader models fetch`) lives in
//! the per-user cache folder, and the vector index in the per-user data folder
//! (`$XDG_CACHE_HOME/grader`, `$XDG_DATA_HOME/grader` on Linux; the platform's own folders
//! elsewhere), unless `embedding.model_dir` or `data_dir` say otherwise. Relative settings are
//! resolved against the directory `grader` runs in.
//!
//! Adding a shipped file is one line here, `pub const NAME: Shipped = shipped!("config/x.toml");`,
//! and loading it is `NAME.read(&settings.some.path, base)?`.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use crate::config::Settings;

/// A file compiled into the binary, by its path in the repository.
#[derive(Debug, Clone, Copy)]
pub struct Shipped {
    /// The path in the repository it was built from (for messages).
    pub path: &'static str,
    pub text: &'static str,
}

macro_rules! shipped {
    ($path:literal) => {
        Shipped {
            path: $path,
            text: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/", $path)),
        }
    };
}

/// The lowest configuration layer (every key, documented).
pub const DEFAULT_CONFIG: Shipped = shipped!("config/default.toml");
/// The coverage judge's thresholds, fitted by `grader calibrate` (`judge.calibration`).
pub const CALIBRATION: Shipped = shipped!("config/calibration.toml");
/// The coverage judge's correctness head, trained by `grader train` (`judge.head`).
pub const ENTAIL_HEAD: Shipped = shipped!("config/entail-head.toml");

/// The shipped rubric set: `(path under rubrics/, TOML text)`, sorted by path.
pub static RUBRICS: &[(&str, &str)] = include!(concat!(env!("OUT_DIR"), "/rubrics.rs"));

/// The text of a shipped file, or of the file a setting names instead.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub text: Cow<'static, str>,
    /// Where it came from, for messages: the file, or `config/x.toml (built in)`.
    pub origin: String,
}

/// A file or folder a setting names that cannot be read, or a per-user folder that cannot be
/// found.
#[derive(Debug, thiserror::Error)]
pub enum AssetError {
    #[error("{key} = {path}: {message} (leave {key} empty to use the copy built into grader)")]
    Read {
        key: &'static str,
        path: String,
        message: String,
    },
    #[error("no per-user {what} folder (is HOME set?): set {key} ({env}) to a folder")]
    NoHome {
        what: &'static str,
        key: &'static str,
        env: &'static str,
    },
}

impl Shipped {
    /// This file's built-in text, or, when `setting` (the config key `key`) names a file, that
    /// file's (relative to `base`).
    pub fn read(
        &self,
        key: &'static str,
        setting: &Path,
        base: &Path,
    ) -> Result<Loaded, AssetError> {
        if setting.as_os_str().is_empty() {
            return Ok(Loaded {
                text: Cow::Borrowed(self.text),
                origin: format!("{} (built in)", self.path),
            });
        }
        let path = Settings::resolve(base, setting);
        let text = std::fs::read_to_string(&path).map_err(|e| AssetError::Read {
            key,
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Loaded {
            text: Cow::Owned(text),
            origin: path.display().to_string(),
        })
    }
}

/// The embedding model's folder: `embedding.model_dir`, else
/// `<user cache>/grader/models/all-MiniLM-L6-v2`.
pub fn model_dir(settings: &Settings, base: &Path) -> Result<PathBuf, AssetError> {
    let set = &settings.embedding.model_dir;
    if !set.as_os_str().is_empty() {
        return Ok(Settings::resolve(base, set));
    }
    dirs::cache_dir()
        .map(|d| d.join("grader/models").join(MODEL_NAME))
        .ok_or(AssetError::NoHome {
            what: "cache",
            key: "embedding.model_dir",
            env: "GRADER__EMBEDDING__MODEL_DIR",
        })
}

/// The folder of the embedded index and caches: `data_dir`, else `<user data>/grader`.
pub fn data_dir(settings: &Settings, base: &Path) -> Result<PathBuf, AssetError> {
    let set = &settings.data_dir;
    if !set.as_os_str().is_empty() {
        return Ok(Settings::resolve(base, set));
    }
    dirs::data_dir()
        .map(|d| d.join("grader"))
        .ok_or(AssetError::NoHome {
            what: "data",
            key: "data_dir",
            env: "GRADER__DATA_DIR",
        })
}

/// The local model's folder name.
pub const MODEL_NAME: &str = "all-MiniLM-L6-v2";
