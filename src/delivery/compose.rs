//! One mailing message for one recipient (SPEC §7, §12): placeholders filled, the headers that
//! make it traceable (`Message-ID` from the delivery id and the install, `X-Autosend-*`),
//! bulk mail (`List-Id`, `Precedence: bulk`) and unsubscribable (RFC 2369 `List-Unsubscribe`,
//! with RFC 8058's one-click `List-Unsubscribe-Post` when the link is https), plain text plus
//! an HTML alternative when the message has one.

use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use url::Url;

use crate::domain::template::{self as placeholders, Values};
use crate::mail::Identity;

/// The recipient's values for the placeholders.
#[derive(Debug, Clone, Copy)]
pub struct Personal<'a> {
    pub email: &'a str,
    pub full_name: &'a str,
}

impl<'a> Personal<'a> {
    /// The values the one placeholder filler of [`crate::domain::template`] reads.
    fn values(self) -> Values<'a> {
        Values {
            full_name: self.full_name,
            email: self.email,
        }
    }
}

/// A header value must stay on one line whatever a recipient's name holds.
fn one_line(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The mailing's message (its template) and where the message comes from.
#[derive(Debug, Clone, Copy)]
pub struct Template<'a> {
    pub subject: &'a str,
    pub body: &'a str,
    pub body_html: Option<&'a str>,
}

/// Identifies one delivery.
#[derive(Debug, Clone, Copy)]
pub struct Ids {
    pub delivery_id: i64,
    pub run_id: i64,
    pub mailing_id: i64,
}

/// Why a message could not be built; never worth retrying.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("invalid recipient address {0:?}")]
    Address(String),
    #[error("cannot build the message: {0}")]
    Build(String),
}

/// `Message-ID: <delivery-{id}.{run}.{install}@{host}>`: stable for a delivery, so a message
/// sent twice after a crash carries the same id and receivers can drop the duplicate; the
/// install's tag keeps it apart from every other install's delivery 1 of run 1.
pub fn message_id(ids: Ids, identity: &Identity) -> String {
    identity.message_id(&format!("delivery-{}.{}", ids.delivery_id, ids.run_id))
}

/// `List-Id` (RFC 2919): one list per mailing, in the install's domain.
pub fn list_id(ids: Ids, identity: &Identity) -> String {
    format!("<mailing-{}.{}>", ids.mailing_id, identity.domain)
}

/// The one-click unsubscribe URL for `token`.
pub fn unsubscribe_url(base_url: &Url, token: &str) -> String {
    let base = base_url.as_str().trim_end_matches('/');
    format!("{base}/u/{token}")
}

/// Builds the message for one recipient.
pub fn build(
    from: &Mailbox,
    identity: &Identity,
    template: Template<'_>,
    who: Personal<'_>,
    ids: Ids,
    unsubscribe_url: &str,
) -> Result<Message, ComposeError> {
    let address = who
        .email
        .parse()
        .map_err(|_| ComposeError::Address(who.email.to_string()))?;
    let name = one_line(who.full_name.trim());
    let to = Mailbox::new((!name.is_empty()).then_some(name), address);
    let subject = one_line(&placeholders::fill_text(template.subject, who.values()));

    let mut text = placeholders::fill_text(template.body, who.values());
    text.push_str("\n\n-- \nTo stop receiving these messages: ");
    text.push_str(unsubscribe_url);
    text.push('\n');
    let html = template.body_html.map(|html| {
        let footer = maud::html! {
            p style="font-size:small;color:#666" {
                "To stop receiving these messages, " a href=(unsubscribe_url) { "unsubscribe" } "."
            }
        }
        .into_string();
        let filled = placeholders::fill_html(html, who.values());
        match filled.rfind("</body>") {
            Some(at) => format!("{}{footer}{}", &filled[..at], &filled[at..]),
            None => format!("{filled}{footer}"),
        }
    });

    let raw = |name: &str, value: String| -> Result<HeaderValue, ComposeError> {
        let name = HeaderName::new_from_ascii(name.to_string())
            .map_err(|e| ComposeError::Build(e.to_string()))?;
        Ok(HeaderValue::new(name, value))
    };
    let mut builder = Message::builder()
        .from(from.clone())
        .to(to.clone())
        .subject(subject.clone())
        .message_id(Some(message_id(ids, identity)))
        .raw_header(raw("List-Id", list_id(ids, identity))?)
        .raw_header(raw("Precedence", "bulk".to_string())?)
        .raw_header(raw("List-Unsubscribe", format!("<{unsubscribe_url}>"))?);
    // RFC 8058 §3.1: the one-click POST is only for an https URI.
    if unsubscribe_url.starts_with("https://") {
        builder = builder.raw_header(raw(
            "List-Unsubscribe-Post",
            "List-Unsubscribe=One-Click".to_string(),
        )?);
    }
    let builder = builder
        .raw_header(raw("X-Autosend-Mailing", ids.mailing_id.to_string())?)
        .raw_header(raw("X-Autosend-Run", ids.run_id.to_string())?);
    let message = match html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(text, html)),
        None => crate::mail::plain_text(builder, text),
    };
    let mut message = message.map_err(|e| ComposeError::Build(e.to_string()))?;
    crate::mail::keep_literal(&mut message, &subject, &to);
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHO: Personal<'static> = Personal {
        email: "ann@example.com",
        full_name: "Ann <b>&</b>",
    };

    #[test]
    fn message_has_ids_and_unsubscribe_headers() {
        let base: Url = "https://mail.example.org:8443/".parse().unwrap();
        let identity = Identity {
            install: "0123456789abcdef".into(),
            domain: "mail.example.org".into(),
        };
        let ids = Ids {
            delivery_id: 42,
            run_id: 7,
            mailing_id: 3,
        };
        let url = unsubscribe_url(&base, "tok");
        assert_eq!(url, "https://mail.example.org:8443/u/tok");
        let message = build(
            &"Sender <from@example.org>".parse().unwrap(),
            &identity,
            Template {
                subject: "Hello {{full_name}}\r\nBcc: x@y.z",
                body: "Dear {{full_name}}",
                body_html: Some("<html><body><p>Dear {{full_name}}</p></body></html>"),
            },
            WHO,
            ids,
            &url,
        )
        .unwrap();
        let raw = String::from_utf8(message.formatted()).unwrap();
        assert!(
            raw.contains("Message-ID: <delivery-42.7.0123456789abcdef@mail.example.org>"),
            "{raw}"
        );
        assert!(raw.contains("List-Unsubscribe: <https://mail.example.org:8443/u/tok>"));
        assert!(raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(raw.contains("List-Id: <mailing-3.mail.example.org>"));
        assert!(raw.contains("Precedence: bulk"));
        assert!(raw.contains("X-Autosend-Mailing: 3"));
        assert!(raw.contains("X-Autosend-Run: 7"));
        assert!(raw.contains("multipart/alternative"));
        assert!(!raw.contains("\r\nBcc:"), "no header injection: {raw}");
    }

    #[test]
    fn a_bad_address_is_a_compose_error() {
        let identity = Identity {
            install: "0123456789abcdef".into(),
            domain: "localhost".into(),
        };
        let result = build(
            &"from@example.org".parse().unwrap(),
            &identity,
            Template {
                subject: "s",
                body: "b",
                body_html: None,
            },
            Personal {
                email: "not an address",
                full_name: "X",
            },
            Ids {
                delivery_id: 1,
                run_id: 1,
                mailing_id: 1,
            },
            "http://localhost/u/t",
        );
        assert!(matches!(result, Err(ComposeError::Address(_))));
    }
}
