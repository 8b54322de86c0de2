//! Outgoing mail: one [`Mailer`] over four transports (SPEC §3 `EMAIL_BACKEND`).
//!
//! `smtp` sends over pooled connections ([`smtp`]: STARTTLS or implicit TLS, every step under
//! `SMTP_TIMEOUT_SECS`), `file` writes one `.eml` per message under `data/outbox/`, `console`
//! prints, and `memory` keeps what was sent so tests can read it. Send errors say whether a
//! retry can help.
//!
//! Whatever the transport, every message leaves with `Date` (lettre adds it) and a
//! `Message-ID` unique across installs ([`Identity`]): a builder that set none gets one here.

pub mod smtp;

use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lettre::message::header::{ContentType, HeaderName, HeaderValue, MIME_VERSION_1_0};
use lettre::message::{Mailbox, MessageBuilder, MultiPart};
use lettre::{AsyncFileTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{EmailBackend, Settings, SmtpSettings};

/// Why a message was not sent, and whether sending it again may work.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// SMTP 4xx, a refused or broken connection, a timeout: retry later.
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// SMTP 5xx or a message the server can never accept: do not retry.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

impl SendError {
    /// The same failure, saying which message of a series it stopped at.
    fn of_message(self, n: usize, total: usize) -> Self {
        match self {
            SendError::Temporary(m) => SendError::Temporary(format!("message {n}/{total}: {m}")),
            SendError::Permanent(m) => SendError::Permanent(format!("message {n}/{total}: {m}")),
        }
    }
}

/// A message the memory backend kept.
#[derive(Debug, Clone)]
pub struct SentEmail {
    pub from: String,
    pub to: Vec<String>,
    /// The whole message as it would travel (RFC 5322).
    pub raw: String,
}

/// What the memory backend has sent, shared with whoever holds a clone (tests).
#[derive(Debug, Clone, Default)]
pub struct Outbox(Arc<Mutex<Vec<SentEmail>>>);

impl Outbox {
    pub fn messages(&self) -> Vec<SentEmail> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
    pub fn clear(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.clear();
        }
    }
    fn push(&self, email: SentEmail) {
        if let Ok(mut m) = self.0.lock() {
            m.push(email);
        }
    }
}

#[derive(Clone)]
enum Transport {
    /// The pool for single messages, and the settings to open one connection for a series.
    Smtp(smtp::Pool, Arc<SmtpSettings>),
    File(AsyncFileTransport<Tokio1Executor>),
    Console,
    Memory(Outbox),
}

/// What makes this install's `Message-ID`s its own: a tag derived from `SECRET_KEY` (so every
/// instance of one install shares it, and nobody can guess it or take another install's)
/// and the domain of `BASE_URL`. Two installs once both sent `<delivery-1.1@localhost>`.
#[derive(Debug, Clone)]
pub struct Identity {
    /// 16 hex digits of an HMAC of `SECRET_KEY`.
    pub install: String,
    /// The host of `BASE_URL`.
    pub domain: String,
}

impl Identity {
    pub fn from_settings(settings: &Settings) -> Self {
        let signer = crate::signing::Signer::new(settings.secret_key.clone());
        let tag = signer.mac("message-id", &[]);
        Self {
            install: hex::encode(&tag[..8]),
            domain: settings
                .base_url
                .host_str()
                .unwrap_or("localhost")
                .to_string(),
        }
    }

    /// `<{local}.{install}@{domain}>`.
    pub fn message_id(&self, local: &str) -> String {
        format!("<{local}.{}@{}>", self.install, self.domain)
    }

    /// A fresh id for a message that has no identity of its own (account mail, reports).
    pub fn new_message_id(&self) -> String {
        self.message_id(&uuid::Uuid::new_v4().simple().to_string())
    }
}

#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    identity: Arc<Identity>,
}

impl Mailer {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let transport = match settings.email_backend {
            // One connection per sender, and one for account mail and reports beside them.
            EmailBackend::Smtp => Transport::Smtp(
                smtp::pool(settings.smtp.clone(), settings.send_concurrency + 1)?,
                Arc::new(settings.smtp.clone()),
            ),
            EmailBackend::File => {
                let dir = settings.data_dir.join("outbox");
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create outbox {}", dir.display()))?;
                Transport::File(AsyncFileTransport::new(dir))
            }
            EmailBackend::Console => Transport::Console,
            EmailBackend::Memory => Transport::Memory(Outbox::default()),
        };
        Ok(Self {
            transport,
            identity: Arc::new(Identity::from_settings(settings)),
        })
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Gives `message` a `Message-ID` if its builder set none.
    fn stamp(&self, mut message: Message) -> Message {
        if message.headers().get_raw("Message-ID").is_none() {
            message.headers_mut().insert_raw(HeaderValue::new(
                HeaderName::new_from_ascii_str("Message-ID"),
                self.identity.new_message_id(),
            ));
        }
        message
    }

