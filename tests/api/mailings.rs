//! `/mailings/…` over HTTP: the form in the user's zone, manual runs, progress, logs,
//! disable, and who may do what.

use crate::helpers::{ACTIVE, MailingForm, Page, Role, TestApp, spawn_app};

struct Fixture {
    message: i64,
    recipients: Vec<i64>,
}

/// A user `email` with a message and three recipients, made through their routes in the
/// user's own browser (the app's client stays logged out).
async fn fixture(app: &TestApp, email: &str) -> Fixture {
    app.create_user(email, ACTIVE).await;
    let browser = app.browser_for(email).await;
    let message = app
        .add_message_as(&browser, "Hi {{full_name}}", "Hello {{email}}")
        .await;
    let mut recipients = Vec::new();
    for (i, name) in ["Ann One", "Bob Two", "Cat Three"].iter().enumerate() {
        let address = format!("r{i}.{email}");
        recipients.push(app.add_recipient_as(&browser, &address, name, "").await);
    }
    Fixture {
        message,
        recipients,
    }
}

fn mailing_form<'a>(
    message: &'a str,
    ids: &'a [String],
    start: &'a str,
    end: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("message_id", message),
        ("start_at", start),
        ("end_at", end),
        ("period", "once"),
    ];
    for id in ids {
        form.push(("recipient_ids", id.as_str()));
    }
    form
}

async fn create(app: &TestApp, f: &Fixture) -> i64 {
    app.add_mailing(&MailingForm::once(f.message, &f.recipients))
        .await
}

#[tokio::test]
async fn a_mailing_is_created_in_the_users_time_zone_and_shown() {
    let app = spawn_app().await;
    let f = fixture(&app, "ann@example.com").await;
    app.login_as("ann@example.com").await;
    let profile = [
        ("full_name", "Ann"),
        ("phone", ""),
        ("country", ""),
        ("time_zone", "Europe/Berlin"),
    ];
    app.post_page("/users/profile/edit", &profile)
        .await
        .assert_status(303);
    let form = app.get_html("/mailings/new").await;
    assert!(
        form.contains("Hi {{full_name}}") && form.contains("Ann One"),
        "messages and recipients offered"
    );
    assert!(form.contains("In Europe/Berlin"));

    let id = create(&app, &f).await;
    let mailing = autosend::db::mailings::get(&app.state.db, id)
        .await
        .unwrap()
        .unwrap();
    // 09:00 in Berlin (UTC+1 in January) is 08:00 UTC.
    assert_eq!(
        autosend::domain::local_time::format_local(
            mailing.start_at,
            autosend::domain::TimeZone::UTC
        ),
        "2030-01-01T08:00"
    );
    assert_eq!(
        autosend::db::mailings::recipient_ids(&app.state.db, id)
            .await
            .unwrap()
            .len(),
        3
    );
    let page = app.get_html(&format!("/mailings/{id}")).await;
    assert!(
        page.contains("2030-01-01 09:00") && page.contains("Created"),
        "shown back in the user's zone"
    );
    let list = app.get_html("/mailings/").await;
    assert!(list.contains(&format!("/mailings/{id}")));
    let filtered = app.get_html("/mailings/?status=finished").await;
    assert!(!filtered.contains(&format!("href=\"/mailings/{id}\"")));
}

#[tokio::test]
async fn invalid_mailings_are_422_and_change_nothing() {
    let app = spawn_app().await;
    let f = fixture(&app, "ann@example.com").await;
    let other = fixture(&app, "zed@example.com").await;
    app.login_as("ann@example.com").await;
    let mine: Vec<String> = f.recipients.iter().map(|i| i.to_string()).collect();
    let theirs: Vec<String> = vec![other.recipients[0].to_string()];
    let message = f.message.to_string();
    let foreign_message = other.message.to_string();
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            mailing_form(&message, &mine, "2030-02-01T09:00", "2030-01-01T09:00"),
            "end must be after the start",
        ),
        (
            mailing_form(&message, &mine, "2030-01-01T09:00", "2030-01-01T09:00"),
            "end must be after the start",
        ),
        (
            mailing_form(&message, &mine, "next tuesday", "2030-01-01T09:00"),
            "not a date and time",
        ),
        (
            mailing_form(
                &foreign_message,
                &mine,
                "2030-01-01T09:00",
                "2030-02-01T09:00",
            ),
            "Choose one of your messages",
        ),
        (
            mailing_form("abc", &mine, "2030-01-01T09:00", "2030-02-01T09:00"),
            "Choose a message",
        ),
        (
            mailing_form(&message, &theirs, "2030-01-01T09:00", "2030-02-01T09:00"),
            "Only your own recipients",
        ),
        (
            mailing_form(&message, &[], "2030-01-01T09:00", "2030-02-01T09:00"),
            "at least one recipient",
        ),
    ];
    for (form, message) in cases {
        app.post_page("/mailings/", &form)
            .await
            .assert_status(422)
            .assert_contains(message);
    }
    let mut bad_period = mailing_form(&message, &mine, "2030-01-01T09:00", "2030-02-01T09:00");
    bad_period[3] = ("period", "hourly");
    assert_eq!(app.post_form("/mailings/", &bad_period).await.status(), 422);
    let (rows, total) = autosend::db::mailings::list(&app.state.db, None, None, false, 10, 0)
        .await
        .unwrap();
    assert_eq!((rows.len(), total), (0, 0));
}

