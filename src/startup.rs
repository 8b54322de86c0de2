//! Building and running the application (zero2prod's `Application`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use poem::listener::{Acceptor, Listener, TcpAcceptor, TcpListener};
use tokio::sync::watch;

use crate::accounts;
use crate::config::Settings;
use crate::delivery::scheduler;
use crate::state::AppState;
use crate::web;

/// How long in-flight requests may take to finish after a shutdown signal.
const GRACEFUL_SHUTDOWN: Duration = Duration::from_secs(20);
/// How long queued error reports may take to be sent after the server stopped.
const REPORT_FLUSH: Duration = Duration::from_secs(5);
/// The whole graceful stop, from the signal: request drain, the scheduler and sends
/// finishing, the report flush share it. Well inside `TimeoutStopSec=45` of
/// `deploy/autosend.service`, leaving room to close SMTP sessions and the database (each
/// step bounded on its own it was 20 + 20 + 20 + 5 = 65 s, and systemd killed it).
const STOP_DEADLINE: Duration = Duration::from_secs(30);

pub struct Application {
    acceptor: TcpAcceptor,
    port: u16,
    state: AppState,
}

impl Application {
    /// Connects everything and binds `BIND` (port 0 picks a free port, for tests).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        crate::panics::install_panic_hook();
        return_large_frees_to_the_system();
        let bind = settings.bind;
        let state = AppState::build(settings).await?;
        let acceptor = TcpListener::bind(bind)
            .into_acceptor()
            .await
            .with_context(|| format!("cannot listen on {bind} (BIND)"))?;
        let port = acceptor
            .local_addr()
            .first()
            .and_then(|a| a.as_socket_addr().map(|s| s.port()))
            .context("listener has no local address")?;
        Ok(Self {
            acceptor,
            port,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish (bounded).
    /// With `SCHEDULER_INTERVAL_SECS > 0` the scheduler runs beside the web server; shutdown
    /// stops both, and the scheduler finishes the messages it has in flight.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stop_tx = Arc::new(stop_tx);
        // When the stop began; every later step takes what is left of STOP_DEADLINE.
        let stop_began: Arc<std::sync::OnceLock<Instant>> = Arc::default();
        let signal = {
            let stop_tx = Arc::clone(&stop_tx);
            let state = self.state.clone();
            let stop_began = Arc::clone(&stop_began);
            async move {
                shutdown.await;
                let _ = stop_began.set(Instant::now());
                // Sending stops claiming at once, while the web server drains its requests.
                state.send_gate.stop();
                let _ = stop_tx.send(true);
            }
        };
        let app = web::router(self.state.clone());
        let limits = web::server::ServerLimits {
            header_timeout: web::server::HEADER_TIMEOUT,
            max_connections_per_client: self.state.settings.max_connections_per_client,
            trusted_proxies: self.state.settings.trusted_proxies.clone(),
        };
        let server = web::server::serve(self.acceptor, app, limits, signal, GRACEFUL_SHUTDOWN);
        let housekeeping = tokio::spawn(accounts::housekeeping(
            self.state.db.clone(),
            self.state.throttle.clone(),
            stop_rx.clone(),
        ));
        let scheduler_enabled = self.state.settings.scheduler_interval_secs > 0;
        let scheduler = {
            let state = self.state.clone();
            async move {
                if scheduler_enabled {
                    scheduler::run(state.delivery(), stop_rx).await;
                } else {
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::pin!(server, scheduler);
        // Left of the stop deadline, keeping the report flush's share for last. A server that
        // stopped on its own (an error) starts the clock then.
        let left = |reserve: Duration| {
            let began = *stop_began.get_or_init(Instant::now);
            (began + STOP_DEADLINE)
                .saturating_duration_since(Instant::now())
                .saturating_sub(reserve)
        };
        let result = tokio::select! {
            result = &mut server => {
                tracing::info!("web server stopped");
                // The server may also stop on its own (an error): the scheduler goes with it.
                let _ = stop_tx.send(true);
                if scheduler_enabled
                    && tokio::time::timeout(left(REPORT_FLUSH), &mut scheduler).await.is_err()
                {
                    tracing::warn!("scheduler did not stop in time; its leases will expire");
                }
                result.context("web server failed")
            }
            () = &mut scheduler => {
                // Only a shutdown ends the scheduler loop; the server is stopping as well.
                let result = server.await.context("web server failed");
                tracing::info!("web server stopped");
                result
            }
        };
        // Manual sends run beside the scheduler: they too give back what they have not sent
        // and finish what is in flight before the database closes.
        self.state.send_gate.stop();
        if !self.state.send_gate.wait_idle(left(REPORT_FLUSH)).await {
            tracing::warn!("sends did not stop in time; their leases will expire");
        }
        let _ = housekeeping.await;
        // Reports of the last requests go out before the database they are counted in closes.
        self.state
            .finish_reporting(left(Duration::ZERO).min(REPORT_FLUSH))
            .await;
        self.state.mailer.close().await;
        self.state.db.close().await;
        result
    }
}

/// Makes glibc serve allocations of 1 MiB and more (a password hash's 19 MiB, a buffered
/// upload) with their own mappings, unmapped when freed. By default its threshold rises to
/// the largest block freed so far, after which such blocks stay cached in each thread's
/// arena: 100 sign-ups left 830 MiB resident with hashing two at a time.
fn return_large_frees_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a tuning parameter of the allocator; it is called
    // before the server starts, and any value is valid for M_MMAP_THRESHOLD up to 32 MiB.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Completes on SIGTERM, SIGINT (Ctrl-C) or SIGHUP: each is a graceful stop. SIGHUP is what a
/// closing terminal sends; without a handler tokio's default let it kill the process
/// mid-send. There is no reload: configuration is read at start, so a restart applies it.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let (terminate, hangup) = {
        use tokio::signal::unix::{SignalKind, signal};
        let wait = |kind: SignalKind| async move {
            match signal(kind) {
                Ok(mut sig) => {
                    sig.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        (wait(SignalKind::terminate()), wait(SignalKind::hangup()))
    };
    #[cfg(not(unix))]
    let (terminate, hangup) = (std::future::pending::<()>(), std::future::pending::<()>());
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received, shutting down"),
        _ = terminate => tracing::info!("SIGTERM received, shutting down"),
        _ = hangup => tracing::info!("SIGHUP received, shutting down (as for SIGTERM)"),
    }
}
