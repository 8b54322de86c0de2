//! Broken-link reports (SPEC §8, Django's `BrokenLinkEmailsMiddleware`): which 404s are worth
//! a manager's attention, and the e-mail that tells them.
//!
//! A 404 is reported when `DEBUG=false`, `MANAGERS` is set, the request came with a `Referer`
//! that is not the URL itself (ignoring the scheme: poorly written bots do that), the path
//! matches none of `IGNORABLE_404_URLS`, and the user agent is not a known crawler. The same
//! (path, referer) is e-mailed at most once a day; that rule lives in the database
//! ([`crate::db::error_groups::claim_broken_link`]) so several instances share it. New links
//! beyond `ERROR_EMAIL_MAX_PER_MINUTE` a minute (the notifier's cap, counted apart from error
//! e-mails so a 404 storm never hides a 500) are neither e-mailed nor stored one by one: they
//! are counted into a [`LinkStorm`] and e-mailed as one summary.

use std::net::IpAddr;

use anyhow::Context as _;
use lettre::Message;

use crate::config::Settings;
use crate::reporting::{fingerprint, mask, subject};

/// Case-insensitive substrings of user agents that are crawlers, link checkers or link
/// previewers, whose 404s are noise. `curl`, `wget` and HTTP libraries are *not* in it:
/// they are people and scripts whose broken links are real.
pub const CRAWLER_MARKERS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "bingpreview",
    "facebookexternalhit",
    "mediapartners-google",
    "ia_archiver",
    "embedly",
    "whatsapp",
];

/// How long a reported (path, referer) stays quiet.
pub const REPORT_PERIOD_MS: i64 = 24 * 60 * 60 * 1000;

/// A 404 as the edge saw it.
#[derive(Debug, Clone, Default)]
pub struct NotFound {
    pub status: u16,
    /// The request path, e.g. `/clients/42`.
    pub path: String,
    /// The full URL requested.
    pub url: String,
    /// The `Host` header.
    pub host: String,
    pub referer: Option<String>,
    pub user_agent: Option<String>,
    /// The client, as [`subject::client_ip`] sees it.
    pub client_ip: Option<IpAddr>,
    pub request_id: String,
}

/// Why a 404 is not reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    Debug,
    NoManagers,
    NotA404,
    NoReferer,
    SelfReferer,
    Ignorable,
    Crawler,
}

/// Whether a 404 is reported (the once-a-day rule aside), and if not, why.
pub fn check(nf: &NotFound, settings: &Settings) -> Result<(), Skip> {
    if settings.debug {
        return Err(Skip::Debug);
    }
    if settings.managers.is_empty() {
        return Err(Skip::NoManagers);
    }
    if nf.status != 404 {
        return Err(Skip::NotA404);
    }
    let Some(referer) = nf
        .referer
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
    else {
        return Err(Skip::NoReferer);
    };
    if is_self_referer(referer, &nf.url, &nf.host) {
        return Err(Skip::SelfReferer);
    }
    if settings
        .ignorable_404_urls
        .iter()
        .any(|pattern| pattern.is_match(&nf.path))
    {
        return Err(Skip::Ignorable);
    }
    if nf.user_agent.as_deref().is_some_and(is_crawler) {
        return Err(Skip::Crawler);
    }
    Ok(())
}

/// Whether a user agent is a known crawler ([`CRAWLER_MARKERS`]).
pub fn is_crawler(user_agent: &str) -> bool {
    let ua = user_agent.to_ascii_lowercase();
    CRAWLER_MARKERS.iter().any(|marker| ua.contains(marker))
}

/// Whether the referer is on the host the request was made to (then the broken link is ours).
pub fn is_internal_referer(referer: &str, host: &str) -> bool {
    let Ok(referer) = url::Url::parse(referer) else {
        return false;
    };
    let Some(referer_host) = referer.host_str() else {
        return false;
    };
    let (host_name, host_port) = split_host(host);
    let default_port = referer.port_or_known_default();
    referer_host.eq_ignore_ascii_case(host_name)
        && (host_port.is_none() && referer.port().is_none() || host_port == default_port)
}

