//! The HTTP/1.1 server loop: poem's endpoint on hyper connections, with the limits that
//! poem's own `Server` does not set (SPEC §11, §12).
//!
//! - A header-read timeout ([`HEADER_TIMEOUT`]): a client has that long to send a request's
//!   headers, counted from when the connection starts waiting for them — so it is also the
//!   keep-alive idle timeout. Slow-header (slowloris) connections are closed.
//! - At most `MAX_CONNECTIONS_PER_CLIENT` open connections per client address; further ones
//!   are closed at once. Trusted proxies are exempt (every client behind them shares their
//!   address; the proxy bounds its own clients).
//! - Accept errors (out of file descriptors) back off instead of spinning.
//! - When a limit bites, one warning line a minute says how often.
//!
//! HTTP/2 is not served: browsers speak it only over TLS, which a proxy in front terminates
//! and forwards as HTTP/1.1 (as gunicorn, puma or uvicorn deployments do).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use ipnet::IpNet;
use poem::endpoint::BoxEndpoint;
use poem::listener::Acceptor;
use poem::{Endpoint, EndpointExt, Response};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// How long a client may take to send a request's headers (and how long an idle
/// keep-alive connection is kept). Any real client sends them in milliseconds.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait before accepting again after an accept error (EMFILE and the like).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

type HyperBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// The limits of one server.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    pub header_timeout: Duration,
    pub max_connections_per_client: usize,
    /// Peers exempt from the per-client cap (`TRUSTED_PROXIES`).
    pub trusted_proxies: Vec<IpNet>,
}

/// A warning that is logged at most once a minute, with how often it happened meanwhile.
struct Throttled {
    what: &'static str,
    limiter: DefaultDirectRateLimiter,
    suppressed: AtomicU64,
}

impl Throttled {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            limiter: RateLimiter::direct(Quota::per_minute(NonZeroU32::MIN)),
            suppressed: AtomicU64::new(0),
        }
    }

    fn hit(&self, detail: &dyn std::fmt::Display) {
        if self.limiter.check().is_ok() {
            let before = self.suppressed.swap(0, Ordering::Relaxed);
            tracing::warn!(
                target: "server",
                limit = self.what,
                detail = %detail,
                more_in_last_minute = before,
                "connection limit reached"
            );
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Open connections per client address.
#[derive(Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

/// One admitted connection; leaving frees its slot.
struct Slot {
    table: Arc<PerClient>,
    ip: Option<IpAddr>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(ip) = self.ip else { return };
        if let Ok(mut map) = self.table.0.lock()
            && let Some(count) = map.get_mut(&ip)
        {
            *count -= 1;
            if *count == 0 {
                map.remove(&ip);
            }
        }
    }
}

impl PerClient {
    /// A slot for a connection from `ip`, or `None` when it has `max` already.
    fn admit(self: &Arc<Self>, ip: Option<IpAddr>, max: usize) -> Option<Slot> {
        if let Some(ip) = ip {
            let mut map = self.0.lock().ok()?;
            let count = map.entry(ip).or_default();
            if *count >= max {
                return None;
            }
            *count += 1;
        }
        // Made only once counted: its drop gives the slot back.
        Some(Slot {
            table: Arc::clone(self),
            ip,
        })
    }
}

/// Serves `ep` on `acceptor` until `signal` completes; then stops accepting, lets the
/// requests in flight finish for at most `grace`, and drops what is left.
pub async fn serve<A: Acceptor>(
    mut acceptor: A,
    ep: impl Endpoint + 'static,
    limits: ServerLimits,
    signal: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    let ep: Arc<BoxEndpoint<'static, Response>> = Arc::new(ep.map_to_response().boxed());
    let (stop_tx, stop_rx) = watch::channel(false);
    let per_client = Arc::new(PerClient::default());
    let over_cap = Throttled::new("connections per client");
    let accept_failed = Throttled::new("accept");
    let timed_out = Arc::new(Throttled::new("header read timeout"));
    let mut connections = JoinSet::new();
    for addr in acceptor.local_addr() {
        tracing::info!(addr = %addr, "listening");
    }
    tokio::pin!(signal);
    loop {
        tokio::select! {
            () = &mut signal => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = acceptor.accept() => {
                let (io, local, remote, scheme) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        accept_failed.hit(&err);
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                let peer = remote.as_socket_addr().map(|a| a.ip().to_canonical());
                let capped = peer.filter(|ip| {
                    !limits.trusted_proxies.iter().any(|net| net.contains(ip))
                });
                let Some(slot) = per_client.admit(capped, limits.max_connections_per_client)
                else {
                    over_cap.hit(&format_args!(
                        "{} has {} open connections",
                        capped.map_or_else(String::new, |ip| ip.to_string()),
                        limits.max_connections_per_client
                    ));
                    drop(io);
                    continue;
                };
                let ep = Arc::clone(&ep);
                let stop = stop_rx.clone();
                let header_timeout = limits.header_timeout;
                let timed_out = Arc::clone(&timed_out);
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                        let ep = Arc::clone(&ep);
                        let req = (req, local.clone(), remote.clone(), scheme.clone()).into();
                        async move {
                            let resp: hyper::Response<HyperBody> = ep.get_response(req).await.into();
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let ended = serve_connection(io, service, header_timeout, stop).await;
                    if let Err(err) = ended {
                        if err.is_timeout() {
                            timed_out.hit(&format_args!(
                                "{} sent no complete request headers within {}s",
                                peer.map_or_else(String::new, |ip| ip.to_string()),
                                header_timeout.as_secs()
                            ));
                        } else {
                            // Clients that went away are the normal end of many connections.
                            tracing::debug!(target: "server", error = %err, "connection ended with an error");
                        }
                    }
                    drop(slot);
                });
            }
        }
    }
    drop(acceptor);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = connections.len(),
            "connections still open after the graceful period were closed"
        );
        connections.shutdown().await;
    }
    tracing::info!("server stopped");
    Ok(())
}

async fn serve_connection<Io, S>(
    io: Io,
    service: S,
    header_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) -> hyper::Result<()>
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    S: hyper::service::HttpService<Incoming, ResBody = HyperBody>,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let stopping = async move {
        // The guard `wait_for` returns must not live across the awaits below.
        let _ = stop.wait_for(|s| *s).await.map(|_| ());
    };
    tokio::select! {
        result = conn.as_mut() => result,
        () = stopping => {
            // Finish the request in flight (if any), then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    }
}
