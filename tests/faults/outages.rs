//! Outages of what autosend depends on, while `serve` keeps running (SPEC §7, §11): the SMTP
//! server answering 421 and then gone, Redis cut off, PostgreSQL cut off. Redis and
//! PostgreSQL are shared servers, so they are cut through a [`Proxy`] the test controls.

use std::time::{Duration, Instant};

use autosend::domain::RunStatus;
use serde_json::Value;

use crate::proxy::Proxy;
use crate::sink::{Sink, free_port, python_with_aiosmtpd};
use crate::world::{Autosend, World, http_client, login, test_env, wait_until};

const CONCURRENCY: usize = 4;

/// Rows of the mailing matching `filter` (an SQL condition on `deliveries`, written here).
async fn deliveries_where(w: &World, mailing: i64, filter: &str) -> i64 {
    let sql = format!(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM deliveries WHERE mailing_id = $1 AND {filter}"
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(mailing)
        .fetch_one(&w.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_smtp_outage_delays_deliveries_and_loses_none() {
    let Some(python) = python_with_aiosmtpd() else {
        eprintln!("skipped: python3-aiosmtpd is not installed (.ci/run installs it)");
        return;
    };
    const RECIPIENTS: usize = 400;
    let mut w = World::from_env().await;
    let mut sink = Sink::start(python, free_port(), w.dir.path(), 0).await;
    w.smtp(sink.port);
    w.set("SEND_CONCURRENCY", CONCURRENCY.to_string());
    w.set("SEND_RATE_PER_SECOND", "100");
    // Retries after 0.5–1 s, 1–2 s, 2–4 s …: several attempts fit in a few seconds' outage,
    // and ten of them outlast it (the default five at a one-minute base outlast ~15 minutes).
    w.set("SEND_RETRY_BASE_SECS", "1");
    w.set("SEND_MAX_ATTEMPTS", "10");
    let owner = w.owner().await;
    let (mailing, emails) = w.due_mailing(owner, RECIPIENTS, "outage").await;
    let _serve = w.serve().await;

    wait_until(
        "the first 100 messages",
        Duration::from_secs(30),
        || async { sink.count() >= 100 },
    )
    .await;
    // First the server says 421 to everyone (going down for maintenance)…
    sink.set_down(true);
    let outage = Instant::now();
    let at_outage = sink.count();
    wait_until(
        "deliveries wait after a 421",
        Duration::from_secs(20),
        || async {
            deliveries_where(&w, mailing, "status = 'pending' AND detail LIKE '%421%'").await >= 20
        },
    )
    .await;
    // …then it is gone: connections refused.
    sink.stop().await;
    wait_until(
        "deliveries wait after a refused connection",
        Duration::from_secs(20),
        || async {
            deliveries_where(
                &w,
                mailing,
                "status = 'pending' AND detail <> '' AND detail NOT LIKE '%421%'",
            )
            .await
                >= 20
        },
    )
    .await;
    // Backing off, not giving up: some rows were tried three times already, none is an error.
    wait_until(
        "retries during the outage",
        Duration::from_secs(20),
        || async {
            deliveries_where(&w, mailing, "status = 'pending' AND attempts >= 3").await > 0
        },
    )
    .await;
    assert_eq!(deliveries_where(&w, mailing, "status = 'error'").await, 0);
    let runs = w.runs(mailing).await;
    assert_eq!(
        runs[0].status,
        RunStatus::Running,
        "the run waits for the server"
    );
    let during = sink.count() - at_outage;

    sink.set_down(false);
    sink.restart().await;
    let down_for = outage.elapsed();
    let run = w
        .finished_run(
            mailing,
            Duration::from_secs(60),
            "the run finished after the outage",
        )
        .await;
    let counts = sink.per_recipient();
    let received: usize = counts.values().sum();
    let retried = deliveries_where(&w, mailing, "attempts > 1").await;
    let max_attempts: i64 =
        sqlx::query_scalar("SELECT MAX(attempts) FROM deliveries WHERE mailing_id = $1")
            .bind(mailing)
            .fetch_one(&w.db.pool)
            .await
            .unwrap();
    eprintln!(
        "smtp outage: {:.1} s (421, then refused); {during} accepted meanwhile; \
         {retried} deliveries retried, up to {max_attempts} attempts; {received} messages for \
         {} recipients; done {:.1} s after it ended",
        down_for.as_secs_f64(),
        counts.len(),
        outage.elapsed().saturating_sub(down_for).as_secs_f64()
    );
    let missing: Vec<&String> = emails.iter().filter(|e| !counts.contains_key(*e)).collect();
    assert!(missing.is_empty(), "lost in the outage: {missing:?}");
    assert_eq!(counts.len(), RECIPIENTS);
    // A 421 is answered before DATA, so it never duplicates; killing the sink may drop a
    // message it had logged but not yet acknowledged, one per connection at most.
    assert!(
        received - RECIPIENTS <= CONCURRENCY,
        "{received} messages for {RECIPIENTS} recipients"
    );
    // Only messages already past RCPT when the 421s began (one per connection) got through.
    assert!(
        during <= CONCURRENCY,
        "{during} accepted while the server was down"
    );
    assert!(retried > 0, "the outage made deliveries wait and retry");
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(
        (run.totals.sent, run.totals.errors),
        (RECIPIENTS as i64, 0),
        "{run:?}"
    );
}

/// `/healthz` as (status code, body).
async fn health(client: &reqwest::Client, app: &Autosend) -> (u16, Value) {
    let resp = client.get(app.url("/healthz")).send().await.unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap())
}

/// A request's status and how long it took; a hang fails the test through the client's
/// timeout rather than blocking it.
async fn timed_get(client: &reqwest::Client, app: &Autosend, path: &str) -> (u16, Duration) {
    let began = Instant::now();
    let resp = client.get(app.url(path)).send().await;
    let resp = resp.unwrap_or_else(|err| panic!("GET {path} failed: {err}"));
    (resp.status().as_u16(), began.elapsed())
}

#[tokio::test]
async fn a_redis_outage_keeps_pages_answering_and_sessions_come_back() {
    let Some(redis_url) = test_env("TEST_REDIS_URL") else {
        eprintln!("skipped: the Redis outage needs TEST_REDIS_URL");
        return;
    };
    let mut w = World::from_env().await;
    let url = url::Url::parse(&redis_url).expect("TEST_REDIS_URL is a URL");
    let upstream = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(6379)
    );
    let mut proxy = Proxy::start(&upstream).await;
    let mut through = url.clone();
    through.set_host(Some("127.0.0.1")).unwrap();
    through.set_port(Some(proxy.port)).unwrap();
    w.set("REDIS_URL", through.to_string());
    w.set(
        "REDIS_PREFIX",
        format!("faults-{}:", uuid::Uuid::new_v4().simple()),
    );
    w.owner().await;
    let app = w.serve().await;
    let browser = http_client();
    login(&browser, &app).await;
    assert_eq!(timed_get(&browser, &app, "/mailings/").await.0, 200);
    let (code, body) = health(&browser, &app).await;
    assert_eq!(
        (code, &body["cache"]),
        (200, &Value::from("redis")),
        "{body}"
    );

    proxy.down().await;
    let outage = Instant::now();
    // Pages answer, quickly: the login page, and the logged-in page (the session cannot be
    // read, so the user appears logged out and is sent to the login page, not a 5xx).
    let anonymous = http_client();
    let mut logged_in_during = Vec::new();
    // Keep asking for three seconds: every answer quick, none a 5xx.
    while outage.elapsed() < Duration::from_secs(3) {
        let (code, took) = timed_get(&anonymous, &app, "/users/login").await;
        assert_eq!(code, 200, "the login page without Redis");
        assert!(took < Duration::from_secs(3), "login page took {took:?}");
        let (code, took) = timed_get(&browser, &app, "/mailings/").await;
        assert!(code < 500, "a logged-in page without Redis answered {code}");
        assert!(
            took < Duration::from_secs(3),
            "logged-in page took {took:?}"
        );
        logged_in_during.push(code);
    }
    logged_in_during.dedup();
    let (code, body) = health(&anonymous, &app).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["cache"], "unreachable", "{body}");

    proxy.up().await;
    let down_for = outage.elapsed();
    // The same cookie works again: the session stayed in Redis and nothing overwrote it.
    wait_until(
        "the session is back after Redis",
        Duration::from_secs(20),
        || async { timed_get(&browser, &app, "/mailings/").await.0 == 200 },
    )
    .await;
    let recovered = outage.elapsed() - down_for;
    let (code, body) = health(&anonymous, &app).await;
    assert_eq!((code, &body["status"]), (200, &Value::from("ok")), "{body}");
    eprintln!(
        "redis outage: {:.1} s; logged-in page answered {logged_in_during:?} meanwhile; \
         session back {:.1} s after",
        down_for.as_secs_f64(),
        recovered.as_secs_f64()
    );
}

