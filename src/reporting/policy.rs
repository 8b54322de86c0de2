//! The notifier's policy (SPEC §8): what happens to an error report, decided without I/O.
//!
//! [`decide`] is the one home of these rules; the worker ([`crate::reporting::worker`]) only
//! does what it answers and feeds the outcome back as the next [`Event`]:
//! - every report is counted in its group, whatever happens next; a resolved group that recurs
//!   is reopened and e-mailed like a first occurrence;
//! - nothing is e-mailed with `DEBUG=true` or without `ADMINS`;
//! - a group is e-mailed when it is new, and then at most once per `ERROR_EMAIL_COOLDOWN_SECS`;
//!   repeats in between are counted and the next e-mail says "N more since …". The database
//!   confirms the right to e-mail with one conditional `UPDATE` against the group as this
//!   policy saw it, so two instances never both send it; while the database fails, the same
//!   cooldown is kept in this instance's memory;
//! - at most `ERROR_EMAIL_MAX_PER_MINUTE` error e-mails a minute (the worker asks the cap,
//!   which is shared through Redis when there is one). Reports over it are gathered into one
//!   storm summary, sent when the cap allows again and at most once a minute.

use std::collections::HashMap;

use crate::config::Settings;
use crate::db::error_groups::{EmailClaim, ErrorGroup};
use crate::reporting::report::{ErrorReport, format_time};
use crate::reporting::subject;

/// Storm summaries are at least this far apart.
pub const SUMMARY_INTERVAL_MS: i64 = 60_000;
/// Groups remembered for the fallback used while the database fails.
const LOCAL_MEMORY: usize = 10_000;

/// The settings the policy follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// `DEBUG=false` and `ADMINS` set.
    pub mail_enabled: bool,
    pub cooldown_secs: u64,
}

impl Rules {
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            mail_enabled: !settings.debug && !settings.admins.is_empty(),
            cooldown_secs: settings.error_email_cooldown_secs,
        }
    }

    fn cooldown_ms(&self) -> i64 {
        i64::try_from(self.cooldown_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    /// Whether a group last e-mailed at `last` may be e-mailed again at `now`.
    fn cooldown_over(&self, last: Option<i64>, now: i64) -> bool {
        last.is_none_or(|last| now.saturating_sub(last) >= self.cooldown_ms())
    }
}

/// A group as stored before the occurrence being decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupState {
    pub last_emailed_at: Option<i64>,
    pub resolved: bool,
}

impl From<&ErrorGroup> for GroupState {
    fn from(group: &ErrorGroup) -> Self {
        Self {
            last_emailed_at: group.last_emailed_at.map(crate::domain::instant::to_ms),
            resolved: group.resolved_at.is_some(),
        }
    }
}

/// What the database said about a report's group before it was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Found(GroupState),
    /// The first occurrence.
    New,
    /// The database could not be read.
    Failed,
}

/// What the worker tells the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A report arrived; `group` is its group before this occurrence.
    Report { entry: StormGroup, group: Lookup },
    /// The answer to [`Action::Record`]: the group's occurrences so far (`None`: it failed).
    Recorded(Option<i64>),
    /// The answer to [`Action::Claim`]: the claim, `Ok(None)` when another e-mail came first
    /// (maybe another instance's), `Err` when the database failed.
    Claimed(Result<Option<EmailClaim>, ()>),
    /// The answer to [`Action::AskCap`]: whether one more e-mail fits this minute.
    Cap(bool),
    /// The retry timer or a flush: a pending storm summary may be due.
    Tick,
}

/// What the policy asks the worker to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing (more) to do.
    Done,
    /// Count the occurrence in its group; `reopen` a resolved group. Answer [`Event::Recorded`].
    Record { reopen: bool },
    /// Take the right to e-mail the group in the database, expecting its last e-mail to be
    /// `expected`. Answer [`Event::Claimed`].
    Claim { expected: Option<i64> },
    /// Ask the per-minute cap for one e-mail. Answer [`Event::Cap`].
    AskCap,
    /// Not e-mailed (a repeat inside the cooldown): count it as suppressed, in the group too
    /// when `in_db`.
    Suppress { in_db: bool },
    /// Held back by the per-minute cap: the report is in the pending storm summary.
    Held,
    /// E-mail the report with these notes above it. If the send fails, give `claim` back to
    /// the database (when there is one) so the next occurrence may try again.
    Mail {
        notes: Vec<String>,
        claim: Option<EmailClaim>,
    },
    /// E-mail this storm summary (taken out of the state; the cap allowed it).
    Summary(Storm),
}

