//! The HTTP server: the accept loop and each connection, with bounds on what a
//! client can hold.
//!
//! - **Connections**: at most `max_connections` open at once; past that the
//!   listener waits (the kernel's backlog holds new ones) and says so in the log.
//! - **Headers**: a request's headers must arrive within `header` of its first
//!   byte (slowloris), and a connection with nothing to do is closed after `idle`.
//! - **Bodies and replies**: an upload that sends nothing for `io` fails, and a
//!   reply the client stops reading for `io` ends the connection (a stalled
//!   export holds its snapshot that long at most).
//!
//! hyper's own header timeout also runs while a keep-alive connection waits for
//! its next request, so it is set to `idle`; the header bound is a watchdog of
//! each connection's own, which sees what the connection read and wrote and
//! whether a request is in flight.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

/// What one connection may hold, from [`crate::config::Limits`].
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub header: Duration,
    pub idle: Duration,
    pub io: Duration,
    pub max_connections: usize,
    /// How long a shutdown waits for requests in flight before it drops them.
    pub grace: Duration,
}

/// Serves `router` on `listener` until `shutdown` resolves; then stops
/// accepting, lets each connection finish its requests (for `grace` at most) and
/// returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let (closing, closed) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    let mut warned_at: Option<Instant> = None;
    loop {
        if permits.available_permits() == 0 && warned_at.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
            tracing::warn!(
                max_connections = limits.max_connections,
                "connection limit reached: new connections wait to be accepted (CLIENTELE_MAX_CONNECTIONS)"
            );
            warned_at = Some(Instant::now());
        }
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::error!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (router, closed) = (router.clone(), closed.clone());
        tokio::spawn(async move {
            connection(stream, peer, router, limits, closed).await;
            drop(permit);
        });
    }
    let _ = closing.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(limits.grace, permits.acquire_many(all)).await.is_err() {
        tracing::warn!("shutdown: connections still busy after the grace period were dropped");
    }
    Ok(())
}

/// Milliseconds since the process's first use of this clock, in atomics.
fn now_ms() -> u64 {
    static EPOCH: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);
    // Never 0, which the fields below use for "not set".
    EPOCH.elapsed().as_millis() as u64 + 1
}

/// What a connection did last, kept by its I/O and its requests, read by its watchdog.
#[derive(Default)]
struct Activity {
    /// When the connection last read or wrote anything.
    last: AtomicU64,
    /// When the connection last read anything.
    last_read: AtomicU64,
    /// When bytes arrived while no request was in flight (a request head
    /// starting), until that request is dispatched.
    head_started: AtomicU64,
    /// When a write found the client's window full, until a write goes through.
    write_blocked: AtomicU64,
    /// Requests dispatched whose replies are not yet fully sent.
    in_flight: AtomicUsize,
}

impl Activity {
    /// Why the connection should be closed now, if it should.
    fn expired(&self, limits: &ServerLimits) -> Option<&'static str> {
        let now = now_ms();
        let older_than = |at: u64, limit: Duration| at != 0 && now.saturating_sub(at) > limit.as_millis() as u64;
        // A client still sending its request is not stalled, although it does
        // not read the reply yet: most clients send all of an upload first.
        if older_than(self.write_blocked.load(Ordering::Relaxed), limits.io)
            && older_than(self.last_read.load(Ordering::Relaxed), limits.io)
        {
            return Some("the client stopped reading its reply");
        }
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        if older_than(self.head_started.load(Ordering::Relaxed), limits.header) {
            return Some("the client did not finish sending a request's headers");
        }
        if older_than(self.last.load(Ordering::Relaxed), limits.idle) {
            return Some("idle");
        }
        None
    }
}

/// A request in flight on its connection, until its reply's body is done or
/// dropped (the body holds it: [`super::Holding`]).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> InFlight {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        activity.head_started.store(0, Ordering::Relaxed);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.last.store(now_ms(), Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection's socket, reporting its reads and writes to [`Activity`].
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            let (a, now) = (&self.activity, now_ms());
            a.last.store(now, Ordering::Relaxed);
            a.last_read.store(now, Ordering::Relaxed);
            if a.in_flight.load(Ordering::Relaxed) == 0 {
                let _ = a.head_started.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
        polled
    }
}

impl Watched {
    fn wrote<T>(&self, polled: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        let a = &self.activity;
        match &polled {
            Poll::Pending => {
                let _ = a.write_blocked.compare_exchange(0, now_ms(), Ordering::Relaxed, Ordering::Relaxed);
            }
            Poll::Ready(_) => {
                a.write_blocked.store(0, Ordering::Relaxed);
                a.last.store(now_ms(), Ordering::Relaxed);
            }
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.wrote(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.wrote(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let polled = Pin::new(&mut self.stream).poll_flush(cx);
        self.wrote(polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Serves one connection until it ends, its watchdog closes it, or a shutdown
/// has let its requests finish.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ServerLimits,
    mut closed: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::default());
    activity.last.store(now_ms(), Ordering::Relaxed);
    let io = TokioIo::new(Watched { stream, activity: activity.clone() });
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let in_flight = InFlight::start(&requests);
        // A body that can still arrive must keep arriving (most GETs have none).
        let mut req = req.map(|body| match http_body::Body::is_end_stream(&body) {
            true => Body::new(body),
            false => Body::new(TimeoutBody::new(limits.io, body)),
        });
        req.extensions_mut().insert(ConnectInfo(peer));
        let reply = router.clone().oneshot(req);
        async move {
            let res = reply.await.unwrap_or_else(|never: Infallible| match never {});
            Ok::<_, Infallible>(res.map(|body| Body::new(super::Holding { body, held: in_flight })))
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.idle);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(limits.idle.min(Duration::from_secs(30))))
        .keep_alive_timeout(limits.io);
    let conn = builder.serve_connection_with_upgrades(io, service);
    let mut conn = pin!(conn);
    let every = limits.header.min(limits.idle).min(limits.io) / 4;
    let mut watchdog = tokio::time::interval(every.max(Duration::from_millis(10)));
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut shutting_down = false;
    loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = closed.changed(), if !shutting_down => {
                shutting_down = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = watchdog.tick() => {
                if let Some(why) = activity.expired(&limits) {
                    tracing::debug!(reason = why, "closing a connection");
                    metrics::counter!("clientele_connections_closed_total", "reason" => why).increment(1);
                    return;
                }
            }
        }
    }
}
