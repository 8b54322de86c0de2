//! Login throttling (SPEC §5): per client IP and per account, with governor.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Attempts one address may make: a burst of 20, then one every 3 seconds.
const PER_IP_BURST: u32 = 20;
const PER_IP_PERIOD: Duration = Duration::from_secs(3);
/// Attempts on one account, from anywhere: a burst of 5, then one a minute.
const PER_ACCOUNT_BURST: u32 = 5;
const PER_ACCOUNT_PERIOD: Duration = Duration::from_secs(60);

pub struct LoginLimiter {
    by_ip: DefaultKeyedRateLimiter<IpAddr>,
    by_account: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

fn quota(period: Duration, burst: u32) -> Quota {
    Quota::with_period(period)
        .expect("non-zero period")
        .allow_burst(NonZeroU32::new(burst).expect("non-zero burst"))
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self {
            by_ip: RateLimiter::keyed(quota(PER_IP_PERIOD, PER_IP_BURST)),
            by_account: RateLimiter::keyed(quota(PER_ACCOUNT_PERIOD, PER_ACCOUNT_BURST)),
            clock: DefaultClock::default(),
        }
    }
}

impl LoginLimiter {
    /// Counts one attempt; `Err(seconds)` when over either limit, with the wait.
    pub fn check(&self, ip: IpAddr, account: &str) -> Result<(), u64> {
        let now = self.clock.now();
        let wait = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
        self.by_ip
            .check_key(&ip)
            .map_err(|not_until| wait(not_until.wait_time_from(now)))?;
        self.by_account
            .check_key(&account.trim().to_lowercase())
            .map_err(|not_until| wait(not_until.wait_time_from(now)))?;
        Ok(())
    }

    /// Drops keys whose limits have fully recovered, so memory stays bounded.
    pub fn shrink(&self) {
        self.by_ip.retain_recent();
        self.by_account.retain_recent();
    }
}