/// One group in a storm summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StormGroup {
    pub fingerprint: String,
    pub error_type: String,
    pub message: String,
    pub route: String,
    pub count: u64,
    pub last_request_id: String,
}

impl StormGroup {
    pub fn of(report: &ErrorReport) -> Self {
        Self {
            fingerprint: report.fingerprint.clone(),
            error_type: report.error_type.clone(),
            message: subject::cut(report.message.lines().next().unwrap_or_default(), 200),
            route: report.route(),
            count: 1,
            last_request_id: report.request_id().to_string(),
        }
    }
}

/// Reports held back by the per-minute cap, waiting for their summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Storm {
    pub groups: Vec<StormGroup>,
    pub total: u64,
    pub since_ms: Option<i64>,
}

impl Storm {
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    fn add(&mut self, entry: StormGroup, now_ms: i64) {
        self.total += 1;
        self.since_ms.get_or_insert(now_ms);
        match self
            .groups
            .iter_mut()
            .find(|g| g.fingerprint == entry.fingerprint)
        {
            Some(group) => {
                group.count += 1;
                group.last_request_id = entry.last_request_id;
            }
            None => self.groups.push(entry),
        }
    }
}

/// The report being decided, between its events.
#[derive(Debug, Clone)]
struct Pending {
    entry: StormGroup,
    group: Lookup,
    reopen: bool,
    occurrences: Option<i64>,
    claim: Option<EmailClaim>,
    /// Whether the group's row is the authority (else this instance's memory is).
    in_db: bool,
}

#[derive(Debug, Clone)]
enum Waiting {
    Nothing,
    Report(Box<Pending>),
    Summary,
}

/// What the policy remembers between reports.
#[derive(Debug, Clone)]
pub struct State {
    pub rules: Rules,
    storm: Storm,
    last_summary_ms: Option<i64>,
    /// Last e-mail and repeats per fingerprint, used only while the database fails.
    local: HashMap<String, (i64, i64)>,
    waiting: Waiting,
}

impl State {
    pub fn new(rules: Rules) -> Self {
        Self {
            rules,
            storm: Storm::default(),
            last_summary_ms: None,
            local: HashMap::new(),
            waiting: Waiting::Nothing,
        }
    }

    /// Whether a storm summary is waiting to go.
    pub fn storm_pending(&self) -> bool {
        !self.storm.is_empty()
    }
}

