//! SMTP: how a connection is opened, kept in a pool, and used.
//!
//! lettre's own pool (`AsyncSmtpTransport`) opens sockets with Nagle's algorithm on. lettre
//! writes a message's body and its final `.` as two writes; Nagle holds the second until the
//! server acknowledges the first, and servers delay that acknowledgement by 40 ms: every
//! message on a connection then costs 40 ms however fast both ends are (measured: 89 messages
//! a second over 4 connections to postfix's smtp-sink, which takes 28 000 a second from
//! smtp-source). lettre's fix (TCP_NODELAY, lettre PR #1159) is merged but not released, so
//! connections are opened here on a socket with TCP_NODELAY set, handed to lettre, and pooled
//! with deadpool. Implicit TLS (`SMTP_USE_SSL`) still goes through lettre's own connect, which
//! gives no access to the socket, until lettre's release.
//!
//! `SMTP_TIMEOUT_SECS` bounds every step, not only the connect: a server that accepts and then
//! says nothing cannot hold a sender forever.
//!
//! Every session ends with `QUIT`: a series after its last message, pooled connections when
//! they have been idle for [`QUIT_AFTER_IDLE`] and when the pool closes at shutdown. A
//! session that cannot be opened (refused EHLO, failed STARTTLS or login) is the relay's
//! failure, never the recipient's: it is temporary, and the delivery is retried.

use std::time::Duration;

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use lettre::Message;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Response;

use super::SendError;
use crate::config::SmtpSettings;

/// A pooled connection unused for this long is asked `NOOP` before reuse: servers close idle
/// sessions (Postfix after 300 s, many providers sooner), and a message should not be the
/// first to find out.
const CHECK_AFTER_IDLE: Duration = Duration::from_secs(10);

/// Pooled connections idle this long are closed with `QUIT` (at the scheduler's next tick):
/// before the server times them out (Postfix: 300 s) and logs a lost connection.
pub const QUIT_AFTER_IDLE: Duration = Duration::from_secs(30);

/// Connections for single messages, at most `size` open at once.
pub type Pool = managed::Pool<Manager>;

pub fn pool(smtp: SmtpSettings, size: usize) -> anyhow::Result<Pool> {
    managed::Pool::builder(Manager { smtp })
        .max_size(size.max(1))
        .build()
        .map_err(|err| anyhow::anyhow!("cannot build the SMTP pool: {err}"))
}

pub struct Manager {
    smtp: SmtpSettings,
}

impl managed::Manager for Manager {
    type Type = AsyncSmtpConnection;
    type Error = SendError;

    async fn create(&self) -> Result<AsyncSmtpConnection, SendError> {
        open(&self.smtp).await
    }

    async fn recycle(
        &self,
        conn: &mut AsyncSmtpConnection,
        metrics: &Metrics,
    ) -> RecycleResult<SendError> {
        // A failed command already ended the session (lettre aborts on any error).
        if conn.has_broken() {
            return Err(RecycleError::message("the SMTP session ended"));
        }
        if metrics.last_used() >= CHECK_AFTER_IDLE
            && !within(&self.smtp, async { Ok(conn.test_connected().await) })
                .await
                .unwrap_or(false)
        {
            return Err(RecycleError::message(
                "the SMTP server closed the idle session",
            ));
        }
        Ok(())
    }
}

/// Says `QUIT` on every idle pooled connection for which `retire` holds, and drops it.
async fn retire(pool: &Pool, smtp: &SmtpSettings, retire: impl Fn(&Metrics) -> bool) -> usize {
    let removed = pool.retain(|_, metrics| !retire(&metrics)).removed;
    let count = removed.len();
    for mut conn in removed {
        quit(smtp, &mut conn).await;
    }
    count
}

/// Closes the pooled connections idle for [`QUIT_AFTER_IDLE`] or more.
pub async fn close_idle(pool: &Pool, smtp: &SmtpSettings) -> usize {
    retire(pool, smtp, |m| m.last_used() >= QUIT_AFTER_IDLE).await
}

/// Closes every pooled connection with `QUIT` and the pool with them (shutdown).
pub async fn close(pool: &Pool, smtp: &SmtpSettings) {
    retire(pool, smtp, |_| true).await;
    pool.close();
}

/// Ends a session politely; a QUIT that goes wrong changes nothing (the socket closes).
async fn quit(smtp: &SmtpSettings, conn: &mut AsyncSmtpConnection) {
    if conn.has_broken() {
        return;
    }
    let quit = within(smtp, async {
        conn.quit().await.map_err(|err| classify(&err))
    })
    .await;
    if quit.is_err() {
        conn.abort().await;
    }
}

/// Sends one message over a pooled connection; returns the server's reply.
pub async fn send(
    pool: &Pool,
    smtp: &SmtpSettings,
    message: &Message,
) -> Result<String, SendError> {
    let mut conn = within(smtp, async {
        pool.get().await.map_err(|err| match err {
            managed::PoolError::Backend(err) => err,
            other => SendError::Temporary(format!("no SMTP connection: {other}")),
        })
    })
    .await?;
    let response = within(smtp, async {
        conn.send(message.envelope(), &message.formatted())
            .await
            .map_err(|err| classify(&err))
    })
    .await;
    if response.is_err() && !conn.has_broken() {
        // Timed out mid-command: the session's state is unknown, so it is not reused.
        conn.abort().await;
    }
    response.map(|r| reply(&r))
}

