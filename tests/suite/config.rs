//! Layered configuration: defaults, files, environment, errors, secrets.

use grader::config::{JudgeKind, Settings, Sources, StoreKind};

fn load(file_toml: Option<&str>, vars: &[(&str, &str)]) -> Result<Settings, String> {
    let dir = tempfile::tempdir().unwrap();
    let file = file_toml.map(|t| {
        let p = dir.path().join("test.toml");
        std::fs::write(&p, t).unwrap();
        p
    });
    Settings::load(&Sources {
        file,
        env_name: None,
        vars: Some(
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
    })
    .map_err(|e| e.to_string())
}

#[test]
fn embedded_defaults_load() {
    let s = Settings::defaults().unwrap();
    assert_eq!(s.server.host, "127.0.0.1");
    assert_eq!(s.server.port, 8080);
    assert_eq!(s.judge.kind, JudgeKind::Auto);
    assert_eq!(s.store.kind, StoreKind::Embedded);
    assert!(
        !s.llm.is_configured(),
        "no endpoint by default: the coverage judge runs"
    );
    assert_eq!(s.limits.max_body_bytes, 1024 * 1024);
}

#[test]
fn file_overrides_defaults_and_env_overrides_file() {
    let file = "[server]\nport = 9000\n[llm]\nmodel = \"from-file\"\n";
    let s = load(Some(file), &[]).unwrap();
    assert_eq!(s.server.port, 9000);
    assert_eq!(s.llm.model, "from-file");
    let s = load(
        Some(file),
        &[
            ("GRADER__SERVER__PORT", "9100"),
            ("GRADER__LLM__MODEL", "gpt-4o"),
            ("GRADER__DATA_DIR", "/tmp/x"),
        ],
    )
    .unwrap();
    assert_eq!(s.server.port, 9100, "env beats file");
    assert_eq!(s.llm.model, "gpt-4o");
    assert_eq!(s.data_dir, std::path::PathBuf::from("/tmp/x"));
    let s = load(
        None,
        &[
            ("GRADER__JUDGE__KIND", "coverage"),
            ("GRADER__STORE__KIND", "qdrant"),
            ("GRADER__STORE__URL", "http://localhost:6334"),
        ],
    )
    .unwrap();
    assert_eq!(s.judge.kind, JudgeKind::Coverage);
    assert_eq!(s.store.kind, StoreKind::Qdrant);
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let err = load(Some("[server]\nprot = 1\n"), &[]).unwrap_err();
    assert!(err.contains("server.prot"), "{err}");
    let err = load(None, &[("GRADER__LLM__MODLE", "x")]).unwrap_err();
    assert!(err.contains("llm.modle"), "{err}");
    let err = load(Some("colour = \"red\"\n"), &[]).unwrap_err();
    assert!(err.contains("colour"), "{err}");
}

#[test]
fn wrong_types_are_errors_naming_the_key() {
    let err = load(None, &[("GRADER__SERVER__PORT", "eighty")]).unwrap_err();
    assert!(err.contains("server.port"), "{err}");
    let err = load(Some("[judge]\nkind = \"oracle\"\n"), &[]).unwrap_err();
    assert!(err.contains("judge.kind"), "{err}");
}

#[test]
fn invalid_values_name_the_key_and_fix() {
    let err = load(None, &[("GRADER__STORE__KIND", "qdrant")]).unwrap_err();
    assert!(
        err.contains("store.url") && err.contains("GRADER__STORE__URL"),
        "{err}"
    );
    let err = load(None, &[("GRADER__LLM__BASE_URL", "localhost:8000")]).unwrap_err();
    assert!(err.contains("llm.base_url"), "{err}");
}

#[test]
fn missing_environment_file_is_an_error_naming_it() {
    let err = Settings::load(&Sources {
        env_name: Some("nowhere".into()),
        vars: Some(vec![]),
        ..Sources::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("config/nowhere.toml"), "{err}");
}

#[test]
fn secrets_are_read_but_never_printed() {
    let s = load(
        None,
        &[
            ("OPENAI_API_KEY", "sk-very-secret"),
            ("SLACK_SIGNING_SECRET", "slack-secret-123"),
            ("SLACK_BOT_TOKEN", "xoxb-secret-456"),
        ],
    )
    .unwrap();
    assert!(
        s.llm.is_configured(),
        "an API key configures the OpenAI endpoint"
    );
    assert!(s.slack.is_configured());
    let shown = format!("{s:?}");
    for secret in ["sk-very-secret", "slack-secret-123", "xoxb-secret-456"] {
        assert!(!shown.contains(secret), "{secret} leaked into Debug output");
    }
    assert_eq!(grader::config::secret_state(&s.llm.api_key), "set");
}

#[test]
fn price_table_picks_the_longest_prefix() {
    let s = Settings::defaults().unwrap();
    let mini = s.llm.price_for("gpt-4o-mini-2024-07-18").unwrap();
    let full = s.llm.price_for("gpt-4o-2024-08-06").unwrap();
    assert!(mini.input < full.input);
    assert!(s.llm.price_for("llama3").is_none());
}
