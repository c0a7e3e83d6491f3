//! Work under load, in a `grader serve` process of its own (its CPU time is read from /proc,
//! and the other tests' embedding does not share its worker): a heavy request does not stall
//! a light one, and work whose client went away stops.
//!
//! A test binary of its own, not a module of `tests/suite`: cargo runs test binaries one after
//! another, so the suite's tests do not share the machine with these measurements (they made a
//! light grade look three times slower beside a heavy one than it is). Its two tests hold one
//! lock, so they do not share it with each other either. Long load runs are
//! `benches/soak.rs`, not tests.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

#[path = "../suite/common.rs"]
mod common;

use crate::common::{Rubrics, catalog, data_dir_from_snapshot, http, model_dir, root};

/// One measurement at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `grader serve` on loopback over a copy of the suite's index.
struct Server {
    child: Child,
    addr: SocketAddr,
    _data: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let data = tempfile::tempdir().unwrap();
        data_dir_from_snapshot(data.path()).await;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_grader"))
            .args(["serve", "--host", "127.0.0.1", "--port", &port.to_string()])
            .current_dir(root())
            .env("GRADER__DATA_DIR", data.path())
            .env("GRADER__LOG__LEVEL", "warn")
            // Scheduling is measured here, not admission: a busy test machine must not turn
            // the light requests into 503s.
            .env("GRADER__LIMITS__MAX_QUEUE_DELAY_MS", "60000")
            .env_remove("OPENAI_API_KEY")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _data: data,
        };
        let client = http();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let ok = client
                .get(format!("http://{}/readyz", server.addr))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "grader serve did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// CPU seconds (user + system) the server has used.
    fn cpu(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let fields: Vec<f64> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(0.0))
            .collect();
        (fields[11] + fields[12]) / 100.0
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// CPU the server uses in the second after `since` + 1 s: what is left once a client that
/// went away at `since` has had a second to be noticed.
async fn cpu_a_second_after(server: &Server, since: Instant) -> f64 {
    let at = since + Duration::from_secs(1);
    tokio::time::sleep(at.saturating_duration_since(Instant::now())).await;
    let before = server.cpu();
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.cpu() - before
}

#[tokio::test]
async fn a_heavy_request_neither_stalls_a_light_one_nor_outlives_its_client() {
    let _serial = SERIAL.lock().await;
    let rubrics = catalog(Rubrics::Shipped);
    // A typical answer (one exemplar) and long ones (six exemplars of one rubric, ~50
    // sentences, inside every limit).
    let typical: Vec<(String, String)> = rubrics
        .iter()
        .filter_map(|r| {
            r.exemplars
                .iter()
                .find(|e| (50..120).contains(&e.answer.split_whitespace().count()))
                .map(|e| (r.id.clone(), e.answer.clone()))
        })
        .collect();
    let long = |i: usize| {
        let (id, a) = &typical[i % typical.len()];
        let text = vec![a.replace('\n', " "); 6].join("\n\n");
        (id.clone(), text)
    };
    let server = Server::start().await;
    let client = http();
    let light = |i: usize| {
        let (id, a) = typical[i % typical.len()].clone();
        let client = client.clone();
        let url = server.url("/v1/grade");
        async move {
            let t = Instant::now();
            let r = client
                .post(url)
                .json(&json!({"question_id": id, "answer": a}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{}", r.text().await.unwrap_or_default());
            let _: Value = r.json().await.unwrap();
            t.elapsed()
        }
    };
    for i in 0..3 {
        light(i).await; // warm-up
    }
    let mut alone = Vec::new();
    for i in 0..5 {
        alone.push(light(i).await);
    }

    // A heavy request: a full batch of long answers (several seconds of embedding).
    let items: Vec<Value> = (0..64)
        .map(|i| {
            let (id, text) = long(i);
            json!({"question_id": id, "answer": text})
        })
        .collect();
    let heavy = tokio::spawn({
        let client = client.clone();
        let url = server.url("/v1/grade/batch");
        async move {
            client
                .post(url)
                .json(&json!({ "items": items }))
                .send()
                .await
                .map(|r| r.status())
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut beside = Vec::new();
    for i in 0..7 {
        beside.push(light(i).await);
    }
    assert!(
        !heavy.is_finished(),
        "the heavy request ran beside every light one"
    );
    // Its client goes away: the batch's remaining work is dropped.
    heavy.abort();
    let gone = Instant::now();
    let batch_cpu = cpu_a_second_after(&server, gone).await;

    // A transcript streamed as NDJSON, abandoned after its first graded question.
    let mut transcript = String::new();
    for i in 0..100 {
        let (id, text) = long(i);
        let q = rubrics.get(&id).unwrap().question.clone();
        transcript.push_str(&format!(
            "Interviewer: {q}\nCandidate: {}\n",
            text.replace('\n', " ")
        ));
    }
    let mut stream = client
        .post(server.url("/v1/transcripts"))
        .header("content-type", "text/plain")
        .header("accept", "application/x-ndjson")
        .body(transcript)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let first = stream.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("\"type\":\"pair\""));
    drop(stream);
    let gone = Instant::now();
    let stream_cpu = cpu_a_second_after(&server, gone).await;

    for i in 0..4 {
        alone.push(light(i).await);
    }
    let (alone, beside) = (median(alone), median(beside));
    eprintln!(
        "light grade alone p50 {alone:?}, beside a heavy batch p50 {beside:?}; CPU a second after the client left: batch {batch_cpu:.2} s/s, NDJSON {stream_cpu:.2} s/s"
    );
    assert!(
        beside <= alone * 3,
        "a light grade took {beside:?} beside a heavy request, {alone:?} alone"
    );
    assert!(
        batch_cpu < 0.15,
        "{batch_cpu:.2} CPU s/s a second after the batch's client left"
    );
    assert!(
        stream_cpu < 0.15,
        "{stream_cpu:.2} CPU s/s a second after the stream's client left"
    );
}

/// The embedding worker does not embed for callers that went away: a large call dropped while
/// it runs stops at the next forward pass, so the next caller waits about one pass, not for
/// the whole abandoned call. (An embedder of its own: other tests do not share its worker.)
#[tokio::test]
async fn an_abandoned_embedding_stops_between_forward_passes() {
    let _serial = SERIAL.lock().await;
    use grader::embed::{Embedder, LocalEmbedder};

    let e = LocalEmbedder::load(&model_dir(), Default::default()).unwrap_or_else(|e| panic!("{e}"));
    let long = "A shallow copy makes a new outer container whose elements are the very same \
                objects as the original's, so mutating a nested list through the copy changes \
                the original as well, while a deep copy recurses into every nested object."
        .to_string();
    // One forward pass: 32 texts (the batch size), the median of three.
    let mut passes = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        e.embed(&vec![long.clone(); 32]).await.unwrap();
        passes.push(t.elapsed());
    }
    let pass = median(passes);
    // Forty passes' worth, abandoned once it is running.
    let big = vec![long.clone(); 32 * 40];
    let call = e.embed(&big);
    tokio::time::sleep(pass / 2).await;
    drop(call);
    let t = Instant::now();
    e.embed(std::slice::from_ref(&long)).await.unwrap();
    let waited = t.elapsed();
    eprintln!("one pass {pass:?}; after dropping a 40-pass call the next one waited {waited:?}");
    assert!(
        waited < pass * 8,
        "the next call waited {waited:?} (one pass is {pass:?}): the abandoned call ran on"
    );
}