/// Opens one connection (TCP_NODELAY, implicit TLS or STARTTLS, login as configured), sends
/// each message on it in order, and says goodbye.
pub async fn send_in_order(smtp: &SmtpSettings, messages: Vec<Message>) -> Result<(), SendError> {
    let mut conn = open(smtp).await?;
    let total = messages.len();
    for (i, message) in messages.iter().enumerate() {
        let sent = within(smtp, async {
            conn.send(message.envelope(), &message.formatted())
                .await
                .map_err(|err| classify(&err))
        })
        .await;
        if let Err(err) = sent {
            conn.abort().await;
            return Err(err.of_message(i + 1, total));
        }
    }
    // Everything was accepted; a QUIT that goes wrong changes nothing.
    quit(smtp, &mut conn).await;
    Ok(())
}

/// Connects and says goodbye: `autosend check`.
pub async fn check(smtp: &SmtpSettings) -> Result<(), SendError> {
    let mut conn = open(smtp).await?;
    quit(smtp, &mut conn).await;
    Ok(())
}

/// What to say in EHLO: `SMTP_HELO_NAME` (or its default), else the address literal of the
/// connection's own end, else (implicit TLS, where lettre opens the socket) the host name.
fn hello(smtp: &SmtpSettings, local: Option<std::net::SocketAddr>) -> ClientId {
    if let Some(name) = &smtp.helo_name {
        return ClientId::Domain(name.clone());
    }
    match local.map(|a| a.ip()) {
        Some(std::net::IpAddr::V4(ip)) => ClientId::Ipv4(ip),
        Some(std::net::IpAddr::V6(ip)) => ClientId::Ipv6(ip),
        None => ClientId::default(),
    }
}

/// A failure to open a session is the relay's (or its configuration's), not the
/// recipient's: a 504 to EHLO once marked every recipient of a run a permanent error.
fn relay_failure(err: SendError) -> SendError {
    match err {
        SendError::Permanent(m) | SendError::Temporary(m) => {
            SendError::Temporary(format!("the SMTP relay refused the session: {m}"))
        }
    }
}

/// A ready session: connected, greeted, encrypted and logged in as the settings say.
async fn open(smtp: &SmtpSettings) -> Result<AsyncSmtpConnection, SendError> {
    open_session(smtp).await.map_err(relay_failure)
}

async fn open_session(smtp: &SmtpSettings) -> Result<AsyncSmtpConnection, SendError> {
    let tls = || {
        TlsParameters::new(smtp.host.clone())
            .map_err(|err| SendError::Permanent(format!("TLS for SMTP_HOST: {err}")))
    };
    let mut client_id = hello(smtp, None);
    let mut conn = if smtp.use_ssl {
        let tls = tls()?;
        within(smtp, async {
            AsyncSmtpConnection::connect_tokio1(
                (smtp.host.as_str(), smtp.port),
                Some(Duration::from_secs(smtp.timeout_secs)),
                &client_id,
                Some(tls),
                None,
            )
            .await
            .map_err(|err| classify(&err))
        })
        .await?
    } else {
        within(smtp, async {
            let socket = tokio::net::TcpStream::connect((smtp.host.as_str(), smtp.port))
                .await
                .map_err(|err| {
                    SendError::Temporary(format!(
                        "cannot connect to {}:{}: {err}",
                        smtp.host, smtp.port
                    ))
                })?;
            socket
                .set_nodelay(true)
                .map_err(|err| SendError::Temporary(format!("TCP_NODELAY: {err}")))?;
            client_id = hello(smtp, socket.local_addr().ok());
            AsyncSmtpConnection::connect_with_transport(Box::new(socket), &client_id)
                .await
                .map_err(|err| classify(&err))
        })
        .await?
    };
    let ready = async {
        if smtp.use_tls {
            let tls = tls()?;
            within(smtp, async {
                conn.starttls(tls, &client_id)
                    .await
                    .map_err(|err| classify(&err))
            })
            .await?;
        }
        if let (Some(user), Some(password)) = (&smtp.user, &smtp.password) {
            let credentials = Credentials::new(user.clone(), password.expose().to_string());
            within(smtp, async {
                conn.auth(DEFAULT_MECHANISMS, &credentials)
                    .await
                    .map_err(|err| classify(&err))
            })
            .await?;
        }
        Ok(())
    }
    .await;
    match ready {
        Ok(()) => Ok(conn),
        Err(err) => {
            conn.abort().await;
            Err(err)
        }
    }
}

/// `step` bounded by `SMTP_TIMEOUT_SECS`; running out of time is a temporary failure.
async fn within<T>(
    smtp: &SmtpSettings,
    step: impl Future<Output = Result<T, SendError>>,
) -> Result<T, SendError> {
    let limit = Duration::from_secs(smtp.timeout_secs);
    match tokio::time::timeout(limit, step).await {
        Ok(result) => result,
        Err(_) => Err(SendError::Temporary(format!(
            "the SMTP server did not answer within {}s (SMTP_TIMEOUT_SECS)",
            smtp.timeout_secs
        ))),
    }
}

fn classify(err: &lettre::transport::smtp::Error) -> SendError {
    let text = err.to_string();
    if err.is_permanent() || err.is_client() {
        SendError::Permanent(text)
    } else {
        SendError::Temporary(text)
    }
}

/// The server's reply as one line: `250 2.0.0 Ok: queued as …`.
fn reply(response: &Response) -> String {
    format!(
        "{} {}",
        response.code(),
        response.message().collect::<Vec<_>>().join(" ")
    )
}
