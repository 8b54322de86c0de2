//! A populated app for the tests that walk every route (security, bad_input): four users of
//! each kind, one object of each kind owned by one of them, valid signed tokens, a way to
//! turn a route pattern of `autosend::web::route_table()` into a URL, and a snapshot of the
//! database to prove that a refused request changed nothing.

use std::collections::HashMap;

use autosend::accounts::tokens::{self, Purpose};
use autosend::db::mailings::NewMailing;
use autosend::domain::Period;
use poem::http::Method;

use crate::helpers::{
    ACTIVE, MANAGER, Role, SUPERUSER, TestApp, client, post_form_with, spawn_app_with,
};

pub const OWNER: &str = "owner@example.com";
pub const OTHER: &str = "other@example.com";
/// `view_all_mailings` only: sees everything, changes nothing of others.
pub const VIEWER: &str = "viewer@example.com";
/// Both manager permissions: also finishes anyone's mailing.
pub const MANAGER_EMAIL: &str = "manager@example.com";
pub const ROOT: &str = "root@example.com";
/// Never activated: its activation link is the `/users/activate/{token}` of the table.
pub const SLEEPER: &str = "sleeper@example.com";

pub const VIEW_ONLY: Role = Role {
    view_all: true,
    ..ACTIVE
};

pub struct World {
    pub app: TestApp,
    pub users: HashMap<&'static str, i64>,
    pub recipient: i64,
    pub message: i64,
    pub mailing: i64,
    pub error_group: i64,
    pub activation_token: String,
    pub reset_token: String,
    pub unsubscribe_token: String,
}

