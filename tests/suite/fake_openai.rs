//! A local server that speaks the OpenAI chat-completions protocol: it records every request
//! and answers from a script (status, headers, body, delay), falling back to a default reply.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Clone, Debug)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub delay: Duration,
}

impl Scripted {
    pub fn ok(body: Value) -> Self {
        Scripted {
            status: 200,
            headers: vec![],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
    pub fn status(status: u16, body: &str) -> Self {
        Scripted {
            status,
            headers: vec![],
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn delay(mut self, d: Duration) -> Self {
        self.delay = d;
        self
    }
}

/// A chat completion whose message content is `content`.
pub fn content_reply(content: &str) -> Value {
    json!({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1, "model": "fake",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200}
    })
}

/// A chat completion that calls the grading tool with `args`.
pub fn tool_reply(args: &Value) -> Value {
    json!({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1, "model": "fake",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "submit_grade", "arguments": args.to_string()}}]}}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 200, "total_tokens": 1200}
    })
}

type Responder = Arc<dyn Fn(&Value) -> Option<Scripted> + Send + Sync>;

#[derive(Default)]
struct Inner {
    script: VecDeque<Scripted>,
    default: Option<Scripted>,
    responder: Option<Responder>,
    requests: Vec<(HeaderMap, Value)>,
}

#[derive(Clone)]
pub struct FakeOpenAi {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl FakeOpenAi {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/v1/embeddings", post(chat))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use axum::serve::ListenerExt;
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            axum::serve(listener, app).await.unwrap();
        });
        FakeOpenAi { addr, inner }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queue replies, answered in order.
    pub fn push(&self, s: Scripted) {
        self.inner.lock().unwrap().script.push_back(s);
    }

    /// The reply when the queue is empty.
    pub fn set_default(&self, s: Scripted) {
        self.inner.lock().unwrap().default = Some(s);
    }

    /// Compute replies from the request (used before the queue and the default).
    pub fn set_responder(&self, f: impl Fn(&Value) -> Option<Scripted> + Send + Sync + 'static) {
        self.inner.lock().unwrap().responder = Some(Arc::new(f));
    }

    pub fn requests(&self) -> Vec<Value> {
        self.inner
            .lock()
            .unwrap()
            .requests
            .iter()
            .map(|(_, b)| b.clone())
            .collect()
    }

    pub fn headers(&self) -> Vec<HeaderMap> {
        self.inner
            .lock()
            .unwrap()
            .requests
            .iter()
            .map(|(h, _)| h.clone())
            .collect()
    }
}

async fn chat(State(inner): State<Arc<Mutex<Inner>>>, headers: HeaderMap, body: Bytes) -> Response {
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let scripted = {
        let mut g = inner.lock().unwrap();
        g.requests.push((headers, value.clone()));
        let computed = g.responder.as_ref().and_then(|f| f(&value));
        computed
            .or_else(|| g.script.pop_front())
            .or_else(|| g.default.clone())
    };
    let Some(s) = scripted else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "no scripted reply").into_response();
    };
    if !s.delay.is_zero() {
        tokio::time::sleep(s.delay).await;
    }
    let mut resp = (StatusCode::from_u16(s.status).unwrap(), s.body).into_response();
    resp.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    for (k, v) in s.headers {
        resp.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    resp
}
