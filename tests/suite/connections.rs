//! Slow and hostile clients on a real socket: half a header, headers then silence, an idle
//! keep-alive connection, too many connections, and a request with both Content-Length and
//! Transfer-Encoding. Each is closed (or refused) within its configured bound.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use grader::config::Settings;
use grader::server::Application;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{Rubrics, engine_with};

/// A server over the fixture catalog with the given connection settings.
async fn serve(
    tweak: impl FnOnce(&mut Settings),
) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let e = engine_with(Rubrics::Fixture, |s| {
        s.server.host = "127.0.0.1".into();
        s.server.port = 0;
        tweak(s);
    })
    .await;
    let app = Application::with_engine(std::sync::Arc::new(e))
        .await
        .unwrap();
    let addr = app.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async {
        let _ = rx.await;
    }));
    (addr, tx)
}

/// Read until the server closes the connection (or `limit` passes): what it sent, and when the
/// connection ended (None: still open at `limit`).
async fn until_closed(sock: &mut TcpStream, limit: Duration) -> (String, Option<Duration>) {
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, sock.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&got).into(), None),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (
                    String::from_utf8_lossy(&got).into(),
                    Some(started.elapsed()),
                );
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

const MS: fn(u64) -> Duration = Duration::from_millis;

fn timeouts(s: &mut Settings) {
    s.server.header_read_timeout_ms = 400;
    s.server.body_read_timeout_ms = 700;
    s.server.idle_timeout_ms = 1000;
}

#[tokio::test]
async fn half_a_header_is_closed_after_the_header_read_timeout() {
    let (addr, _stop) = serve(timeouts).await;
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let (_, closed) = until_closed(&mut sock, MS(5000)).await;
    let closed = closed.expect("a half-sent head is not held open");
    assert!(closed >= MS(300) && closed < MS(1400), "{closed:?}");
}

#[tokio::test]
async fn a_body_that_never_arrives_is_closed_after_the_body_read_timeout() {
    let (addr, _stop) = serve(timeouts).await;
    for length in ["1000", "10000000000"] {
        let mut sock = TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /v1/grade HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n\r\n{{\"answer\""
        );
        sock.write_all(head.as_bytes()).await.unwrap();
        let (said, closed) = until_closed(&mut sock, MS(5000)).await;
        eprintln!("CL {length}: {said:?} {closed:?}");
        let closed =
            closed.unwrap_or_else(|| panic!("Content-Length {length}: held open ({said})"));
        assert!(closed < MS(1800), "Content-Length {length}: {closed:?}");
        // Whatever was answered before closing is a client error, not a 5xx.
        assert!(!said.starts_with("HTTP/1.1 5"), "{said}");
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let (addr, _stop) = serve(timeouts).await;
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = sock.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Kept alive, then idle: closed after the idle timeout, not the (shorter) header timeout.
    let (_, closed) = until_closed(&mut sock, MS(5000)).await;
    let closed = closed.expect("an idle connection is not held forever");
    assert!(closed >= MS(800) && closed < MS(2200), "{closed:?}");
    // A connection that never sends anything is idle too.
    let mut sock = TcpStream::connect(addr).await.unwrap();
    let (_, closed) = until_closed(&mut sock, MS(5000)).await;
    assert!(closed.is_some_and(|c| c < MS(2200)), "{closed:?}");
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused_with_503() {
    let (addr, _stop) = serve(|s| {
        s.server.max_connections = 3;
        s.server.idle_timeout_ms = 20_000;
        s.server.header_read_timeout_ms = 20_000;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        // A complete request each, so the server has certainly accepted them.
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(s);
    }
    let mut extra = TcpStream::connect(addr).await.unwrap();
    extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (said, closed) = until_closed(&mut extra, MS(3000)).await;
    assert!(said.starts_with("HTTP/1.1 503"), "{said}");
    assert!(
        said.to_ascii_lowercase().contains("retry-after: 1"),
        "{said}"
    );
    assert!(closed.is_some(), "refused connections are closed");
    // A place frees up: served again.
    drop(held.pop());
    let client = crate::common::http();
    let mut ok = false;
    for _ in 0..50 {
        if let Ok(r) = client.get(format!("http://{addr}/healthz")).send().await
            && r.status() == 200
        {
            ok = true;
            break;
        }
        tokio::time::sleep(MS(20)).await;
    }
    assert!(ok, "served again once a connection closed");
}

#[tokio::test]
async fn both_content_length_and_transfer_encoding_is_refused() {
    let (addr, _stop) = serve(|_| {}).await;
    for head in [
        "POST /v1/grade HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "POST /v1/grade HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\nContent-Type: application/json\r\n\r\n0\r\n\r\n",
    ] {
        let mut sock = TcpStream::connect(addr).await.unwrap();
        sock.write_all(head.as_bytes()).await.unwrap();
        let (said, closed) = until_closed(&mut sock, MS(3000)).await;
        assert!(said.starts_with("HTTP/1.1 400"), "{said}");
        assert!(
            said.contains("Content-Length and Transfer-Encoding"),
            "{said}"
        );
        assert!(
            closed.is_some(),
            "the connection is closed after the refusal"
        );
    }
    // Behind an honest request on the same connection, only the ambiguous one is refused.
    let mut sock = TcpStream::connect(addr).await.unwrap();
    sock.write_all(
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nPOST /v1/grade HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    let (said, _) = until_closed(&mut sock, MS(3000)).await;
    assert!(said.starts_with("HTTP/1.1 200"), "{said}");
    assert!(said.contains("HTTP/1.1 400"), "{said}");
}