/// Whether a method changes state (and so needs a CSRF token).
pub fn is_unsafe(method: &Method) -> bool {
    !matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

impl World {
    pub async fn build() -> Self {
        Self::build_with(|_| {}).await
    }

    pub async fn build_with(customize: impl FnOnce(&mut HashMap<String, String>)) -> Self {
        let app = spawn_app_with(customize).await;
        let mut users = HashMap::new();
        for (email, role) in [
            (OWNER, ACTIVE),
            (OTHER, ACTIVE),
            (VIEWER, VIEW_ONLY),
            (MANAGER_EMAIL, MANAGER),
            (ROOT, SUPERUSER),
            (
                SLEEPER,
                Role {
                    active: false,
                    ..ACTIVE
                },
            ),
        ] {
            users.insert(email, app.create_user(email, role).await);
        }
        let owner = users[OWNER];
        let Objects {
            recipient,
            message,
            mailing,
            ..
        } = objects(&app, owner, "first").await;
        let now = autosend::db::now_ms();
        let error_group: i64 = sqlx::query_scalar(
            "INSERT INTO error_groups (fingerprint, kind, error_type, message, first_seen_at, \
             last_seen_at) VALUES ('f', 'error', 'Test', 'a test error', $1, $1) RETURNING id",
        )
        .bind(now)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
        let user = |id| {
            let db = app.state.db.clone();
            async move {
                autosend::db::users::find_by_id(&db, id)
                    .await
                    .unwrap()
                    .unwrap()
            }
        };
        let activation_token = tokens::issue(
            &app.state.signer,
            Purpose::Activation,
            &user(users[SLEEPER]).await,
        );
        let reset_token = tokens::issue(
            &app.state.signer,
            Purpose::PasswordReset,
            &user(owner).await,
        );
        let unsubscribe_token =
            autosend::delivery::unsubscribe::token(&app.state.signer, owner, "first.r@example.com");
        Self {
            app,
            users,
            recipient,
            message,
            mailing,
            error_group,
            activation_token,
            reset_token,
            unsubscribe_token,
        }
    }

    /// A browser logged in as `email` (any of the users above but the sleeper).
    pub async fn browser(&self, email: &str) -> reqwest::Client {
        self.app.browser_for(email).await
    }

    /// The route pattern with its parameters filled by this world's objects and tokens.
    pub fn path(&self, pattern: &str) -> String {
        let id = if pattern.starts_with("/clients/") {
            self.recipient
        } else if pattern.starts_with("/messages/") {
            self.message
        } else if pattern.starts_with("/mailings/") {
            self.mailing
        } else if pattern.starts_with("/admin/users/") {
            self.users[OTHER]
        } else {
            self.error_group
        };
        let token = if pattern.starts_with("/users/activate/") {
            &self.activation_token
        } else if pattern.starts_with("/users/password-reset/") {
            &self.reset_token
        } else {
            &self.unsubscribe_token
        };
        pattern
            .replace(":id", &id.to_string())
            .replace(":token", token)
            .replace("*path", "app.css")
    }

    /// Everything a request could change, as text (timestamps and counters that move on
    /// their own, like `last_seen_at` or session expiry, left out).
    pub async fn snapshot(&self) -> Vec<String> {
        const QUERIES: &[&str] = &[
            "SELECT CAST(id AS TEXT) || '|' || email || '|' || password_hash || '|' || full_name \
             || '|' || phone || '|' || country || '|' || COALESCE(time_zone, '') || '|' \
             || CAST(is_active AS TEXT) || CAST(is_superuser AS TEXT) \
             || CAST(view_all_mailings AS TEXT) || CAST(disable_mailing AS TEXT) \
             || CAST(must_change_password AS TEXT) || '|' || CAST(auth_version AS TEXT) \
             FROM users ORDER BY id",
            "SELECT CAST(id AS TEXT) || '|' || CAST(owner_id AS TEXT) || '|' || email || '|' \
             || full_name || '|' || comment FROM recipients ORDER BY id",
            "SELECT CAST(id AS TEXT) || '|' || subject || '|' || body || '|' \
             || COALESCE(body_html, '') FROM messages ORDER BY id",
            "SELECT CAST(id AS TEXT) || '|' || CAST(message_id AS TEXT) || '|' \
             || CAST(start_at AS TEXT) || '|' || CAST(end_at AS TEXT) || '|' || period || '|' \
             || status FROM mailings ORDER BY id",
            "SELECT CAST(mailing_id AS TEXT) || '|' || CAST(recipient_id AS TEXT) \
             FROM mailing_recipients ORDER BY mailing_id, recipient_id",
            "SELECT CAST(id AS TEXT) || '|' || status FROM runs ORDER BY id",
            "SELECT CAST(id AS TEXT) || '|' || status FROM deliveries ORDER BY id",
            "SELECT CAST(owner_id AS TEXT) || '|' || email FROM unsubscribes ORDER BY id",
            "SELECT CAST(id AS TEXT) || '|' || CAST(COALESCE(resolved_at, 0) AS TEXT) \
             FROM error_groups ORDER BY id",
        ];
        let mut rows = Vec::new();
        for &query in QUERIES {
            let table = query.split(" FROM ").nth(1).unwrap_or(query);
            for row in sqlx::query_scalar::<_, String>(query)
                .fetch_all(&self.app.state.db.pool)
                .await
                .unwrap()
            {
                rows.push(format!("{table}: {row}"));
            }
        }
        rows
    }

    /// Row counts of the tables a request can write to (the "no partial write" check).
    pub async fn counts(&self) -> Vec<(&'static str, i64)> {
        const TABLES: &[(&str, &str)] = &[
            ("users", "SELECT CAST(COUNT(*) AS BIGINT) FROM users"),
            (
                "recipients",
                "SELECT CAST(COUNT(*) AS BIGINT) FROM recipients",
            ),
            ("messages", "SELECT CAST(COUNT(*) AS BIGINT) FROM messages"),
            ("mailings", "SELECT CAST(COUNT(*) AS BIGINT) FROM mailings"),
            (
                "mailing_recipients",
                "SELECT CAST(COUNT(*) AS BIGINT) FROM mailing_recipients",
            ),
            ("runs", "SELECT CAST(COUNT(*) AS BIGINT) FROM runs"),
            (
                "deliveries",
                "SELECT CAST(COUNT(*) AS BIGINT) FROM deliveries",
            ),
            (
                "unsubscribes",
                "SELECT CAST(COUNT(*) AS BIGINT) FROM unsubscribes",
            ),
        ];
        let mut counts = Vec::new();
        for &(table, query) in TABLES {
            let n: i64 = sqlx::query_scalar(query)
                .fetch_one(&self.app.state.db.pool)
                .await
                .unwrap();
            counts.push((table, n));
        }
        counts
    }
}

/// One object of each kind, owned by one user.
#[derive(Debug, Clone, Copy)]
pub struct Objects {
    pub recipient: i64,
    /// The message of `mailing` (so it cannot be deleted).
    pub message: i64,
    pub mailing: i64,
    /// A message no mailing uses.
    pub spare_message: i64,
}

/// A recipient, a message and a mailing of `owner` to that recipient (window in the future,
/// so the scheduler leaves it alone), and a spare message; `tag` keeps addresses apart.
pub async fn objects(app: &TestApp, owner: i64, tag: &str) -> Objects {
    let db = &app.state.db;
    let recipient = autosend::db::recipients::insert(
        db,
        owner,
        &format!("{tag}.r@example.com"),
        "Rita Recipient",
        "",
    )
    .await
    .unwrap();
    let message = autosend::db::messages::insert(db, owner, "Hello", "Hi {{full_name}}", None)
        .await
        .unwrap();
    let start = autosend::db::now_ms() + 365 * 24 * 3600 * 1000;
    let mailing = autosend::db::mailings::create_mailing(
        db,
        &NewMailing {
            owner_id: owner,
            message_id: message,
            recipient_ids: vec![recipient],
            start_at: start,
            end_at: start + 24 * 3600 * 1000,
            period: Period::Once,
        },
        autosend::db::now_ms(),
    )
    .await
    .unwrap();
    let spare_message = autosend::db::messages::insert(db, owner, "Spare", "Unused", None)
        .await
        .unwrap();
    Objects {
        recipient,
        message,
        mailing,
        spare_message,
    }
}

/// POSTs `fields` from `browser` with its CSRF token; an anonymous browser gets one too.
pub async fn post(
    world: &World,
    browser: &reqwest::Client,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    post_form_with(browser, &world.app, path, fields).await
}

/// A browser that has visited the site (so it holds a CSRF cookie) but is not logged in.
pub async fn anonymous(world: &World) -> reqwest::Client {
    let browser = client();
    world.app.get_as(&browser, "/").await;
    browser
}
