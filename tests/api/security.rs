//! Security properties checked over every route of `autosend::web::route_table()` (the
//! table the router is built from, so a new route is covered the day it is added): CSRF,
//! who may see and change what, headers and cookies, redirects, login timing, secrets.

use std::collections::BTreeSet;

use poem::http::Method;

use crate::helpers::{ACTIVE, PASSWORD, client, meta_csrf};
use crate::world::{
    MANAGER_EMAIL, OTHER, OWNER, Objects, ROOT, VIEWER, World, anonymous, is_unsafe, objects, post,
};

/// The only routes that accept a state-changing request without our CSRF token, and why:
/// RFC 8058 one-click unsubscribe is POSTed by mail providers without our cookie; its signed
/// token is the authorisation.
const CSRF_EXEMPT: &[&str] = &["/u/:token"];

/// A body that would change something on every form route if CSRF let it through: the
/// fields of every form at once, valid where it matters (the password change knows the
/// old password, the mailing form names real objects).
fn tempting_form(world: &World) -> Vec<(String, String)> {
    let owner_recipient = world.recipient.to_string();
    let message = world.message.to_string();
    [
        ("email", "changed@example.com"),
        ("full_name", "Changed Name"),
        ("comment", "changed"),
        ("subject", "Changed"),
        ("body", "Changed body"),
        ("message_id", &message),
        ("recipient_ids", &owner_recipient),
        ("start_at", "2031-01-01T09:00"),
        ("end_at", "2031-02-01T09:00"),
        ("period", "daily"),
        ("old_password", PASSWORD),
        ("password", "a brand new password"),
        ("password2", "a brand new password"),
        ("phone", "+1 555 0100"),
        ("country", "Nowhere"),
        ("is_active", "on"),
        ("view_all_mailings", "on"),
        ("disable_mailing", "on"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// How a refused request carries its CSRF token.
enum Token<'a> {
    Missing,
    Field(&'a str),
    Header(&'a str),
}

#[tokio::test]
async fn every_state_changing_route_refuses_a_missing_or_wrong_csrf_token() {
    let world = World::build().await;
    let table = autosend::web::route_table();
    let paths: BTreeSet<&str> = table.iter().map(|(path, _)| *path).collect();
    let unsafe_routes: Vec<(&str, Method)> = table
        .iter()
        .filter(|(_, method)| is_unsafe(method))
        .cloned()
        .collect();
    assert!(
        unsafe_routes.len() >= 20,
        "the route table lists the POST routes"
    );
    for exempt in CSRF_EXEMPT {
        assert!(paths.contains(exempt), "{exempt} is still a route");
    }

    let root = world.browser(ROOT).await;
    let root_token = world.app.csrf_token_as(&root).await;
    let foreign = world.app.csrf_token().await;
    assert_ne!(root_token, foreign);
    let form = tempting_form(&world);
    let before = world.snapshot().await;

    let mut checked = 0;
    // Every route the table has for a state-changing method, and every other unsafe
    // method on every path (the middleware must refuse before routing, so a PUT or DELETE
    // route added later is covered too).
    let mut cases: Vec<(&str, Method)> = unsafe_routes.clone();
    for path in &paths {
        for method in [Method::PUT, Method::PATCH, Method::DELETE] {
            cases.push((path, method));
        }
    }
    for (pattern, method) in &cases {
        if CSRF_EXEMPT.contains(pattern) {
            continue;
        }
        let url = world.app.url(&world.path(pattern));
        let attempts = [
            (
                "a browser without cookies, no token",
                &client(),
                Token::Missing,
            ),
            ("the superuser's browser, no token", &root, Token::Missing),
            (
                "the superuser's browser, a forged form token",
                &root,
                Token::Field("forged"),
            ),
            (
                "the superuser's browser, a forged header token",
                &root,
                Token::Header("bm90IGEgdG9rZW4gYXQgYWxs"),
            ),
            (
                "the superuser's browser, another browser's token",
                &root,
                Token::Field(&foreign),
            ),
        ];
        for (who, browser, token) in attempts {
            let mut fields = form.clone();
            let mut request = browser.request(method.clone(), &url);
            match token {
                Token::Field(token) => fields.push(("csrf_token".into(), token.into())),
                Token::Header(token) => request = request.header("X-CSRF-Token", token),
                Token::Missing => {}
            }
            let resp = request.form(&fields).send().await.unwrap();
            let status = resp.status();
            let body = resp.text().await.unwrap();
            assert!(
                status == 403 && body.contains("CSRF verification failed"),
                "{method} {pattern} with {who}: {status}"
            );
            checked += 1;
        }
    }
    assert_eq!(
        world.snapshot().await,
        before,
        "a refused request changed the database"
    );
    assert_eq!(
        world.app.get("/").await.status(),
        200,
        "the server is still up"
    );

    // The exemption is not an open door: a forged unsubscribe token changes nothing.
    let resp = client()
        .post(world.app.url("/u/Zm9yZ2Vk.Zm9yZ2Vk"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(world.snapshot().await, before);

    // The control: the same requests with the right token get past the CSRF check (so the
    // 403s above were the check, not some other refusal).
    for (pattern, method) in &unsafe_routes {
        let mut fields = form.clone();
        fields.push(("csrf_token".into(), root_token.clone()));
        let resp = root
            .request(method.clone(), world.app.url(&world.path(pattern)))
            .form(&fields)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert!(
            !body.contains("CSRF verification failed"),
            "{method} {pattern} with the right token: {status}"
        );
    }
    println!(
        "csrf: {} routes in the table, {} state-changing ({} exempt), {} refused requests checked",
        table.len(),
        unsafe_routes.len(),
        CSRF_EXEMPT.len(),
        checked
    );
}

/// Who asks, in the access matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Owner,
    Other,
    /// `view_all_mailings` only.
    Viewer,
    /// `view_all_mailings` and `disable_mailing`.
    Manager,
    Superuser,
    Anonymous,
}

const EVERYONE: [Who; 6] = [
    Who::Owner,
    Who::Other,
    Who::Viewer,
    Who::Manager,
    Who::Superuser,
    Who::Anonymous,
];

/// What the answer must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The page (or fragment, or CSV), with this status.
    Shown(u16),
    /// Done: 303 somewhere other than the login page, and the object changed.
    Done,
    /// 404: as if the object did not exist.
    Hidden,
    /// 403: seen, but read-only for this user.
    ReadOnly,
    /// 303 to `/users/login?next=<this URL>`.
    Login,
}

use Expect::{Done, Hidden, Login, ReadOnly, Shown};

/// One row of the matrix: a route with its expected answer per [`EVERYONE`] entry.
struct Row {
    method: Method,
    /// `{r}` recipient, `{m}` message, `{g}` mailing, `{n}` a message no mailing uses,
    /// `{o}` the owner's user id, `{a}` the mailing after it was archived.
    path: &'static str,
    form: &'static [(&'static str, &'static str)],
    expect: [Expect; 6],
}

/// `{r}` and the like are filled like the path.
const RECIPIENT_FORM: &[(&str, &str)] = &[
    ("email", "changed.{r}@example.com"),
    ("full_name", "Changed Name"),
    ("comment", "changed"),
];
const MESSAGE_FORM: &[(&str, &str)] = &[("subject", "Changed"), ("body", "Changed body")];
const MAILING_FORM: &[(&str, &str)] = &[
    ("message_id", "{m}"),
    ("recipient_ids", "{r}"),
    ("start_at", "2031-01-01T09:00"),
    ("end_at", "2031-02-01T09:00"),
    ("period", "daily"),
];

fn matrix() -> Vec<Row> {
    let get = |path, expect| Row {
        method: Method::GET,
        path,
        form: &[],
        expect,
    };
    let post = |path, form, expect| Row {
        method: Method::POST,
        path,
        form,
        expect,
    };
    //            owner     other   viewer    manager   superuser anonymous
    let see = [
        Shown(200),
        Hidden,
        Shown(200),
        Shown(200),
        Shown(200),
        Login,
    ];
    let stopped = [
        Shown(286),
        Hidden,
        Shown(286),
        Shown(286),
        Shown(286),
        Login,
    ];
    let edit_page = [Shown(200), Hidden, ReadOnly, ReadOnly, Shown(200), Login];
    let change = [Done, Hidden, ReadOnly, ReadOnly, Done, Login];
    let finish = [Done, Hidden, ReadOnly, Done, Done, Login];
    let finish_page = [Shown(200), Hidden, ReadOnly, Shown(200), Shown(200), Login];
    vec![
        get("/clients/{r}", see),
        get("/clients/{r}/edit", edit_page),
        // The confirmation pages (SPEC §12) answer whoever may act, and change nothing.
        get("/clients/{r}/delete", edit_page),
        get("/messages/{n}/delete", edit_page),
        get("/mailings/{g}/delete", edit_page),
        get("/mailings/{g}/send", edit_page),
        get("/mailings/{g}/disable", finish_page),
        post("/clients/{r}/edit", RECIPIENT_FORM, change),
        post("/clients/{r}/delete", &[], change),
        get("/messages/{m}", see),
        get("/messages/{m}/edit", edit_page),
        post("/messages/{m}/edit", MESSAGE_FORM, change),
        post("/messages/{n}/delete", &[], change),
        get("/mailings/{g}", see),
        get("/mailings/{g}/edit", edit_page),
        get("/mailings/{g}/progress", stopped),
        get("/mailings/{g}/logs", see),
        post("/mailings/{g}/edit", MAILING_FORM, change),
        post("/mailings/{g}/delete", &[], change),
        // `{a}`: the mailing, archived first (only an archived mailing is restored).
        get("/mailings/{a}/restore", edit_page),
        post("/mailings/{a}/restore", &[], change),
        post("/mailings/{g}/send", &[("dry_run", "1")], change),
        post("/mailings/{g}/disable", &[], finish),
        get("/mailings/reports/?user={o}", see),
        get("/mailings/reports/export.csv?user={o}", see),
    ]
}

/// One object of each kind, as text (`None` when deleted), with the number of runs of the
/// mailing: what a refused request must leave alone and a done one must change.
async fn object_state(world: &World, ids: Objects) -> String {
    let db = &world.app.state.db;
    let recipient = autosend::db::recipients::get(db, ids.recipient)
        .await
        .unwrap();
    let message = autosend::db::messages::get(db, ids.message).await.unwrap();
    let spare = autosend::db::messages::get(db, ids.spare_message)
        .await
        .unwrap();
    let mailing = autosend::db::mailings::get(db, ids.mailing).await.unwrap();
    let runs: i64 =
        sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM runs WHERE mailing_id = $1")
            .bind(ids.mailing)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    format!("{recipient:?}\n{message:?}\n{spare:?}\n{mailing:?}\nruns: {runs}")
}

#[tokio::test]
async fn the_access_matrix_of_every_object_route() {
    let world = World::build().await;
    let owner = world.users[OWNER];
    let mut browsers = Vec::new();
    for who in EVERYONE {
        let browser = match who {
            Who::Owner => world.browser(OWNER).await,
            Who::Other => world.browser(OTHER).await,
            Who::Viewer => world.browser(VIEWER).await,
            Who::Manager => world.browser(MANAGER_EMAIL).await,
            Who::Superuser => world.browser(ROOT).await,
            Who::Anonymous => anonymous(&world).await,
        };
        browsers.push(browser);
    }
    let mut failures = Vec::new();
    let mut cells = 0;
    for (row_index, row) in matrix().into_iter().enumerate() {
        for (i, who) in EVERYONE.into_iter().enumerate() {
            // Fresh objects per cell: a delete or a send in one cell cannot decide another.
            let ids = objects(&world.app, owner, &format!("c{row_index}-{i}")).await;
            let fill = |s: &str| {
                s.replace("{r}", &ids.recipient.to_string())
                    .replace("{m}", &ids.message.to_string())
                    .replace("{g}", &ids.mailing.to_string())
                    .replace("{n}", &ids.spare_message.to_string())
                    .replace("{o}", &owner.to_string())
            };
            let path = fill(row.path).replace("{a}", &ids.mailing.to_string());
            if row.path.contains("{a}") {
                sqlx::query("UPDATE mailings SET archived_at = $2 WHERE id = $1")
                    .bind(ids.mailing)
                    .bind(autosend::db::now_ms())
                    .execute(&world.app.state.db.pool)
                    .await
                    .unwrap();
            }
            let before = object_state(&world, ids).await;
            let browser = &browsers[i];
            let resp = if row.method == Method::GET {
                world.app.get_as(browser, &path).await
            } else {
                let form: Vec<(String, String)> = row
                    .form
                    .iter()
                    .map(|(k, v)| (k.to_string(), fill(v)))
                    .collect();
                let form: Vec<(&str, &str)> =
                    form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                post(&world, browser, &path, &form).await
            };
            let status = resp.status().as_u16();
            let location = resp
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_string());
            let after = object_state(&world, ids).await;
            let expected = row.expect[i];
            let login = format!(
                "/users/login?next={}",
                percent_encoding::utf8_percent_encode(&path, percent_encoding::NON_ALPHANUMERIC)
            );
            let ok = match expected {
                Shown(code) => status == code && before == after,
                Done => {
                    status == 303
                        && location
                            .as_deref()
                            .is_some_and(|l| !l.starts_with("/users/"))
                        && before != after
                }
                Hidden => status == 404 && before == after,
                ReadOnly => status == 403 && before == after,
                Login => status == 303 && location.as_deref() == Some(&login) && before == after,
            };
            if !ok {
                failures.push(format!(
                    "{} {} as {who:?}: expected {expected:?}, got {status} {location:?}{}",
                    row.method,
                    row.path,
                    if before == after {
                        " (unchanged)"
                    } else {
                        " (changed)"
                    }
                ));
            }
            cells += 1;
        }
    }
    println!("access matrix: {cells} cells, {} failures", failures.len());
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The headers of SPEC §11, whatever the page and its status.
fn assert_security_headers(what: &str, resp: &reqwest::Response) {
    let h = resp.headers();
    let header = |name: &str| {
        h.get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("{what}: no {name} header"))
            .to_string()
    };
    let csp = header("content-security-policy");
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "object-src 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(
            csp.contains(directive),
            "{what}: CSP {csp:?} lacks {directive}"
        );
    }
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(header("x-frame-options"), "DENY", "{what}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header("referrer-policy"), "same-origin", "{what}");
}

#[tokio::test]
async fn every_get_route_has_the_security_headers_for_anonymous_and_logged_in_users() {
    let world = World::build().await;
    let root = world.browser(ROOT).await;
    let anon = anonymous(&world).await;
    let mut pages = 0;
    for (pattern, method) in autosend::web::route_table() {
        if method != Method::GET {
            continue;
        }
        let path = world.path(pattern);
        // The superuser first: the anonymous visit of the activation link uses it up.
        for (who, browser) in [("superuser", &root), ("anonymous", &anon)] {
            let resp = world.app.get_as(browser, &path).await;
            let what = format!("GET {pattern} as {who} ({})", resp.status());
            assert!(resp.status().as_u16() < 500, "{what}");
            if who == "superuser" {
                assert!(resp.status().as_u16() < 400, "{what}: every page opens");
            }
            assert_security_headers(&what, &resp);
            pages += 1;
        }
    }
    // Error pages and refusals too.
    for path in ["/no-such-page", "/clients/abc"] {
        assert_security_headers(path, &world.app.get_as(&root, path).await);
    }
    let refused = client()
        .post(world.app.url("/clients/"))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_security_headers("a CSRF refusal", &refused);
    println!("headers: {pages} GET answers checked");
}

/// The `Set-Cookie` line that sets `name`.
fn set_cookie(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(str::to_string)
}

/// `name=value` of a `Set-Cookie` line.
fn cookie_pair(line: &str) -> String {
    line.split(';').next().unwrap().trim().to_string()
}

/// Logs in by hand (no cookie store), with the `Cookie` header given; returns the answer.
async fn manual_login(world: &World, cookie: &str, email: &str) -> reqwest::Response {
    let http = client();
    let page = http
        .get(world.app.url("/"))
        .header("Cookie", cookie)
        .send()
        .await
        .unwrap();
    let token = meta_csrf(&page.text().await.unwrap()).unwrap();
    http.post(world.app.url("/users/login"))
        .header("Cookie", cookie)
        .form(&[
            ("email", email),
            ("password", PASSWORD),
            ("csrf_token", &token),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn session_cookies_are_httponly_lax_site_wide_and_secure_only_over_https() {
    for https in [false, true] {
        let world = World::build_with(|vars| {
            if https {
                vars.insert("BASE_URL".into(), "https://mail.example.com".into());
            }
        })
        .await;
        let first = client().get(world.app.url("/")).send().await.unwrap();
        let csrf = set_cookie(&first, "csrftoken").expect("the first visit sets the CSRF cookie");
        // A session id planted by an attacker (a real one: an anonymous session of theirs).
        let planted = "sessionid=planted-by-an-attacker";
        let cookie = format!("{}; {planted}", cookie_pair(&csrf));
        let login = manual_login(&world, &cookie, OWNER).await;
        assert_eq!(login.status(), 303);
        let session = set_cookie(&login, "sessionid").expect("login sets the session cookie");
        for line in [&csrf, &session] {
            let attrs: Vec<String> = line
                .split(';')
                .skip(1)
                .map(|a| a.trim().to_ascii_lowercase())
                .collect();
            let what = format!("https={https}: {line}");
            assert!(attrs.iter().any(|a| a == "httponly"), "{what}");
            assert!(attrs.iter().any(|a| a == "samesite=lax"), "{what}");
            assert!(attrs.iter().any(|a| a == "path=/"), "{what}");
            assert_eq!(attrs.iter().any(|a| a == "secure"), https, "{what}");
        }
        // No fixation: the id changes at login, and the planted one is worth nothing.
        let sid = cookie_pair(&session);
        assert_ne!(sid, planted);
        let profile = |cookie: String| {
            client()
                .get(world.app.url("/users/profile"))
                .header("Cookie", cookie)
                .send()
        };
        assert_eq!(profile(sid.clone()).await.unwrap().status(), 200);
        assert_eq!(profile(planted.to_string()).await.unwrap().status(), 303);
        // A second login from the same browser renews the id again.
        let again = manual_login(&world, &format!("{}; {sid}", cookie_pair(&csrf)), OWNER).await;
        let renewed = cookie_pair(&set_cookie(&again, "sessionid").unwrap());
        assert_ne!(renewed, sid);
        assert_eq!(
            profile(sid).await.unwrap().status(),
            303,
            "the old id is dead"
        );
    }
}

#[tokio::test]
async fn next_never_leads_off_the_site() {
    let world = World::build().await;
    let base = url::Url::parse("http://autosend.test/").unwrap();
    let evil = [
        "//evil.com",
        "///evil.com",
        "https://evil.com",
        "http:evil.com",
        "/\\evil.com",
        "\\\\evil.com",
        "/\\/evil.com",
        "%2F%2Fevil.com",
        "/%2F/evil.com",
        "%5C%5Cevil.com",
        " //evil.com",
        "\t//evil.com",
        "/\t/evil.com",
        "/\r\n/evil.com",
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "data:text/html,<script>alert(1)</script>",
    ];
    let logged_in = world.browser(OWNER).await;
    let mut tried = 0;
    for (i, next) in evil.into_iter().enumerate() {
        let encoded =
            percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
        // Fully encoded, through a real login (a fresh account each time: five attempts per
        // account and twenty per address are allowed, so the login side tries each value
        // once) ...
        let email = format!("victim{i}@example.com");
        world.app.create_user(&email, ACTIVE).await;
        let path = format!("/users/login?next={encoded}");
        let login = post(
            &world,
            &anonymous(&world).await,
            &path,
            &[("email", &email), ("password", PASSWORD)],
        )
        .await;
        let mut answers = vec![("login", login)];
        // ... and the login page of someone logged in (it redirects at once), also as the
        // attacker would write it in a link.
        for query in [next.to_string(), encoded] {
            let path = format!("/users/login?next={query}");
            answers.push((
                "login page, logged in",
                world.app.get_as(&logged_in, &path).await,
            ));
        }
        for (what, resp) in answers {
            assert_eq!(resp.status(), 303, "{what} next={next:?}");
            let location = resp.headers()["location"].to_str().unwrap().to_string();
            let target = base.join(&location).unwrap();
            assert!(
                target.scheme() == "http" && target.host_str() == Some("autosend.test"),
                "{what} with next={next:?} sends to {location:?}"
            );
            tried += 1;
        }
    }
    // The control: a local target is followed.
    let resp = world
        .app
        .get_as(&logged_in, "/users/login?next=%2Fclients%2F%3Fq%3Da")
        .await;
    assert_eq!(resp.headers()["location"], "/clients/?q=a");
    println!("redirects: {tried} hostile next values refused");
}

/// The median of some durations.
fn median(mut times: Vec<std::time::Duration>) -> std::time::Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::test]
async fn unknown_email_and_wrong_password_take_about_the_same_time() {
    let world = World::build().await;
    let http = anonymous(&world).await;
    let token = meta_csrf(&world.app.get_html_as(&http, "/users/login").await).unwrap();
    let attempt = |email: String| {
        let http = http.clone();
        let url = world.app.url("/users/login");
        let token = token.clone();
        async move {
            let started = std::time::Instant::now();
            let resp = http
                .post(url)
                .form(&[
                    ("email", email.as_str()),
                    ("password", "not the password"),
                    ("csrf_token", &token),
                ])
                .send()
                .await
                .unwrap();
            let took = started.elapsed();
            assert_eq!(resp.status(), 422, "{email}");
            (took, resp.text().await.unwrap())
        }
    };
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    // Interleaved, so a slow moment of the machine hits both; five per account is the
    // per-account limit, ten in all is under the per-address one.
    for i in 0..5 {
        let (took, page) = attempt(format!("nobody{i}@example.com")).await;
        assert!(page.contains("The e-mail address or the password is not right."));
        unknown.push(took);
        let (took, page) = attempt(OWNER.to_string()).await;
        assert!(page.contains("The e-mail address or the password is not right."));
        wrong.push(took);
    }
    let (unknown, wrong) = (median(unknown), median(wrong));
    println!("login timing: unknown e-mail {unknown:?}, wrong password {wrong:?} (medians of 5)");
    // argon2 dominates both paths; without the dummy hash the unknown path is ~100× faster.
    assert!(
        unknown * 3 >= wrong && wrong * 3 >= unknown,
        "unknown e-mail {unknown:?} vs wrong password {wrong:?}"
    );
}

/// Every file under `dir`, with its text (lossy: a secret is ASCII either way).
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                found.push((path, text));
            }
        }
    }
    found
}

