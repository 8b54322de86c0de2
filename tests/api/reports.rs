//! Statistics, period reports and the dashboard (SPEC §9): figures that agree with the
//! delivery log, visibility, parameters, CSV, and HTTP validation (ETag / Last-Modified / 304).

use autosend::clock::Clock;
use autosend::db::mailings::{self, NewMailing};
use autosend::db::{messages, recipients};
use autosend::delivery::engine::{self, DriveLimits};
use autosend::domain::{Period, Trigger};

use crate::helpers::{ACTIVE, MANAGER, TestApp, spawn_app, spawn_app_with};
use crate::html::figure;

const DAY: i64 = 86_400_000;

/// Makes a mailing of `owner` to `emails` (a window around now; manual runs ignore it).
async fn mailing(app: &TestApp, owner: i64, emails: &[&str]) -> i64 {
    let db = &app.state.db;
    let message = messages::insert(db, owner, "Hello {{full_name}}", "Hi {{email}}", None)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for email in emails {
        ids.push(
            recipients::insert(db, owner, email, "Some One", "")
                .await
                .unwrap(),
        );
    }
    let now = autosend::db::now_ms();
    mailings::create_mailing(
        db,
        &NewMailing {
            owner_id: owner,
            message_id: message,
            recipient_ids: ids,
            start_at: now - DAY,
            end_at: now + 30 * DAY,
            period: Period::Daily,
        },
        now,
    )
    .await
    .unwrap()
}

/// Runs the mailing now and sends everything, on the real clock (so today's figures move).
async fn run(app: &TestApp, mailing_id: i64, dry_run: bool) {
    engine::start_run(
        &app.state.delivery(),
        &Clock::System,
        mailing_id,
        Trigger::Manual("test@example.com".into()),
        dry_run,
    )
    .await
    .unwrap();
    engine::drive(
        &app.state.delivery(),
        &Clock::System,
        &DriveLimits::default(),
    )
    .await
    .unwrap();
}

/// Values of `data-col="{col}"` cells in the table with this id, in row order.
fn column(html: &str, table: &str, col: &str) -> Vec<i64> {
    let at = html.find(&format!("id=\"{table}\"")).expect("table");
    let end = html[at..].find("</table>").unwrap() + at;
    let body = &html[at..end];
    let marker = format!("data-col=\"{col}\">");
    body.match_indices(&marker)
        .map(|(i, _)| {
            let s = i + marker.len();
            let e = body[s..].find('<').unwrap() + s;
            body[s..e].trim().parse().unwrap()
        })
        .collect()
}

/// `(data-sent, data-errors)` of every bar group of the chart.
fn chart_bars(html: &str) -> Vec<(i64, i64)> {
    let attr = |tail: &str, name: &str| -> i64 {
        let key = format!("{name}=\"");
        let s = tail.find(&key).unwrap() + key.len();
        let e = tail[s..].find('"').unwrap() + s;
        tail[s..e].parse().unwrap()
    };
    html.match_indices("<g class=\"day\"")
        .map(|(i, _)| {
            let tail = &html[i..i + html[i..].find('>').unwrap()];
            (attr(tail, "data-sent"), attr(tail, "data-errors"))
        })
        .collect()
}

