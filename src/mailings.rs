//! Mailings (SPEC §6 `/mailings/…`, §7): parsing the form in the owner's time zone, who may
//! do what, the actions the mailing page offers, and everything the mailing pages load (the
//! list, the form's choices, the detail page, the confirmation pages, the delivery log): the
//! mailing routes call this module, never `db`.

use crate::clock::Clock;
use crate::db::Db;
use crate::db::mailings::{self as db, ListedMailing, Mailing, MailingError, NewMailing, Removed};
use crate::db::recipients::{self as recipient_db, ListQuery, ListedRecipient};
use crate::db::runs::{self, Run};
use crate::db::{messages as message_db, now_ms, users};
use crate::delivery::Delivery;
use crate::delivery::engine;
use crate::delivery::{Progress, StartRunError};
use crate::domain::instant::{from_ms, to_ms};
use crate::domain::local_time::parse_local;
use crate::domain::{
    FieldErrors, MailingStatus, PageRequest, Period, RunStatus, Scope, TimeZone, Trigger,
};
use crate::objects::{ObjectError, cap_version, changeable, expected_version, parse_id, visible};

/// At most this many recipients are linked by "select all matching" (the import's limit).
pub const MAX_AUDIENCE: i64 = 100_000;

/// What the mailing form sends (`recipient_ids` repeats, so it is read from the raw pairs).
#[derive(Debug, Clone, Default)]
pub struct MailingForm {
    pub message_id: String,
    pub recipient_ids: Vec<String>,
    pub start_at: String,
    pub end_at: String,
    pub period: String,
    /// The picker's search, and whether every recipient matching it is meant.
    pub recipient_q: String,
    pub all_matching: bool,
    /// The version the edit form was loaded with (hidden field).
    pub version: String,
}

impl MailingForm {
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let mut form = Self::default();
        for (name, value) in pairs {
            match name.as_str() {
                "message_id" => form.message_id = value.clone(),
                "recipient_ids" => form.recipient_ids.push(value.clone()),
                "start_at" => form.start_at = value.clone(),
                "end_at" => form.end_at = value.clone(),
                "period" => form.period = value.clone(),
                "recipient_q" => form.recipient_q = value.chars().take(200).collect(),
                "all_matching" => form.all_matching = !value.is_empty() && value != "0",
                "version" => form.version = cap_version(value),
                _ => {}
            }
        }
        form
    }

    pub fn from_mailing(m: &Mailing, recipient_ids: &[i64], zone: TimeZone) -> Self {
        use crate::domain::local_time::format_local;
        Self {
            message_id: m.message_id.to_string(),
            recipient_ids: recipient_ids.iter().map(i64::to_string).collect(),
            start_at: format_local(m.start_at, zone),
            end_at: format_local(m.end_at, zone),
            period: m.period.as_str().to_string(),
            version: m.version.to_string(),
            ..Self::default()
        }
    }

    /// The selected ids that parse (for re-rendering the picker).
    pub fn selected(&self) -> Vec<i64> {
        self.recipient_ids
            .iter()
            .filter_map(|s| s.trim().parse().ok())
            .collect()
    }
}

/// Turns the form into a mailing of `owner_id`, checking every field against what the owner has.
async fn parse(
    delivery: &Delivery,
    owner_id: i64,
    zone: TimeZone,
    form: &MailingForm,
) -> Result<NewMailing, ObjectError> {
    let mut errors = FieldErrors::new();
    let message_id = match form.message_id.trim().parse::<i64>() {
        Ok(id) => match message_db::get(&delivery.db, id).await? {
            Some(m) if m.owner_id == owner_id => Some(id),
            _ => {
                errors.add("message_id", "Choose one of your messages.");
                None
            }
        },
        Err(_) => {
            errors.add("message_id", "Choose a message.");
            None
        }
    };
    let mut ids = Vec::new();
    for raw in &form.recipient_ids {
        match raw.trim().parse::<i64>() {
            Ok(id) if id > 0 => ids.push(id),
            _ => errors.add(
                "recipient_ids",
                format!("{} is not a recipient.", crate::domain::quoted(raw)),
            ),
        }
    }
    if form.all_matching {
        let query = ListQuery {
            owner: Some(owner_id),
            search: form.recipient_q.clone(),
            ..ListQuery::default()
        };
        let matching = recipient_db::list(&delivery.db, &query, MAX_AUDIENCE, 0).await?;
        ids.extend(matching.iter().map(|r| r.id));
    }
    ids.sort_unstable();
    ids.dedup();
    let owned = recipient_db::owned_ids(&delivery.db, owner_id, &ids).await?;
    if owned.len() != ids.len() {
        errors.add("recipient_ids", "Only your own recipients can be chosen.");
    } else if owned.is_empty() {
        errors.add("recipient_ids", "Choose at least one recipient.");
    }
    let start_at = errors.check("start_at", parse_local(&form.start_at, zone));
    let end_at = errors.check("end_at", parse_local(&form.end_at, zone));
    if let (Some(start), Some(end)) = (start_at, end_at)
        && start >= end
    {
        errors.add("end_at", "The end must be after the start.");
    }
    let period = errors.check(
        "period",
        Period::parse(form.period.trim())
            .map_err(|_| "Choose once, daily, weekly or monthly.".to_string()),
    );
    match (message_id, start_at, end_at, period) {
        (Some(message_id), Some(start_at), Some(end_at), Some(period)) if errors.is_empty() => {
            Ok(NewMailing {
                owner_id,
                message_id,
                recipient_ids: owned,
                start_at,
                end_at,
                period,
            })
        }
        _ => Err(ObjectError::Validation(errors)),
    }
}