/// The e-mails of the file outbox whose raw text contains `needle`, decoded.
fn outbox_mails(dir: &std::path::Path, needle: &str) -> Vec<crate::helpers::Mail> {
    let outbox = dir.join("data/outbox");
    if !outbox.exists() {
        return Vec::new();
    }
    files_under(&outbox)
        .into_iter()
        .filter(|(_, raw)| raw.contains(needle))
        .map(|(_, raw)| crate::helpers::Mail::parse(&raw))
        .collect()
}

/// The real binary (`serve`, file outbox, log files): a realistic day of account work and a
/// failing request mailed to ADMINS, then every page, header, e-mail, log file and console
/// line is searched for the secrets and for every password typed.
#[tokio::test]
async fn no_secret_or_typed_password_leaks_into_pages_mails_or_logs() {
    use crate::cli::{autosend, serve, terminate};
    const SECRET_KEY: &str = "Zq8-SECRET-KEY-never-shown-4f1e9c27d3b8a6";
    const SMTP_PASSWORD: &str = "Smtp-PASSWORD-never-shown-77d2";
    const METRICS_TOKEN: &str = "Metrics-TOKEN-never-shown-5a1c";
    const ROOT_PW: &str = "Root-typed-PW-1f3a9";
    const SIGNUP_PW: &str = "Signup-typed-PW-8c2e4";
    const CHANGED_PW: &str = "Changed-typed-PW-3b7d1";
    const WRONG_PW: &str = "Wrong-typed-PW-6e0f2";
    const RESET_PW: &str = "Reset-typed-PW-9a4c8";
    const FORM_PW: &str = "Form-typed-PW-2d6b0";
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("SECRET_KEY", SECRET_KEY),
        ("SMTP_PASSWORD", SMTP_PASSWORD),
        ("SMTP_USER", "mailer"),
        ("METRICS_TOKEN", METRICS_TOKEN),
        ("ADMINS", "ops@example.com"),
        ("LOG_SQL", "true"),
        ("LOG_LEVEL", "debug"),
    ];
    {
        use tokio::io::AsyncWriteExt as _;
        let mut cmd = autosend(
            dir.path(),
            &[
                "createsuperuser",
                "--email",
                "root@example.com",
                "--password-stdin",
            ],
            &env,
        );
        cmd.stdin(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(format!("{ROOT_PW}\n").as_bytes())
            .await
            .unwrap();
        drop(stdin);
        let out = child.wait_with_output().await.unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let (mut child, base, stdout) = serve(dir.path(), &env).await;
    let stderr = child.stderr.take().unwrap();
    let console = tokio::spawn(async move {
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut tokio::io::BufReader::new(stderr), &mut text)
            .await
            .unwrap();
        text
    });

    // Everything the server answers, headers included.
    let mut seen: Vec<String> = Vec::new();
    async fn keep(seen: &mut Vec<String>, resp: reqwest::Response) -> (u16, String) {
        let status = resp.status().as_u16();
        let headers = format!("{:?}", resp.headers());
        let body = resp.text().await.unwrap();
        seen.push(format!("{headers}\n{body}"));
        (status, body)
    }
    let browser = client();
    let url = |path: &str| format!("{base}{path}");
    async fn token(browser: &reqwest::Client, url: String) -> String {
        meta_csrf(&crate::html::fetch(browser.get(url)).await.text).unwrap()
    }
    let submit = async |browser: &reqwest::Client, path: &str, fields: &[(&str, &str)]| {
        let mut form = fields.to_vec();
        let csrf = token(browser, url("/")).await;
        form.push(("csrf_token", &csrf));
        browser.post(url(path)).form(&form).send().await.unwrap()
    };

    // Sign up, activate, log in, change the password, mistype it, reset it.
    let signup = [
        ("email", "newbie@example.com"),
        ("full_name", "New Bie"),
        ("password", SIGNUP_PW),
        ("password2", SIGNUP_PW),
    ];
    let (status, _) = keep(&mut seen, submit(&browser, "/users/signup", &signup).await).await;
    assert_eq!(status, 200);
    let activation = outbox_mails(dir.path(), "newbie@example.com");
    assert_eq!(activation.len(), 1, "the activation e-mail");
    let link = activation[0].link_path();
    keep(&mut seen, browser.get(url(&link)).send().await.unwrap()).await;
    let login = |pw: &'static str| [("email", "newbie@example.com"), ("password", pw)];
    let (status, _) = keep(
        &mut seen,
        submit(&browser, "/users/login", &login(SIGNUP_PW)).await,
    )
    .await;
    assert_eq!(status, 303, "the new account logs in");
    for page in ["/", "/users/profile", "/users/password-change"] {
        keep(&mut seen, browser.get(url(page)).send().await.unwrap()).await;
    }
    let change = [
        ("old_password", SIGNUP_PW),
        ("password", CHANGED_PW),
        ("password2", CHANGED_PW),
    ];
    let (status, _) = keep(
        &mut seen,
        submit(&browser, "/users/password-change", &change).await,
    )
    .await;
    assert_eq!(status, 303, "the password is changed");
    keep(&mut seen, submit(&browser, "/users/logout", &[]).await).await;
    let (status, _) = keep(
        &mut seen,
        submit(&browser, "/users/login", &login(WRONG_PW)).await,
    )
    .await;
    assert_eq!(status, 422);
    keep(
        &mut seen,
        submit(
            &browser,
            "/users/password-reset",
            &[("email", "newbie@example.com")],
        )
        .await,
    )
    .await;
    let reset = outbox_mails(dir.path(), "/users/password-reset/");
    assert_eq!(reset.len(), 1, "the reset e-mail");
    let link = reset[0].link_path();
    keep(&mut seen, browser.get(url(&link)).send().await.unwrap()).await;
    let (status, _) = keep(
        &mut seen,
        submit(
            &browser,
            &link,
            &[("password", RESET_PW), ("password2", RESET_PW)],
        )
        .await,
    )
    .await;
    assert!(status < 400, "the reset works: {status}");
    let (status, _) = keep(
        &mut seen,
        submit(&browser, "/users/login", &login(RESET_PW)).await,
    )
    .await;
    assert_eq!(status, 303);

    // The superuser: metrics with the bearer token, then a request that fails, with a
    // password typed in its form and the token in a header.
    let root = client();
    let root_login = [("email", "root@example.com"), ("password", ROOT_PW)];
    let (status, _) = keep(&mut seen, submit(&root, "/users/login", &root_login).await).await;
    assert_eq!(status, 303);
    let metrics = client()
        .get(url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(keep(&mut seen, metrics).await.0, 200);
    let csrf = token(&root, url("/admin/error-test")).await;
    let failing = root
        .post(url("/admin/error-test?api_key=") + FORM_PW)
        .header("X-Api-Key", METRICS_TOKEN)
        .form(&[
            ("password", FORM_PW),
            ("note", "hello"),
            ("csrf_token", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(keep(&mut seen, failing).await.0, 500);
    // The report is mailed by a background worker: wait (bounded) for it to appear.
    let mut report = Vec::new();
    for _ in 0..200 {
        report = outbox_mails(dir.path(), "ops@example.com");
        if !report.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(report.len(), 1, "the error report reached ADMINS");
    assert!(report[0].text.contains("Deliberate test error"));
    // Stopping flushes the log writers.
    assert_eq!(terminate(child).await, 0);
    let console = console.await.unwrap();

    let mut haystacks: Vec<(String, String)> = files_under(dir.path())
        .into_iter()
        .filter(|(path, _)| !path.to_string_lossy().ends_with(".db"))
        .map(|(path, text)| (path.display().to_string(), text))
        .collect();
    let logs = haystacks
        .iter()
        .filter(|(path, _)| path.contains("/logs/"))
        .count();
    assert!(logs >= 4, "the log files were written: {haystacks:?}");
    haystacks.push(("console (stderr)".into(), console));
    haystacks.push(("stdout".into(), stdout.join("\n")));
    for (i, page) in seen.iter().enumerate() {
        haystacks.push((format!("answer #{i}"), page.clone()));
    }
    let needles = [
        ("SECRET_KEY", SECRET_KEY),
        ("SMTP_PASSWORD", SMTP_PASSWORD),
        ("METRICS_TOKEN", METRICS_TOKEN),
        ("the superuser's password", ROOT_PW),
        ("the sign-up password", SIGNUP_PW),
        ("the changed password", CHANGED_PW),
        ("a mistyped password", WRONG_PW),
        ("the reset password", RESET_PW),
        ("a password in a failing form", FORM_PW),
    ];
    let mut leaks = Vec::new();
    for (place, text) in &haystacks {
        for (what, secret) in needles {
            if text.contains(secret) {
                leaks.push(format!("{what} in {place}"));
            }
        }
    }
    println!(
        "secrets: {} needles searched in {} places ({logs} log files, {} answers)",
        needles.len(),
        haystacks.len(),
        seen.len()
    );
    assert!(leaks.is_empty(), "\n{}", leaks.join("\n"));
}
