//! Accounts (SPEC §5): sign-up, activation, login, password reset and change, profiles.
//!
//! Routes call these functions with what the user typed; validation turns it into domain
//! types or per-field messages, and nothing reaches the database unparsed. They take
//! [`Accounts`] (what account work uses), never the whole `AppState`. [`housekeeping`] is
//! the one timer for expired sessions and idle login limits; `serve` and `scheduler` run it.

pub mod emails;
pub mod passwords;
pub mod sessions;
pub mod throttle;
pub mod tokens;

use std::net::IpAddr;

use std::sync::Arc;

use lettre::message::Mailbox;

use crate::cache::Cache;
use crate::config::Settings;
use crate::db::Db;
use crate::mail::Mailer;
use crate::signing::Signer;
use throttle::Throttle;

use crate::db::users::{self, AccessFlags, CreateUserError, NewUser, Profile, User};
use crate::domain::{Email, FieldErrors, Password, one_line};
use crate::mail::compose;
use passwords::HashError;
use tokens::{Purpose, TokenError};

/// What account work uses, and nothing more: the database, the cache (sessions live there
/// on Redis), the mailer and signer for account e-mails and their tokens, the settings for
/// links and the sender, and the login limits. `AppState::accounts` lends it; this module
/// never sees the whole state (no `accounts ↔ state` cycle).
#[derive(Clone, Copy)]
pub struct Accounts<'a> {
    pub db: &'a Db,
    pub cache: &'a Cache,
    pub mailer: &'a Mailer,
    pub signer: &'a Signer,
    pub settings: &'a Settings,
    pub throttle: &'a Throttle,
}

/// Longest full name, phone and country accepted.
const MAX_NAME: usize = 150;
const MAX_PHONE: usize = 32;
const MAX_COUNTRY: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("invalid input")]
    Validation(FieldErrors),
    /// Over a sign-up or reset limit: wait this many seconds.
    #[error("Too many attempts. Please wait {0} seconds and try again.")]
    TooMany(u64),
    /// No password-hashing slot came free in time.
    #[error("The server is busy. Please try again in a few seconds.")]
    Busy,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<HashError> for AccountError {
    fn from(err: HashError) -> Self {
        match err {
            HashError::Busy => AccountError::Busy,
            HashError::Unexpected(err) => AccountError::Unexpected(err),
        }
    }
}

impl AccountError {
    fn field(field: &str, message: impl Into<String>) -> Self {
        let mut errors = FieldErrors::new();
        errors.add(field, message);
        AccountError::Validation(errors)
    }
}

fn full_name(input: &str) -> Result<String, String> {
    let name = one_line(input, MAX_NAME)?;
    if name.chars().count() < 2 {
        return Err("Enter your name (at least 2 characters).".into());
    }
    Ok(name)
}

/// What the sign-up form sends.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct SignupForm {
    pub email: String,
    pub password: String,
    pub password2: String,
    pub full_name: String,
}

/// Creates an inactive account and e-mails its activation link. `Ok(false)` when the mail
/// could not be sent.
///
/// An address that already has an account gets the same answer (the page must not tell who
/// has an account): its owner is mailed that someone tried, or, when the account is still
/// pending activation, the new sign-up replaces it and a fresh link goes out.
pub async fn signup(
    deps: Accounts<'_>,
    client: IpAddr,
    form: &SignupForm,
) -> Result<bool, AccountError> {
    let mut errors = FieldErrors::new();
    let email = errors.check("email", Email::parse(&form.email));
    let password = errors.check(
        "password",
        Password::parse_new(&form.password, &form.password2, form.email.trim()),
    );
    let name = errors.check("full_name", full_name(&form.full_name));
    let (Some(email), Some(password), Some(name)) = (email, password, name) else {
        return Err(AccountError::Validation(errors));
    };
    // Counted only once the form is valid: a typo does not use up the allowance, and
    // every counted sign-up is one mail.
    deps.throttle
        .signup(client, email.as_str())
        .map_err(AccountError::TooMany)?;
    let password_hash = passwords::hash(password.expose()).await?;
    let new = NewUser {
        email: email.into_string(),
        password_hash,
        full_name: name,
        ..NewUser::default()
    };
    let id = match users::create(deps.db, &new).await {
        Ok(id) => {
            tracing::info!(user_id = id, "account created, awaiting activation");
            id
        }
        Err(CreateUserError::DuplicateEmail) => return signup_again(deps, &new).await,
        Err(CreateUserError::Unexpected(err)) => return Err(err.into()),
    };
    let user = load(deps, id).await?;
    Ok(send_activation(deps, &user).await)
}