async fn count_deliveries(app: &TestApp, owner: i64, status: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM deliveries d JOIN mailings m ON m.id = d.mailing_id \
         WHERE m.owner_id = $1 AND d.status = $2",
    )
    .bind(owner)
    .bind(status)
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn dashboard_stats_and_reports_answer_304_to_both_conditional_headers() {
    let app = spawn_app().await;
    let owner = app.create_user("owner@example.com", ACTIVE).await;
    mailing(&app, owner, &["a@example.com"]).await;
    app.login_as("owner@example.com").await;
    for path in ["/", "/mailings/stats/", "/mailings/reports/"] {
        let first = app.get_page(path).await;
        assert_eq!(first.status, 200, "{path}");
        let h = first.headers.clone();
        let etag = h["etag"].to_str().unwrap().to_string();
        assert!(etag.starts_with('"'), "strong ETag on {path}: {etag}");
        // Issue 12 item 11: `max-age=60` showed 0 mailings for a minute after one was sent;
        // the browser must revalidate every time (a 304 is cheap).
        assert_eq!(h["cache-control"], "private, no-cache", "{path}");
        assert_eq!(h["vary"], "Cookie, HX-Request", "{path}");
        let modified = h["last-modified"].to_str().unwrap().to_string();

        let by_tag = app.get_with(path, &[("If-None-Match", &etag)]).await;
        assert_eq!(by_tag.status, 304, "{path}");
        assert_eq!(by_tag.headers["etag"].to_str().unwrap(), etag);
        assert!(by_tag.text.is_empty(), "304 has no body");

        let by_date = app
            .get_with(path, &[("If-Modified-Since", &modified)])
            .await;
        assert_eq!(by_date.status, 304, "{path}");
        assert!(by_date.text.is_empty());

        let stale = app
            .get_with(path, &[("If-None-Match", "\"something-else\"")])
            .await;
        assert_eq!(stale.status, 200, "{path}");
        let old = app
            .get_with(
                path,
                &[("If-Modified-Since", "Thu, 01 Jan 2015 00:00:00 GMT")],
            )
            .await;
        assert_eq!(old.status, 200, "{path}");

        // An htmx request is another variant of the page.
        let fragment = app
            .client
            .get(app.url(path))
            .header("HX-Request", "true")
            .header("If-None-Match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(fragment.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn the_etag_changes_and_the_figures_update_right_after_a_run() {
    let app = spawn_app().await;
    let owner = app.create_user("owner@example.com", ACTIVE).await;
    let id = mailing(
        &app,
        owner,
        &["a@example.com", "b@example.com", "c@example.com"],
    )
    .await;
    app.login_as("owner@example.com").await;

    let mut before = Vec::new();
    for path in ["/", "/mailings/stats/", "/mailings/reports/"] {
        let resp = app.get_page(path).await;
        let etag = resp.headers["etag"].to_str().unwrap().to_string();
        let html = resp.text;
        before.push((path, etag, html));
    }
    assert_eq!(figure(&before[1].2, "total-sent"), 0);
    assert_eq!(figure(&before[2].2, "report-sent"), 0);

    run(&app, id, false).await;

    for (path, etag, _) in &before {
        let resp = app.get_with(path, &[("If-None-Match", etag)]).await;
        assert_eq!(resp.status, 200, "{path} changed after a run");
        assert_ne!(resp.headers["etag"].to_str().unwrap(), etag, "{path}");
    }
    let stats = app.get_html("/mailings/stats/").await;
    assert_eq!(figure(&stats, "total-sent"), 3);
    assert_eq!(figure(&stats, "total-runs-ok"), 1);
    assert_eq!(column(&stats, "stats", "recipients"), vec![3]);
    assert!(stats.contains("100.0%"), "success rate");
    let report = app.get_html("/mailings/reports/").await;
    assert_eq!(figure(&report, "report-sent"), 3);
    assert_eq!(figure(&report, "report-runs-ok"), 1);
    assert_eq!(figure(&report, "report-recipients"), 3);

    // A dry run counts its messages apart and is not a run in the figures.
    run(&app, id, true).await;
    let stats = app.get_html("/mailings/stats/").await;
    assert_eq!(figure(&stats, "total-dry-run"), 3);
    assert_eq!(figure(&stats, "total-runs-ok"), 1);

    // Recipient changes reach the dashboard at once too.
    let dashboard = app.get_html("/").await;
    assert_eq!(figure(&dashboard, "count-recipients"), 3);
    recipients::insert(&app.state.db, owner, "d@example.com", "Dee", "")
        .await
        .unwrap();
    let dashboard = app.get_html("/").await;
    assert_eq!(figure(&dashboard, "count-recipients"), 4);
}

#[tokio::test]
async fn the_chart_tables_and_csv_agree_with_the_deliveries() {
    let app = spawn_app().await;
    let owner = app.create_user("owner@example.com", ACTIVE).await;
    let first = mailing(&app, owner, &["a@example.com", "b@example.com"]).await;
    let second = mailing(
        &app,
        owner,
        &["c@example.com", "d@example.com", "e@example.com"],
    )
    .await;
    run(&app, first, false).await;
    run(&app, second, false).await;
    run(&app, second, false).await;
    run(&app, first, true).await;
    app.login_as("owner@example.com").await;

    let sent = count_deliveries(&app, owner, "sent").await;
    let errors = count_deliveries(&app, owner, "error").await;
    assert_eq!(sent, 2 + 3 + 3);
    let html = app.get_html("/mailings/reports/").await;
    assert_eq!(figure(&html, "report-sent"), sent);
    assert_eq!(figure(&html, "report-errors"), errors);
    assert_eq!(figure(&html, "report-runs-ok"), 3);

    let bars = chart_bars(&html);
    assert_eq!(bars.len(), 30, "every day of the default period");
    let day_sent = column(&html, "days", "sent");
    let day_errors = column(&html, "days", "errors");
    assert_eq!(
        bars,
        day_sent
            .iter()
            .copied()
            .zip(day_errors.iter().copied())
            .collect::<Vec<_>>(),
        "the chart shows the table's numbers"
    );
    assert_eq!(day_sent.iter().sum::<i64>(), sent);
    assert_eq!(*day_sent.last().unwrap(), sent, "all of it today");

    let per_mailing = column(&html, "per-mailing", "sent");
    assert_eq!(per_mailing, vec![6, 2], "most sent first");
    assert_eq!(column(&html, "per-mailing", "dry_run"), vec![0, 2]);

    for path in [
        "/mailings/reports/?format=csv",
        "/mailings/reports/export.csv",
    ] {
        let resp = app.get_page(path).await;
        assert_eq!(resp.status, 200);
        assert!(
            resp.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        let csv = resp.text;
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let headers = reader.headers().unwrap().clone();
        assert_eq!(&headers[0], "mailing_id");
        let rows: Vec<(i64, i64, i64)> = reader
            .records()
            .map(|r| {
                let r = r.unwrap();
                (
                    r[0].parse().unwrap(),
                    r[5].parse().unwrap(),
                    r[7].parse().unwrap(),
                )
            })
            .collect();
        assert_eq!(rows, vec![(second, 6, 0), (first, 2, 2)], "{path}");
    }
    let days_csv = app
        .get_html("/mailings/reports/?format=csv&rows=days")
        .await;
    let day_rows: Vec<i64> = csv::Reader::from_reader(days_csv.as_bytes())
        .records()
        .map(|r| r.unwrap()[1].parse().unwrap())
        .collect();
    assert_eq!(day_rows, day_sent);
}

#[tokio::test]
async fn visibility_own_everyone_and_another_users_id() {
    let app = spawn_app().await;
    let ann = app.create_user("ann@example.com", ACTIVE).await;
    let bob = app.create_user("bob@example.com", ACTIVE).await;
    app.create_user("boss@example.com", MANAGER).await;
    let ann_mailing = mailing(&app, ann, &["a@example.com"]).await;
    let bob_mailing = mailing(&app, bob, &["b@example.com", "c@example.com"]).await;
    run(&app, ann_mailing, false).await;
    run(&app, bob_mailing, false).await;

    app.login_as("ann@example.com").await;
    let stats = app.get_html("/mailings/stats/").await;
    assert_eq!(figure(&stats, "total-mailings"), 1);
    assert_eq!(figure(&stats, "total-sent"), 1);
    assert!(!stats.contains("bob@example.com"));
    let own = app.get_html("/mailings/reports/").await;
    assert_eq!(figure(&own, "report-sent"), 1);
    let mine = app
        .get_page(&format!("/mailings/reports/?user={ann}"))
        .await;
    assert_eq!(mine.status, 200);
    for path in [
        format!("/mailings/reports/?user={bob}"),
        format!("/mailings/reports/?user={bob}&from=nonsense"),
        format!("/mailings/reports/export.csv?user={bob}"),
        "/mailings/reports/?user=999999".to_string(),
        "/mailings/reports/?user=abc".to_string(),
    ] {
        assert_eq!(app.get(&path).await.status(), 404, "{path}");
    }

    let boss = app.browser_for("boss@example.com").await;
    let get = |path: String| {
        let boss = boss.clone();
        let url = app.url(&path);
        async move { boss.get(url).send().await.unwrap() }
    };
    let stats = get("/mailings/stats/".into()).await.text().await.unwrap();
    assert_eq!(figure(&stats, "total-mailings"), 2);
    assert_eq!(figure(&stats, "total-sent"), 3);
    assert!(stats.contains("bob@example.com"));
    let bobs = get(format!("/mailings/reports/?user={bob}")).await;
    assert_eq!(bobs.status(), 200);
    let bobs = bobs.text().await.unwrap();
    assert_eq!(figure(&bobs, "report-sent"), 2);
    assert!(bobs.contains("bob@example.com"));
    assert_eq!(
        get("/mailings/reports/?user=999999".into()).await.status(),
        404
    );

    // The everyone-version moves when any user's data does.
    let before = get("/mailings/stats/".into()).await;
    let etag = before.headers()["etag"].to_str().unwrap().to_string();
    run(&app, ann_mailing, false).await;
    let after = boss
        .get(app.url("/mailings/stats/"))
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 200);
    assert_eq!(figure(&after.text().await.unwrap(), "total-sent"), 4);
}

#[tokio::test]
async fn bad_report_parameters_are_422_with_the_form_never_500() {
    let app = spawn_app().await;
    app.create_user("owner@example.com", ACTIVE).await;
    app.login_as("owner@example.com").await;
    for (query, message) in [
        ("from=2026-13-01", "is not a date"),
        ("to=yesterday", "is not a date"),
        ("from=2026-02-30&to=2026-03-01", "is not a date"),
        ("from=2026-03-02&to=2026-03-01", "must not be after"),
        ("from=2020-01-01&to=2026-01-01", "at most 366 days"),
        ("from=%00%FF&to=", "is not a date"),
        ("format=csv&from=x", "is not a date"),
    ] {
        let resp = app.get_page(&format!("/mailings/reports/?{query}")).await;
        assert_eq!(resp.status, 422, "{query}");
        let html = resp.text;
        assert!(html.contains(message), "{query}: {html}");
        assert!(html.contains("name=\"from\""), "the form again: {query}");
    }
    let ok = app
        .get_page("/mailings/reports/?from=2024-01-01&to=2024-12-31")
        .await;
    assert_eq!(ok.status, 200);
    let html = ok.text;
    assert_eq!(chart_bars(&html).len(), 366);
    // Unknown sort words and pages fall back instead of failing.
    let stats = app
        .get("/mailings/stats/?sort=%27;drop&dir=sideways&page=-4")
        .await;
    assert_eq!(stats.status(), 200);
}

#[tokio::test]
async fn stats_sort_by_the_columns_users_care_about() {
    let app = spawn_app().await;
    let owner = app.create_user("owner@example.com", ACTIVE).await;
    let small = mailing(&app, owner, &["a@example.com"]).await;
    let big = mailing(
        &app,
        owner,
        &["b@example.com", "c@example.com", "d@example.com"],
    )
    .await;
    let idle = mailing(&app, owner, &["e@example.com", "f@example.com"]).await;
    run(&app, small, false).await;
    run(&app, big, false).await;
    app.login_as("owner@example.com").await;
    let order = |html: String| -> Vec<i64> {
        html.match_indices("data-mailing=\"")
            .map(|(i, m)| {
                let s = i + m.len();
                html[s..s + html[s..].find('"').unwrap()].parse().unwrap()
            })
            .collect()
    };
    let app = &app;
    let page =
        |q: &'static str| async move { app.get_html(&format!("/mailings/stats/?{q}")).await };
    assert_eq!(order(page("").await), vec![big, small, idle]);
    assert_eq!(
        order(page("sort=sent&dir=asc").await),
        vec![idle, small, big]
    );
    assert_eq!(order(page("sort=recipients").await), vec![big, idle, small]);
    assert_eq!(
        order(page("sort=last_sent").await)[2],
        idle,
        "never sent last"
    );
    assert_eq!(order(page("sort=rate&dir=asc").await)[0], idle);
}

#[tokio::test]
async fn a_pending_flash_message_is_never_answered_304() {
    let app = spawn_app().await;
    let owner = app.create_user("owner@example.com", ACTIVE).await;
    app.login_as("owner@example.com").await;
    let saved = app
        .post_page(
            "/clients/",
            &[
                ("email", "x@example.com"),
                ("full_name", "Ex Ample"),
                ("comment", ""),
            ],
        )
        .await;
    assert_eq!(saved.status, 303);
    // The tag the dashboard has now, computed as the handler does (reading the page would
    // consume the flash).
    let user = autosend::db::users::find_by_id(&app.state.db, owner)
        .await
        .unwrap()
        .unwrap();
    let version = autosend::db::versions::of_user(&app.state.db, owner)
        .await
        .unwrap();
    let ctx = autosend::web::htmx::PageCtx {
        csrf_token: String::new(),
        fragment: false,
        path: "/".into(),
        user: None,
        flash: None,
    };
    let etag = autosend::web::conditional::for_page(&ctx, &user, &version, "dashboard", "")
        .etag()
        .to_string();
    let with_flash = app.get_with("/", &[("If-None-Match", &etag)]).await;
    assert_eq!(with_flash.status, 200, "the flash must be shown");
    assert_eq!(with_flash.header("etag"), etag);
    with_flash.assert_contains("flash");
    let after = app.get_with("/", &[("If-None-Match", &etag)]).await;
    assert_eq!(
        after.status, 304,
        "once shown, the page is the client's copy again"
    );
}

#[tokio::test]
async fn reports_still_answer_uncached_while_redis_is_down() {
    let app = spawn_app_with(|vars| {
        // Nothing listens on port 1: every cache call is an outage.
        vars.insert("REDIS_URL".into(), "redis://127.0.0.1:1/0".into());
    })
    .await;
    let owner = app.create_user("owner@example.com", ACTIVE).await;
    let id = mailing(&app, owner, &["a@example.com", "b@example.com"]).await;
    run(&app, id, false).await;
    // Sessions live in Redis when it is configured; without it nobody can log in, so the
    // cache is exercised directly through the service.
    let scope = autosend::domain::Scope {
        user_id: owner,
        view_all: false,
        superuser: false,
    };
    let version = autosend::reports::viewer_version(&app.state.db, &scope)
        .await
        .unwrap();
    let stats = autosend::reports::stats(app.state.reports(), &scope, &version)
        .await
        .unwrap();
    assert_eq!(stats.totals.sent, 2);
    let today = autosend::domain::TimeZone::UTC.date_at(autosend::db::now_ms());
    let query = autosend::reports::resolve(
        &app.state.db,
        &scope,
        &autosend::reports::ReportParams::default(),
        today,
    )
    .await
    .unwrap();
    let report = autosend::reports::report(app.state.reports(), &scope, &query, &version)
        .await
        .unwrap();
    assert_eq!(report.sent, 2);
    let counters = autosend::reports::dashboard(app.state.reports(), &scope, &version)
        .await
        .unwrap();
    assert_eq!(counters.mailings, 1);
}
