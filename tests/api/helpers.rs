//! `spawn_app`: the real application on port 0 with a fresh database and the memory mailer.
//!
//! SQLite in a temp directory by default; a fresh PostgreSQL database (dropped afterwards)
//! when `TEST_DATABASE_URL` is set; Redis with a per-app key prefix when `TEST_REDIS_URL` is.

use std::collections::HashMap;

use autosend::config::Settings;
use autosend::mail::Outbox;
use autosend::startup::Application;
use autosend::state::AppState;
use tokio::sync::oneshot;

pub use crate::html::{Page, id_in, meta_csrf};
use crate::pg::PgDatabase;

pub const SECRET_KEY: &str = "test-secret-key-0123456789abcdef-0123456789";

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub state: AppState,
    pub outbox: Outbox,
    pub dir: tempfile::TempDir,
    vars: HashMap<String, String>,
    _pg: Option<PgDatabase>,
    stop: Option<oneshot::Sender<()>>,
}

/// Flags of a user made directly for a test.
#[derive(Debug, Clone, Copy, Default)]
pub struct Role {
    pub active: bool,
    pub superuser: bool,
    pub view_all: bool,
    pub disable: bool,
}

pub const ACTIVE: Role = Role {
    active: true,
    superuser: false,
    view_all: false,
    disable: false,
};
pub const SUPERUSER: Role = Role {
    active: true,
    superuser: true,
    view_all: true,
    disable: true,
};
pub const MANAGER: Role = Role {
    active: true,
    superuser: false,
    view_all: true,
    disable: true,
};
pub const PASSWORD: &str = "correct horse battery";

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.get_as(&self.client, path).await
    }

    /// A GET from another browser (see [`TestApp::browser_for`]).
    pub async fn get_as(&self, browser: &reqwest::Client, path: &str) -> reqwest::Response {
        browser
            .get(self.url(path))
            .send()
            .await
            .expect("request failed")
    }

    /// The page at `path`: status, headers and text.
    pub async fn get_page(&self, path: &str) -> Page {
        self.get_page_as(&self.client, path).await
    }

    /// A GET with extra request headers (conditional requests, htmx).
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Page {
        let mut request = self.client.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Page::read(request.send().await.expect("request failed")).await
    }

    /// The page at `path` as htmx asks for it (`HX-Request`): a fragment, not the layout.
    pub async fn htmx_get(&self, path: &str) -> Page {
        self.get_with(path, &[("HX-Request", "true")]).await
    }

    /// The page at `path` as another browser sees it.
    pub async fn get_page_as(&self, browser: &reqwest::Client, path: &str) -> Page {
        Page::read(self.get_as(browser, path).await).await
    }

    /// The text of the page at `path`, whatever its status (check that with `get_page`).
    pub async fn get_html(&self, path: &str) -> String {
        self.get_page(path).await.text
    }

    /// The text of the page at `path` as another browser sees it.
    pub async fn get_html_as(&self, browser: &reqwest::Client, path: &str) -> String {
        self.get_page_as(browser, path).await.text
    }

    /// A page's CSRF token, read from its `<meta name="csrf-token">` (also sets the cookie).
    pub async fn csrf_token(&self) -> String {
        self.csrf_token_as(&self.client).await
    }

    /// Another browser's CSRF token (each browser has its own cookie).
    pub async fn csrf_token_as(&self, browser: &reqwest::Client) -> String {
        let html = self.get_html_as(browser, "/").await;
        meta_csrf(&html).expect("page has a csrf-token meta tag")
    }

    /// A POST as htmx sends it from a button: `HX-Request`, the token in `X-CSRF-Token`, no body.
    pub async fn htmx_post(&self, path: &str) -> reqwest::Response {
        let token = self.csrf_token().await;
        self.client
            .post(self.url(path))
            .header("HX-Request", "true")
            .header("X-CSRF-Token", token)
            .send()
            .await
            .expect("request failed")
    }

    /// Rows in `table` (for checks of storage itself: "nothing was written").
    pub async fn count(&self, table: &str) -> i64 {
        // `table` is a name written in a test, never input.
        let sql = format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {table}");
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(&self.state.db.pool)
            .await
            .unwrap()
    }

    /// Makes a user directly in the database; the password is [`PASSWORD`].
    pub async fn create_user(&self, email: &str, role: Role) -> i64 {
        let new = autosend::db::users::NewUser {
            email: email.to_string(),
            password_hash: autosend::accounts::passwords::hash(PASSWORD).await.unwrap(),
            full_name: "Test User".to_string(),
            is_active: role.active,
            is_superuser: role.superuser,
            view_all_mailings: role.view_all,
            disable_mailing: role.disable,
            must_change_password: false,
        };
        autosend::db::users::create(&self.state.db, &new)
            .await
            .unwrap()
    }

    /// POSTs a form with this client's CSRF token added.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        post_form_with(&self.client, self, path, fields).await
    }

    /// POSTs a form and reads the answer.
    pub async fn post_page(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        Page::read(self.post_form(path, fields).await).await
    }

    /// Uploads `bytes` as the file `name` to `POST /clients/import`, as the import form does.
    pub async fn import_csv(&self, name: &str, bytes: Vec<u8>) -> reqwest::Response {
        let token = self.csrf_token().await;
        let file = reqwest::multipart::Part::bytes(bytes).file_name(name.to_string());
        let form = reqwest::multipart::Form::new()
            .text("csrf_token", token)
            .part("file", file);
        self.client
            .post(self.url("/clients/import"))
            .multipart(form)
            .send()
            .await
            .expect("request failed")
    }

    /// A recipient made through `POST /clients/` by the logged-in user; its id.
    pub async fn add_recipient(&self, email: &str, full_name: &str, comment: &str) -> i64 {
        self.add_recipient_as(&self.client, email, full_name, comment)
            .await
    }

    /// A recipient made through `POST /clients/` by `browser`'s user; its id.
    pub async fn add_recipient_as(
        &self,
        browser: &reqwest::Client,
        email: &str,
        full_name: &str,
        comment: &str,
    ) -> i64 {
        let fields = [
            ("email", email),
            ("full_name", full_name),
            ("comment", comment),
        ];
        let resp = post_form_with(browser, self, "/clients/", &fields).await;
        Page::read(resp).await.assert_status(303);
        self.recipient_id_as(browser, email).await
    }

    /// The id of the logged-in user's recipient `email`, as `/clients/?q=` lists it.
    pub async fn recipient_id(&self, email: &str) -> i64 {
        self.recipient_id_as(&self.client, email).await
    }

    /// The id of `email` in `browser`'s list searched by that address (newest first, so the
    /// last one added where the search also matches longer addresses).
    pub async fn recipient_id_as(&self, browser: &reqwest::Client, email: &str) -> i64 {
        let query: String = url::form_urlencoded::byte_serialize(email.as_bytes()).collect();
        let list = self
            .get_html_as(browser, &format!("/clients/?q={query}"))
            .await;
        let marker = "<tr id=\"recipient-";
        let start = list
            .find(marker)
            .unwrap_or_else(|| panic!("{email} is not listed:\n{list}"))
            + marker.len();
        let end = list[start..].find('"').unwrap() + start;
        list[start..end].parse().unwrap()
    }

    /// A message made through `POST /messages/` by the logged-in user; its id.
    pub async fn add_message(&self, subject: &str, body: &str) -> i64 {
        self.add_message_as(&self.client, subject, body).await
    }

    pub async fn add_message_as(
        &self,
        browser: &reqwest::Client,
        subject: &str,
        body: &str,
    ) -> i64 {
        let fields = [("subject", subject), ("body", body)];
        let resp = post_form_with(browser, self, "/messages/", &fields).await;
        let page = Page::read(resp).await;
        page.assert_status(303);
        id_in(page.location(), "/messages/")
    }

    /// A mailing made through `POST /mailings/` by the logged-in user; its id.
    pub async fn add_mailing(&self, form: &MailingForm<'_>) -> i64 {
        self.add_mailing_as(&self.client, form).await
    }

    pub async fn add_mailing_as(&self, browser: &reqwest::Client, form: &MailingForm<'_>) -> i64 {
        let fields = form.fields();
        let resp = post_form_with(browser, self, "/mailings/", &MailingForm::borrow(&fields)).await;
        let page = Page::read(resp).await;
        page.assert_status(303);
        id_in(page.location(), "/mailings/")
    }

    /// Polls `/mailings/{id}/progress` (200 while it runs) until the run ends (286); the
    /// last fragment.
    pub async fn wait_until_finished(&self, mailing: i64) -> String {
        for _ in 0..400 {
            let page = self
                .get_page(&format!("/mailings/{mailing}/progress"))
                .await;
            if page.status == 286 {
                return page.text;
            }
            page.assert_status(200);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("the run of mailing {mailing} did not finish");
    }

    /// A mail provider's RFC 8058 one-click POST to `path`: no cookie, no CSRF token, just
    /// the link.
    pub async fn one_click(&self, path: &str) -> reqwest::Response {
        client()
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("List-Unsubscribe=One-Click")
            .send()
            .await
            .unwrap()
    }

    /// `email` unsubscribes from `owner`'s mailings the way a recipient does: the one-click
    /// POST of the link in their mail.
    pub async fn unsubscribe(&self, owner: i64, email: &str) {
        let token = autosend::delivery::unsubscribe::token(&self.state.signer, owner, email);
        let resp = self.one_click(&format!("/u/{token}")).await;
        assert!(resp.status().is_success(), "unsubscribe: {}", resp.status());
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_form("/users/login", &[("email", email), ("password", password)])
            .await
    }

    /// Another browser, logged in as `email` (the user must exist).
    pub async fn browser_for(&self, email: &str) -> reqwest::Client {
        let browser = client();
        let resp = post_form_with(
            &browser,
            self,
            "/users/login",
            &[("email", email), ("password", PASSWORD)],
        )
        .await;
        assert_eq!(resp.status(), 303, "login of {email} failed");
        browser
    }

    /// Logs in (the user must exist) and checks it worked.
    pub async fn login_as(&self, email: &str) {
        let resp = self.login(email, PASSWORD).await;
        assert_eq!(resp.status(), 303, "login of {email} failed");
    }

    /// The same application again on the same database (and Redis prefix): a restart.
    pub async fn restart(&mut self) {
        self.stop();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let settings = Settings::from_vars(&self.vars).expect("test settings are valid");
        let app = Application::build(settings).await.expect("app rebuilds");
        self.port = app.port();
        self.address = format!("http://127.0.0.1:{}", self.port);
        self.state = app.state().clone();
        self.outbox = self.state.mailer.outbox().unwrap_or_default();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        self.stop = Some(stop);
    }

    /// The text bodies of the e-mails sent to `to`, oldest first.
    pub fn mails_to(&self, to: &str) -> Vec<Mail> {
        self.outbox
            .messages()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t == to))
            .map(|m| Mail::parse(&m.raw))
            .collect()
    }

    /// Another instance's state on the same database and Redis (a second engine or
    /// scheduler), without a web server.
    pub async fn another_instance(&self) -> AppState {
        let settings = Settings::from_vars(&self.vars).expect("test settings are valid");
        AppState::build(settings)
            .await
            .expect("second instance builds")
    }

    /// Stops the server gracefully (in-flight requests finish).
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// POSTs a form from any client, fetching that client's CSRF token first.
pub async fn post_form_with(
    client: &reqwest::Client,
    app: &TestApp,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let token = app.csrf_token_as(client).await;
    let mut form: Vec<(&str, &str)> = fields.to_vec();
    form.push(("csrf_token", &token));
    client.post(app.url(path)).form(&form).send().await.unwrap()
}