fn mailing_error(err: MailingError) -> ObjectError {
    let field = |name: &str, message: &str| {
        let mut errors = FieldErrors::new();
        errors.add(name, message);
        ObjectError::Validation(errors)
    };
    match err {
        MailingError::NotFound => ObjectError::NotFound,
        MailingError::ForeignMessage => field("message_id", "Choose one of your messages."),
        MailingError::EmptyWindow => field("end_at", "The end must be after the start."),
        MailingError::Busy => ObjectError::Refused(
            "A run of this mailing is active: wait for it to finish, or disable the mailing first."
                .into(),
        ),
        MailingError::Stale => ObjectError::Stale,
        MailingError::Unexpected(err) => ObjectError::Unexpected(err),
    }
}

pub async fn create(
    delivery: &Delivery,
    scope: &Scope,
    zone: TimeZone,
    form: &MailingForm,
) -> Result<i64, ObjectError> {
    let new = parse(delivery, scope.user_id, zone, form).await?;
    db::create_mailing(&delivery.db, &new, now_ms())
        .await
        .map_err(mailing_error)
}

pub async fn get(delivery: &Delivery, scope: &Scope, raw_id: &str) -> Result<Mailing, ObjectError> {
    let mailing = db::get(&delivery.db, parse_id(raw_id)?)
        .await?
        .ok_or(ObjectError::NotFound)?;
    visible(scope, mailing.owner_id)?;
    Ok(mailing)
}

pub async fn get_for_change(
    delivery: &Delivery,
    scope: &Scope,
    raw_id: &str,
) -> Result<Mailing, ObjectError> {
    let mailing = get(delivery, scope, raw_id).await?;
    changeable(scope, mailing.owner_id)?;
    Ok(mailing)
}

/// A mailing the viewer may edit: never an archived one. Its past runs' reports show its
/// message and schedule; editing it would rewrite that history (SPEC §12), so it is
/// restored first.
pub async fn get_for_edit(
    delivery: &Delivery,
    scope: &Scope,
    raw_id: &str,
) -> Result<Mailing, ObjectError> {
    let mailing = get_for_change(delivery, scope, raw_id).await?;
    if mailing.archived_at.is_some() {
        return Err(ObjectError::Refused(
            "This mailing is archived: its history is kept as it ran. Restore it to edit it."
                .into(),
        ));
    }
    Ok(mailing)
}

/// The owner's zone: times of a mailing are entered in it.
pub async fn owner_zone(delivery: &Delivery, owner_id: i64) -> Result<TimeZone, ObjectError> {
    let owner = users::find_by_id(&delivery.db, owner_id).await?;
    Ok(TimeZone::for_user(
        owner.and_then(|u| u.time_zone).as_deref(),
        &delivery.settings.time_zone,
    ))
}

/// When a restored mailing runs next: its next occurrence after `now`. A run that fell due
/// while it was archived is not sent on restore (nobody confirmed it); a finished mailing,
/// or one with no occurrence left in its window, has none.
pub fn next_run_after_restore(mailing: &Mailing, zone: TimeZone, now: i64) -> Option<i64> {
    if mailing.status == MailingStatus::Finished {
        return None;
    }
    mailing
        .period
        .next_after(from_ms(mailing.start_at), from_ms(now), zone.tz())
        .map(to_ms)
        .filter(|&at| at < mailing.end_at)
}

pub async fn update(
    delivery: &Delivery,
    scope: &Scope,
    raw_id: &str,
    form: &MailingForm,
) -> Result<i64, ObjectError> {
    let mailing = get_for_edit(delivery, scope, raw_id).await?;
    let zone = owner_zone(delivery, mailing.owner_id).await?;
    let new = parse(delivery, mailing.owner_id, zone, form).await?;
    let tz = zone.tz();
    let expected = expected_version(&form.version);
    db::update_mailing(&delivery.db, mailing.id, expected, &new, tz, now_ms())
        .await
        .map_err(mailing_error)?;
    Ok(mailing.id)
}