#[tokio::test]
async fn select_all_matching_links_every_matching_recipient() {
    let app = spawn_app().await;
    let f = fixture(&app, "ann@example.com").await;
    app.login_as("ann@example.com").await;
    let message = f.message.to_string();
    let resp = app
        .post_page(
            "/mailings/",
            &[
                ("message_id", message.as_str()),
                ("start_at", "2030-01-01T09:00"),
                ("end_at", "2030-02-01T09:00"),
                ("period", "weekly"),
                ("recipient_q", "o"),
                ("all_matching", "1"),
            ],
        )
        .await;
    assert_eq!(resp.status, 303);
    let id: i64 = resp.headers["location"]
        .to_str()
        .unwrap()
        .trim_start_matches("/mailings/")
        .parse()
        .unwrap();
    // "Ann One" and "Bob Two" contain an o; "Cat Three" does not (its address does: r2.ann@ex…).
    let linked = autosend::db::mailings::recipient_ids(&app.state.db, id)
        .await
        .unwrap();
    assert_eq!(linked.len(), 3, "the search covers e-mail too");
    // The picker reload answers the form with the narrowed candidates.
    let picker = app.get_html("/mailings/new?picker=1&recipient_q=bob").await;
    assert!(picker.contains("Bob Two") && !picker.contains("Cat Three"));
}

#[tokio::test]
async fn dry_run_send_now_progress_logs_and_disable() {
    let app = spawn_app().await;
    let f = fixture(&app, "ann@example.com").await;
    app.login_as("ann@example.com").await;
    let id = create(&app, &f).await;

    let resp = app
        .post_page(&format!("/mailings/{id}/send"), &[("dry_run", "1")])
        .await;
    assert_eq!(resp.status, 303);
    let progress = app.wait_until_finished(id).await;
    assert!(progress.contains("100%"), "{progress}");
    assert!(
        !progress.contains("hx-trigger"),
        "a finished run stops polling"
    );
    assert!(app.outbox.messages().is_empty(), "a dry run sends nothing");
    let logs = app
        .get_html(&format!("/mailings/{id}/logs?status=dry_run"))
        .await;
    assert_eq!(logs.matches("badge dry_run").count(), 3, "{logs}");

    let resp = app.post_page(&format!("/mailings/{id}/send"), &[]).await;
    assert_eq!(resp.status, 303);
    app.wait_until_finished(id).await;
    assert_eq!(app.outbox.messages().len(), 3);
    let page = app.get_html(&format!("/mailings/{id}")).await;
    assert!(page.contains("Run history") && page.contains("manual:ann@example.com"));
    let logs = app
        .get_html(&format!("/mailings/{id}/logs?status=sent"))
        .await;
    assert_eq!(logs.matches("badge sent").count(), 3);
    // A `once` mailing that was delivered is finished: no more sends.
    app.post_page(&format!("/mailings/{id}/send"), &[])
        .await
        .assert_status(409)
        .assert_contains("finished");

    let id2 = create(&app, &f).await;
    let resp = app
        .post_page(&format!("/mailings/{id2}/disable"), &[])
        .await;
    assert_eq!(resp.status, 303);
    let mailing = autosend::db::mailings::get(&app.state.db, id2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mailing.status.as_str(), "finished");
    let resp = app.post_page(&format!("/mailings/{id2}/delete"), &[]).await;
    assert_eq!(resp.status, 303);
    assert!(
        autosend::db::mailings::get(&app.state.db, id2)
            .await
            .unwrap()
            .is_none()
    );
}

/// Who gets which status on each mailing route is the access matrix of security.rs; here,
/// what a read-only viewer sees.
#[tokio::test]
async fn a_viewer_sees_a_mailing_without_its_buttons() {
    let app = spawn_app().await;
    let f = fixture(&app, "ann@example.com").await;
    let viewer = Role {
        view_all: true,
        ..ACTIVE
    };
    app.create_user("viewer@example.com", viewer).await;
    app.login_as("ann@example.com").await;
    let id = create(&app, &f).await;
    let own = app.get_html(&format!("/mailings/{id}")).await;
    assert!(
        own.contains("Send now"),
        "the control: the owner has the buttons"
    );

    let view = app.browser_for("viewer@example.com").await;
    let page = Page::read(app.get_as(&view, &format!("/mailings/{id}")).await).await;
    page.assert_status(200);
    let page = page.text;
    assert!(
        !page.contains("Send now") && !page.contains(">Disable<"),
        "read-only"
    );

    for bad in [
        "/mailings/abc",
        "/mailings/0/logs",
        "/mailings/999999/progress",
    ] {
        assert_eq!(app.get(bad).await.status(), 404, "{bad}");
    }
}