/// `example.com:8000` → (`example.com`, Some(8000)); IPv6 in brackets kept whole.
fn split_host(host: &str) -> (&str, Option<u16>) {
    match host.rsplit_once(':') {
        Some((name, port)) if !name.is_empty() && (!name.contains(':') || name.ends_with(']')) => {
            match port.parse() {
                Ok(port) => (name, Some(port)),
                Err(_) => (host, None),
            }
        }
        _ => (host, None),
    }
}

/// The referer is the requested URL itself, scheme aside.
fn is_self_referer(referer: &str, url: &str, host: &str) -> bool {
    if referer == url {
        return true;
    }
    let strip = |u: &str| -> Option<String> {
        let parsed = url::Url::parse(u).ok()?;
        let mut out = parsed.host_str()?.to_ascii_lowercase();
        if let Some(port) = parsed.port() {
            out.push_str(&format!(":{port}"));
        }
        out.push_str(parsed.path());
        if let Some(q) = parsed.query() {
            out.push('?');
            out.push_str(q);
        }
        Some(out)
    };
    match (strip(referer), strip(url)) {
        (Some(a), Some(b)) => a == b,
        // A relative URL: compare the referer's host and path with the request's.
        (Some(a), None) => a == format!("{}{url}", host.to_ascii_lowercase()),
        _ => false,
    }
}

/// The group a broken link counts in (one per path, whatever the referer).
pub fn group_fingerprint(masked_path: &str) -> String {
    fingerprint::fingerprint("broken_link", "", "", masked_path)
}

/// A broken link with everything shown masked: URLs lose passwords, tokens, sensitive
/// parameters and configured secrets.
#[derive(Debug, Clone)]
pub struct MaskedLink {
    pub path: String,
    pub url: String,
    pub host: String,
    pub referer: String,
    pub user_agent: String,
    pub client_ip: Option<IpAddr>,
    pub request_id: String,
    pub internal: bool,
}

impl MaskedLink {
    pub fn new(nf: &NotFound, settings: &Settings) -> Self {
        let secrets = settings.secret_values();
        let extra = &settings.sensitive_fields;
        let referer = nf.referer.clone().unwrap_or_default();
        Self {
            path: mask::scrub(&mask::mask_path(&nf.path), &secrets),
            url: mask::mask_url(&nf.url, extra, &secrets),
            host: mask::scrub(&nf.host, &secrets),
            internal: is_internal_referer(&referer, &nf.host),
            referer: mask::mask_url(&referer, extra, &secrets),
            user_agent: mask::scrub(nf.user_agent.as_deref().unwrap_or("-"), &secrets),
            client_ip: nf.client_ip,
            request_id: mask::scrub(&nf.request_id, &secrets),
        }
    }
}

/// The e-mail to MANAGERS, from SERVER_EMAIL.
pub fn compose(link: &MaskedLink, settings: &Settings) -> anyhow::Result<Message> {
    let subject =
        subject::broken_link_subject(&settings.email_subject_prefix, link.internal, &link.host);
    let mut body =
        subject::broken_link_body(&link.referer, &link.url, &link.user_agent, link.client_ip);
    body.push_str(&format!(
        "Request ID: {}\n",
        subject::escape(&link.request_id)
    ));
    crate::mail::plain_text(to_managers(settings, subject), body)
        .context("cannot build the broken-link e-mail")
}

/// A message from `SERVER_EMAIL` to every manager.
fn to_managers(settings: &Settings, subject: String) -> lettre::message::MessageBuilder {
    let mut builder = Message::builder()
        .from(settings.server_email.clone())
        .subject(subject)
        .raw_header(crate::mail::auto_submitted());
    for manager in &settings.managers {
        builder = builder.to(manager.clone());
    }
    builder
}

/// Examples of held-back links a storm summary lists.
pub const STORM_SAMPLES: usize = 20;

/// New broken links held back by the per-minute cap, waiting for their summary: a count and
/// a few examples, never one row (or e-mail) each.
#[derive(Debug, Default)]
pub struct LinkStorm {
    pub total: u64,
    pub since_ms: Option<i64>,
    /// (path, referer) of the first [`STORM_SAMPLES`] links.
    pub samples: Vec<(String, String)>,
}

impl LinkStorm {
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    pub fn add(&mut self, link: &MaskedLink, now_ms: i64) {
        self.total += 1;
        self.since_ms.get_or_insert(now_ms);
        if self.samples.len() < STORM_SAMPLES {
            self.samples.push((link.path.clone(), link.referer.clone()));
        }
    }
}

