//! Subjects and first lines of report e-mails (SPEC §8), and who the client is.
//!
//! Owns: the error and broken-link subject forms, their CR/LF escaping and 200-character cut,
//! the client IP as seen through `TRUSTED_PROXIES`, and whether it is in `INTERNAL_IPS`.

use std::net::IpAddr;

use ipnet::IpNet;

/// Longest subject, in characters; longer ones end with `…`.
pub const MAX_SUBJECT_CHARS: usize = 200;

/// `{prefix}ERROR ({internal|EXTERNAL} IP): Internal Server Error: {path}`, escaped and cut.
pub fn error_subject(prefix: &str, internal: bool, path: &str) -> String {
    let scope = if internal { "internal" } else { "EXTERNAL" };
    cut(
        &escape(&format!(
            "{prefix}ERROR ({scope} IP): Internal Server Error: {path}"
        )),
        MAX_SUBJECT_CHARS,
    )
}

/// `{prefix}ERROR (background task): {task}` for scheduler and delivery failures.
pub fn background_subject(prefix: &str, task: &str) -> String {
    cut(
        &escape(&format!("{prefix}ERROR (background task): {task}")),
        MAX_SUBJECT_CHARS,
    )
}

/// `{prefix}Broken INTERNAL link on {host}` when the referer is on the same host, else
/// `{prefix}Broken link on {host}`.
pub fn broken_link_subject(prefix: &str, internal_referer: bool, host: &str) -> String {
    let kind = if internal_referer {
        "Broken INTERNAL link"
    } else {
        "Broken link"
    };
    cut(
        &escape(&format!("{prefix}{kind} on {host}")),
        MAX_SUBJECT_CHARS,
    )
}

/// The body of a broken-link e-mail: one line each for referrer, URL, user agent and IP.
pub fn broken_link_body(referer: &str, url: &str, user_agent: &str, ip: Option<IpAddr>) -> String {
    let ip = ip.map(|ip| ip.to_string()).unwrap_or_else(|| "-".into());
    format!(
        "Referrer: {}\nRequested URL: {}\nUser agent: {}\nIP address: {}\n",
        escape(referer),
        escape(url),
        escape(user_agent),
        escape(&ip)
    )
}

/// CR and LF become the two characters `\r` and `\n`, other control characters `\u{…}`:
/// a subject (or a header-like line) can never be split into two.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() && c != '\t' => out.push_str(&c.escape_unicode().to_string()),
            c => out.push(c),
        }
    }
    out
}

/// `text` when it has at most `max` characters, else its first `max - 1` and `…`.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The client's address. `X-Forwarded-For` is believed only when the peer is a trusted proxy;
/// then it is read right to left, skipping trusted proxies, and the first other address is the
/// client (the rightmost untrusted one: entries left of it may be forged by the client).
///
/// Several `X-Forwarded-For` headers must be joined with `,` first, in order.
pub fn client_ip(peer: IpAddr, x_forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.to_canonical();
    let Some(xff) = x_forwarded_for else {
        return peer;
    };
    if !in_any(peer, trusted) {
        return peer;
    }
    let mut client = peer;
    for entry in xff.rsplit(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let Some(ip) = parse_forwarded(entry) else {
            // Garbage from here on leftwards: the last trusted hop is all we know.
            return client;
        };
        client = ip;
        if !in_any(ip, trusted) {
            return ip;
        }
    }
    client
}

/// Whether `ip` is in one of the `INTERNAL_IPS` networks.
pub fn is_internal(ip: IpAddr, internal: &[IpNet]) -> bool {
    in_any(ip.to_canonical(), internal)
}

fn in_any(ip: IpAddr, nets: &[IpNet]) -> bool {
    nets.iter().any(|net| net.contains(&ip))
}