/// A sent e-mail, decoded.
#[derive(Debug, Clone)]
pub struct Mail {
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl Mail {
    pub fn parse(raw: &str) -> Self {
        let parsed = mailparse::parse_mail(raw.as_bytes()).expect("e-mail parses");
        let subject = parsed
            .headers
            .iter()
            .find(|h| h.get_key().eq_ignore_ascii_case("subject"))
            .map(|h| h.get_value())
            .unwrap_or_default();
        let mut text = String::new();
        let mut html = String::new();
        let mut parts = vec![&parsed];
        while let Some(part) = parts.pop() {
            if part.subparts.is_empty() {
                let body = part.get_body().unwrap_or_default();
                if part.ctype.mimetype == "text/html" {
                    html.push_str(&body);
                } else {
                    text.push_str(&body);
                }
            } else {
                parts.extend(part.subparts.iter());
            }
        }
        Self {
            subject,
            text,
            html,
        }
    }

    /// The path of the first link found in the text body (the app's port is not BASE_URL's).
    pub fn link_path(&self) -> String {
        let start = self.text.find("http://").expect("a link in the e-mail");
        let link = self.text[start..].split_whitespace().next().unwrap();
        let url = url::Url::parse(link).expect("the link is a URL");
        url.path().to_string()
    }
}

/// The fields of `POST /mailings/` (SPEC §6); times are `YYYY-MM-DDTHH:MM` in the user's zone.
#[derive(Debug, Clone)]
pub struct MailingForm<'a> {
    pub message: i64,
    pub recipients: &'a [i64],
    pub start_at: &'a str,
    pub end_at: &'a str,
    pub period: &'a str,
}