/// A sign-up for an address that has an account already.
async fn signup_again(deps: Accounts<'_>, new: &NewUser) -> Result<bool, AccountError> {
    let existing = users::find_by_email(deps.db, &new.email)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the account of a duplicate e-mail vanished"))?;
    if existing.is_pending_activation()
        && users::renew_pending(
            deps.db,
            existing.id,
            existing.updated_at,
            &new.password_hash,
            &new.full_name,
        )
        .await?
    {
        tracing::info!(user_id = existing.id, "pending sign-up renewed");
        let user = load(deps, existing.id).await?;
        return Ok(send_activation(deps, &user).await);
    }
    tracing::info!(
        user_id = existing.id,
        "sign-up with the address of an existing account; its owner is told"
    );
    let login = link(deps, "/users/login", "");
    let reset = link(deps, "/users/password-reset", "");
    Ok(send(
        deps,
        &existing,
        emails::signup_attempt(&existing, &login, &reset),
    )
    .await)
}

async fn load(deps: Accounts<'_>, id: i64) -> anyhow::Result<User> {
    users::find_by_id(deps.db, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("user {id} vanished"))
}

async fn send_activation(deps: Accounts<'_>, user: &User) -> bool {
    let token = tokens::issue(deps.signer, Purpose::Activation, user);
    let link = link(deps, "/users/activate/", &token);
    send(deps, user, emails::activation(&link)).await
}

/// Activates the account a link names.
pub async fn activate(deps: Accounts<'_>, token: &str) -> Result<User, TokenError> {
    let user = user_for_token(deps, token).await?;
    tokens::check(deps.signer, Purpose::Activation, token, &user)?;
    // Only if nothing changed since the check: the link names that very deps.
    match users::activate(deps.db, user.id, user.updated_at).await {
        Ok(true) => {
            tracing::info!(user_id = user.id, "account activated");
            Ok(user)
        }
        Ok(false) => Err(TokenError::Invalid),
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "activation failed");
            Err(TokenError::Invalid)
        }
    }
}

async fn user_for_token(deps: Accounts<'_>, token: &str) -> Result<User, TokenError> {
    let id = tokens::claimed_user(token)?;
    match users::find_by_id(deps.db, id).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(TokenError::Invalid),
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "cannot load the user of a token");
            Err(TokenError::Invalid)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown e-mail or wrong password: one answer for both.
    #[error("The e-mail address or the password is not right.")]
    Invalid,
    #[error(
        "This account is not active. Open the activation link we e-mailed you, or ask an administrator."
    )]
    Inactive,
    #[error("The server is busy. Please try again in a few seconds.")]
    Busy,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<HashError> for LoginError {
    fn from(err: HashError) -> Self {
        match err {
            HashError::Busy => LoginError::Busy,
            HashError::Unexpected(err) => LoginError::Unexpected(err),
        }
    }
}

/// Checks credentials. Unknown e-mails cost the same time as wrong passwords.
pub async fn authenticate(
    deps: Accounts<'_>,
    email: &str,
    password: &str,
) -> Result<User, LoginError> {
    let Ok(email) = Email::parse(email) else {
        passwords::verify_dummy(password).await?;
        return Err(LoginError::Invalid);
    };
    let Some(user) = users::find_by_email(deps.db, email.as_str()).await? else {
        passwords::verify_dummy(password).await?;
        return Err(LoginError::Invalid);
    };
    if !passwords::verify(password, &user.password_hash).await? {
        return Err(LoginError::Invalid);
    }
    if !user.is_active {
        return Err(LoginError::Inactive);
    }
    users::record_login(deps.db, user.id).await?;
    Ok(user)
}