    /// Closes idle SMTP connections with `QUIT` (see [`smtp::QUIT_AFTER_IDLE`]).
    pub async fn close_idle(&self) {
        if let Transport::Smtp(pool, settings) = &self.transport {
            let closed = smtp::close_idle(pool, settings).await;
            if closed > 0 {
                tracing::debug!(closed, "idle SMTP connections closed");
            }
        }
    }

    /// Ends every pooled SMTP session with `QUIT` (shutdown); later sends fail.
    pub async fn close(&self) {
        if let Transport::Smtp(pool, settings) = &self.transport {
            smtp::close(pool, settings).await;
        }
    }

    /// The memory backend's outbox (tests); `None` for other backends.
    pub fn outbox(&self) -> Option<Outbox> {
        match &self.transport {
            Transport::Memory(outbox) => Some(outbox.clone()),
            _ => None,
        }
    }

    /// Sends one message; returns the server's reply (or a note for local backends).
    pub async fn send(&self, message: Message) -> Result<String, SendError> {
        let message = self.stamp(message);
        match &self.transport {
            Transport::Smtp(pool, settings) => smtp::send(pool, settings, &message).await,
            Transport::File(file) => match file.send(message).await {
                Ok(id) => Ok(format!("written {id}.eml")),
                // A full disk or a permission problem may be fixed by the operator.
                Err(err) => Err(SendError::Temporary(err.to_string())),
            },
            Transport::Console => {
                let raw = String::from_utf8_lossy(&message.formatted()).into_owned();
                println!("----- e-mail -----\n{raw}\n----- end -----");
                Ok("printed".to_string())
            }
            Transport::Memory(outbox) => {
                let envelope = message.envelope();
                outbox.push(SentEmail {
                    from: envelope.from().map(|a| a.to_string()).unwrap_or_default(),
                    to: envelope.to().iter().map(|a| a.to_string()).collect(),
                    raw: String::from_utf8_lossy(&message.formatted()).into_owned(),
                });
                Ok("stored".to_string())
            }
        }
    }

    /// Sends `messages` in order, stopping at the first failure. Over SMTP they share one
    /// connection, so the parts of a report arrive together and in order (the pool would
    /// spread them over connections, and the order over the network with them).
    pub async fn send_in_order(&self, messages: Vec<Message>) -> Result<(), SendError> {
        let messages: Vec<Message> = messages.into_iter().map(|m| self.stamp(m)).collect();
        match &self.transport {
            Transport::Smtp(_, settings) => smtp::send_in_order(settings, messages).await,
            _ => {
                let total = messages.len();
                for (i, message) in messages.into_iter().enumerate() {
                    self.send(message)
                        .await
                        .map_err(|err| err.of_message(i + 1, total))?;
                }
                Ok(())
            }
        }
    }

    /// Whether the transport can send now (connects for SMTP); for `check`.
    pub async fn check(&self) -> anyhow::Result<()> {
        match &self.transport {
            Transport::Smtp(_, settings) => smtp::check(settings)
                .await
                .map_err(|err| anyhow::anyhow!("SMTP server did not answer: {err}")),
            _ => Ok(()),
        }
    }
}

/// A plain-text message whose body is `text` exactly, declared UTF-8: lettre's `body()` alone
/// names no charset, and readers then decode `…` or `é` as Latin-1.
pub fn plain_text(builder: MessageBuilder, text: String) -> Result<Message, lettre::error::Error> {
    builder
        .header(MIME_VERSION_1_0)
        .header(ContentType::TEXT_PLAIN)
        .body(text)
}

/// `Auto-Submitted: auto-generated` (RFC 3834): error and broken-link reports are written by
/// a machine, so vacation responders and ticket systems must not answer them.
pub fn auto_submitted() -> HeaderValue {
    HeaderValue::new(
        HeaderName::new_from_ascii_str("Auto-Submitted"),
        "auto-generated".to_string(),
    )
}

/// Text that a reader would take for RFC 2047 encoded words (`=?utf-8?b?…?=`) if it went out
/// as it is: lettre leaves ASCII words unencoded, so a subject or name typed as
/// `=?utf-8?b?QWRtaW4=?=` would be shown as "Admin".
fn looks_encoded(text: &str) -> bool {
    text.contains("=?")
}