/// The next step for `event` at `now` (unix milliseconds). A report's events come in the order
/// the actions ask for them; a [`Event::Report`] or [`Event::Tick`] starts afresh.
pub fn decide(state: &mut State, event: Event, now: i64) -> Action {
    match event {
        Event::Report { entry, group } => {
            let reopen = matches!(group, Lookup::Found(g) if g.resolved);
            state.waiting = Waiting::Report(Box::new(Pending {
                entry,
                group,
                reopen,
                occurrences: None,
                claim: None,
                in_db: false,
            }));
            Action::Record { reopen }
        }
        Event::Tick => {
            state.waiting = Waiting::Nothing;
            let due = state
                .last_summary_ms
                .is_none_or(|last| now.saturating_sub(last) >= SUMMARY_INTERVAL_MS);
            if state.storm.is_empty() || !state.rules.mail_enabled || !due {
                return Action::Done;
            }
            state.waiting = Waiting::Summary;
            Action::AskCap
        }
        Event::Recorded(occurrences) => {
            let Waiting::Report(mut pending) =
                std::mem::replace(&mut state.waiting, Waiting::Nothing)
            else {
                return Action::Done;
            };
            if !state.rules.mail_enabled {
                return Action::Done;
            }
            pending.occurrences = occurrences;
            let last = match (pending.group, occurrences) {
                (Lookup::Found(g), Some(_)) => {
                    Some((!pending.reopen).then_some(g.last_emailed_at).flatten())
                }
                (Lookup::New, Some(_)) => Some(None),
                _ => None,
            };
            let Some(last) = last else {
                return local_claim(state, pending, now);
            };
            pending.in_db = true;
            if !state.rules.cooldown_over(last, now) {
                return Action::Suppress { in_db: true };
            }
            state.waiting = Waiting::Report(pending);
            Action::Claim { expected: last }
        }
        Event::Claimed(answer) => {
            let Waiting::Report(mut pending) =
                std::mem::replace(&mut state.waiting, Waiting::Nothing)
            else {
                return Action::Done;
            };
            match answer {
                Ok(Some(claim)) => {
                    pending.claim = Some(claim);
                    after_claim(state, pending, now)
                }
                Ok(None) => Action::Suppress { in_db: true },
                Err(()) => {
                    pending.in_db = false;
                    local_claim(state, pending, now)
                }
            }
        }
        Event::Cap(allowed) => match std::mem::replace(&mut state.waiting, Waiting::Nothing) {
            Waiting::Nothing => Action::Done,
            Waiting::Summary if allowed => {
                state.last_summary_ms = Some(now);
                Action::Summary(std::mem::take(&mut state.storm))
            }
            Waiting::Summary => Action::Done,
            Waiting::Report(pending) if allowed => Action::Mail {
                notes: notes(&state.rules, &pending),
                claim: pending.claim.filter(|_| pending.in_db),
            },
            Waiting::Report(pending) => {
                state.storm.add(pending.entry, now);
                Action::Held
            }
        },
    }
}

/// The stand-in for the database's claim while it fails: the same cooldown, in memory.
fn local_claim(state: &mut State, mut pending: Box<Pending>, now: i64) -> Action {
    if state.local.len() >= LOCAL_MEMORY {
        state.local.clear();
    }
    let rules = state.rules;
    let claim = match state.local.get_mut(&pending.entry.fingerprint) {
        Some((last, suppressed)) if !rules.cooldown_over(Some(*last), now) => {
            *suppressed += 1;
            return Action::Suppress { in_db: false };
        }
        Some((last, suppressed)) => {
            let claim = EmailClaim {
                previous_emailed_at: Some(*last),
                suppressed: *suppressed,
                claimed_at: now,
            };
            *last = now;
            *suppressed = 0;
            claim
        }
        None => {
            state
                .local
                .insert(pending.entry.fingerprint.clone(), (now, 0));
            EmailClaim {
                previous_emailed_at: None,
                suppressed: 0,
                claimed_at: now,
            }
        }
    };
    pending.claim = Some(claim);
    pending.in_db = false;
    after_claim(state, pending, now)
}

/// With the right to e-mail: a storm already gathering takes the report (the claim stays
/// taken, so the group's repeats wait for its cooldown as after an e-mail); else the cap is
/// asked.
fn after_claim(state: &mut State, pending: Box<Pending>, now: i64) -> Action {
    if !state.storm.is_empty() {
        state.storm.add(pending.entry, now);
        return Action::Held;
    }
    state.waiting = Waiting::Report(pending);
    Action::AskCap
}

