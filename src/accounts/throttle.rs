//! Throttling of the account forms (SPEC §5, §12), with governor: login per client and per
//! (account, client), sign-up and password reset per client and per target address.
//!
//! The client is the address [`crate::web::client::client_ip`] finds (`X-Forwarded-For`
//! from `TRUSTED_PROXIES`, as the reports read it), so clients behind a proxy do not share
//! one allowance. An IPv6 client counts as its /64: one subscriber holds a whole /64, and
//! keying on single addresses would give an attacker 2^64 allowances.
//!
//! Failed logins lock an account only for the addresses they came from: the owner logging
//! in from elsewhere is not locked out by someone guessing. A much looser cap per account
//! from anywhere still bounds a guessing botnet.
//!
//! Keys are bounded (the forms' fields are capped before they get here) and idle keys are
//! dropped by [`Throttle::shrink`], which the housekeeping timer calls.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Login attempts one client may make: a burst of 20, then one every 3 seconds.
const LOGIN_PER_CLIENT: (u32, Duration) = (20, Duration::from_secs(3));
/// Login attempts on one account from one client: a burst of 5, then one a minute.
const LOGIN_PER_ACCOUNT_CLIENT: (u32, Duration) = (5, Duration::from_secs(60));
/// Login attempts on one account from everywhere: a burst of 50, then one every 10 s.
const LOGIN_PER_ACCOUNT: (u32, Duration) = (50, Duration::from_secs(10));
/// Sign-ups (and so activation mails) from one client: 5, then one every 5 minutes.
const SIGNUP_PER_CLIENT: (u32, Duration) = (5, Duration::from_secs(300));
/// Mails a sign-up sends to one address: 3, then one every 20 minutes.
const SIGNUP_PER_ADDRESS: (u32, Duration) = (3, Duration::from_secs(1200));
/// Password resets asked by one client: 5, then one every 5 minutes.
const RESET_PER_CLIENT: (u32, Duration) = (5, Duration::from_secs(300));
/// Reset mails to one address: 3, then one every 20 minutes.
const RESET_PER_ADDRESS: (u32, Duration) = (3, Duration::from_secs(1200));

fn limiter<K: Hash + Eq + Clone>((burst, period): (u32, Duration)) -> DefaultKeyedRateLimiter<K> {
    let quota = Quota::with_period(period)
        .expect("non-zero period")
        .allow_burst(NonZeroU32::new(burst).expect("non-zero burst"));
    RateLimiter::keyed(quota)
}

/// The key of a client: its address, or its /64 for IPv6.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(prefix.into())
        }
        v4 => v4,
    }
}

/// The key of an account or a target address: trimmed and lowercased.
fn address_key(address: &str) -> String {
    address.trim().to_lowercase()
}

pub struct Throttle {
    login_by_client: DefaultKeyedRateLimiter<IpAddr>,
    login_by_account_client: DefaultKeyedRateLimiter<(String, IpAddr)>,
    login_by_account: DefaultKeyedRateLimiter<String>,
    signup_by_client: DefaultKeyedRateLimiter<IpAddr>,
    signup_by_address: DefaultKeyedRateLimiter<String>,
    reset_by_client: DefaultKeyedRateLimiter<IpAddr>,
    reset_by_address: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl Default for Throttle {
    fn default() -> Self {
        Self {
            login_by_client: limiter(LOGIN_PER_CLIENT),
            login_by_account_client: limiter(LOGIN_PER_ACCOUNT_CLIENT),
            login_by_account: limiter(LOGIN_PER_ACCOUNT),
            signup_by_client: limiter(SIGNUP_PER_CLIENT),
            signup_by_address: limiter(SIGNUP_PER_ADDRESS),
            reset_by_client: limiter(RESET_PER_CLIENT),
            reset_by_address: limiter(RESET_PER_ADDRESS),
            clock: DefaultClock::default(),
        }
    }
}

impl Throttle {
    /// Counts one cell of `key` in `limiter`; `Err(seconds to wait)` when over.
    fn take<K: Hash + Eq + Clone>(
        &self,
        limiter: &DefaultKeyedRateLimiter<K>,
        key: &K,
    ) -> Result<(), u64> {
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Counts one login attempt; `Err(seconds)` when over a limit, with the wait. The
    /// client's own limit is checked first, so one client cannot make many account keys.
    /// `account` is `None` for a login that names no possible account (an oversized
    /// field): it counts against the client only.
    pub fn login(&self, client: IpAddr, account: Option<&str>) -> Result<(), u64> {
        let client = client_key(client);
        self.take(&self.login_by_client, &client)?;
        let Some(account) = account else {
            return Ok(());
        };
        let account = address_key(account);
        self.take(&self.login_by_account_client, &(account.clone(), client))?;
        self.take(&self.login_by_account, &account)
    }

    /// Counts one sign-up that would send a mail to `address`.
    pub fn signup(&self, client: IpAddr, address: &str) -> Result<(), u64> {
        self.take(&self.signup_by_client, &client_key(client))?;
        self.take(&self.signup_by_address, &address_key(address))
    }

    /// Counts one password-reset request for `address`.
    pub fn reset(&self, client: IpAddr, address: &str) -> Result<(), u64> {
        self.take(&self.reset_by_client, &client_key(client))?;
        self.take(&self.reset_by_address, &address_key(address))
    }

    /// Drops keys whose limits have fully recovered, and the memory they held, so a flood
    /// of distinct keys does not stay resident.
    pub fn shrink(&self) {
        for limiter in [
            &self.login_by_client,
            &self.signup_by_client,
            &self.reset_by_client,
        ] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        for limiter in [
            &self.login_by_account,
            &self.signup_by_address,
            &self.reset_by_address,
        ] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        self.login_by_account_client.retain_recent();
        self.login_by_account_client.shrink_to_fit();
    }

    /// Keys held in all limiters (for the housekeeping log line).
    pub fn len(&self) -> usize {
        self.login_by_client.len()
            + self.login_by_account_client.len()
            + self.login_by_account.len()
            + self.signup_by_client.len()
            + self.signup_by_address.len()
            + self.reset_by_client.len()
            + self.reset_by_address.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_count_as_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_ne!(client_key(a), client_key(other));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(client_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn failures_lock_the_account_only_for_their_client() {
        let throttle = Throttle::default();
        let attacker: IpAddr = "198.51.100.1".parse().unwrap();
        let owner: IpAddr = "203.0.113.9".parse().unwrap();
        for _ in 0..LOGIN_PER_ACCOUNT_CLIENT.0 {
            assert!(throttle.login(attacker, Some("Ann@example.com")).is_ok());
        }
        assert!(throttle.login(attacker, Some("ann@example.com ")).is_err());
        assert!(throttle.login(owner, Some("ann@example.com")).is_ok());
        throttle.shrink();
        assert!(!throttle.is_empty(), "recent keys are kept");
    }
}