/// `text` as RFC 2047 base64 encoded words, each at most 75 characters, folded.
fn encoded_words(text: &str) -> String {
    // 39 bytes of UTF-8 make 52 of base64: with `=?utf-8?b?` and `?=` 64, and a line with
    // `Subject: ` in front stays under 78.
    let mut words = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + 39).min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        words.push(format!("=?utf-8?b?{}?=", BASE64.encode(&text[start..end])));
        start = end;
    }
    words.join("\r\n ")
}

/// Makes the `Subject` reach readers as typed even when it looks like encoded words: such a
/// subject is written encoded, so decoding gives it back.
pub fn keep_subject_literal(message: &mut Message, subject: &str) {
    if looks_encoded(subject) {
        message
            .headers_mut()
            .insert_raw(HeaderValue::dangerous_new_pre_encoded(
                HeaderName::new_from_ascii_str("Subject"),
                subject.to_string(),
                encoded_words(subject),
            ));
    }
}

/// [`keep_subject_literal`], and the same for the display name of `To`.
pub fn keep_literal(message: &mut Message, subject: &str, to: &Mailbox) {
    keep_subject_literal(message, subject);
    if let Some(name) = to.name.as_deref().filter(|n| looks_encoded(n)) {
        message
            .headers_mut()
            .insert_raw(HeaderValue::dangerous_new_pre_encoded(
                HeaderName::new_from_ascii_str("To"),
                to.to_string(),
                format!("{} <{}>", encoded_words(name), to.email),
            ));
    }
}

/// Builds a plain-text e-mail with an optional HTML alternative.
pub fn compose(
    from: &Mailbox,
    to: &Mailbox,
    subject: &str,
    text: String,
    html: Option<String>,
) -> anyhow::Result<Message> {
    let builder = Message::builder()
        .from(from.clone())
        .to(to.clone())
        .subject(subject);
    let message = match html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(text, html)),
        None => plain_text(builder, text),
    };
    let mut message = message.context("cannot build e-mail")?;
    keep_literal(&mut message, subject, to);
    Ok(message)
}

/// The e-mail of `autosend sendtestemail` (Django's wording), to `to` in one message.
pub fn test_email(from: &Mailbox, to: &[Mailbox], subject_prefix: &str) -> anyhow::Result<Message> {
    let host = crate::telemetry::host_name();
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut builder = Message::builder()
        .from(from.clone())
        .subject(format!("{subject_prefix}Test email from {host} on {now}"));
    for to in to {
        builder = builder.to(to.clone());
    }
    plain_text(
        builder,
        "If you're reading this, it was successful: autosend can send e-mail with this \
         configuration.\n"
            .to_string(),
    )
    .context("cannot build the test e-mail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_that_looks_like_encoded_words_is_encoded_and_decodes_as_typed() {
        use mailparse::MailHeaderMap;
        let typed = "=?utf-8?b?SGk=?= and a long tail ".repeat(4) + "… ünïcödé";
        let to = Mailbox::new(
            Some("=?utf-8?q?Admin?=".into()),
            "a@example.com".parse().unwrap(),
        );
        let message = compose(&to, &to, &typed, "b".into(), None).unwrap();
        let raw = message.formatted();
        let parsed = mailparse::parse_mail(&raw).unwrap();
        assert_eq!(parsed.headers.get_first_value("Subject").unwrap(), typed);
        let to_header = parsed.headers.get_first_value("To").unwrap();
        assert_eq!(to_header, "=?utf-8?q?Admin?= <a@example.com>");
        for line in String::from_utf8(raw).unwrap().lines() {
            assert!(line.len() <= 78, "folded: {line}");
        }
    }

    #[test]
    fn plain_text_is_declared_utf8_and_kept_exact() {
        let from: Mailbox = "a@example.com".parse().unwrap();
        let text = "Здравствуйте, Анна … ünïcödé\nsecond line".to_string();
        let message = plain_text(
            Message::builder().from(from.clone()).to(from).subject("s"),
            text.clone(),
        )
        .unwrap();
        let raw = message.formatted();
        let parsed = mailparse::parse_mail(&raw).unwrap();
        assert_eq!(parsed.ctype.mimetype, "text/plain");
        assert_eq!(parsed.ctype.charset, "utf-8");
        assert_eq!(parsed.get_body().unwrap().replace("\r\n", "\n"), text);
    }
}
