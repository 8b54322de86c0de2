//! One owner's day in the browser: log in, keep recipients (a refused e-mail, active search,
//! delete in place), write a message, make a mailing, dry-run it, send it while the progress
//! bar polls, then read the delivery log and the report.

use autosend::db::recipients::{self, ImportRow};
use serde_json::json;
use std::time::{Duration, Instant};

use crate::browser::{self, Browser};
use crate::helpers::{ACTIVE, PASSWORD, spawn_app_with};

const OWNER: &str = "owner@example.com";
/// Recipients made directly in the database; Ann is added through the form, Zed is deleted.
const SEEDED: &[(&str, &str)] = &[
    ("bob@example.com", "Bob Brown"),
    ("carol@example.com", "Carol Cruz"),
    ("dave@example.com", "Dave Diaz"),
    ("erin@example.com", "Erin Evans"),
    ("fay@example.com", "Fay Fox"),
    ("gus@example.com", "Gus Gray"),
    ("zed@example.com", "Zed Spare"),
];
/// Who the mailing reaches: the seeded ones but Zed, and Ann.
const AUDIENCE: usize = 7;

#[tokio::test]
async fn an_owner_runs_a_mailing_from_the_browser() {
    if let Some(why) = browser::missing() {
        eprintln!("skipped: {why}");
        return;
    }
    let started = Instant::now();
    // One message a second: the real send lasts several seconds, long enough to watch the
    // progress bar poll its way to the end (a dry run is not throttled and ends at once).
    let app = spawn_app_with(|vars| {
        vars.insert("SEND_RATE_PER_SECOND".into(), "1".into());
    })
    .await;
    let owner_id = app.create_user(OWNER, ACTIVE).await;
    let rows: Vec<ImportRow> = SEEDED
        .iter()
        .map(|(email, name)| ImportRow {
            email: email.to_string(),
            full_name: name.to_string(),
            comment: String::new(),
        })
        .collect();
    recipients::upsert_many(&app.state.db, owner_id, &rows)
        .await
        .unwrap();

    let mut b = Browser::start(&app.address).await;

    // Log in through the form.
    b.goto("/users/login").await;
    b.wait_text("h1", "Log in").await;
    b.step("login-form", &[]).await;
    b.fill("#f-email", OWNER).await;
    b.fill("#f-password", PASSWORD).await;
    b.press("Log in").await;
    b.wait_text("header.site .user", OWNER).await;
    b.wait_text("h1", "Hello").await;
    assert_layout(&b).await;
    b.step("logged-in", &[]).await;

    // A new recipient whose address the browser accepts but the server refuses: the form
    // comes back with 422, the message next to the field and the user's input kept.
    b.click("nav a[href='/clients/']").await;
    b.wait_text("h1", "Recipients").await;
    b.click("a[href='/clients/new']").await;
    b.wait_text("h1", "New recipient").await;
    b.fill("#f-email", "ann@example").await;
    b.fill("#f-full_name", "Ann Lee").await;
    b.press("Save").await;
    let refusal = b
        .wait_text("#f-email-msg", "not a valid e-mail address")
        .await;
    assert!(refusal.contains("ann@example"), "{refusal}");
    assert_eq!(b.document_status().await, 422);
    assert_eq!(
        b.attr("#f-email", "aria-invalid").await.as_deref(),
        Some("true")
    );
    assert_eq!(
        b.js(
            "return document.querySelector('#f-full_name').value;",
            vec![]
        )
        .await,
        json!("Ann Lee"),
        "the user's input is kept"
    );
    // Chromium logs the 422 document itself as a failed resource.
    b.step("recipient-refused", &["status of 422"]).await;

    b.fill("#f-email", "ann@example.com").await;
    b.press("Save").await;
    b.wait_text(".flash.success", "ann@example.com was added.")
        .await;
    b.wait_count("#results tr[id^='recipient-']", SEEDED.len() + 1)
        .await;
    b.step("recipient-added", &[]).await;

    // Active search: typing narrows the list in place and the URL follows (hx-push-url).
    b.mark_document().await;
    b.fill("#q", "zed").await;
    b.wait_count("#results tr[id^='recipient-']", 1).await;
    b.wait_text("#results tbody", "zed@example.com").await;
    let url = b
        .until("the URL to carry the search", async |b| {
            Some(b.location().await).filter(|l| l.contains("q=zed"))
        })
        .await;
    assert!(url.starts_with("/clients/"), "{url}");
    assert!(b.same_document().await, "the search reloaded the page");
    b.step("search-narrowed", &[]).await;

    // Back shows the whole list again, from htmx's history cache, under an empty search box;
    // Forward (also from the cache) the filtered one under its search.
    b.client.back().await.unwrap();
    b.wait_count("#results tr[id^='recipient-']", SEEDED.len() + 1)
        .await;
    assert_eq!(b.location().await, "/clients/");
    assert!(b.same_document().await, "back reloaded the page");
    let search_box = "return document.querySelector('#q').value;";
    assert_eq!(b.js(search_box, vec![]).await, "");
    b.client.forward().await.unwrap();
    b.wait_count("#results tr[id^='recipient-']", 1).await;
    assert_eq!(b.js(search_box, vec![]).await, "zed");
    b.client.back().await.unwrap();
    b.wait_count("#results tr[id^='recipient-']", SEEDED.len() + 1)
        .await;
    // Forward to a search htmx no longer holds (it keeps 10; the user went further back, say):
    // htmx asks the server for it, and the answer must still be a whole page.
    b.js("sessionStorage.removeItem('htmx-history-cache');", vec![])
        .await;
    b.client.forward().await.unwrap();
    b.wait_count("#results tr[id^='recipient-']", 1).await;
    assert!(b.location().await.starts_with("/clients/?q=zed"));
    assert_layout(&b).await;
    b.step("search-restored", &[]).await;

    // Delete asks first, then removes the row in place.
    b.mark_document().await;
    b.click("#results tr[id^='recipient-'] a.button.danger")
        .await;
    let question = b.accept_confirm().await;
    assert_eq!(question, "Delete zed@example.com?");
    b.wait_count("#results tr[id^='recipient-']", 0).await;
    assert!(b.same_document().await, "the delete reloaded the page");
    b.step("recipient-deleted", &[]).await;
    b.goto("/clients/?q=zed").await;
    b.wait_text("#results", "No recipient matches your search.")
        .await;

    // A message to send.
    b.click("nav a[href='/messages/']").await;
    b.wait_text("h1", "Messages").await;
    b.click("a[href='/messages/new']").await;
    b.wait_text("h1", "New message").await;
    b.fill("#f-subject", "Spring news").await;
    b.fill("#f-body", "Hello {{full_name}}, spring is here.")
        .await;
    b.press("Save").await;
    b.wait_text(".flash.success", "The message was saved.")
        .await;
    b.wait_text("h1", "Spring news").await;
    b.step("message-saved", &[]).await;

    // A mailing of it to everyone, its window open since an hour ago.
    b.click("nav a[href='/mailings/']").await;
    b.wait_text("h1", "Mailings").await;
    b.click("a[href='/mailings/new']").await;
    b.wait_text("h1", "New mailing").await;
    b.select("#f-message_id", "Spring news").await;
    // A date picker is not typed into the same way in every locale: set the values.
    let now = time::OffsetDateTime::now_utc();
    for (css, at) in [
        ("#f-start_at", now - time::Duration::hours(1)),
        ("#f-end_at", now + time::Duration::days(7)),
    ] {
        b.js(
            "document.querySelector(arguments[0]).value = arguments[1];",
            vec![json!(css), json!(local_minute(at))],
        )
        .await;
    }
    b.click("input[name='all_matching']").await;
    b.press("Save").await;
    b.wait_text(".flash.success", "The mailing was created.")
        .await;
    let heading = b.wait_text("h1", "Spring news").await;
    assert!(heading.starts_with("Mailing #"), "{heading}");
    let recipients_dd = b
        .js(
            "const dt = [...document.querySelectorAll('dl.details dt')]
                 .find(d => d.innerText.trim() === 'Recipients');
             return dt ? dt.nextElementSibling.innerText.trim() : null;",
            vec![],
        )
        .await;
    assert_eq!(recipients_dd, json!(AUDIENCE.to_string()));
    b.step("mailing-created", &[]).await;

    // A dry run from the mailing page: rendered for everyone, nothing sent.
    b.press("Dry run").await;
    b.wait_text(".flash.success", "Dry run #").await;
    // "100%" shows as soon as the last outcome is recorded, a moment before the run is
    // finished: wait for the end, not the percentage (a loaded machine caught that moment).
    let done = b.wait_text("#progress", "Success").await;
    assert!(done.contains("100%"), "{done}");
    assert!(done.contains("dry run"), "{done}");
    assert!(done.contains(&format!("{AUDIENCE} dry-run")), "{done}");
    b.step("dry-run", &[]).await;
    assert!(app.outbox.messages().is_empty(), "a dry run sent mail");

    // The real send asks first (it mails people); then the page polls
    // /mailings/{id}/progress until the run ends, in place.
    b.click("a.button[hx-post$='/send']").await;
    let question = b.accept_confirm().await;
    assert!(question.starts_with("Send mailing #"), "{question}");
    // Not just "Run #": the page being left says "Dry run #…".
    b.until("the run's flash", async |b| {
        b.text(".flash.success")
            .await
            .filter(|t| t.starts_with("Run #"))
    })
    .await;
    b.mark_document().await;
    assert!(
        b.attr("#progress", "hx-get").await.is_some(),
        "the run ended before its page showed; the progress bar never polls"
    );
    let early = b.text("#progress").await.unwrap_or_default();
    assert!(early.contains("Running"), "{early}");
    let first = sent_count(&early);
    b.show("#progress").await;
    b.step("sending", &[]).await;
    // The bar moves in place: a later count, not yet the end, without a page load.
    let moved = b
        .until("the progress bar to move in place", async |b| {
            let text = b.text("#progress").await?;
            let n = sent_count(&text);
            (n > first && n < AUDIENCE && b.same_document().await).then_some(text)
        })
        .await;
    assert!(moved.contains("Running"), "{moved}");
    b.show("#progress").await;
    b.step("sending-moved", &[]).await;
    // At the end the page is current again: status, run history, what may still be done.
    b.until_within(
        Duration::from_secs(30),
        "the mailing to show Finished",
        async |b| {
            b.text(".page-head .badge")
                .await
                .filter(|t| t == "Finished")
        },
    )
    .await;
    let done = b.text("#progress").await.unwrap_or_default();
    assert!(done.contains("100%"), "{done}");
    assert!(done.contains("Success"), "{done}");
    assert_eq!(sent_count(&done), AUDIENCE, "{done}");
    assert_eq!(
        b.attr("#progress", "hx-get").await,
        None,
        "the finished run still polls"
    );
    assert_eq!(b.count("h2 + .table-wrap tbody tr .badge.success").await, 2);
    let buttons = b
        .js(
            "return [...document.querySelectorAll('main button, main a.button')].map(b => b.innerText.trim());",
            vec![],
        )
        .await;
    assert!(
        !buttons.as_array().unwrap().contains(&json!("Send now")),
        "a finished mailing offers {buttons}"
    );
    b.show("#progress").await;
    b.step("sent", &[]).await;
    assert_eq!(app.outbox.messages().len(), AUDIENCE);

    // The delivery log: one row per recipient and run, filterable by status.
    b.click("a.button[href$='/logs']").await;
    b.wait_text("h1", "Delivery log of mailing #").await;
    b.wait_count("table.list tbody .badge.sent", AUDIENCE).await;
    assert_eq!(b.count("table.list tbody .badge.dry_run").await, AUDIENCE);
    b.wait_text("table.list tbody", "Ann Lee").await;
    b.click("nav.filters a[href$='status=sent']").await;
    b.wait_text("nav.filters strong", "Sent").await;
    b.wait_count("table.list tbody tr", AUDIENCE).await;
    assert_eq!(b.count("table.list tbody .badge.dry_run").await, 0);
    b.step("delivery-log", &[]).await;

    // The period report counts the run.
    b.click("nav a[href='/mailings/reports/']").await;
    b.wait_text("h1", "Report").await;
    b.wait_text("#per-mailing", "Spring news").await;
    assert_eq!(
        b.text("#per-mailing td[data-col='sent']").await.as_deref(),
        Some(AUDIENCE.to_string().as_str())
    );
    assert_eq!(
        b.text("#per-mailing td[data-col='dry_run']")
            .await
            .as_deref(),
        Some(AUDIENCE.to_string().as_str())
    );
    assert_eq!(
        b.text("#report-sent").await.as_deref(),
        Some(AUDIENCE.to_string().as_str())
    );
    assert_eq!(
        b.text("header.site nav a[aria-current='page']")
            .await
            .as_deref(),
        Some("Reports")
    );
    assert_eq!(b.count("header.site nav a[aria-current='page']").await, 1);
    b.step("report", &[]).await;

    b.close().await;
    eprintln!("browser journey took {:?}", started.elapsed());
}

/// The page has its frame: the header in one row (brand, navigation, account) and the footer.
async fn assert_layout(b: &Browser) {
    assert_eq!(b.count("header.site").await, 1, "the page lost its header");
    assert_eq!(b.count("footer").await, 1, "the page lost its footer");
    let middles = b
        .js(
            "const mid = s => { const r = document.querySelector(s).getBoundingClientRect();
                                return r.top + r.height / 2; };
             return [mid('header.site .brand'), mid('header.site nav a'), mid('header.site .user a')];",
            vec![],
        )
        .await;
    let ys: Vec<f64> = middles
        .as_array()
        .expect("the header's brand, navigation and account link")
        .iter()
        .filter_map(|y| y.as_f64())
        .collect();
    let spread =
        ys.iter().cloned().fold(f64::MIN, f64::max) - ys.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread < 8.0, "the header is not one row: middles at {ys:?}");
}

/// The `N` of the progress bar's "N sent".
fn sent_count(progress: &str) -> usize {
    progress
        .split(" sent")
        .next()
        .and_then(|before| before.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `YYYY-MM-DDTHH:MM`, what a `datetime-local` input holds (the owner's zone is UTC here).
fn local_minute(at: time::OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]");
    at.format(&format).unwrap()
}
