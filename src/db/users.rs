//! User accounts (SPEC §5).

use anyhow::Context as _;
use sqlx::FromRow;

use super::{Db, now_ms, search};

/// An account as stored.
#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub password_hash: String,
    pub full_name: String,
    pub phone: String,
    pub country: String,
    pub time_zone: Option<String>,
    pub is_active: bool,
    pub is_superuser: bool,
    pub view_all_mailings: bool,
    pub disable_mailing: bool,
    pub must_change_password: bool,
    pub auth_version: i64,
    pub created_at: i64,
    /// Moves on with every change of the row; activation links are bound to it.
    pub updated_at: i64,
    pub last_login_at: Option<i64>,
}

impl User {
    /// Signed up, never activated and untouched since: a new sign-up with this address may
    /// take the account over (the mail goes to the address either way). A deactivated
    /// account, or one an administrator changed, is not pending.
    pub fn is_pending_activation(&self) -> bool {
        !self.is_active && self.last_login_at.is_none() && self.updated_at == self.created_at
    }
}

#[derive(FromRow)]
struct UserRow {
    id: i64,
    email: String,
    password_hash: String,
    full_name: String,
    phone: String,
    country: String,
    time_zone: Option<String>,
    is_active: i64,
    is_superuser: i64,
    view_all_mailings: i64,
    disable_mailing: i64,
    must_change_password: i64,
    auth_version: i64,
    created_at: i64,
    updated_at: i64,
    last_login_at: Option<i64>,
}

impl From<UserRow> for User {
    fn from(r: UserRow) -> Self {
        Self {
            id: r.id,
            email: r.email,
            password_hash: r.password_hash,
            full_name: r.full_name,
            phone: r.phone,
            country: r.country,
            time_zone: r.time_zone,
            is_active: r.is_active != 0,
            is_superuser: r.is_superuser != 0,
            view_all_mailings: r.view_all_mailings != 0,
            disable_mailing: r.disable_mailing != 0,
            must_change_password: r.must_change_password != 0,
            auth_version: r.auth_version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            last_login_at: r.last_login_at,
        }
    }
}

const COLUMNS: &str = "id, email, password_hash, full_name, phone, country, time_zone, \
    is_active, is_superuser, view_all_mailings, disable_mailing, must_change_password, \
    auth_version, created_at, updated_at, last_login_at";

/// A user to create; the e-mail is already normalised and the password hashed.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub email: String,
    pub password_hash: String,
    pub full_name: String,
    pub is_active: bool,
    pub is_superuser: bool,
    pub view_all_mailings: bool,
    pub disable_mailing: bool,
    pub must_change_password: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateUserError {
    #[error("a user with this e-mail address already exists")]
    DuplicateEmail,
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(e) if e.is_unique_violation())
}

pub async fn create(db: &Db, user: &NewUser) -> Result<i64, CreateUserError> {
    let now = now_ms();
    let result = sqlx::query_scalar::<_, i64>(
        "INSERT INTO users (email, password_hash, full_name, is_active, is_superuser, \
         view_all_mailings, disable_mailing, must_change_password, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) RETURNING id",
    )
    .bind(&user.email)
    .bind(&user.password_hash)
    .bind(&user.full_name)
    .bind(i64::from(user.is_active))
    .bind(i64::from(user.is_superuser))
    .bind(i64::from(user.view_all_mailings))
    .bind(i64::from(user.disable_mailing))
    .bind(i64::from(user.must_change_password))
    .bind(now)
    .fetch_one(&db.pool)
    .await;
    match result {
        Ok(id) => Ok(id),
        Err(err) if is_unique_violation(&err) => Err(CreateUserError::DuplicateEmail),
        Err(err) => Err(anyhow::Error::new(err).context("cannot insert user").into()),
    }
}

pub async fn find_by_id(db: &Db, id: i64) -> anyhow::Result<Option<User>> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    let row = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&db.pool)
        .await
        .context("cannot load user")?;
    Ok(row.map(User::from))
}

/// By e-mail, case-insensitively (the unique index is on `lower(email)`).
pub async fn find_by_email(db: &Db, email: &str) -> anyhow::Result<Option<User>> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE lower(email) = $1");
    let row = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
        .bind(email.to_lowercase())
        .fetch_optional(&db.pool)
        .await
        .context("cannot load user by e-mail")?;
    Ok(row.map(User::from))
}

/// New password; every existing session ends (auth_version moves on).
pub async fn set_password(
    db: &Db,
    id: i64,
    password_hash: &str,
    must_change: bool,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE users SET password_hash = $1, must_change_password = $2, \
         auth_version = auth_version + 1, updated_at = $3 WHERE id = $4",
    )
    .bind(password_hash)
    .bind(i64::from(must_change))
    .bind(now_ms())
    .bind(id)
    .execute(&db.pool)
    .await
    .context("cannot update password")?;
    Ok(())
}

/// Activates an inactive account that has not changed since `seen_updated_at` (the state
/// its activation link was signed for); `false` when it was activated, deactivated or
/// otherwise changed meanwhile (the link is dead).
pub async fn activate(db: &Db, id: i64, seen_updated_at: i64) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE users SET is_active = 1, updated_at = $1 \
         WHERE id = $2 AND is_active = 0 AND updated_at = $3",
    )
    .bind(next_stamp(seen_updated_at))
    .bind(id)
    .bind(seen_updated_at)
    .execute(&db.pool)
    .await
    .context("cannot activate user")?;
    Ok(done.rows_affected() == 1)
}

/// A stamp later than `previous`, so a change within the same millisecond still moves it.
fn next_stamp(previous: i64) -> i64 {
    now_ms().max(previous + 1)
}

