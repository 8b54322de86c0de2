//! Error reporting end to end (SPEC §8): 500s e-mailed to ADMINS, 404s to MANAGERS,
//! `/admin/errors`, `/metrics`, `sendtestemail`, and a real SMTP server.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use autosend::db::error_groups;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::cli::{autosend, output};
use crate::helpers::{ACTIVE, Mail, SUPERUSER, TestApp, client, spawn_app_with};

const ADMIN: &str = "ops@example.com";
const MANAGER: &str = "pm@example.com";
const ROOT: &str = "root@example.com";
const TEST_ERROR: &str = "Deliberate test error from /admin/error-test";
const SUBJECT_EXTERNAL: &str =
    "[autosend] ERROR (EXTERNAL IP): Internal Server Error: /admin/error-test";
const SUBJECT_INTERNAL: &str =
    "[autosend] ERROR (internal IP): Internal Server Error: /admin/error-test";

/// An app with ADMINS and MANAGERS, reports in one e-mail, and a logged-in superuser.
async fn reporting_app(customize: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
    let app = spawn_app_with(|vars| {
        vars.insert("ADMINS".into(), format!("Ops <{ADMIN}>"));
        vars.insert("MANAGERS".into(), MANAGER.into());
        vars.insert("ERROR_EMAIL_CHUNK_SIZE".into(), "10000000".into());
        customize(vars);
    })
    .await;
    app.create_user(ROOT, SUPERUSER).await;
    app.login_as(ROOT).await;
    app
}