/// The one e-mail for a storm: "N more broken links since …", with examples.
pub fn compose_summary(
    storm: &LinkStorm,
    settings: &Settings,
    since: &str,
    until: &str,
) -> anyhow::Result<Message> {
    let subject = subject::cut(
        &subject::escape(&format!(
            "{}{} more broken links since {since}",
            settings.email_subject_prefix, storm.total
        )),
        subject::MAX_SUBJECT_CHARS,
    );
    let mut body = format!(
        "{} more broken links since {since} (until {until}): more than \
         ERROR_EMAIL_MAX_PER_MINUTE={} broken-link e-mails a minute were due, so they were \
         counted, not sent or stored one by one.\nHost: {}\n\n",
        storm.total,
        settings.error_email_max_per_minute,
        crate::telemetry::host_name(),
    );
    for (path, referer) in &storm.samples {
        body.push_str(&format!(
            "{} (from {})\n",
            subject::escape(path),
            subject::escape(referer)
        ));
    }
    if storm.total > storm.samples.len() as u64 {
        body.push_str(&format!(
            "… and {} more\n",
            storm.total - storm.samples.len() as u64
        ));
    }
    crate::mail::plain_text(to_managers(settings, subject), body)
        .context("cannot build the broken-link summary")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reporting::testing::settings_with;

    fn link() -> NotFound {
        NotFound {
            status: 404,
            path: "/clients/999".into(),
            url: "https://example.com/clients/999".into(),
            host: "example.com".into(),
            referer: Some("https://example.com/clients/".into()),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0".into()),
            client_ip: Some("198.51.100.4".parse().unwrap()),
            request_id: "rid-404".into(),
        }
    }

    #[test]
    fn a_plain_broken_link_is_reported() {
        assert_eq!(check(&link(), &settings_with(&[])), Ok(()));
    }

    #[test]
    fn debug_and_missing_managers_silence_it() {
        assert_eq!(
            check(&link(), &settings_with(&[("DEBUG", "true")])),
            Err(Skip::Debug)
        );
        assert_eq!(
            check(&link(), &settings_with(&[("MANAGERS", "")])),
            Err(Skip::NoManagers)
        );
    }

    #[test]
    fn only_404s_count() {
        let nf = NotFound {
            status: 410,
            ..link()
        };
        assert_eq!(check(&nf, &settings_with(&[])), Err(Skip::NotA404));
    }

    #[test]
    fn a_referer_is_needed() {
        let settings = settings_with(&[]);
        assert_eq!(
            check(
                &NotFound {
                    referer: None,
                    ..link()
                },
                &settings
            ),
            Err(Skip::NoReferer)
        );
        assert_eq!(
            check(
                &NotFound {
                    referer: Some("  ".into()),
                    ..link()
                },
                &settings
            ),
            Err(Skip::NoReferer)
        );
    }

    #[test]
    fn a_referer_that_is_the_url_itself_is_a_bot() {
        let settings = settings_with(&[]);
        for referer in [
            "https://example.com/clients/999",
            // Scheme aside, the same URL.
            "http://example.com/clients/999",
        ] {
            let nf = NotFound {
                referer: Some(referer.into()),
                ..link()
            };
            assert_eq!(check(&nf, &settings), Err(Skip::SelfReferer), "{referer}");
        }
        // A relative request URL against the Host header.
        let nf = NotFound {
            url: "/clients/999".into(),
            referer: Some("https://example.com/clients/999".into()),
            ..link()
        };
        assert_eq!(check(&nf, &settings), Err(Skip::SelfReferer));
        // Another query is another page.
        let nf = NotFound {
            referer: Some("https://example.com/clients/999?page=2".into()),
            ..link()
        };
        assert_eq!(check(&nf, &settings), Ok(()));
    }

    #[test]
    fn ignorable_paths_are_not_reported() {
        let settings = settings_with(&[]);
        for path in [
            "/favicon.ico",
            "/robots.txt",
            "/apple-touch-icon-120x120.png",
            "/admin/setup.php",
            "/.env",
            "/wp-login.php",
            "/wp-admin/",
            "/phpmyadmin/index",
        ] {
            let nf = NotFound {
                path: path.into(),
                url: format!("https://example.com{path}"),
                ..link()
            };
            assert_eq!(check(&nf, &settings), Err(Skip::Ignorable), "{path}");
        }
        // The setting replaces the defaults.
        let custom = settings_with(&[("IGNORABLE_404_URLS", r"^/old/")]);
        let nf = NotFound {
            path: "/old/page".into(),
            url: "https://example.com/old/page".into(),
            ..link()
        };
        assert_eq!(check(&nf, &custom), Err(Skip::Ignorable));
        let nf = NotFound {
            path: "/favicon.ico".into(),
            url: "https://example.com/favicon.ico".into(),
            ..link()
        };
        assert_eq!(check(&nf, &custom), Ok(()));
    }

    #[test]
    fn crawlers_are_not_reported_but_people_with_curl_are() {
        let settings = settings_with(&[]);
        for ua in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (compatible; bingbot/2.0)",
            "Mozilla/5.0 (compatible; Yahoo! Slurp)",
            "Baiduspider+(+http://www.baidu.com/search/spider.htm)",
            "facebookexternalhit/1.1",
            "Mozilla/5.0 (compatible; SemrushCrawler)",
            "Mozilla/5.0 BingPreview/1.0b",
            "WhatsApp/2.23.20.0",
        ] {
            let nf = NotFound {
                user_agent: Some(ua.into()),
                ..link()
            };
            assert_eq!(check(&nf, &settings), Err(Skip::Crawler), "{ua}");
        }
        for ua in ["curl/8.5.0", "Wget/1.21", "python-requests/2.31"] {
            let nf = NotFound {
                user_agent: Some(ua.into()),
                ..link()
            };
            assert_eq!(check(&nf, &settings), Ok(()), "{ua}");
        }
        assert_eq!(
            check(
                &NotFound {
                    user_agent: None,
                    ..link()
                },
                &settings
            ),
            Ok(())
        );
    }

    #[test]
    fn internal_referers_are_on_the_same_host() {
        assert!(is_internal_referer("https://example.com/a", "example.com"));
        assert!(is_internal_referer(
            "https://EXAMPLE.com/a",
            "example.com:443"
        ));
        assert!(is_internal_referer(
            "http://localhost:8000/a",
            "localhost:8000"
        ));
        assert!(is_internal_referer("http://[::1]:8000/a", "[::1]:8000"));
        assert!(!is_internal_referer(
            "http://localhost:9000/a",
            "localhost:8000"
        ));
        assert!(!is_internal_referer(
            "https://other.example/a",
            "example.com"
        ));
        assert!(!is_internal_referer(
            "https://example.com.evil/a",
            "example.com"
        ));
        assert!(!is_internal_referer("not a url", "example.com"));
    }

    #[test]
    fn the_email_names_referrer_url_agent_and_ip_and_hides_tokens() {
        let settings = settings_with(&[]);
        let nf = NotFound {
            path: "/u/tok123".into(),
            url: "https://example.com/u/tok123?api_key=k".into(),
            referer: Some("https://other.example/list".into()),
            ..link()
        };
        let masked = MaskedLink::new(&nf, &settings);
        assert!(!masked.internal);
        let raw = String::from_utf8(compose(&masked, &settings).unwrap().formatted()).unwrap();
        let mail = mailparse::parse_mail(raw.as_bytes()).unwrap();
        use mailparse::MailHeaderMap;
        assert_eq!(
            mail.headers.get_first_value("Subject").unwrap(),
            "[autosend] Broken link on example.com"
        );
        assert!(
            mail.headers
                .get_first_value("To")
                .unwrap()
                .contains("pm@example.com")
        );
        let body = mail.get_body().unwrap().replace("\r\n", "\n");
        assert!(
            body.contains("Referrer: https://other.example/list\n"),
            "{body}"
        );
        assert!(body.contains(&format!(
            "Requested URL: https://example.com/u/{0}?api_key={0}\n",
            mask::MASK
        )));
        assert!(body.contains("User agent: Mozilla/5.0"));
        assert!(body.contains("IP address: 198.51.100.4\n"));
        assert!(!body.contains("tok123"));
        let internal = MaskedLink::new(&link(), &settings);
        let mail = compose(&internal, &settings).unwrap();
        let raw = String::from_utf8(mail.formatted()).unwrap();
        assert!(raw.contains("Subject: [autosend] Broken INTERNAL link on example.com"));
    }
}