/// A new sign-up for an account still pending activation (see
/// [`User::is_pending_activation`]) replaces its password and name; the stamp moves on, so
/// the earlier activation link dies. `false` when the account changed meanwhile.
pub async fn renew_pending(
    db: &Db,
    id: i64,
    seen_updated_at: i64,
    password_hash: &str,
    full_name: &str,
) -> anyhow::Result<bool> {
    // created_at moves with updated_at: the account stays "pending" for the next sign-up.
    let stamp = next_stamp(seen_updated_at);
    let done = sqlx::query(
        "UPDATE users SET password_hash = $1, full_name = $2, created_at = $3, updated_at = $3 \
         WHERE id = $4 AND is_active = 0 AND last_login_at IS NULL AND updated_at = $5",
    )
    .bind(password_hash)
    .bind(full_name)
    .bind(stamp)
    .bind(id)
    .bind(seen_updated_at)
    .execute(&db.pool)
    .await
    .context("cannot renew pending sign-up")?;
    Ok(done.rows_affected() == 1)
}

pub async fn record_login(db: &Db, id: i64) -> anyhow::Result<()> {
    sqlx::query("UPDATE users SET last_login_at = $1 WHERE id = $2")
        .bind(now_ms())
        .bind(id)
        .execute(&db.pool)
        .await
        .context("cannot record login")?;
    Ok(())
}

/// The profile fields a user may change.
#[derive(Debug, Clone)]
pub struct Profile {
    pub full_name: String,
    pub phone: String,
    pub country: String,
    pub time_zone: Option<String>,
}

pub async fn update_profile(db: &Db, id: i64, profile: &Profile) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE users SET full_name = $1, phone = $2, country = $3, time_zone = $4, \
         updated_at = $5 WHERE id = $6",
    )
    .bind(&profile.full_name)
    .bind(&profile.phone)
    .bind(&profile.country)
    .bind(profile.time_zone.as_deref())
    .bind(now_ms())
    .bind(id)
    .execute(&db.pool)
    .await
    .context("cannot update profile")?;
    Ok(())
}

/// The flags a superuser sets on `/admin/users/{id}`.
#[derive(Debug, Clone, Copy)]
pub struct AccessFlags {
    pub is_active: bool,
    pub view_all_mailings: bool,
    pub disable_mailing: bool,
}

/// Sets the flags; deactivation ends the user's sessions. `false` when there is no such user.
pub async fn set_access(db: &Db, id: i64, flags: AccessFlags) -> anyhow::Result<bool> {
    let done = sqlx::query(
        "UPDATE users SET \
           auth_version = auth_version + CASE WHEN is_active = 1 AND $1 = 0 THEN 1 ELSE 0 END, \
           is_active = $1, view_all_mailings = $2, disable_mailing = $3, \
           updated_at = CASE WHEN $4 > updated_at THEN $4 ELSE updated_at + 1 END \
         WHERE id = $5",
    )
    .bind(i64::from(flags.is_active))
    .bind(i64::from(flags.view_all_mailings))
    .bind(i64::from(flags.disable_mailing))
    .bind(now_ms())
    .bind(id)
    .execute(&db.pool)
    .await
    .context("cannot update user access")?;
    Ok(done.rows_affected() == 1)
}

/// Users whose e-mail or name contains `query`, newest first, and how many match in all.
pub async fn search(
    db: &Db,
    query: &str,
    limit: i64,
    offset: i64,
) -> anyhow::Result<(Vec<User>, i64)> {
    let pattern = search::like_pattern(&search::searchable(query));
    let filter = format!(
        "WHERE {}",
        search::contains_any(db.backend, &["email", "full_name"], "$1")
    );
    let sql = format!(
        "SELECT {COLUMNS} FROM users {filter} ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3"
    );
    let rows = sqlx::query_as::<_, UserRow>(sqlx::AssertSqlSafe(sql))
        .bind(&pattern)
        .bind(limit)
        .bind(offset)
        .fetch_all(&db.pool)
        .await
        .context("cannot search users")?;
    let count_sql = format!("SELECT CAST(COUNT(*) AS BIGINT) FROM users {filter}");
    let total: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql))
        .bind(&pattern)
        .fetch_one(&db.pool)
        .await
        .context("cannot count users")?;
    Ok((rows.into_iter().map(User::from).collect(), total))
}

/// Deletes the users with these e-mails and everything they own; returns how many users.
/// Mailings go first: they hold their messages with `ON DELETE RESTRICT`, which a cascade
/// from the user could meet in the wrong order.
pub async fn delete_with_data(db: &Db, emails: &[&str]) -> anyhow::Result<u64> {
    let mut tx = db.begin_write().await?;
    let mut deleted = 0;
    for email in emails {
        // Writing first makes SQLite take its write lock at once (a read first could fail to
        // upgrade later, when another process writes meanwhile).
        sqlx::query(
            "DELETE FROM mailings WHERE owner_id IN (SELECT id FROM users WHERE lower(email) = $1)",
        )
        .bind(email.to_lowercase())
        .execute(&mut *tx)
        .await
        .context("cannot delete the user's mailings")?;
        let id: Option<i64> = sqlx::query_scalar("SELECT id FROM users WHERE lower(email) = $1")
            .bind(email.to_lowercase())
            .fetch_optional(&mut *tx)
            .await
            .context("cannot look up user")?;
        let Some(id) = id else { continue };
        sqlx::query("DELETE FROM data_versions WHERE scope = $1")
            .bind(super::versions::user_scope(id))
            .execute(&mut *tx)
            .await
            .context("cannot delete the user's data version")?;
        deleted += sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .context("cannot delete user")?
            .rows_affected();
    }
    tx.commit().await.context("cannot commit user deletion")?;
    Ok(deleted)
}
