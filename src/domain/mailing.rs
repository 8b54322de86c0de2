//! Mailings, runs and deliveries as the product names them (SPEC §7): their statuses, the
//! period a mailing repeats by, who triggered a run, and the rules between them that need no
//! I/O (the due rule, calendar arithmetic, a run's outcome, retry backoff).

use std::fmt;

use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime};
use time_tz::{OffsetResult, PrimitiveDateTimeExt, Tz};

/// The word for an archived mailing (deleted after it ran, SPEC §12): not a status — an
/// archived mailing keeps its own — but what `?status=` filters on and what stats and
/// reports show in its status column. A macro so SQL built with `concat!` shares it.
macro_rules! archived_word {
    () => {
        "archived"
    };
}
pub(crate) use archived_word;

pub const ARCHIVED: &str = archived_word!();

/// Days since the unix epoch (UTC) of `ms`: the key of `daily_stats`.
pub fn epoch_day(ms: i64) -> i64 {
    ms.div_euclid(86_400_000)
}

/// Error for a status or period word that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownWord {
    kind: &'static str,
    value: String,
}

macro_rules! words {
    ($(#[$doc:meta])* $name:ident, $kind:literal, { $($variant:ident => $word:literal / $label:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word stored in the database and used in URLs and forms.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $word),+ }
            }

            /// The label shown to users.
            pub fn label(self) -> &'static str {
                match self { $($name::$variant => $label),+ }
            }

            pub fn parse(value: &str) -> Result<Self, UnknownWord> {
                match value {
                    $($word => Ok($name::$variant),)+
                    _ => Err(UnknownWord { kind: $kind, value: value.to_string() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

words!(
    /// Where a mailing is in its life: `created` → `running` → `finished`.
    MailingStatus, "mailing status", {
        Created => "created" / "Created",
        Running => "running" / "Running",
        Finished => "finished" / "Finished",
    }
);

words!(
    /// How often a mailing repeats inside its window.
    Period, "period", {
        Once => "once" / "Once",
        Daily => "daily" / "Daily",
        Weekly => "weekly" / "Weekly",
        Monthly => "monthly" / "Monthly",
    }
);

words!(
    /// A run's state; everything but `running` is final.
    RunStatus, "run status", {
        Running => "running" / "Running",
        Success => "success" / "Success",
        Partial => "partial" / "Partial",
        Fail => "fail" / "Failed",
        Cancelled => "cancelled" / "Cancelled",
    }
);

words!(
    /// One recipient's message within a run.
    DeliveryStatus, "delivery status", {
        Pending => "pending" / "Pending",
        Sending => "sending" / "Sending",
        Sent => "sent" / "Sent",
        Error => "error" / "Error",
        DryRun => "dry_run" / "Dry run",
        Skipped => "skipped" / "Skipped (unsubscribed)",
        Cancelled => "cancelled" / "Cancelled",
    }
);

impl DeliveryStatus {
    /// Whether the delivery still has to be worked on.
    pub fn is_open(self) -> bool {
        matches!(self, DeliveryStatus::Pending | DeliveryStatus::Sending)
    }
}

/// Who started a run, stored as `scheduler`, `manual:<email>` or `cli`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Scheduler,
    Manual(String),
    Cli,
}

impl Trigger {
    pub fn parse(value: &str) -> Result<Self, UnknownWord> {
        match value {
            "scheduler" => Ok(Trigger::Scheduler),
            "cli" => Ok(Trigger::Cli),
            _ => match value.strip_prefix("manual:") {
                Some(email) => Ok(Trigger::Manual(email.to_string())),
                None => Err(UnknownWord {
                    kind: "trigger",
                    value: value.to_string(),
                }),
            },
        }
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trigger::Scheduler => f.write_str("scheduler"),
            Trigger::Manual(email) => write!(f, "manual:{email}"),
            Trigger::Cli => f.write_str("cli"),
        }
    }
}

/// The scheduler's due rule (SPEC §7): not finished, inside the window, and its time has come.
pub fn is_due(
    status: MailingStatus,
    start_at: i64,
    end_at: i64,
    next_run_at: Option<i64>,
    now: i64,
) -> bool {
    status != MailingStatus::Finished
        && start_at <= now
        && now < end_at
        && next_run_at.is_some_and(|next| next <= now)
}

impl Period {
    /// The `n`-th occurrence of a schedule that starts at `start`, counted in the calendar of
    /// `tz`: a daily mailing at 09:00 stays at 09:00 local time across DST changes, and a
    /// monthly one started on the 31st goes out on the last day of shorter months without
    /// drifting to the 28th afterwards (each occurrence is counted from `start`, not from the
    /// previous one).
    pub fn occurrence(self, start: OffsetDateTime, n: u32, tz: &Tz) -> OffsetDateTime {
        use time_tz::OffsetDateTimeExt;
        let local = start.to_timezone(tz);
        let date = local.date();
        let shifted = match self {
            Period::Once => return start,
            Period::Daily => date.checked_add(Duration::days(i64::from(n))),
            Period::Weekly => date.checked_add(Duration::weeks(i64::from(n))),
            Period::Monthly => Some(add_months(date, n)),
        };
        let Some(shifted) = shifted else {
            return OffsetDateTime::new_utc(Date::MAX, time::Time::MIDNIGHT);
        };
        let wall = PrimitiveDateTime::new(shifted, local.time());
        match wall.assume_timezone(tz) {
            OffsetResult::Some(t) => t,
            // A time that exists twice (clocks back): the first one.
            OffsetResult::Ambiguous(first, _) => first,
            // A time that does not exist (clocks forward): the same instant offset as before
            // the gap, which lands just after it.
            OffsetResult::None => wall.assume_offset(local.offset()),
        }
        .to_offset(time::UtcOffset::UTC)
    }

    /// The first occurrence strictly after `after`, or `None` for `once` (it never repeats).
    pub fn next_after(
        self,
        start: OffsetDateTime,
        after: OffsetDateTime,
        tz: &Tz,
    ) -> Option<OffsetDateTime> {
        if self == Period::Once {
            return (start > after).then_some(start);
        }
        if start > after {
            return Some(start);
        }
        // Jump close to `after` by the average length of a period, then step: O(1) however
        // long ago the mailing started.
        let approx_days = match self {
            Period::Daily => 1.0,
            Period::Weekly => 7.0,
            Period::Monthly => 30.436_875,
            Period::Once => unreachable!(),
        };
        let elapsed_days = (after - start).as_seconds_f64() / 86_400.0;
        let mut n = ((elapsed_days / approx_days) as u32).saturating_sub(2);
        loop {
            let t = self.occurrence(start, n, tz);
            if t > after {
                return Some(t);
            }
            n = n.checked_add(1)?;
        }
    }
}

fn add_months(date: Date, months: u32) -> Date {
    let index = date.year() as i64 * 12 + (date.month() as i64 - 1) + i64::from(months);
    let year = index.div_euclid(12) as i32;
    let month = Month::try_from((index.rem_euclid(12) + 1) as u8).unwrap_or(Month::December);
    let last = time::util::days_in_month(month, year);
    Date::from_calendar_date(year, month, date.day().min(last)).unwrap_or(Date::MAX)
}

/// A run's final totals, as counted from its deliveries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunTotals {
    pub total: i64,
    pub pending: i64,
    pub sent: i64,
    pub errors: i64,
    pub dry_run: i64,
    pub skipped: i64,
    pub cancelled: i64,
}

impl RunTotals {
    /// Adds `count` deliveries of `status`.
    pub fn add(&mut self, status: DeliveryStatus, count: i64) {
        self.total += count;
        match status {
            DeliveryStatus::Pending | DeliveryStatus::Sending => self.pending += count,
            DeliveryStatus::Sent => self.sent += count,
            DeliveryStatus::Error => self.errors += count,
            DeliveryStatus::DryRun => self.dry_run += count,
            DeliveryStatus::Skipped => self.skipped += count,
            DeliveryStatus::Cancelled => self.cancelled += count,
        }
    }

    /// The outcome of a run with these totals: `running` while anything is open; `cancelled`
    /// when something was cancelled; otherwise `fail` when there were messages to deliver and
    /// none was delivered, `partial` when some failed, `success` when every message to deliver
    /// was delivered (or rendered, in a dry run). Unsubscribed recipients (`skipped`) are not
    /// messages to deliver, so a run whose whole audience had unsubscribed is a `success`.
    pub fn outcome(&self) -> RunStatus {
        if self.pending > 0 {
            RunStatus::Running
        } else if self.cancelled > 0 {
            RunStatus::Cancelled
        } else if self.errors == 0 {
            RunStatus::Success
        } else if self.sent + self.dry_run == 0 {
            RunStatus::Fail
        } else {
            RunStatus::Partial
        }
    }

    /// The one-line `server_response` summary of a finished run.
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("{} of {} sent", self.sent, self.total)];
        for (n, what) in [
            (self.errors, "failed"),
            (self.dry_run, "dry run"),
            (self.skipped, "skipped (unsubscribed)"),
            (self.cancelled, "cancelled"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        parts.join(", ")
    }
}

/// The wait before retrying a temporary failure after `attempts` attempts: exponential from
/// `base`, capped at `cap`, with "equal jitter" (half fixed, half random) so that recipients
/// who failed together (a server outage) do not all come back in the same second.
/// `random` is a number in `[0, 1)`.
pub fn retry_delay(
    attempts: u32,
    base: std::time::Duration,
    cap: std::time::Duration,
    random: f64,
) -> std::time::Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let full = base.saturating_mul(1u32 << exp).min(cap);
    let half = full / 2;
    half + half.mul_f64(random.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn tz(name: &str) -> &'static Tz {
        time_tz::timezones::get_by_name(name).unwrap()
    }

    #[test]
    fn words_round_trip() {
        for s in MailingStatus::ALL {
            assert_eq!(MailingStatus::parse(s.as_str()).unwrap(), *s);
        }
        for p in Period::ALL {
            assert_eq!(Period::parse(p.as_str()).unwrap(), *p);
        }
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()).unwrap(), *s);
        }
        assert!(Period::parse("hourly").is_err());
        assert_eq!(MailingStatus::Running.label(), "Running");
        for t in [
            Trigger::Scheduler,
            Trigger::Cli,
            Trigger::Manual("a@b.c".into()),
        ] {
            assert_eq!(Trigger::parse(&t.to_string()).unwrap(), t);
        }
    }

    #[test]
    fn due_rule_edges() {
        use MailingStatus::*;
        let (start, end) = (1_000, 2_000);
        assert!(
            is_due(Created, start, end, Some(start), start),
            "at start_at"
        );
        assert!(
            !is_due(Created, start, end, Some(start), start - 1),
            "before"
        );
        assert!(
            is_due(Running, start, end, Some(1_500), 1_999),
            "just before end"
        );
        assert!(!is_due(Running, start, end, Some(1_500), end), "at end_at");
        assert!(
            !is_due(Running, start, end, Some(1_500), 1_499),
            "before next run"
        );
        assert!(!is_due(Running, start, end, None, 1_500), "no next run");
        assert!(
            !is_due(Finished, start, end, Some(start), 1_500),
            "finished"
        );
    }

    #[test]
    fn daily_keeps_local_time_across_dst() {
        let berlin = tz("Europe/Berlin");
        // 09:00 in Berlin on 2026-03-28 (CET, UTC+1) is 08:00 UTC.
        let start = datetime!(2026-03-28 08:00 UTC);
        // The next day is summer time (UTC+2): 09:00 local is 07:00 UTC.
        assert_eq!(
            Period::Daily.occurrence(start, 1, berlin),
            datetime!(2026-03-29 07:00 UTC)
        );
        assert_eq!(
            Period::Weekly.occurrence(start, 1, berlin),
            datetime!(2026-04-04 07:00 UTC)
        );
        // UTC has no DST: plain 24 hours.
        assert_eq!(
            Period::Daily.occurrence(start, 1, tz("UTC")),
            datetime!(2026-03-29 08:00 UTC)
        );
    }

    #[test]
    fn monthly_clamps_to_month_end_without_drift() {
        let utc = tz("UTC");
        let start = datetime!(2027-01-31 10:00 UTC);
        assert_eq!(
            Period::Monthly.occurrence(start, 1, utc),
            datetime!(2027-02-28 10:00 UTC)
        );
        assert_eq!(
            Period::Monthly.occurrence(start, 2, utc),
            datetime!(2027-03-31 10:00 UTC)
        );
        assert_eq!(
            Period::Monthly.occurrence(start, 13, utc),
            datetime!(2028-02-29 10:00 UTC)
        );
        assert_eq!(
            Period::Monthly.occurrence(start, 11, utc),
            datetime!(2027-12-31 10:00 UTC)
        );
    }

    #[test]
    fn next_after_skips_missed_occurrences() {
        let utc = tz("UTC");
        let start = datetime!(2026-01-01 09:00 UTC);
        assert_eq!(
            Period::Daily.next_after(start, datetime!(2026-01-01 09:00 UTC), utc),
            Some(datetime!(2026-01-02 09:00 UTC))
        );
        // Down for three days: one run, then the next occurrence, no catch-up burst.
        assert_eq!(
            Period::Daily.next_after(start, datetime!(2026-01-04 12:00 UTC), utc),
            Some(datetime!(2026-01-05 09:00 UTC))
        );
        assert_eq!(
            Period::Monthly.next_after(start, datetime!(2030-06-15 00:00 UTC), utc),
            Some(datetime!(2030-07-01 09:00 UTC))
        );
        assert_eq!(
            Period::Weekly.next_after(start, datetime!(2025-12-01 00:00 UTC), utc),
            Some(start),
            "before the start, the start"
        );
        assert_eq!(Period::Once.next_after(start, start, utc), None);
    }

    #[test]
    fn run_outcomes() {
        let totals = |sent, errors, dry_run, skipped, cancelled, pending| RunTotals {
            total: sent + errors + dry_run + skipped + cancelled + pending,
            pending,
            sent,
            errors,
            dry_run,
            skipped,
            cancelled,
        };
        assert_eq!(totals(3, 0, 0, 1, 0, 0).outcome(), RunStatus::Success);
        assert_eq!(totals(2, 1, 0, 0, 0, 0).outcome(), RunStatus::Partial);
        assert_eq!(totals(0, 3, 0, 0, 0, 0).outcome(), RunStatus::Fail);
        assert_eq!(totals(0, 0, 3, 0, 0, 0).outcome(), RunStatus::Success);
        assert_eq!(totals(1, 0, 0, 0, 2, 0).outcome(), RunStatus::Cancelled);
        assert_eq!(totals(1, 0, 0, 0, 0, 1).outcome(), RunStatus::Running);
        assert_eq!(totals(0, 0, 0, 2, 0, 0).outcome(), RunStatus::Success);
        assert_eq!(
            totals(2, 1, 0, 1, 0, 0).summary(),
            "2 of 4 sent, 1 failed, 1 skipped (unsubscribed)"
        );
    }

    #[test]
    fn retry_delay_grows_and_is_capped() {
        use std::time::Duration as D;
        let (base, cap) = (D::from_secs(60), D::from_secs(3600));
        assert_eq!(retry_delay(1, base, cap, 0.0), D::from_secs(30));
        assert_eq!(retry_delay(1, base, cap, 0.999_999).as_secs(), 59);
        assert_eq!(retry_delay(3, base, cap, 0.0), D::from_secs(120));
        assert_eq!(retry_delay(20, base, cap, 0.0), D::from_secs(1800));
        assert!(retry_delay(20, base, cap, 1.0) <= cap);
    }
}