/// POSTs to `/admin/error-test` (with extra headers), expects the 500, returns its request id.
async fn raise(app: &TestApp, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> String {
    let token = app.csrf_token().await;
    let mut form = fields.to_vec();
    form.push(("csrf_token", &token));
    let mut request = app.client.post(app.url("/admin/error-test")).form(&form);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let resp = request.send().await.unwrap();
    assert_eq!(resp.status(), 500);
    resp.headers()["x-request-id"].to_str().unwrap().to_string()
}

/// Reports handled so far, then the e-mails to `to` (text with `\n` line ends).
async fn flushed_mails_to(app: &TestApp, to: &str) -> Vec<Mail> {
    app.state.reporter.flush().await;
    app.mails_to(to)
        .into_iter()
        .map(|mut mail| {
            mail.text = mail.text.replace("\r\n", "\n");
            mail
        })
        .collect()
}

#[tokio::test]
async fn a_500_mails_admins_a_masked_report_with_the_request_id() {
    let app = reporting_app(|_| {}).await;
    let rid = raise(
        &app,
        &[
            ("note", "visible note"),
            ("password", "hunter2-secret-pw"),
            ("card_token", "tok-123456789"),
        ],
        &[],
    )
    .await;

    let mails = flushed_mails_to(&app, ADMIN).await;
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let mail = &mails[0];
    assert_eq!(mail.subject, SUBJECT_EXTERNAL);
    let text = &mail.text;
    assert!(text.contains(&format!("Request ID: {rid}\n")), "{text}");
    assert!(text.contains(TEST_ERROR));
    assert!(text.contains("a step under the test handler failed"));
    assert!(text.contains("simulated I/O failure at the root of the test error"));
    assert!(text.contains(ROOT), "the user is named");
    assert!(
        text.contains("Route:          /admin/error-test\n"),
        "{text}"
    );
    assert!(text.contains("note = visible note\n"));
    for field in ["password", "card_token", "csrf_token"] {
        assert!(
            text.contains(&format!("{field} = ********************\n")),
            "{field} is masked: {text}"
        );
    }
    for secret in [
        "hunter2-secret-pw",
        "tok-123456789",
        crate::helpers::SECRET_KEY,
    ] {
        assert!(!text.contains(secret), "{secret} leaked");
        assert!(!mail.html.contains(secret), "{secret} leaked into the HTML");
    }
    assert!(mail.html.contains(TEST_ERROR), "an HTML alternative");
    assert!(app.mails_to(MANAGER).is_empty(), "managers get 404s only");
}

#[tokio::test]
async fn the_subject_says_internal_by_internal_ips_through_trusted_proxies_only() {
    // The test client is 127.0.0.1: internal when that is in INTERNAL_IPS.
    let app = reporting_app(|vars| {
        vars.insert("INTERNAL_IPS".into(), "127.0.0.0/8".into());
    })
    .await;
    raise(&app, &[], &[]).await;
    let mails = flushed_mails_to(&app, ADMIN).await;
    assert_eq!(mails[0].subject, SUBJECT_INTERNAL);

    // Behind a trusted proxy, X-Forwarded-For names the client.
    let app = reporting_app(|vars| {
        vars.insert("INTERNAL_IPS".into(), "10.0.0.0/8".into());
        vars.insert("TRUSTED_PROXIES".into(), "127.0.0.1/32".into());
        vars.insert("ERROR_EMAIL_COOLDOWN_SECS".into(), "0".into());
    })
    .await;
    raise(&app, &[], &[("X-Forwarded-For", "10.1.2.3")]).await;
    raise(&app, &[], &[("X-Forwarded-For", "203.0.113.9")]).await;
    let mails = flushed_mails_to(&app, ADMIN).await;
    let subjects: Vec<&str> = mails.iter().map(|m| m.subject.as_str()).collect();
    assert_eq!(subjects, [SUBJECT_INTERNAL, SUBJECT_EXTERNAL]);
    assert!(mails[0].text.contains("Client IP:      10.1.2.3\n"));

    // From a peer that is not a trusted proxy, X-Forwarded-For is not believed.
    let app = reporting_app(|vars| {
        vars.insert("INTERNAL_IPS".into(), "10.0.0.0/8".into());
        vars.insert("TRUSTED_PROXIES".into(), "192.0.2.0/24".into());
    })
    .await;
    raise(&app, &[], &[("X-Forwarded-For", "10.1.2.3")]).await;
    let mails = flushed_mails_to(&app, ADMIN).await;
    assert_eq!(mails[0].subject, SUBJECT_EXTERNAL);
    assert!(mails[0].text.contains("Client IP:      127.0.0.1\n"));
}

#[tokio::test]
async fn debug_or_no_admins_send_nothing() {
    let app = reporting_app(|vars| {
        vars.insert("DEBUG".into(), "true".into());
    })
    .await;
    raise(&app, &[], &[]).await;
    let not_found = app
        .client
        .get(app.url("/missing"))
        .header("Referer", "https://elsewhere.example/")
        .send()
        .await
        .unwrap();
    assert_eq!(not_found.status(), 404);
    app.state.reporter.flush().await;
    assert!(app.outbox.messages().is_empty(), "DEBUG=true mails nothing");
    // The error is still grouped for /admin/errors.
    assert_eq!(error_groups::count_groups(&app.state.db).await.unwrap(), 1);

    let app = reporting_app(|vars| {
        vars.insert("ADMINS".into(), String::new());
    })
    .await;
    raise(&app, &[], &[]).await;
    app.state.reporter.flush().await;
    assert!(app.outbox.messages().is_empty(), "no ADMINS, no e-mail");
}

#[tokio::test]
async fn repeats_inside_the_cooldown_are_counted_and_summarised_in_the_next_mail() {
    let app = reporting_app(|vars| {
        vars.insert("ERROR_EMAIL_COOLDOWN_SECS".into(), "0".into());
    })
    .await;
    raise(&app, &[], &[]).await;
    raise(&app, &[], &[]).await;
    assert_eq!(flushed_mails_to(&app, ADMIN).await.len(), 2, "no cooldown");

    let app = reporting_app(|vars| {
        vars.insert("ERROR_EMAIL_COOLDOWN_SECS".into(), "3600".into());
    })
    .await;
    for _ in 0..3 {
        raise(&app, &[], &[]).await;
    }
    assert_eq!(flushed_mails_to(&app, ADMIN).await.len(), 1);
    assert_eq!(app.state.reporter.stats().suppressed, 2);

    // Two hours later (moved in the database rather than waited for), the next one is
    // e-mailed and says what was held back.
    sqlx::query("UPDATE error_groups SET last_emailed_at = last_emailed_at - 7200000")
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    raise(&app, &[], &[]).await;
    let mails = flushed_mails_to(&app, ADMIN).await;
    assert_eq!(mails.len(), 2);
    assert!(mails[1].text.contains("2 more since "), "{}", mails[1].text);
    assert!(
        mails[1]
            .text
            .contains("Occurrences of this error so far: 4.")
    );
}

#[tokio::test]
async fn admin_errors_lists_groups_and_a_resolved_group_alerts_again() {
    let app = reporting_app(|_| {}).await;
    let first = raise(&app, &[], &[]).await;
    let last = raise(&app, &[], &[]).await;
    assert_eq!(flushed_mails_to(&app, ADMIN).await.len(), 1, "cooldown");

    let page = app.get("/admin/errors").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(TEST_ERROR), "{html}");
    assert!(html.contains("/admin/error-test"));
    assert!(html.contains(&last), "the last request id is shown");
    assert!(!html.contains(&first));
    assert!(
        html.contains(r#"href="/admin/errors""#),
        "navigation has Errors"
    );

    let groups = error_groups::list_groups(&app.state.db, 10, 0)
        .await
        .unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].occurrences, 2);
    let id = groups[0].id;

    let resp = app
        .post_form(&format!("/admin/errors/{id}/resolve"), &[])
        .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/admin/errors");
    let html = app.get("/admin/errors").await.text().await.unwrap();
    assert!(html.contains("was resolved"), "flash: {html}");
    assert!(html.contains("Resolved "));

    // Without the form's token the resolve is refused.
    let forged = app
        .client
        .post(app.url(&format!("/admin/errors/{id}/resolve")))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    raise(&app, &[], &[]).await;
    let mails = flushed_mails_to(&app, ADMIN).await;
    assert_eq!(mails.len(), 2, "a resolved group that recurs alerts again");
    let group = error_groups::find_by_id(&app.state.db, id)
        .await
        .unwrap()
        .unwrap();
    assert!(group.resolved_at.is_none(), "reopened");

    // htmx: the row comes back in place.
    let token = app.csrf_token().await;
    let row = app
        .client
        .post(app.url(&format!("/admin/errors/{id}/resolve")))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(row.status(), 200);
    let row = row.text().await.unwrap();
    assert!(row.starts_with(&format!(r#"<tr id="group-{id}""#)), "{row}");
    assert!(row.contains("Resolved "));
}

#[tokio::test]
async fn error_pages_are_for_superusers_only() {
    let app = reporting_app(|_| {}).await;
    let anonymous = client();
    for path in ["/admin/errors", "/admin/error-test"] {
        let resp = anonymous.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 303, "{path}: anonymous go to the login page");
    }
    app.create_user("someone@example.com", ACTIVE).await;
    let user = app.browser_for("someone@example.com").await;
    for path in ["/admin/errors", "/admin/error-test"] {
        let resp = user.get(app.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    let resp = crate::helpers::post_form_with(&user, &app, "/admin/error-test", &[]).await;
    assert_eq!(resp.status(), 404);

    let page = app.get("/admin/error-test").await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"action="/admin/error-test""#));
    assert!(html.contains("Raise a test error"));
}

/// GETs `path` with a `Referer` (and a user agent), expecting a 404.
async fn get_404(app: &TestApp, path: &str, referer: Option<&str>, agent: &str) {
    let mut request = client().get(app.url(path)).header("User-Agent", agent);
    if let Some(referer) = referer {
        request = request.header("Referer", referer);
    }
    assert_eq!(request.send().await.unwrap().status(), 404, "{path}");
}

#[tokio::test]
async fn broken_links_are_mailed_to_managers_on_each_condition() {
    let app = reporting_app(|_| {}).await;
    let host = format!("127.0.0.1:{}", app.port);
    let browser = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0";
    let external = "https://elsewhere.example/links";

    get_404(&app, "/no-referer", None, browser).await;
    get_404(&app, "/self", Some(&app.url("/self")), browser).await;
    get_404(&app, "/wp-login.php", Some(external), browser).await;
    get_404(&app, "/favicon.ico", Some(external), browser).await;
    get_404(
        &app,
        "/crawled",
        Some(external),
        "Mozilla/5.0 (compatible; Googlebot/2.1)",
    )
    .await;
    assert!(
        flushed_mails_to(&app, MANAGER).await.is_empty(),
        "none of these is worth a manager's time"
    );

    get_404(&app, "/gone", Some(&app.url("/")), browser).await;
    get_404(&app, "/gone", Some(&app.url("/")), browser).await;
    get_404(&app, "/gone", Some(external), browser).await;
    let mails = flushed_mails_to(&app, MANAGER).await;
    assert_eq!(mails.len(), 2, "the same (path, referer) once a day");
    assert_eq!(
        mails[0].subject,
        format!("[autosend] Broken INTERNAL link on {host}")
    );
    assert_eq!(
        mails[1].subject,
        format!("[autosend] Broken link on {host}")
    );
    let body = &mails[0].text;
    for line in [
        format!("Referrer: {}\n", app.url("/")),
        format!("Requested URL: http://{host}/gone\n"),
        format!("User agent: {browser}\n"),
        "IP address: 127.0.0.1\n".to_string(),
    ] {
        assert!(body.contains(&line), "{line:?} in {body}");
    }
    assert!(
        app.mails_to(ADMIN).is_empty(),
        "a 404 is not an error report"
    );
    assert_eq!(app.state.reporter.stats().broken_links_sent, 2);
}

#[tokio::test]
async fn metrics_are_for_superusers_and_the_token_bearer_only() {
    const TOKEN: &str = "metrics-token-for-tests-0123456789";
    let app = reporting_app(|vars| {
        vars.insert("METRICS_TOKEN".into(), TOKEN.into());
    })
    .await;
    raise(&app, &[], &[]).await;
    app.state.reporter.flush().await;

    let resp = app.get("/metrics").await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
    );
    let text = resp.text().await.unwrap();
    assert!(
        text.contains(
            r#"autosend_http_requests_total{route="/admin/error-test",method="POST",status="500"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains("# TYPE autosend_http_request_duration_seconds histogram"));
    assert!(text.contains(r#"autosend_error_reports_total{outcome="sent"} 1"#));
    assert!(text.contains(r#"autosend_error_reports_total{outcome="dropped"} 0"#));

    app.state.metrics.delivery("sent");
    let bearer = client()
        .get(app.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    let text = bearer.text().await.unwrap();
    assert!(
        text.contains("# TYPE autosend_deliveries_total counter"),
        "{text}"
    );
    assert!(text.contains(r#"autosend_deliveries_total{outcome="sent"} 1"#));

    let wrong = client()
        .get(app.url("/metrics"))
        .bearer_auth("metrics-token-for-tests-0123456788")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 404);
    let anonymous = client().get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(anonymous.status(), 404, "anonymous visitors are not told");

    app.create_user("someone@example.com", ACTIVE).await;
    let user = app.browser_for("someone@example.com").await;
    let resp = user.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 404);

    // Without METRICS_TOKEN configured, no bearer gets in.
    let app = reporting_app(|_| {}).await;
    let resp = client()
        .get(app.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

/// A TCP server that accepts connections and never says a word: an SMTP server that hangs.
async fn blackhole() -> (u16, tokio::sync::watch::Receiver<usize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (accepted, watch) = tokio::sync::watch::channel(0usize);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
            accepted.send_replace(held.len());
        }
    });
    (port, watch)
}

/// A port nothing listens on: connections are refused.
fn refused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_failing_request_answers_as_fast_with_smtp_down() {
    let (hanging, mut accepted) = blackhole().await;
    for port in [hanging, refused_port()] {
        let app = reporting_app(|vars| {
            vars.insert("EMAIL_BACKEND".into(), "smtp".into());
            vars.insert("SMTP_HOST".into(), "127.0.0.1".into());
            vars.insert("SMTP_PORT".into(), port.to_string());
            vars.insert("SMTP_TIMEOUT_SECS".into(), "30".into());
            vars.insert("ERROR_EMAIL_COOLDOWN_SECS".into(), "0".into());
        })
        .await;
        let started = Instant::now();
        assert_eq!(app.get("/admin/error-test").await.status(), 200);
        let normal = started.elapsed();
        for _ in 0..3 {
            let started = Instant::now();
            raise(&app, &[], &[]).await;
            let failing = started.elapsed();
            assert!(
                failing < Duration::from_secs(1),
                "a 500 took {failing:?} with SMTP down on port {port} (a normal page: {normal:?})"
            );
        }
    }
    // The reports really went for the hanging server (and wait there, not in the requests).
    tokio::time::timeout(Duration::from_secs(10), accepted.wait_for(|n| *n >= 1))
        .await
        .expect("the notifier connected to the SMTP server")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_background_task_is_reported_and_the_loop_goes_on() {
    let app = reporting_app(|_| {}).await;
    let reporter = app.state.reporter.clone();
    let outcomes = tokio::spawn(async move {
        let mut outcomes = Vec::new();
        for tick in 1..=3i64 {
            let outcome = reporter
                .catch_task_panics("scheduler.tick", Some(tick), Some(7), async move {
                    tokio::task::yield_now().await;
                    if tick == 2 {
                        panic!("tick {tick} exploded");
                    }
                    tick
                })
                .await;
            outcomes.push(outcome);
        }
        outcomes
    })
    .await
    .unwrap();
    assert_eq!(outcomes, [Some(1), None, Some(3)]);

    let mails = flushed_mails_to(&app, ADMIN).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails[0].subject,
        "[autosend] ERROR (background task): scheduler.tick"
    );
    let text = &mails[0].text;
    assert!(text.contains("panic: tick 2 exploded"), "{text}");
    assert!(
        text.contains("tests/api/reporting.rs"),
        "the panic's location"
    );
    assert!(text.contains("Run ID:         2\n"));
    assert!(text.contains("Mailing ID:     7\n"));
}

/// A real SMTP server (aiosmtpd, `tests/support/smtp_sink.py`) writing what it receives.
struct SmtpSink {
    port: u16,
    dir: tempfile::TempDir,
    _child: tokio::process::Child,
}

/// A received message: its headers (lower-case names), decoded text body, and peer.
struct Received {
    headers: HashMap<String, String>,
    body: String,
    peer: String,
}

impl SmtpSink {
    /// The sink on a free port; `None` (with a message) where aiosmtpd is not installed.
    /// In CI it must be: `.ci/run` installs it.
    async fn start() -> Option<Self> {
        // It fails in CI when aiosmtpd is missing there.
        let Some(python) = crate::sink::python_with_aiosmtpd() else {
            eprintln!("skipped: no python3 with aiosmtpd here (apt-get install python3-aiosmtpd)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
        let mut child = tokio::process::Command::new(python)
            .arg(script)
            .arg(dir.path())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the SMTP sink starts");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(20),
            BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .expect("the SMTP sink prints its port")
        .unwrap();
        let port = line.trim().parse().expect("a port number");
        Some(Self {
            port,
            dir,
            _child: child,
        })
    }

    /// Every message received, in arrival order.
    fn received(&self) -> Vec<Received> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|path| {
                let raw = std::fs::read(&path).unwrap();
                let parsed = mailparse::parse_mail(&raw).unwrap();
                let headers = parsed
                    .headers
                    .iter()
                    .map(|h| (h.get_key().to_ascii_lowercase(), h.get_value()))
                    .collect();
                let body = parsed.get_body().unwrap().replace("\r\n", "\n");
                let peer = std::fs::read_to_string(path.with_extension("peer")).unwrap();
                Received {
                    headers,
                    body,
                    peer: peer.trim().to_string(),
                }
            })
            .collect()
    }
}

#[tokio::test]
async fn a_long_report_reaches_a_real_smtp_server_in_ordered_threaded_parts() {
    const CHUNK: usize = 1000;
    let Some(sink) = SmtpSink::start().await else {
        return;
    };
    let app = reporting_app(|vars| {
        vars.insert("EMAIL_BACKEND".into(), "smtp".into());
        vars.insert("SMTP_HOST".into(), "127.0.0.1".into());
        vars.insert("SMTP_PORT".into(), sink.port.to_string());
        vars.insert("ERROR_EMAIL_CHUNK_SIZE".into(), CHUNK.to_string());
    })
    .await;
    let rid = raise(&app, &[("note", "chunked")], &[]).await;
    app.state.reporter.flush().await;
    assert_eq!(
        app.state.reporter.stats().sent,
        1,
        "{:?}",
        app.state.reporter.stats()
    );

    let parts = sink.received();
    let total = parts.len();
    assert!(total >= 2, "a long report is split, got {total} part(s)");
    let first_id = parts[0].headers["message-id"].clone();
    let mut report = String::new();
    for (i, part) in parts.iter().enumerate() {
        let position = format!("{}/{total}", i + 1);
        assert_eq!(
            part.headers["subject"],
            format!("{SUBJECT_EXTERNAL} (part {position})"),
            "parts arrive in order"
        );
        assert_eq!(part.headers["x-autosend-part"], position);
        assert_eq!(part.headers["x-autosend-request-id"], rid);
        let fingerprint = &part.headers["x-autosend-fingerprint"];
        assert!(
            part.body.starts_with(&format!(
                "Request ID: {rid}\nFingerprint: {fingerprint}\nPart: {position}\n"
            )),
            "{}",
            part.body
        );
        if i > 0 {
            assert_eq!(part.headers["in-reply-to"], first_id);
            assert!(part.headers["references"].contains(&first_id));
        }
        assert_eq!(part.peer, parts[0].peer, "one connection for all parts");
        let (_, chunk) = part
            .body
            .split_once(&format!("{}\n", "-".repeat(72)))
            .expect("a rule under the part's header");
        let chars = chunk.chars().count();
        assert!(chars <= CHUNK, "part {position} has {chars} characters");
        assert!(
            part.headers["content-type"].contains("charset=utf-8"),
            "non-ASCII text (… in the backtrace) must decode"
        );
        report.push_str(chunk);
    }
    assert!(report.starts_with("Internal Server Error: /admin/error-test\n"));
    assert!(report.contains(TEST_ERROR));
    assert!(report.contains("note = chunked\n"));
    assert!(
        report.contains("\nSettings\n"),
        "the last part ends the report"
    );

    // sendtestemail goes through the same server.
    let (code, stdout, stderr) = sendtestemail_over_smtp(sink.port).await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    let received = sink.received();
    let last = received.last().unwrap();
    assert!(last.headers["subject"].starts_with("Test email from "));
    assert_eq!(last.headers["to"], "someone@example.com");
}

/// `autosend sendtestemail someone@example.com` over SMTP on 127.0.0.1:`port`.
async fn sendtestemail_over_smtp(port: u16) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let port = port.to_string();
    output(autosend(
        dir.path(),
        &["sendtestemail", "someone@example.com"],
        &[
            ("EMAIL_BACKEND", "smtp"),
            ("SMTP_HOST", "127.0.0.1"),
            ("SMTP_PORT", &port),
        ],
    ))
    .await
}

#[tokio::test]
async fn sendtestemail_reports_usage_errors_and_send_failures() {
    let dir = tempfile::tempdir().unwrap();
    for (args, env, expected) in [
        (vec!["sendtestemail"], vec![], "no recipients"),
        (vec!["sendtestemail", "--admins"], vec![], "ADMINS is empty"),
        (
            vec!["sendtestemail", "not-an-address"],
            vec![],
            "is not an e-mail address",
        ),
    ] {
        let (code, _, stderr) = output(autosend(dir.path(), &args, &env)).await;
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }

    let (code, _, stderr) = sendtestemail_over_smtp(refused_port()).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("cannot send the test e-mail"), "{stderr}");

    let (code, stdout, stderr) = output(autosend(
        dir.path(),
        &[
            "sendtestemail",
            "--admins",
            "--managers",
            "someone@example.com",
        ],
        &[
            ("EMAIL_BACKEND", "file"),
            ("ADMINS", ADMIN),
            ("MANAGERS", MANAGER),
        ],
    ))
    .await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    let mut subjects: Vec<String> = std::fs::read_dir(dir.path().join("data/outbox"))
        .unwrap()
        .map(|e| Mail::parse(&std::fs::read_to_string(e.unwrap().path()).unwrap()).subject)
        .collect();
    subjects.sort();
    assert_eq!(subjects.len(), 3);
    assert!(subjects[0].starts_with("Test email from "), "{subjects:?}");
    assert!(subjects[1].starts_with("[autosend] Test email from "));
}

/// Issue 12 item 6: a storm of distinct 404s with a Referer (a scanner, a broken page of
/// links) is capped like error e-mails: ERROR_EMAIL_MAX_PER_MINUTE mails, then one summary;
/// and the links held back write no rows. Across two instances sharing Redis (when
/// `TEST_REDIS_URL` is set) the cap is shared; without Redis each instance has its own.
#[tokio::test]
async fn a_storm_of_broken_links_is_capped_and_writes_bounded_rows() {
    const CAP: usize = 5;
    let app = reporting_app(|vars| {
        vars.insert("ERROR_EMAIL_MAX_PER_MINUTE".into(), CAP.to_string());
    })
    .await;
    let second = app.another_instance().await;
    use poem::listener::{Acceptor as _, Listener as _};
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let second_port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    tokio::spawn(
        poem::Server::new_with_acceptor(acceptor).run(autosend::web::router(second.clone())),
    );
    let browser = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0";
    let referer = "https://elsewhere.example/links";
    let http = client();
    for i in 0..200 {
        // Alternating instances, as behind a load balancer.
        let base = match i % 2 {
            0 => app.address.clone(),
            _ => format!("http://127.0.0.1:{second_port}"),
        };
        let resp = http
            .get(format!("{base}/missing/page-{i}"))
            .header("User-Agent", browser)
            .header("Referer", referer)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
    }
    let shared = std::env::var("TEST_REDIS_URL").is_ok_and(|v| !v.is_empty());
    let instances = if shared { 1 } else { 2 };
    let second_outbox = second.mailer.outbox().expect("the memory mailer");
    let all_mails = || {
        let mut mails = app.mails_to(MANAGER);
        mails.extend(
            second_outbox
                .messages()
                .into_iter()
                .filter(|m| m.to.iter().any(|t| t == MANAGER))
                .map(|m| Mail::parse(&m.raw)),
        );
        mails
    };
    // "N more broken links since …": how many links one summary stands for.
    let counted = |mail: &Mail| -> Option<usize> {
        let (head, _) = mail.subject.split_once(" more broken links since")?;
        head.rsplit(' ').next()?.parse().ok()
    };
    // The summaries go when the cap allows again (in-process: a cell returns after 60/CAP s;
    // shared in Redis: the next minute), each instance its own storm: wait for all of them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(150);
    let mails = loop {
        app.state.reporter.flush().await;
        second.reporter.flush().await;
        let mails = all_mails();
        let single = mails
            .iter()
            .filter(|m| m.subject.contains("Broken link on"))
            .count();
        let summarised: usize = mails.iter().filter_map(counted).sum();
        if single + summarised >= 200 || std::time::Instant::now() > deadline {
            break mails;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    };
    let single = mails
        .iter()
        .filter(|m| m.subject.contains("Broken link on"))
        .count();
    let summaries: Vec<&Mail> = mails
        .iter()
        .filter(|m| m.subject.contains("more broken links since"))
        .collect();
    assert_eq!(single, CAP * instances, "{:?}", subjects(&mails));
    // Every link held back is counted in a summary that went out, one per instance.
    assert!(!summaries.is_empty(), "no summary: {:?}", subjects(&mails));
    assert!(summaries.len() <= 2, "{:?}", subjects(&mails));
    let summarised: usize = summaries.iter().filter_map(|m| counted(m)).sum();
    assert_eq!(summarised, 200 - single, "{:?}", subjects(&mails));
    for summary in &summaries {
        assert!(
            summary.text.contains("ERROR_EMAIL_MAX_PER_MINUTE=5"),
            "{}",
            summary.text
        );
    }
    let links: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM broken_links")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    let groups: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM error_groups WHERE kind = 'broken_link'",
    )
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();
    assert_eq!(links as usize, CAP * instances, "rows in broken_links");
    assert_eq!(groups as usize, CAP * instances, "broken-link groups");
    assert!(
        app.mails_to(ADMIN).is_empty(),
        "404s leave error e-mail alone"
    );
}

fn subjects(mails: &[Mail]) -> Vec<&str> {
    mails.iter().map(|m| m.subject.as_str()).collect()
}
