//! ARCHITECTURE.md's invariants that a text search can check: which modules may import which
//! crates, where prompt text lives, that every module says its job, and file sizes.

use std::path::{Path, PathBuf};

use crate::common::root;

/// Every `.rs` file under `src/`, with its path relative to the crate root and its text.
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&root().join("src"), &mut files);
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(root())
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// Files that mention `needle` outside the allowed path prefixes.
fn offenders(needle: &str, allowed: &[&str]) -> Vec<String> {
    sources()
        .into_iter()
        .filter(|(path, _)| !allowed.iter().any(|a| path.starts_with(a)))
        .filter(|(_, text)| text.contains(needle))
        .map(|(path, _)| path)
        .collect()
}

#[test]
fn only_llm_imports_async_openai_and_only_store_imports_qdrant() {
    assert_eq!(
        offenders("async_openai", &["src/llm/"]),
        Vec::<String>::new()
    );
    assert_eq!(
        offenders("qdrant_client", &["src/store/"]),
        Vec::<String>::new()
    );
}

#[test]
fn only_the_audit_db_module_runs_sql() {
    for driver in ["rusqlite", "tokio_postgres"] {
        assert_eq!(
            offenders(driver, &["src/audit/db/"]),
            Vec::<String>::new(),
            "{driver}"
        );
    }
}

#[test]
fn only_the_binary_uses_anyhow() {
    assert_eq!(
        offenders("anyhow", &["src/main.rs", "src/cli/"]),
        Vec::<String>::new()
    );
}

/// Prompt text lives in `prompts/`: phrases of the templates never appear in `.rs` files.
#[test]
fn prompt_text_lives_in_prompts() {
    let mut phrases = Vec::new();
    for name in ["judge_system.j2", "judge_user.j2"] {
        let text = std::fs::read_to_string(root().join("prompts").join(name)).unwrap();
        // Template lines without template syntax, long enough to be prose.
        phrases.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| l.len() >= 40 && !l.contains("{{") && !l.contains("{%"))
                .map(str::to_string),
        );
    }
    assert!(phrases.len() >= 3, "the templates have prose: {phrases:?}");
    for (path, text) in sources() {
        for p in &phrases {
            assert!(
                !text.contains(p.as_str()),
                "{path} holds prompt text (move it to prompts/): {p}"
            );
        }
    }
}

/// Every module opens with a `//!` line saying its job; a file over ~500 lines says in that
/// doc why it is long (a line with "long because").
#[test]
fn every_module_says_its_job_and_long_files_say_why() {
    for (path, text) in sources() {
        assert!(
            text.trim_start().starts_with("//!"),
            "{path} does not open with a `//!` doc"
        );
        let lines = text.lines().count();
        if lines > 520 {
            let doc: String = text
                .lines()
                .take_while(|l| l.starts_with("//!"))
                .collect::<Vec<_>>()
                .join("\n");
            assert!(
                doc.to_lowercase().contains("long because"),
                "{path} has {lines} lines: split it, or say in its module doc why it is long"
            );
        }
    }
}

/// HTTP clients are built with their errors surfaced: a client that cannot be built must not
/// fall back to a default one, which would silently drop the configured timeout.
#[test]
fn http_clients_surface_build_errors() {
    for (path, text) in sources() {
        let flat: String = text.split_whitespace().collect();
        for fallback in [".build().unwrap_or_default()", ".build().unwrap_or_else("] {
            assert!(
                !flat.contains(fallback),
                "{path} builds a client with `{fallback}`: return the error"
            );
        }
    }
}
