//! E-mail addresses as users type them, parsed and normalised.

use std::fmt;

/// Longest address SMTP can carry (RFC 5321 path limit).
pub const MAX_LEN: usize = 254;

/// A syntactically valid address, trimmed and lowercased (so it compares as users expect).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    pub fn parse(input: &str) -> Result<Self, String> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err("Enter an e-mail address.".into());
        }
        if trimmed.chars().count() > MAX_LEN {
            return Err(format!(
                "An e-mail address has at most {MAX_LEN} characters."
            ));
        }
        let lowered = trimmed.to_lowercase();
        // RFC 5321 allows both, but mail software mangles them and nobody's real mailbox
        // needs them: a quoted local part (`"a b"@x.org`) and an address literal domain
        // (`a@[192.0.2.1]`) are refused here, the one parser every input goes through.
        if lowered.starts_with('"') || lowered.contains("\"@") {
            return Err(format!(
                "{trimmed:?}: quoted addresses (\"…\"@domain) are not accepted."
            ));
        }
        if lowered.contains("@[") || lowered.ends_with(']') {
            return Err(format!(
                "{trimmed:?}: an IP address in brackets is not accepted as a domain; use a domain name."
            ));
        }
        match lowered.parse::<lettre::Address>() {
            // lettre accepts `a@b`; a real mailbox needs a dot in its domain or to be local.
            Ok(address) if address.domain().contains('.') || address.domain() == "localhost" => {
                Ok(Self(address.to_string()))
            }
            _ => Err(format!("{trimmed:?} is not a valid e-mail address.")),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl AsRef<str> for Email {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Email;

    #[test]
    fn valid_addresses_are_normalised() {
        assert_eq!(
            Email::parse("  Ann@Example.COM ").unwrap().as_str(),
            "ann@example.com"
        );
        assert_eq!(
            Email::parse("root@localhost").unwrap().as_str(),
            "root@localhost"
        );
    }

    #[test]
    fn invalid_addresses_are_refused() {
        for bad in [
            "",
            "   ",
            "plain",
            "a@",
            "@b.com",
            "a b@c.com",
            "a@b",
            "a@b.com\r\nBcc: x@y.z",
            "\"a b\"@example.com",
            "\"ann\"@example.com",
            "ann@[192.0.2.1]",
            "ann@[IPv6:2001:db8::1]",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(&long).is_err());
    }
}
