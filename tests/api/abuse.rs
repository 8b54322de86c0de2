//! Accounts and abuse (issue 12): what a hostile or careless client can no longer do —
//! revive a deactivated account, lock out an owner, fire mail at strangers, exhaust memory
//! or connections.

use std::io::Write as _;
use std::time::{Duration, Instant};

use autosend::db::users;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::{
    ACTIVE, PASSWORD, Page, SUPERUSER, TestApp, post_form_with, spawn_app, spawn_app_with,
};

/// An app behind a trusted proxy on loopback: `X-Forwarded-For` names the client.
async fn behind_proxy() -> TestApp {
    spawn_app_with(|vars| {
        vars.insert("TRUSTED_PROXIES".into(), "127.0.0.1/32".into());
    })
    .await
}

/// POSTs a form (with the CSRF token) as if forwarded for `client` by the proxy.
async fn post_as(
    app: &TestApp,
    client: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> reqwest::Response {
    let token = app.csrf_token().await;
    let mut form = fields.to_vec();
    form.push(("csrf_token", &token));
    app.client
        .post(app.url(path))
        .header("x-forwarded-for", client)
        .form(&form)
        .send()
        .await
        .unwrap()
}

fn signup_fields<'a>(email: &'a str, name: &'a str, password: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("email", email),
        ("full_name", name),
        ("password", password),
        ("password2", password),
    ]
}

/// Signs up from this app's own client.
async fn sign_up(app: &TestApp, email: &str, name: &str, password: &str) -> reqwest::Response {
    app.post_form("/users/signup", &signup_fields(email, name, password))
        .await
}

fn retry_after(resp: &reqwest::Response) -> u64 {
    resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_deactivated_account_is_not_revived_by_its_activation_link() {
    let app = spawn_app().await;
    app.create_user("root@example.com", SUPERUSER).await;
    let admin = app.browser_for("root@example.com").await;
    let resp = sign_up(&app, "ann@example.com", "Ann Example", PASSWORD).await;
    assert_eq!(resp.status(), 200);
    let link = app.mails_to("ann@example.com")[0].link_path();
    assert_eq!(
        app.get(&link).await.status(),
        200,
        "the link activates once"
    );
    assert_eq!(app.login("ann@example.com", PASSWORD).await.status(), 303);

    let ann = users::find_by_email(&app.state.db, "ann@example.com")
        .await
        .unwrap()
        .unwrap();
    // All boxes unticked: deactivated.
    let resp = post_form_with(&admin, &app, &format!("/admin/users/{}", ann.id), &[]).await;
    assert!(
        resp.status().is_success() || resp.status().is_redirection(),
        "{}",
        resp.status()
    );

    app.get_page(&link)
        .await
        .assert_status(400)
        .assert_contains("invalid or has already been used");
    Page::read(app.login("ann@example.com", PASSWORD).await)
        .await
        .assert_status(422)
        .assert_contains("not active");

    // An account an administrator touched before its first activation: the link is dead too.
    let resp = sign_up(&app, "bob@example.com", "Bob Example", PASSWORD).await;
    assert_eq!(resp.status(), 200);
    let link = app.mails_to("bob@example.com")[0].link_path();
    let bob = users::find_by_email(&app.state.db, "bob@example.com")
        .await
        .unwrap()
        .unwrap();
    post_form_with(&admin, &app, &format!("/admin/users/{}", bob.id), &[]).await;
    assert_eq!(app.get(&link).await.status(), 400);
    let bob = users::find_by_id(&app.state.db, bob.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!bob.is_active);
}

#[tokio::test]
async fn login_limits_key_on_the_forwarded_client() {
    let app = behind_proxy().await;
    app.create_user("ann@example.com", ACTIVE).await;
    for i in 1..=25 {
        let resp = post_as(
            &app,
            &format!("198.51.100.{i}"),
            "/users/login",
            &[("email", "ann@example.com"), ("password", "wrong password")],
        )
        .await;
        assert_eq!(resp.status(), 422, "client {i} has its own allowance");
    }
    app.create_user("bob@example.com", ACTIVE).await;
    for i in 1..=25 {
        let resp = post_as(
            &app,
            &format!("203.0.113.{i}"),
            "/users/login",
            &[("email", "bob@example.com"), ("password", PASSWORD)],
        )
        .await;
        assert_eq!(resp.status(), 303, "client {i} logs in");
    }
    // One client hammering is still stopped.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let resp = post_as(
            &app,
            "192.0.2.77",
            "/users/login",
            &[("email", "ann@example.com"), ("password", "wrong password")],
        )
        .await;
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, vec![422, 422, 422, 422, 422, 429]);
}