impl<'a> MailingForm<'a> {
    /// A `once` mailing in 2030 (far enough ahead that no tick starts it).
    pub fn once(message: i64, recipients: &'a [i64]) -> Self {
        Self {
            message,
            recipients,
            start_at: "2030-01-01T09:00",
            end_at: "2030-02-01T09:00",
            period: "once",
        }
    }

    /// The same in a daily period (a manual run leaves it able to run again).
    pub fn daily(message: i64, recipients: &'a [i64]) -> Self {
        Self {
            period: "daily",
            ..Self::once(message, recipients)
        }
    }

    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![
            ("message_id", self.message.to_string()),
            ("start_at", self.start_at.to_string()),
            ("end_at", self.end_at.to_string()),
            ("period", self.period.to_string()),
        ];
        for id in self.recipients {
            fields.push(("recipient_ids", id.to_string()));
        }
        fields
    }

    /// `fields()` as `post_form` takes them.
    pub fn borrow(fields: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
        fields.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The variables every test app starts from; `customize` may change any of them.
pub fn test_vars(dir: &std::path::Path) -> HashMap<String, String> {
    let mut vars = HashMap::new();
    let mut set = |k: &str, v: String| {
        vars.insert(k.to_string(), v);
    };
    set("SECRET_KEY", SECRET_KEY.into());
    set("BIND", "127.0.0.1:0".into());
    set("DATA_DIR", dir.join("data").display().to_string());
    set("LOG_DIR", dir.join("logs").display().to_string());
    set("EMAIL_BACKEND", "memory".into());
    set("SCHEDULER_INTERVAL_SECS", "0".into());
    vars
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(customize: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
    autosend::telemetry::init_for_tests();
    let dir = tempfile::tempdir().unwrap();
    let mut vars = test_vars(dir.path());
    let pg = match std::env::var("TEST_DATABASE_URL") {
        Ok(admin_url) if !admin_url.is_empty() => {
            let db = PgDatabase::create(&admin_url).await;
            vars.insert("DATABASE_URL".into(), db.url.clone());
            Some(db)
        }
        _ => None,
    };
    if let Ok(redis) = std::env::var("TEST_REDIS_URL")
        && !redis.is_empty()
    {
        vars.insert("REDIS_URL".into(), redis);
        vars.insert(
            "REDIS_PREFIX".into(),
            format!("test-{}:", uuid::Uuid::new_v4().simple()),
        );
    }
    customize(&mut vars);
    let settings = Settings::from_vars(&vars).expect("test settings are valid");
    let app = Application::build(settings).await.expect("app builds");
    let port = app.port();
    let state = app.state().clone();
    let outbox = state.mailer.outbox().unwrap_or_default();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: client(),
        state,
        outbox,
        dir,
        vars,
        _pg: pg,
        stop: Some(stop),
    }
}