/// The lines above an e-mailed report: repeats since the last e-mail, occurrences so far.
fn notes(rules: &Rules, pending: &Pending) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(claim) = pending.claim.filter(|c| c.suppressed > 0) {
        let since = claim
            .previous_emailed_at
            .map(|ms| format_time(crate::db::error_groups::from_ms(ms)))
            .unwrap_or_else(|| "the last e-mail".to_string());
        notes.push(format!(
            "{} more since {since} (repeats inside ERROR_EMAIL_COOLDOWN_SECS={} are counted, \
             not e-mailed).",
            claim.suppressed, rules.cooldown_secs
        ));
    }
    if let Some(n) = pending.occurrences.filter(|n| *n > 1) {
        notes.push(format!("Occurrences of this error so far: {n}."));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_800_000_000_000;
    const RULES: Rules = Rules {
        mail_enabled: true,
        cooldown_secs: 600,
    };

    fn entry(fingerprint: &str) -> StormGroup {
        StormGroup {
            fingerprint: fingerprint.into(),
            error_type: "anyhow::Error".into(),
            message: "boom".into(),
            route: "/clients/{id}".into(),
            count: 1,
            last_request_id: "rid".into(),
        }
    }

    fn claim(previous: Option<i64>, suppressed: i64, at: i64) -> EmailClaim {
        EmailClaim {
            previous_emailed_at: previous,
            suppressed,
            claimed_at: at,
        }
    }

    /// Plays a report through the policy with the given answers from the outside world:
    /// `db` for the group before it, `claim_ok` for the database's claim, `cap` for the cap.
    fn play(
        state: &mut State,
        group: Lookup,
        recorded: bool,
        claim_ok: bool,
        cap: bool,
        now: i64,
    ) -> Vec<Action> {
        let mut actions = vec![decide(
            state,
            Event::Report {
                entry: entry("fp"),
                group,
            },
            now,
        )];
        loop {
            let next = match actions.last().unwrap() {
                Action::Record { .. } => Event::Recorded(recorded.then_some(3)),
                Action::Claim { expected } => {
                    Event::Claimed(Ok(claim_ok.then(|| claim(*expected, 2, now))))
                }
                Action::AskCap => Event::Cap(cap),
                _ => return actions,
            };
            actions.push(decide(state, next, now));
        }
    }

    fn found(last: Option<i64>, resolved: bool) -> Lookup {
        Lookup::Found(GroupState {
            last_emailed_at: last,
            resolved,
        })
    }

    fn mailed(actions: &[Action]) -> bool {
        matches!(actions.last(), Some(Action::Mail { .. }))
    }

    #[test]
    fn a_new_group_is_recorded_claimed_and_mailed() {
        let mut state = State::new(RULES);
        let actions = play(&mut state, Lookup::New, true, true, true, T0);
        assert_eq!(actions[0], Action::Record { reopen: false });
        assert_eq!(actions[1], Action::Claim { expected: None });
        assert_eq!(actions[2], Action::AskCap);
        let Action::Mail {
            notes,
            claim: Some(c),
        } = &actions[3]
        else {
            panic!("{actions:?}")
        };
        assert_eq!(c.claimed_at, T0);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].starts_with("2 more since the last e-mail"),
            "{notes:?}"
        );
        assert_eq!(notes[1], "Occurrences of this error so far: 3.");
    }

    #[test]
    fn repeats_inside_the_cooldown_are_suppressed_then_mailed_with_the_count() {
        let mut state = State::new(RULES);
        let recent = found(Some(T0), false);
        let at = T0 + 599_999;
        assert_eq!(
            play(&mut state, recent, true, true, true, at).last(),
            Some(&Action::Suppress { in_db: true })
        );
        let after = play(&mut state, recent, true, true, true, T0 + 600_000);
        assert_eq!(after[1], Action::Claim { expected: Some(T0) });
        let Some(Action::Mail { notes, .. }) = after.last() else {
            panic!("{after:?}")
        };
        assert!(
            notes[0].starts_with("2 more since 2027-01-15T08:00:00Z"),
            "{notes:?}"
        );
    }

    #[test]
    fn a_lost_claim_is_suppressed() {
        let mut state = State::new(RULES);
        let actions = play(&mut state, Lookup::New, true, false, true, T0);
        assert_eq!(actions.last(), Some(&Action::Suppress { in_db: true }));
    }

    #[test]
    fn a_resolved_group_is_reopened_and_alerts_inside_its_old_cooldown() {
        let mut state = State::new(RULES);
        let actions = play(
            &mut state,
            found(Some(T0), true),
            true,
            true,
            true,
            T0 + 1_000,
        );
        assert_eq!(actions[0], Action::Record { reopen: true });
        assert_eq!(actions[1], Action::Claim { expected: None });
        assert!(mailed(&actions));
    }

    #[test]
    fn nothing_is_mailed_with_mail_off_but_everything_is_recorded() {
        let mut state = State::new(Rules {
            mail_enabled: false,
            ..RULES
        });
        let actions = play(&mut state, Lookup::New, true, true, true, T0);
        assert_eq!(
            actions,
            vec![Action::Record { reopen: false }, Action::Done]
        );
    }

    #[test]
    fn over_the_cap_reports_gather_into_one_summary_a_minute() {
        let mut state = State::new(RULES);
        // The cap refuses: held, and the storm gathers.
        let first = play(&mut state, Lookup::New, true, true, false, T0);
        assert_eq!(first.last(), Some(&Action::Held));
        assert!(state.storm_pending());
        // While a storm gathers, the cap is not even asked.
        let second = play(&mut state, Lookup::New, true, true, true, T0 + 1);
        assert_eq!(second.last(), Some(&Action::Held));
        assert!(!second.contains(&Action::AskCap));

        assert_eq!(decide(&mut state, Event::Tick, T0 + 2), Action::AskCap);
        assert_eq!(decide(&mut state, Event::Cap(false), T0 + 2), Action::Done);
        assert_eq!(decide(&mut state, Event::Tick, T0 + 3), Action::AskCap);
        let Action::Summary(storm) = decide(&mut state, Event::Cap(true), T0 + 3) else {
            panic!("no summary")
        };
        assert_eq!(
            (storm.total, storm.groups.len(), storm.since_ms),
            (2, 1, Some(T0))
        );
        assert_eq!(storm.groups[0].count, 2);
        assert!(!state.storm_pending());
        assert_eq!(decide(&mut state, Event::Tick, T0 + 4), Action::Done);

        // The next summary waits a minute after the last one.
        play(&mut state, Lookup::New, true, true, false, T0 + 5);
        assert_eq!(
            decide(&mut state, Event::Tick, T0 + 3 + SUMMARY_INTERVAL_MS - 1),
            Action::Done
        );
        assert_eq!(
            decide(&mut state, Event::Tick, T0 + 3 + SUMMARY_INTERVAL_MS),
            Action::AskCap
        );
    }

    #[test]
    fn while_the_database_fails_the_cooldown_is_kept_in_memory() {
        let mut state = State::new(RULES);
        for group in [Lookup::Failed, Lookup::New] {
            let mut state = State::new(RULES);
            // Either the group cannot be read, or it cannot be recorded.
            let recorded = group == Lookup::Failed;
            let first = play(&mut state, group, recorded, true, true, T0);
            assert!(
                matches!(first.last(), Some(Action::Mail { claim: None, .. })),
                "{first:?}"
            );
            let again = play(&mut state, group, recorded, true, true, T0 + 1);
            assert_eq!(again.last(), Some(&Action::Suppress { in_db: false }));
            let later = play(&mut state, group, recorded, true, true, T0 + 600_000);
            let Some(Action::Mail { notes, claim: None }) = later.last() else {
                panic!("{later:?}")
            };
            assert!(notes[0].starts_with("1 more since "), "{notes:?}");
        }
        // A claim that fails falls back to memory too.
        decide(
            &mut state,
            Event::Report {
                entry: entry("fp"),
                group: Lookup::New,
            },
            T0,
        );
        assert_eq!(
            decide(&mut state, Event::Recorded(Some(1)), T0),
            Action::Claim { expected: None }
        );
        assert_eq!(
            decide(&mut state, Event::Claimed(Err(())), T0),
            Action::AskCap
        );
        assert!(matches!(
            decide(&mut state, Event::Cap(true), T0),
            Action::Mail { claim: None, .. }
        ));
    }

    #[test]
    fn answers_without_a_question_do_nothing() {
        let mut state = State::new(RULES);
        assert_eq!(decide(&mut state, Event::Cap(true), T0), Action::Done);
        assert_eq!(
            decide(&mut state, Event::Recorded(Some(1)), T0),
            Action::Done
        );
        assert_eq!(
            decide(&mut state, Event::Claimed(Ok(None)), T0),
            Action::Done
        );
    }
}
