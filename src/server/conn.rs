//! Connections: the accept loop, and what keeps slow or hostile clients from holding the
//! service — a connection limit (`server.max_connections`: a connection beyond it gets a 503
//! and is closed), a header-read timeout (from a request's first byte), a body-read timeout
//! (from the end of its head), an idle keep-alive timeout (no request in flight, nothing read or
//! written), and requests carrying both `Content-Length` and `Transfer-Encoding` refused with a
//! 400 and the connection closed.
//!
//! hyper serves HTTP/1.1 on each connection; [`Guarded`] wraps the socket, follows the bytes
//! with [`Framing`] and fails the read that outlives its deadline, which makes hyper drop the
//! connection. [`ConnService`] counts requests in flight (their responses included, so a long
//! stream is not idle) and refuses the smuggling heads `Framing` saw.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;

use super::framing::{Framing, Phase};
use crate::config::ServerSettings;
use crate::problem::Problem;

/// The connection settings, from `server.*`.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub header_read: Duration,
    pub body_read: Duration,
    pub idle: Duration,
    pub max_connections: usize,
}

impl ConnLimits {
    pub fn from_settings(s: &ServerSettings) -> Self {
        ConnLimits {
            header_read: Duration::from_millis(s.header_read_timeout_ms.max(1)),
            body_read: Duration::from_millis(s.body_read_timeout_ms.max(1)),
            idle: Duration::from_millis(s.idle_timeout_ms.max(1)),
            max_connections: s.max_connections.max(1),
        }
    }
}

/// Serve `router` on `listener` until `shutdown` resolves, then let in-flight requests finish.
pub async fn serve<F>(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    shutdown: F,
) -> io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    tune_allocator();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut refused = Refusals::default();
    let trim = Arc::new(Trim::default());
    loop {
        let (tcp, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) if is_per_connection(&e) => continue,
                Err(e) => {
                    // Out of file descriptors or memory: back off instead of spinning.
                    tracing::error!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused.note(limits.max_connections);
            tokio::spawn(refuse(tcp));
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let shared = Arc::new(Shared::default());
        let io = TokioIo::new(Guarded::new(tcp, shared.clone(), limits));
        let service = hyper_util::service::TowerToHyperService::new(ConnService {
            router: router.clone(),
            shared,
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            // Our own timeouts (in `Guarded`) replace hyper's, which counts idle time as
            // header-read time.
            .header_read_timeout(None::<Duration>)
            .serve_connection(io, service);
        let conn = graceful.watch(conn);
        let slots = slots.clone();
        let max = limits.max_connections;
        let trim = trim.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
            if slots.available_permits() == max {
                trim.soon(slots, max);
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Gives memory back to the OS once every connection has closed. glibc keeps what a burst of
/// connections freed in its arenas (a few thousand half-open connections held ~70 MB after they
/// closed); `malloc_trim` returns it. At most one trim is pending, a second after the last
/// connection closed, and only if none has opened since.
#[derive(Default)]
struct Trim {
    pending: std::sync::atomic::AtomicBool,
}

impl Trim {
    fn soon(self: Arc<Self>, slots: Arc<Semaphore>, max: usize) {
        if self.pending.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            self.pending.store(false, Ordering::Release);
            if slots.available_permits() == max {
                let _ = tokio::task::spawn_blocking(release_memory).await;
            }
        });
    }
}

/// glibc raises its mmap threshold as large blocks are freed, after which the embedder's large
/// tensors come from the heap and stay there when freed; a fixed threshold keeps them mapped,
/// so they go back to the OS when freed.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it has no preconditions.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}

/// Return freed heap memory to the OS (glibc only; other allocators do it themselves).
fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it is thread-safe and has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Errors of one connection that say nothing about the listener.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Logs refused connections at most every few seconds (a flood would flood the log).
#[derive(Default)]
struct Refusals {
    since_log: u64,
    logged: Option<Instant>,
}

impl Refusals {
    fn note(&mut self, max: usize) {
        self.since_log += 1;
        if self
            .logged
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(10))
        {
            tracing::warn!(
                refused = self.since_log,
                max_connections = max,
                "at server.max_connections: refusing new connections"
            );
            self.since_log = 0;
            self.logged = Some(Instant::now());
        }
    }
}

/// A connection over the limit: a 503 problem, written without waiting for its request, then
/// closed. Bounded in time, so refusals cannot pile up.
async fn refuse(mut tcp: TcpStream) {
    use tokio::io::AsyncWriteExt;
    let body = serde_json::to_string(&Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too-many-connections",
        "Too many connections",
        "the server is at server.max_connections; retry shortly",
    ))
    .unwrap_or_default();
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = tcp.write_all(resp.as_bytes()).await;
        let _ = tcp.shutdown().await;
    })
    .await;
}

/// What the socket wrapper and the service of one connection share.
#[derive(Default)]
struct Shared {
    /// Requests whose response has not been fully sent.
    active: AtomicUsize,
    /// For each request head read, in order: whether it had both lengths.
    heads: Mutex<VecDeque<bool>>,
    /// The socket's pending read, woken when the last request ends (the idle timer starts).
    reader: Mutex<Option<Waker>>,
}

