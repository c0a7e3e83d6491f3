//! The HTTP service (`grader serve`): axum routes over the shared [`Engine`].
//!
//! [`Application::build`] checks what can fail fast, binds the socket (port 0 for tests) and,
//! once running, indexes in the background while `/readyz` answers 503 with the progress;
//! [`router`] builds the routes over a ready [`AppState`] so tests can call it with `oneshot`.
//! Bad input is always a 4xx `application/problem+json` that says what to fix. The Slack bot
//! brings its own router and state (`crate::slack::router`), mounted here.
//!
//! # Layout
//! - `grade.rs`, `questions.rs`, `transcripts.rs`, `ops.rs`: the handlers, by resource;
//!   `grades.rs`: stored grades and reviews (admin keys); `ui.rs`: the reviewer's web page.
//! - `body.rs`: the body extractors (JSON and transcript text), one set of checks for all.
//! - `middleware.rs`: API keys and roles, request logs, request ids in problems, panics.
//! - `conn.rs`: the accept loop, connection limit and timeouts, smuggling heads refused;
//!   `framing.rs`: the byte-level HTTP/1.1 framing those need.
//! - `openapi.rs`: the OpenAPI document; `metrics.rs`: the Prometheus registry.
//! - `startup.rs`: the warm-up routes served until the engine is ready.

// Handlers return `Result<_, Problem>`; a problem is a response body, built once per error,
// so its size does not matter and boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod body;
mod conn;
mod framing;
mod grade;
mod grades;
mod metrics;
mod middleware;
mod openapi;
mod ops;
mod questions;
mod startup;
mod transcripts;
mod ui;

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::routing::{get, post};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

use crate::config::Settings;
use crate::engine::{Engine, OpenError, Parts};

pub use crate::problem::Problem;
pub use metrics::Metrics;

/// Shared by every request.
#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub metrics: Arc<Metrics>,
    pub started: std::time::Instant,
    /// The Slack bot's state (its routes are mounted under `/slack`).
    pub slack: Arc<crate::slack::SlackState>,
}

impl AppState {
    /// Fails when the Slack bot's HTTP client cannot be built.
    pub fn new(engine: Arc<Engine>) -> Result<Self, ServeError> {
        Ok(AppState {
            slack: Arc::new(crate::slack::SlackState::new(engine.clone())?),
            engine,
            metrics: Arc::new(Metrics::new()),
            started: std::time::Instant::now(),
        })
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// All routes with their middleware.
pub fn router(state: AppState) -> Router {
    let settings = state.engine.settings();
    let v1 = Router::new()
        .route("/v1/grade", post(grade::grade))
        .route("/v1/grade/batch", post(grade::grade_batch))
        .route("/v1/questions", get(questions::questions))
        .route("/v1/questions/{id}", get(questions::question))
        .route("/v1/transcripts", post(transcripts::transcripts))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::require_api_key,
        ));
    // The audit store holds candidates' answers: reading it and reviewing need an admin key.
    let admin = Router::new()
        .route("/v1/grades", get(grades::list))
        .route("/v1/grades/{id}", get(grades::one))
        .route("/v1/grades/{id}/review", post(grades::review))
        .route("/v1/reviews/counts", get(grades::counts))
        .route("/v1/reviews/agreement", get(grades::agreement_of))
        .route("/v1/transcripts/{id}", get(grades::transcript))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::require_admin,
        ));
    let mut app = Router::new()
        .merge(v1)
        .merge(admin)
        .merge(ui::router())
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::openapi))
        .with_state(state.clone())
        .merge(crate::slack::router(state.slack.clone()))
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        // Bodies are buffered by our own extractor, which turns an oversize body into a 413.
        .layer(DefaultBodyLimit::max(settings.limits.max_body_bytes));
    if let Some(cors) = cors_layer(&settings.server.cors_origins) {
        app = app.layer(cors);
    }
    app.layer(axum::middleware::from_fn(middleware::log_requests))
        .layer(axum::middleware::from_fn(middleware::problem_request_id))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
}

