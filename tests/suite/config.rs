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

/// An empty or blank secret is refused with the key it came from: an empty signing secret
/// would verify forged Slack requests, an empty API key would match an empty `x-api-key:`.
#[test]
fn empty_secrets_are_refused_naming_the_key() {
    for (vars, key) in [
        (
            vec![("GRADER__SLACK__SIGNING_SECRET", "")],
            "slack.signing_secret",
        ),
        (vec![("GRADER__SLACK__BOT_TOKEN", "   ")], "slack.bot_token"),
        (
            vec![("GRADER__SERVER__API_KEYS", "[\"\"]")],
            "server.api_keys[0]",
        ),
        (
            vec![("GRADER__SERVER__API_KEYS", "[\"key-1\", \" \"]")],
            "server.api_keys[1]",
        ),
        (
            vec![("GRADER__SERVER__ADMIN_KEYS", "[\"\"]")],
            "server.admin_keys[0]",
        ),
        (vec![("GRADER__LLM__API_KEY", " ")], "llm.api_key"),
        (vec![("GRADER__STORE__API_KEY", "")], "store.api_key"),
        (vec![("SLACK_SIGNING_SECRET", "")], "SLACK_SIGNING_SECRET"),
        (vec![("SLACK_BOT_TOKEN", " \t")], "SLACK_BOT_TOKEN"),
        (vec![("OPENAI_API_KEY", "")], "OPENAI_API_KEY"),
        (vec![("QDRANT_API_KEY", " ")], "QDRANT_API_KEY"),
    ] {
        let err = load(None, &vars).unwrap_err();
        assert!(
            err.contains(key) && err.contains("empty"),
            "{vars:?}: {err}"
        );
    }
    // Real secrets load.
    let s = load(
        None,
        &[
            ("GRADER__SERVER__API_KEYS", "[\"key-1\"]"),
            ("GRADER__SERVER__ADMIN_KEYS", "[\"admin-1\"]"),
            ("SLACK_SIGNING_SECRET", "s3cret"),
        ],
    )
    .unwrap();
    assert_eq!(s.server.api_keys.len(), 1);
    assert_eq!(s.server.admin_keys.len(), 1);
    assert!(s.slack.is_configured());
}

#[test]
fn hardening_settings_have_safe_defaults_and_are_checked() {
    let s = Settings::defaults().unwrap();
    assert!(
        !s.server.expose_rubrics,
        "rubrics are not public by default"
    );
    assert!(s.server.admin_keys.is_empty());
    assert!(s.server.header_read_timeout_ms > 0 && s.server.header_read_timeout_ms <= 30_000);
    assert!(s.server.body_read_timeout_ms > 0 && s.server.idle_timeout_ms > 0);
    assert!(s.server.max_connections >= 64);
    assert!(s.limits.max_queued_grades >= s.limits.max_batch);
    assert_eq!(
        s.slack.response_url_prefixes,
        ["https://hooks.slack.com/".to_string()]
    );
    for (var, value, key) in [
        (
            "GRADER__SERVER__IDLE_TIMEOUT_MS",
            "0",
            "server.idle_timeout_ms",
        ),
        (
            "GRADER__SERVER__MAX_CONNECTIONS",
            "0",
            "server.max_connections",
        ),
        (
            "GRADER__LIMITS__MAX_QUEUED_GRADES",
            "0",
            "limits.max_queued_grades",
        ),
        (
            "GRADER__LIMITS__MAX_REFERENCE_STATEMENTS",
            "0",
            "limits.max_reference_statements",
        ),
        (
            "GRADER__SLACK__RESPONSE_URL_PREFIXES",
            "[\"https://hooks.slack.com\"]",
            "slack.response_url_prefixes[0]",
        ),
        (
            "GRADER__SLACK__RESPONSE_URL_PREFIXES",
            "[\"hooks.slack.com/\"]",
            "slack.response_url_prefixes[0]",
        ),
    ] {
        let err = load(None, &[(var, value)]).unwrap_err();
        assert!(err.contains(key), "{var}={value}: {err}");
    }
}