/// One `X-Forwarded-For` entry: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1` or `[2001:db8::1]:5678`.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(addr) = entry.parse::<std::net::SocketAddr>() {
        return Some(addr.ip().to_canonical());
    }
    entry
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|ip| ip.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn error_subject_has_the_documented_form() {
        assert_eq!(
            error_subject("[autosend] ", true, "/clients/42"),
            "[autosend] ERROR (internal IP): Internal Server Error: /clients/42"
        );
        assert_eq!(
            error_subject("", false, "/"),
            "ERROR (EXTERNAL IP): Internal Server Error: /"
        );
    }

    #[test]
    fn internal_is_decided_by_cidr() {
        let internal = nets(&["10.0.0.0/8", "192.168.1.7/32", "fd00::/8"]);
        assert!(is_internal(ip("10.1.2.3"), &internal));
        assert!(is_internal(ip("192.168.1.7"), &internal));
        assert!(is_internal(ip("fd00::1"), &internal));
        // An IPv4 address seen through a dual-stack socket is still the IPv4 address.
        assert!(is_internal(ip("::ffff:10.9.9.9"), &internal));
        assert!(!is_internal(ip("192.168.1.8"), &internal));
        assert!(!is_internal(ip("8.8.8.8"), &internal));
        assert!(!is_internal(ip("10.0.0.1"), &[]));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = nets(&["10.0.0.0/8"]);
        // Untrusted peer: its header is ignored, whatever it claims.
        assert_eq!(
            client_ip(ip("203.0.113.9"), Some("10.1.1.1"), &trusted),
            ip("203.0.113.9")
        );
        // Trusted peer: the rightmost untrusted entry is the client; left of it may be forged.
        assert_eq!(
            client_ip(
                ip("10.0.0.2"),
                Some("1.1.1.1, 198.51.100.4, 10.0.0.3"),
                &trusted
            ),
            ip("198.51.100.4")
        );
        // Only trusted hops: the leftmost is as far as we can see.
        assert_eq!(
            client_ip(ip("10.0.0.2"), Some("10.0.0.5, 10.0.0.3"), &trusted),
            ip("10.0.0.5")
        );
        // No header: the peer.
        assert_eq!(client_ip(ip("10.0.0.2"), None, &trusted), ip("10.0.0.2"));
        // Ports and brackets are accepted; garbage stops the walk at the last trusted hop.
        assert_eq!(
            client_ip(ip("10.0.0.2"), Some("[2001:db8::7]:443"), &trusted),
            ip("2001:db8::7")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), Some("198.51.100.4:5000"), &trusted),
            ip("198.51.100.4")
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), Some("1.1.1.1, unknown, 10.0.0.3"), &trusted),
            ip("10.0.0.3")
        );
        // With no trusted proxies, the header never counts.
        assert_eq!(
            client_ip(ip("10.0.0.2"), Some("1.1.1.1"), &[]),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn internal_subject_through_a_trusted_proxy() {
        let trusted = nets(&["127.0.0.1/32"]);
        let internal = nets(&["192.168.0.0/16"]);
        let client = client_ip(ip("127.0.0.1"), Some("192.168.4.4"), &trusted);
        assert!(error_subject("", is_internal(client, &internal), "/x").contains("(internal IP)"));
        let spoofed = client_ip(ip("203.0.113.1"), Some("192.168.4.4"), &trusted);
        assert!(error_subject("", is_internal(spoofed, &internal), "/x").contains("(EXTERNAL IP)"));
    }

    #[test]
    fn cr_and_lf_are_escaped_literally() {
        let subject = error_subject("[a] ", false, "/x\r\nBcc: evil@example.com");
        assert!(!subject.contains(['\r', '\n']));
        assert!(
            subject.ends_with("/x\\r\\nBcc: evil@example.com"),
            "{subject}"
        );
        assert_eq!(escape("a\u{7}b\tc"), "a\\u{7}b\tc");
    }

    #[test]
    fn long_subjects_are_cut_to_200_characters_with_an_ellipsis() {
        let path = format!("/{}", "я".repeat(300));
        let subject = error_subject("[autosend] ", false, &path);
        assert_eq!(subject.chars().count(), MAX_SUBJECT_CHARS);
        assert!(subject.ends_with('…'));
        assert!(subject.starts_with("[autosend] ERROR (EXTERNAL IP): Internal Server Error: /яя"));
        // Exactly 200 is kept whole.
        let exact = "x".repeat(200);
        assert_eq!(cut(&exact, 200), exact);
        assert_eq!(cut(&"x".repeat(201), 200).chars().count(), 200);
        // Escaping counts: the escaped form is what is cut.
        let escaped = error_subject("", false, &"\n".repeat(150));
        assert_eq!(escaped.chars().count(), 200);
        assert!(!escaped.contains('\n'));
    }

    #[test]
    fn broken_link_subjects_and_body() {
        assert_eq!(
            broken_link_subject("[autosend] ", true, "example.com"),
            "[autosend] Broken INTERNAL link on example.com"
        );
        assert_eq!(
            broken_link_subject("[autosend] ", false, "example.com"),
            "[autosend] Broken link on example.com"
        );
        let body = broken_link_body(
            "https://other.example/page",
            "https://example.com/missing",
            "Mozilla/5.0",
            Some(ip("198.51.100.4")),
        );
        assert_eq!(
            body,
            "Referrer: https://other.example/page\nRequested URL: https://example.com/missing\n\
             User agent: Mozilla/5.0\nIP address: 198.51.100.4\n"
        );
        assert!(broken_link_body("a\nb", "u", "", None).contains("Referrer: a\\nb\n"));
    }
}