#[tokio::test]
async fn failed_logins_lock_the_account_only_for_the_address_that_failed() {
    let app = behind_proxy().await;
    app.create_user("ann@example.com", ACTIVE).await;
    let attacker = "198.51.100.66";
    for _ in 0..5 {
        let resp = post_as(
            &app,
            attacker,
            "/users/login",
            &[("email", "ann@example.com"), ("password", "guess")],
        )
        .await;
        assert_eq!(resp.status(), 422);
    }
    let locked = post_as(
        &app,
        attacker,
        "/users/login",
        &[("email", "ann@example.com"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(locked.status(), 429, "the guessing address waits");
    assert!((1..=60).contains(&retry_after(&locked)));

    let owner = post_as(
        &app,
        "203.0.113.9",
        "/users/login",
        &[("email", "ann@example.com"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(owner.status(), 303, "the owner elsewhere is not locked out");
}

#[tokio::test]
async fn signups_from_one_client_are_throttled() {
    let app = spawn_app().await;
    let mut statuses = Vec::new();
    let mut last = None;
    for i in 0..30 {
        let email = format!("stranger{i}@example.com");
        let resp = sign_up(&app, &email, "Some Name", PASSWORD).await;
        statuses.push(resp.status().as_u16());
        last = Some(resp);
    }
    let accepted = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(accepted, 5, "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    assert_eq!(
        app.outbox.messages().len(),
        5,
        "one mail per accepted sign-up"
    );
    let last = last.unwrap();
    assert!(retry_after(&last) >= 1);
    Page::read(last).await.assert_contains("Too many attempts");
}

#[tokio::test]
async fn signups_for_one_address_are_throttled_across_clients() {
    let app = behind_proxy().await;
    let mut statuses = Vec::new();
    for i in 1..=6 {
        let resp = post_as(
            &app,
            &format!("198.51.100.{i}"),
            "/users/signup",
            &signup_fields("target@example.com", "Some Name", PASSWORD),
        )
        .await;
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, vec![200, 200, 200, 429, 429, 429]);
    assert_eq!(app.mails_to("target@example.com").len(), 3);
}

#[tokio::test]
async fn password_resets_are_throttled_per_client_and_per_address() {
    let app = behind_proxy().await;
    app.create_user("ann@example.com", ACTIVE).await;
    let mut statuses = Vec::new();
    for _ in 0..50 {
        let resp = post_as(
            &app,
            "198.51.100.1",
            "/users/password-reset",
            &[("email", "ann@example.com")],
        )
        .await;
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(&statuses[..3], &[200, 200, 200]);
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    for i in 2..=12 {
        let resp = post_as(
            &app,
            &format!("198.51.100.{i}"),
            "/users/password-reset",
            &[("email", "ann@example.com")],
        )
        .await;
        assert_eq!(resp.status(), 429, "the address's allowance is spent");
    }
    assert_eq!(app.mails_to("ann@example.com").len(), 3);
    // A client that asked too often waits, whatever address it asks for.
    app.create_user("bob@example.com", ACTIVE).await;
    let resp = post_as(
        &app,
        "198.51.100.1",
        "/users/password-reset",
        &[("email", "bob@example.com")],
    )
    .await;
    assert_eq!(resp.status(), 429);
}

#[tokio::test]
async fn signup_answers_the_same_for_a_known_address_and_tells_its_owner() {
    let app = spawn_app().await;
    app.create_user("taken@example.com", ACTIVE).await;
    let fresh = sign_up(&app, "fresh@example.com", "Ann", "another long password").await;
    let known = sign_up(&app, "Taken@Example.com", "Ann", "another long password").await;
    assert_eq!(fresh.status(), 200);
    assert_eq!(known.status(), 200);
    let fresh = fresh.text().await.unwrap();
    let known = known.text().await.unwrap();
    assert!(!known.contains("already exists"), "{known}");
    let strip = |page: &str, email: &str| {
        let main = &page[page.find("<main").unwrap()..page.find("</main>").unwrap()];
        main.replace(email, "ADDRESS")
    };
    assert_eq!(
        strip(&fresh, "fresh@example.com"),
        strip(&known, "Taken@Example.com"),
        "the page does not tell who has an account"
    );

    let mails = app.mails_to("taken@example.com");
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails[0].subject,
        "Someone tried to sign up with your address"
    );
    assert!(mails[0].text.contains("/users/password-reset"));
    assert!(!mails[0].text.contains("/users/activate/"));
    // Nothing about the account changed.
    assert_eq!(app.login("taken@example.com", PASSWORD).await.status(), 303);
}

#[tokio::test]
async fn a_new_signup_for_a_pending_account_replaces_it() {
    let app = spawn_app().await;
    let first = "first long password";
    let second = "second long password";
    for password in [first, second] {
        let resp = sign_up(&app, "pat@example.com", "Pat", password).await;
        assert_eq!(resp.status(), 200);
    }
    let mails = app.mails_to("pat@example.com");
    assert_eq!(mails.len(), 2);
    let (old, new) = (mails[0].link_path(), mails[1].link_path());
    assert_eq!(app.get(&old).await.status(), 400, "the earlier link died");
    assert_eq!(app.get(&new).await.status(), 200);
    assert_eq!(app.login("pat@example.com", first).await.status(), 422);
    assert_eq!(app.login("pat@example.com", second).await.status(), 303);
}

#[tokio::test]
async fn the_activation_mail_does_not_open_with_the_typed_name() {
    let app = spawn_app().await;
    let name = "Claim your prize at evil.example";
    let resp = sign_up(&app, "victim@example.com", name, PASSWORD).await;
    assert_eq!(resp.status(), 200);
    let mail = &app.mails_to("victim@example.com")[0];
    assert!(mail.text.starts_with("Hello,"), "{}", mail.text);
    assert!(!mail.text.contains("prize"), "{}", mail.text);
    assert!(!mail.html.contains("prize"), "{}", mail.html);
}

#[tokio::test]
async fn a_compressed_request_body_is_refused_not_decoded() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    app.login_as("ann@example.com").await;
    let token = app.csrf_token().await;
    let body = format!(
        "--XB\r\nContent-Disposition: form-data; name=\"csrf_token\"\r\n\r\n{token}\r\n\
         --XB\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.csv\"\r\n\
         Content-Type: text/csv\r\n\r\nemail,full_name,comment\r\nbomb@example.com,Bomb,\r\n--XB--\r\n"
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(body.as_bytes()).unwrap();
    let resp = app
        .client
        .post(app.url("/clients/import"))
        .header("content-type", "multipart/form-data; boundary=XB")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    Page::read(resp)
        .await
        .assert_status(415)
        .assert_contains("Compressed request bodies");
    let list = app.get_html("/clients/").await;
    assert!(!list.contains("bomb@example.com"), "nothing was imported");
}

/// A bare HTTP/1.1 client that keeps cookies: it can declare a body and not send it, which
/// shows whether the server refuses before reading.
struct Raw {
    port: u16,
    cookies: Vec<(String, String)>,
}

impl Raw {
    fn new(app: &TestApp) -> Self {
        Self {
            port: app.port,
            cookies: Vec::new(),
        }
    }

    /// Sends a request head (and `body`, if any) with `content_length`; the status and the
    /// answer, or a panic when no answer comes within 5 s.
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        content_length: usize,
        body: &str,
    ) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nCookie: {cookie}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {content_length}\r\n\
             Connection: close\r\n\r\n{body}",
            self.port
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 8192];
        let read = async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("the server answered without waiting for the body");
        let answer = String::from_utf8_lossy(&answer).into_owned();
        for line in answer.lines().take_while(|l| !l.is_empty()) {
            if let Some(cookie) = line.strip_prefix("set-cookie: ") {
                let pair = cookie.split(';').next().unwrap();
                let (k, v) = pair.split_once('=').unwrap();
                self.cookies.retain(|(name, _)| name != k);
                self.cookies.push((k.to_string(), v.to_string()));
            }
        }
        let status = answer[9..12].parse().unwrap();
        (status, answer)
    }

    /// The CSRF token of a page (and its cookie).
    async fn token(&mut self) -> String {
        let (_, page) = self.send("GET", "/users/login", 0, "").await;
        crate::helpers::meta_csrf(&page).unwrap()
    }
}

#[tokio::test]
async fn bodies_are_refused_before_they_are_read_where_the_route_allows() {
    let app = spawn_app().await;
    // No CSRF cookie: refused at once, the 16 MiB it announces are never read.
    let mut raw = Raw::new(&app);
    let (status, _) = raw.send("POST", "/users/signup", 16 << 20, "").await;
    assert_eq!(status, 403);
    // Anonymous forms are small: a declared 200 kB is refused before it is sent.
    raw.token().await;
    let (status, page) = raw.send("POST", "/users/login", 200_000, "").await;
    assert_eq!(status, 413);
    assert!(page.contains("too large"), "{page}");
    // A signed-in user's ordinary forms are capped below the upload limit.
    app.create_user("ann@example.com", ACTIVE).await;
    let token = raw.token().await;
    let form = format!("email=ann%40example.com&password=correct+horse+battery&csrf_token={token}");
    let (status, _) = raw.send("POST", "/users/login", form.len(), &form).await;
    assert_eq!(status, 303);
    let (status, _) = raw.send("POST", "/clients/", 5 << 20, "").await;
    assert_eq!(status, 413);
}

#[tokio::test]
async fn a_refused_form_does_not_echo_a_huge_value() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    app.login_as("ann@example.com").await;
    let huge = "<".repeat(600_000);
    let resp = app
        .post_page(
            "/clients/",
            &[
                ("email", "a@example.com"),
                ("full_name", &huge),
                ("comment", &huge),
            ],
        )
        .await;
    assert_eq!(resp.status, 422);
    let page = resp.text;
    assert!(page.len() < 1_200_000, "page of {} bytes", page.len());
}

#[tokio::test]
async fn oversized_login_fields_are_refused_before_anything_keys_on_them() {
    let app = spawn_app().await;
    for i in 0..10 {
        let email = format!("{i}{}", "x".repeat(10_000));
        let resp = Page::read(app.login(&email, "whatever").await).await;
        assert_eq!(resp.status, 422);
    }
    // Only the client's key: not one key per e-mail.
    assert_eq!(app.state.throttle.len(), 1);
}

#[tokio::test]
async fn expired_sessions_are_purged_on_a_timer() {
    let mut app = spawn_app().await;
    autosend::db::sessions::store(&app.state.db, "stale-session", None, "{}", Some(1))
        .await
        .unwrap();
    // The housekeeping timer runs at start and then every few minutes.
    app.restart().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM sessions WHERE id = 'stale-session'",
        )
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the expired session was never purged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads until the server closes the connection; how long that took, or `None` if it
/// stayed open for `wait`.
async fn closed_within(mut stream: TcpStream, wait: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let read_all = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(wait, read_all)
        .await
        .ok()
        .map(|()| started.elapsed())
}

/// `GET /healthz` on a fresh connection from `local` (a loopback address).
async fn healthz_from(app: &TestApp, local: &str) -> String {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{local}:0").parse().unwrap()).unwrap();
    let mut stream = socket
        .connect(format!("127.0.0.1:{}", app.port).parse().unwrap())
        .await
        .unwrap();
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        app.port
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut answer))
        .await
        .expect("healthz answers")
        .unwrap();
    answer
}

#[tokio::test]
async fn slow_clients_are_capped_per_address_and_cut_off_after_the_header_timeout() {
    let app = spawn_app_with(|vars| {
        vars.insert("MAX_CONNECTIONS_PER_CLIENT".into(), "20".into());
    })
    .await;
    let mut slow = Vec::new();
    for _ in 0..40 {
        let mut stream = TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
        // Headers that never end.
        let _ = stream
            .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: 1")
            .await;
        slow.push(stream);
    }
    let waits: Vec<_> = slow
        .into_iter()
        .map(|s| tokio::spawn(closed_within(s, Duration::from_secs(30))))
        .collect();

    // Another client still gets through while they hang.
    let answer = healthz_from(&app, "127.0.0.2").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    let mut closed = Vec::new();
    for wait in waits {
        closed.push(wait.await.unwrap());
    }
    let at_once = closed
        .iter()
        .filter(|c| c.is_some_and(|d| d < Duration::from_secs(5)))
        .count();
    assert!(
        at_once >= 20,
        "connections over the cap are closed at once: {closed:?}"
    );
    assert!(
        closed.iter().all(Option::is_some),
        "slow headers are cut off after the timeout: {closed:?}"
    );
    let answer = healthz_from(&app, "127.0.0.1").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}