fn cors_layer(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("x-api-key"),
                REQUEST_ID,
            ])
            .expose_headers([REQUEST_ID])
            .max_age(Duration::from_secs(3600)),
    )
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(
        "cannot listen on {addr}: {source} (is another process using the port? set --port or GRADER__SERVER__PORT)"
    )]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Client(#[from] crate::slack::ClientError),
    #[error("audit store: {0}")]
    Audit(#[from] crate::audit::AuditError),
}

/// A bound service. It answers as soon as it runs; when built from [`Parts`], it indexes what
/// changed in the background first (`/readyz` says how far it has got).
pub struct Application {
    listener: tokio::net::TcpListener,
    port: u16,
    startup: Startup,
    /// The audit store `build` opened, handed to the engine once it is built.
    audit: Option<Arc<crate::audit::Audit>>,
}

enum Startup {
    Ready(AppState),
    Indexing(Box<Parts>),
}

impl Application {
    /// Load and check everything that can fail fast ([`Parts::load`]: nothing is written and no
    /// port bound when that fails), then bind `server.host:server.port`.
    pub async fn build(settings: Settings) -> Result<Self, ServeError> {
        let base = std::env::current_dir().map_err(ServeError::Serve)?;
        let parts = Parts::load(settings, &base)?;
        // Then the audit store (it creates its database): a bad URL fails before the port is bound.
        let audit = match parts.settings.store.audit {
            true => Some(Arc::new(
                crate::audit::Audit::open(&parts.settings, &base).await?,
            )),
            false => None,
        };
        if let Some(audit) = &audit {
            tracing::info!(store = %audit.store().describe(), "storing grades");
        }
        let mut app = Self::with_parts(parts).await?;
        app.audit = audit;
        Ok(app)
    }

    /// Bind now; index and build the engine once running.
    pub async fn with_parts(parts: Parts) -> Result<Self, ServeError> {
        let (listener, port) = bind(&parts.settings).await?;
        Ok(Application {
            listener,
            port,
            startup: Startup::Indexing(Box::new(parts)),
            audit: None,
        })
    }

    /// Bind a service over a ready engine (tests build the engine once and share it).
    pub async fn with_engine(engine: Arc<Engine>) -> Result<Self, ServeError> {
        let (listener, port) = bind(engine.settings()).await?;
        let state = AppState::new(engine)?;
        Ok(Application {
            listener,
            port,
            startup: Startup::Ready(state),
            audit: None,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The state, when the engine is ready before the service runs.
    pub fn state(&self) -> Option<&AppState> {
        match &self.startup {
            Startup::Ready(state) => Some(state),
            Startup::Indexing(_) => None,
        }
    }

    /// Serve until `shutdown` resolves, then finish in-flight requests. Indexing, when still to
    /// do, runs meanwhile; if it fails the server stops and the error is returned.
    pub async fn run_until<F>(self, shutdown: F) -> Result<(), ServeError>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let addr = self.listener.local_addr().map_err(ServeError::Serve)?;
        let ready: Arc<OnceLock<Router>> = Arc::new(OnceLock::new());
        let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<ServeError>();
        let limits = conn::ConnLimits::from_settings(match &self.startup {
            Startup::Ready(state) => &state.engine.settings().server,
            Startup::Indexing(parts) => &parts.settings.server,
        });
        // Where the grades go (the engine gets it once built); drained after the last request.
        let audit = match &self.startup {
            Startup::Ready(state) => state.engine.audit().cloned(),
            Startup::Indexing(_) => self.audit.clone(),
        };
        let indexing = match self.startup {
            Startup::Ready(state) => {
                load_token_encodings(state.engine.clone());
                log_serving(addr, &state);
                let _ = ready.set(router(state));
                None
            }
            Startup::Indexing(parts) => {
                tracing::info!(%addr, "listening; /readyz answers 503 until the rubric set is indexed");
                let (ready, audit) = (ready.clone(), audit.clone());
                Some(tokio::spawn(async move {
                    // Loads what is indexed already and deletes stale points; embeds nothing.
                    let started = parts.start().await.map_err(ServeError::Open).and_then(|e| {
                        let engine = Arc::new(match audit {
                            Some(audit) => e.with_audit(audit),
                            None => e,
                        });
                        Ok((engine.clone(), AppState::new(engine)?))
                    });
                    let (engine, state) = match started {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = failed_tx.send(e);
                            return;
                        }
                    };
                    load_token_encodings(engine.clone());
                    // Serve now: rubrics already indexed grade at once, the others as soon as
                    // their points are in.
                    let _ = ready.set(router(state.clone()));
                    if let Err(e) = engine.index(&crate::index::log_progress()).await {
                        let _ = failed_tx.send(ServeError::Open(e));
                        return;
                    }
                    crate::audit::learn::spawn_exemplar_sync(engine);
                    log_serving(addr, &state);
                }))
            }
        };
        let failure = Arc::new(std::sync::Mutex::new(None));
        let stop = {
            let failure = failure.clone();
            async move {
                tokio::select! {
                    () = shutdown => {}
                    Ok(e) = failed_rx => {
                        *failure.lock().expect("failure lock") = Some(e);
                    }
                }
            }
        };
        let served = conn::serve(
            self.listener,
            startup::switching_router(ready),
            limits,
            stop,
        )
        .await
        .map_err(ServeError::Serve);
        if let Some(task) = indexing {
            task.abort();
        }
        // In-flight requests are done; their grades may still be queued for the database.
        if let Some(audit) = audit {
            let left = audit.close(crate::audit::CLOSE_WITHIN).await;
            tracing::info!(unwritten = left, "audit store closed");
        }
        if let Some(e) = failure.lock().expect("failure lock").take() {
            return Err(e);
        }
        served?;
        tracing::info!(%addr, "grader stopped");
        Ok(())
    }

    /// Serve until Ctrl-C or SIGTERM.
    pub async fn run_until_stopped(self) -> Result<(), ServeError> {
        self.run_until(shutdown_signal()).await
    }
}

async fn bind(settings: &Settings) -> Result<(tokio::net::TcpListener, u16), ServeError> {
    let addr = format!("{}:{}", settings.server.host, settings.server.port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let port = listener.local_addr().map_err(ServeError::Serve)?.port();
    Ok((listener, port))
}

/// Build the token encodings in the background, so a serving process has its tables from the
/// start rather than growing by them on the first long answer.
fn load_token_encodings(engine: Arc<Engine>) {
    tokio::task::spawn_blocking(move || engine.load_token_encodings());
}

fn log_serving(addr: SocketAddr, state: &AppState) {
    let e = &state.engine;
    tracing::info!(
        %addr,
        judge = %e.effective_judge(None),
        store = %e.store().describe(),
        rubrics = e.catalog().len(),
        "grader is serving"
    );
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