/// The socket, with the connection's timeouts.
struct Guarded {
    io: TcpStream,
    shared: Arc<Shared>,
    limits: ConnLimits,
    framing: Framing,
    /// The last time a byte was read or written.
    last_io: Instant,
    timer: Pin<Box<Sleep>>,
}

impl Guarded {
    fn new(io: TcpStream, shared: Arc<Shared>, limits: ConnLimits) -> Self {
        let now = Instant::now();
        Guarded {
            io,
            shared,
            limits,
            framing: Framing::new(now),
            last_io: now,
            timer: Box::pin(tokio::time::sleep(limits.idle)),
        }
    }

    /// When the connection must have made progress by, and which timeout that is.
    fn deadline(&self) -> Option<(Instant, &'static str)> {
        let busy = self.shared.active.load(Ordering::Acquire) > 0;
        match self.framing.phase() {
            Phase::Head(since) => Some((since + self.limits.header_read, "header read")),
            Phase::Body(since) => Some((since + self.limits.body_read, "body read")),
            // A request is being answered: its own timeouts apply.
            Phase::Idle | Phase::Lost if busy => None,
            Phase::Idle | Phase::Lost => Some((self.last_io + self.limits.idle, "idle")),
        }
    }

    /// `Ready(Err)` once `deadline` has passed; otherwise the timer is armed for it.
    fn expired(&mut self, cx: &mut Context<'_>, deadline: Instant, what: &str) -> Poll<io::Error> {
        let at = tokio::time::Instant::from_std(deadline);
        if self.timer.deadline() != at {
            self.timer.as_mut().reset(at);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                tracing::debug!(timeout = what, "closing a connection that timed out");
                Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{what} timeout"),
                ))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let new = &buf.filled()[before..];
                if !new.is_empty() {
                    let now = Instant::now();
                    this.last_io = now;
                    let shared = &this.shared;
                    this.framing.feed(new, now, |head| {
                        shared
                            .heads
                            .lock()
                            .expect("heads lock")
                            .push_back(head.both_lengths);
                    });
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                *this.shared.reader.lock().expect("reader lock") = Some(cx.waker().clone());
                match this.deadline() {
                    Some((at, what)) => this.expired(cx, at, what).map(Err),
                    None => Poll::Pending,
                }
            }
        }
    }
}

impl Guarded {
    /// After a write attempt: progress resets the idle clock; a client that stops reading its
    /// response is as idle as one that sends nothing.
    fn wrote(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match r {
            Poll::Ready(Ok(n)) => {
                self.last_io = Instant::now();
                Poll::Ready(Ok(n))
            }
            Poll::Pending => {
                let at = self.last_io + self.limits.idle;
                self.expired(cx, at, "write").map(Err)
            }
            other => other,
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write(cx, data);
        this.wrote(cx, written)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.wrote(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The router for one connection: counts requests in flight and refuses smuggling heads.
#[derive(Clone)]
struct ConnService {
    router: Router,
    shared: Arc<Shared>,
}

/// One request in flight; dropped with its response body (or with the request, if cancelled).
struct InFlight(Arc<Shared>);

impl InFlight {
    fn new(shared: Arc<Shared>) -> Self {
        shared.active.fetch_add(1, Ordering::AcqRel);
        InFlight(shared)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The connection is idle now: let its read arm the idle timer.
            if let Some(w) = self.0.reader.lock().expect("reader lock").take() {
                w.wake();
            }
        }
    }
}

impl tower::Service<Request<hyper::body::Incoming>> for ConnService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<hyper::body::Incoming>) -> Self::Future {
        let in_flight = InFlight::new(self.shared.clone());
        let both_lengths = self
            .shared
            .heads
            .lock()
            .expect("heads lock")
            .pop_front()
            .unwrap_or(false);
        if both_lengths {
            tracing::warn!(
                "refused a request with both Content-Length and Transfer-Encoding (possible request smuggling)"
            );
            let mut resp = Problem::new(
                StatusCode::BAD_REQUEST,
                "ambiguous-length",
                "Ambiguous request length",
                "the request has both Content-Length and Transfer-Encoding; send one of them",
            )
            .into_response();
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return Box::pin(async move { Ok(with_guard(resp, in_flight)) });
        }
        let router = self.router.clone();
        Box::pin(async move {
            let resp = tower::ServiceExt::oneshot(router, req.map(Body::new))
                .await
                .unwrap_or_else(|e: Infallible| match e {});
            Ok(with_guard(resp, in_flight))
        })
    }
}

/// The response with the in-flight guard inside its body, released when the body is done.
fn with_guard(resp: Response<Body>, guard: InFlight) -> Response<Body> {
    resp.map(|body| {
        Body::new(GuardedBody {
            body,
            _guard: guard,
        })
    })
}

struct GuardedBody {
    body: Body,
    _guard: InFlight,
}

impl http_body::Body for GuardedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