/// Deletes a mailing that never ran; archives one that ran, so its history stays.
pub async fn delete(
    delivery: &Delivery,
    scope: &Scope,
    raw_id: &str,
) -> Result<(Mailing, Removed), ObjectError> {
    let mailing = get_for_change(delivery, scope, raw_id).await?;
    if mailing.archived_at.is_some() {
        return Err(ObjectError::Refused(
            "This mailing is already archived.".into(),
        ));
    }
    let removed = db::remove(&delivery.db, mailing.id, mailing.owner_id, now_ms())
        .await
        .map_err(mailing_error)?;
    Ok((mailing, removed))
}

/// Brings an archived mailing back (its owner, or a superuser).
pub async fn restore(
    delivery: &Delivery,
    scope: &Scope,
    raw_id: &str,
) -> Result<Mailing, ObjectError> {
    let mailing = get_for_change(delivery, scope, raw_id).await?;
    let now = now_ms();
    let zone = owner_zone(delivery, mailing.owner_id).await?;
    let next = next_run_after_restore(&mailing, zone, now);
    if !db::restore(&delivery.db, mailing.id, mailing.owner_id, next, now).await? {
        return Err(ObjectError::Refused("This mailing is not archived.".into()));
    }
    Ok(mailing)
}

fn archived_refusal() -> ObjectError {
    ObjectError::Refused("This mailing is archived: restore it to send it.".into())
}

/// Starts a manual run (or a dry run) now; refused with a message while one is active or
/// once the mailing is finished.
pub async fn send_now(
    delivery: &Delivery,
    scope: &Scope,
    who: &str,
    raw_id: &str,
    dry_run: bool,
) -> Result<i64, ObjectError> {
    let mailing = get_for_change(delivery, scope, raw_id).await?;
    if mailing.archived_at.is_some() {
        return Err(archived_refusal());
    }
    match engine::send_now(
        delivery,
        mailing.id,
        Trigger::Manual(who.to_string()),
        dry_run,
    )
    .await
    {
        Ok(started) => Ok(started.run_id),
        Err(StartRunError::AlreadyActive) => Err(ObjectError::Refused(
            "A run of this mailing is already active: wait for it to finish.".into(),
        )),
        Err(StartRunError::Finished) => Err(ObjectError::Refused(
            "This mailing is finished: it cannot be sent again.".into(),
        )),
        // Archived between the look above and the claim.
        Err(StartRunError::Archived) => Err(archived_refusal()),
        Err(StartRunError::NotFound) => Err(ObjectError::NotFound),
        Err(StartRunError::OwnerInactive) => Err(ObjectError::Refused(
            "This mailing is paused: its owner's account is deactivated. It can be sent once a \
             superuser activates the account again."
                .into(),
        )),
        Err(StartRunError::NotClaimed) => Err(ObjectError::Refused(
            "The mailing was just started elsewhere; reload the page.".into(),
        )),
        Err(StartRunError::Unexpected(err)) => Err(ObjectError::Unexpected(err)),
    }
}

/// Whether the viewer may disable a mailing of `owner_id`: its owner, a superuser, or anyone
/// with `disable_mailing` who can see it.
pub fn may_disable(scope: &Scope, disable_mailing: bool, owner_id: i64) -> bool {
    scope.can_change(owner_id) || (disable_mailing && scope.can_view(owner_id))
}

/// Finishes the mailing and cancels what is still pending. `Ok(cancelled deliveries)`.
pub async fn disable(
    delivery: &Delivery,
    scope: &Scope,
    disable_mailing: bool,
    raw_id: &str,
) -> Result<u64, ObjectError> {
    let mailing = get(delivery, scope, raw_id).await?;
    if !may_disable(scope, disable_mailing, mailing.owner_id) {
        return Err(ObjectError::ReadOnly);
    }
    let disabled = engine::disable(delivery, &Clock::System, mailing.id)
        .await
        .map_err(mailing_error)?;
    Ok(disabled.cancelled)
}

/// A page of the mailings the viewer sees, filtered by status (or the archived ones), and
/// how many match in all.
pub async fn list(
    db: &Db,
    scope: &Scope,
    status: Option<MailingStatus>,
    archived: bool,
    page: PageRequest,
) -> anyhow::Result<(Vec<ListedMailing>, i64)> {
    db::list(
        db,
        scope.owner_filter(),
        status,
        archived,
        page.per_page,
        page.offset(),
    )
    .await
}

