//! New passwords as users choose them.

use std::fmt;

pub const MIN_LEN: usize = 8;
/// Hashing cost grows with length; nobody types more than this.
pub const MAX_LEN: usize = 1024;

/// A new password that meets the policy. Never printed.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Checks a new password and its confirmation; `email` may not be the password.
    pub fn parse_new(password: &str, confirmation: &str, email: &str) -> Result<Self, String> {
        let length = password.chars().count();
        if length < MIN_LEN {
            return Err(format!("Use at least {MIN_LEN} characters."));
        }
        if length > MAX_LEN {
            return Err(format!("Use at most {MAX_LEN} characters."));
        }
        if password.chars().all(|c| c.is_ascii_digit()) {
            return Err("A password cannot be only digits.".into());
        }
        if !email.is_empty() && password.eq_ignore_ascii_case(email) {
            return Err("A password cannot be your e-mail address.".into());
        }
        if password != confirmation {
            return Err("The two passwords do not match.".into());
        }
        Ok(Self(password.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(********************)")
    }
}

#[cfg(test)]
mod tests {
    use super::Password;

    #[test]
    fn policy() {
        assert!(Password::parse_new("correct horse", "correct horse", "a@b.c").is_ok());
        assert!(Password::parse_new("short", "short", "").is_err());
        assert!(Password::parse_new("12345678901", "12345678901", "").is_err());
        assert!(
            Password::parse_new("ann@example.com", "ann@example.com", "ann@example.com").is_err()
        );
        assert!(Password::parse_new("correct horse", "correct horsf", "").is_err());
    }
}