/// E-mails a reset link when an active account has this address; silent otherwise, so the
/// page cannot tell who has an account. Throttled per client and per address (the mail
/// goes to someone who did not ask).
pub async fn request_password_reset(
    deps: Accounts<'_>,
    client: IpAddr,
    email: &str,
) -> Result<(), AccountError> {
    let email = Email::parse(email).map_err(|m| AccountError::field("email", m))?;
    deps.throttle
        .reset(client, email.as_str())
        .map_err(AccountError::TooMany)?;
    if let Some(user) = users::find_by_email(deps.db, email.as_str()).await?
        && user.is_active
    {
        let token = tokens::issue(deps.signer, Purpose::PasswordReset, &user);
        let link = link(deps, "/users/password-reset/", &token);
        send(deps, &user, emails::password_reset(&user, &link)).await;
    }
    Ok(())
}

/// Checks a reset link without using it (for the form page).
pub async fn check_reset_token(deps: Accounts<'_>, token: &str) -> Result<User, TokenError> {
    let user = user_for_token(deps, token).await?;
    tokens::check(deps.signer, Purpose::PasswordReset, token, &user)?;
    if !user.is_active {
        return Err(TokenError::Invalid);
    }
    Ok(user)
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct NewPasswordForm {
    pub old_password: String,
    pub password: String,
    pub password2: String,
}

/// Sets the new password of a reset link; the link stops working (the hash it covers changes).
pub async fn reset_password(
    deps: Accounts<'_>,
    user: &User,
    form: &NewPasswordForm,
) -> Result<(), AccountError> {
    let password = Password::parse_new(&form.password, &form.password2, &user.email)
        .map_err(|m| AccountError::field("password", m))?;
    let hash = passwords::hash(password.expose()).await?;
    users::set_password(deps.db, user.id, &hash, false).await?;
    sessions::end_all(deps, user.id).await;
    tracing::info!(user_id = user.id, "password reset");
    Ok(())
}

/// Changes the password of a logged-in user who knows the old one.
pub async fn change_password(
    deps: Accounts<'_>,
    user: &User,
    form: &NewPasswordForm,
) -> Result<User, AccountError> {
    let mut errors = FieldErrors::new();
    if !passwords::verify(&form.old_password, &user.password_hash).await? {
        errors.add("old_password", "Your current password is not right.");
    }
    let password = errors.check(
        "password",
        Password::parse_new(&form.password, &form.password2, &user.email),
    );
    if password
        .as_ref()
        .is_some_and(|p| p.expose() == form.old_password)
    {
        errors.add(
            "password",
            "Choose a password different from the current one.",
        );
    }
    let Some(password) = password.filter(|_| errors.is_empty()) else {
        return Err(AccountError::Validation(errors));
    };
    let hash = passwords::hash(password.expose()).await?;
    users::set_password(deps.db, user.id, &hash, false).await?;
    sessions::end_all(deps, user.id).await;
    tracing::info!(user_id = user.id, "password changed");
    users::find_by_id(deps.db, user.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("user vanished during password change").into())
}

#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default)]
pub struct ProfileForm {
    pub full_name: String,
    pub phone: String,
    pub country: String,
    pub time_zone: String,
}

impl ProfileForm {
    pub fn from_user(user: &User) -> Self {
        Self {
            full_name: user.full_name.clone(),
            phone: user.phone.clone(),
            country: user.country.clone(),
            time_zone: user.time_zone.clone().unwrap_or_default(),
        }
    }
}

fn phone(input: &str) -> Result<String, String> {
    let phone = one_line(input, MAX_PHONE)?;
    let ok = phone
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'));
    if !ok {
        return Err("Use digits, spaces and + - ( ) only.".into());
    }
    Ok(phone)
}

fn time_zone(input: &str) -> Result<Option<String>, String> {
    let zone = input.trim();
    if zone.is_empty() {
        return Ok(None);
    }
    match crate::domain::TimeZone::parse(zone) {
        Some(_) => Ok(Some(zone.to_string())),
        None => Err(format!(
            "{} is not a time zone; use a name like Europe/Berlin.",
            crate::domain::quoted(zone)
        )),
    }
}

pub async fn update_profile(
    deps: Accounts<'_>,
    user: &User,
    form: &ProfileForm,
) -> Result<(), AccountError> {
    let mut errors = FieldErrors::new();
    let profile = Profile {
        full_name: errors
            .check("full_name", full_name(&form.full_name))
            .unwrap_or_default(),
        phone: errors
            .check("phone", phone(&form.phone))
            .unwrap_or_default(),
        country: errors
            .check("country", one_line(&form.country, MAX_COUNTRY))
            .unwrap_or_default(),
        time_zone: errors
            .check("time_zone", time_zone(&form.time_zone))
            .flatten(),
    };
    if !errors.is_empty() {
        return Err(AccountError::Validation(errors));
    }
    users::update_profile(deps.db, user.id, &profile).await?;
    Ok(())
}

/// The user of that id, if there is one.
pub async fn find_user(db: &Db, id: i64) -> anyhow::Result<Option<User>> {
    users::find_by_id(db, id).await
}

/// A page of users whose e-mail or name matches `search` (the superuser's list), and how many
/// match in all.
pub async fn search_users(
    db: &Db,
    search: &str,
    page: crate::domain::PageRequest,
) -> anyhow::Result<(Vec<User>, i64)> {
    users::search(db, search, page.per_page, page.offset()).await
}

/// A superuser sets a user's access flags; a deactivated user's sessions end at once.
/// Returns the user as saved, `None` when there is no such user.
pub async fn set_access(
    deps: Accounts<'_>,
    id: i64,
    flags: AccessFlags,
) -> anyhow::Result<Option<User>> {
    if !users::set_access(deps.db, id, flags).await? {
        return Ok(None);
    }
    if !flags.is_active {
        sessions::end_all(deps, id).await;
    }
    tracing::info!(target_user = id, ?flags, "user access changed");
    users::find_by_id(deps.db, id).await
}

/// How often [`purge_idle`] runs.
pub const HOUSEKEEPING_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Drops what accounts keep that has run out: idle throttle keys and expired sessions in
/// the database (Redis expires its own). Returns the sessions purged.
pub async fn purge_idle(db: &Db, throttle: &Throttle) -> anyhow::Result<u64> {
    throttle.shrink();
    crate::db::sessions::purge_expired(db).await
}

/// Runs [`purge_idle`] at once and then every [`HOUSEKEEPING_EVERY`] until `stop` turns
/// `true`; a failure is logged and tried again next time. `serve` and `scheduler` both run it.
pub async fn housekeeping(
    db: Db,
    throttle: Arc<Throttle>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(HOUSEKEEPING_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match purge_idle(&db, &throttle).await {
            Ok(sessions) => tracing::debug!(
                sessions_purged = sessions,
                throttle_keys = throttle.len(),
                "housekeeping"
            ),
            Err(err) => tracing::warn!(error = %format!("{err:#}"), "housekeeping failed"),
        }
    }
}

fn link(deps: Accounts<'_>, path: &str, token: &str) -> String {
    let base = deps.settings.base_url.as_str().trim_end_matches('/');
    format!("{base}{path}{token}")
}

/// Sends an account e-mail; a failure is logged and reported as `false`, never a 500.
async fn send(deps: Accounts<'_>, user: &User, email: emails::AccountEmail) -> bool {
    let to = match user.email.parse::<Mailbox>() {
        Ok(to) => to,
        Err(err) => {
            tracing::error!(user_id = user.id, error = %err, "stored e-mail address does not parse");
            return false;
        }
    };
    let message = match compose(
        &deps.settings.default_from_email,
        &to,
        &email.subject,
        email.text,
        Some(email.html),
    ) {
        Ok(message) => message,
        Err(err) => {
            tracing::error!(error = %format!("{err:#}"), "cannot compose account e-mail");
            return false;
        }
    };
    match deps.mailer.send(message).await {
        Ok(_) => true,
        Err(err) => {
            tracing::warn!(user_id = user.id, error = %err, "account e-mail not sent");
            false
        }
    }
}

/// A new random password for accounts made from the command line.
pub fn generate_password() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>())
}