/// The subject of the mailing's message, as its pages name it.
pub async fn subject_of(db: &Db, mailing: &Mailing) -> anyhow::Result<String> {
    Ok(message_db::get(db, mailing.message_id)
        .await?
        .map(|m| m.subject)
        .unwrap_or_default())
}

/// What the mailing form offers its owner: their messages, the recipients the picker's
/// search finds (and how many match), the zone times are entered in, and whether the
/// mailing being edited is sending right now.
pub struct FormChoices {
    pub messages: Vec<(i64, String)>,
    pub candidates: Vec<ListedRecipient>,
    pub matching: i64,
    pub zone: TimeZone,
    pub sending: bool,
}

/// Recipients shown in the picker at once; "all matching" covers the rest.
pub const PICKER_ROWS: i64 = 200;

pub async fn form_choices(
    delivery: &Delivery,
    owner_id: i64,
    editing: Option<i64>,
    recipient_q: &str,
) -> Result<FormChoices, ObjectError> {
    let sending = match editing {
        Some(id) => runs::active(&delivery.db, id).await?.is_some(),
        None => false,
    };
    let zone = owner_zone(delivery, owner_id).await?;
    let messages = message_db::list(&delivery.db, Some(owner_id), "", 1000, 0)
        .await?
        .into_iter()
        .map(|m| (m.id, m.subject))
        .collect();
    let query = ListQuery {
        owner: Some(owner_id),
        search: recipient_q.trim().to_string(),
        ..ListQuery::default()
    };
    let candidates = recipient_db::list(&delivery.db, &query, PICKER_ROWS, 0).await?;
    let matching = recipient_db::count(&delivery.db, &query).await?;
    Ok(FormChoices {
        messages,
        candidates,
        matching,
        zone,
        sending,
    })
}

/// The form filled from the mailing as saved (times in its owner's zone), and how many
/// recipients it has.
pub async fn saved_form(
    delivery: &Delivery,
    mailing: &Mailing,
) -> Result<(MailingForm, usize), ObjectError> {
    let zone = owner_zone(delivery, mailing.owner_id).await?;
    let ids = db::recipient_ids(&delivery.db, mailing.id).await?;
    Ok((MailingForm::from_mailing(mailing, &ids, zone), ids.len()))
}

/// A page of the mailing's delivery log, filtered by status, and how many match in all.
pub async fn deliveries(
    db: &Db,
    mailing: &Mailing,
    status: Option<crate::domain::DeliveryStatus>,
    page: PageRequest,
) -> anyhow::Result<(Vec<crate::db::deliveries::Delivery>, i64)> {
    crate::db::deliveries::list(db, mailing.id, status, page.per_page, page.offset()).await
}

/// What a mailing's detail page shows besides the mailing.
pub struct Detail {
    pub subject: String,
    pub owner: String,
    /// A deactivated owner's mailings wait (nothing is claimed or started) until reactivated.
    pub owner_paused: bool,
    pub recipients: i64,
    pub runs: Vec<Run>,
    pub progress: Option<Progress>,
}

/// Runs listed on the detail page.
const DETAIL_RUNS: i64 = 20;

pub async fn detail(db: &Db, mailing: &Mailing) -> anyhow::Result<Detail> {
    let subject = subject_of(db, mailing).await?;
    let owner = users::find_by_id(db, mailing.owner_id).await?;
    let (runs, _) = runs::list_for_mailing(db, mailing.id, DETAIL_RUNS, 0).await?;
    Ok(Detail {
        subject,
        owner_paused: owner.as_ref().is_some_and(|u| !u.is_active),
        owner: owner.map(|u| u.email).unwrap_or_default(),
        recipients: db::count_recipients(db, mailing.id).await?,
        runs,
        progress: crate::delivery::progress(db, mailing.id, now_ms()).await?,
    })
}

/// What the delete and restore confirmation pages show about a mailing.
pub struct Summary {
    pub subject: String,
    pub recipients: i64,
    pub runs: i64,
    pub active_run: bool,
    pub next_run_after_restore: Option<i64>,
    pub zone: TimeZone,
}

pub async fn summary(delivery: &Delivery, mailing: &Mailing) -> Result<Summary, ObjectError> {
    let (latest, runs) = runs::list_for_mailing(&delivery.db, mailing.id, 1, 0).await?;
    let zone = owner_zone(delivery, mailing.owner_id).await?;
    Ok(Summary {
        subject: subject_of(&delivery.db, mailing).await?,
        recipients: db::count_recipients(&delivery.db, mailing.id).await?,
        runs,
        active_run: latest
            .first()
            .is_some_and(|r| r.status == RunStatus::Running),
        next_run_after_restore: next_run_after_restore(mailing, zone, now_ms()),
        zone,
    })
}