#[tokio::test]
async fn a_database_outage_fails_requests_cleanly_and_recovers_without_a_restart() {
    let Some(mut w) = World::postgres("the database outage").await else {
        return;
    };
    let mut url = url::Url::parse(w.database_url()).unwrap();
    let upstream = format!(
        "{}:{}",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5432)
    );
    let mut proxy = Proxy::start(&upstream).await;
    url.set_host(Some("127.0.0.1")).unwrap();
    url.set_port(Some(proxy.port)).unwrap();
    w.set("DATABASE_URL", url.to_string());
    w.owner().await;
    let app = w.serve().await;
    let browser = http_client();
    login(&browser, &app).await;
    assert_eq!(timed_get(&browser, &app, "/mailings/").await.0, 200);

    proxy.down().await;
    let outage = Instant::now();
    // Probed like a load balancer does, without cookies (a session cookie would be read
    // from the database first, and answer the 503 below before /healthz runs).
    let probe = http_client();
    let (code, body) = health(&probe, &app).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["database"], "unreachable", "{body}");
    // A logged-in page fails with an error page in bounded time (the pool's acquire timeout),
    // rather than hanging, or pretending the user logged out and sending them to a login
    // that cannot work either.
    let mut seen = Vec::new();
    for path in ["/mailings/", "/clients/"] {
        let began = Instant::now();
        let resp = browser.get(app.url(path)).send().await.unwrap();
        let (code, took) = (resp.status().as_u16(), began.elapsed());
        let retry_after = resp.headers().contains_key("retry-after");
        let page = resp.text().await.unwrap();
        assert!(retry_after, "GET {path}: a 503 says when to come back");
        // An unreachable database is an outage, not a bug: 503, come back later.
        assert_eq!(
            code, 503,
            "GET {path} without the database answered {code}: {page}"
        );
        assert!(page.contains("Something went wrong"), "{page}");
        assert!(took < Duration::from_secs(10), "GET {path} took {took:?}");
        seen.push(format!("{path} {code} in {} ms", took.as_millis()));
    }
    // A visitor without a session still gets the login page, which needs no database.
    let (code, took) = timed_get(&http_client(), &app, "/users/login").await;
    assert_eq!(code, 200);
    seen.push(format!(
        "/users/login (anonymous) {code} in {} ms",
        took.as_millis()
    ));
    let during = seen.join(", ");

    proxy.up().await;
    let down_for = outage.elapsed();
    wait_until("healthz is ok again", Duration::from_secs(30), || async {
        health(&probe, &app).await.0 == 200
    })
    .await;
    // Same process, same cookie: the session was in the database all along.
    wait_until(
        "the logged-in page is back",
        Duration::from_secs(30),
        || async { timed_get(&browser, &app, "/mailings/").await.0 == 200 },
    )
    .await;
    eprintln!(
        "database outage: {:.1} s; during: {during}; recovered {:.1} s after",
        down_for.as_secs_f64(),
        (outage.elapsed() - down_for).as_secs_f64()
    );
}
