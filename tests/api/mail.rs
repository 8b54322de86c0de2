//! The mailer backends as the app builds them from its settings.

use autosend::mail::compose;

use crate::helpers::{spawn_app, spawn_app_with};

fn test_message(html: Option<&str>) -> lettre::Message {
    compose(
        &"autosend@localhost".parse().unwrap(),
        &"Ann <ann@example.com>".parse().unwrap(),
        "Hello Ann",
        "Plain body".to_string(),
        html.map(str::to_string),
    )
    .unwrap()
}

#[tokio::test]
async fn the_memory_backend_keeps_what_was_sent() {
    let app = spawn_app().await;
    let reply = app
        .state
        .mailer
        .send(test_message(Some("<p>HTML body</p>")))
        .await
        .unwrap();
    assert_eq!(reply, "stored");
    let sent = app.outbox.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, vec!["ann@example.com".to_string()]);
    let parsed = mailparse::parse_mail(sent[0].raw.as_bytes()).unwrap();
    assert_eq!(
        parsed
            .headers
            .iter()
            .find(|h| h.get_key() == "Subject")
            .unwrap()
            .get_value(),
        "Hello Ann"
    );
    assert_eq!(
        parsed.subparts.len(),
        2,
        "plain text plus an HTML alternative"
    );
    assert_eq!(parsed.subparts[0].get_body().unwrap().trim(), "Plain body");
    assert!(
        parsed.subparts[1]
            .get_body()
            .unwrap()
            .contains("<p>HTML body</p>")
    );
}

#[tokio::test]
async fn the_file_backend_writes_one_eml_per_message() {
    let app = spawn_app_with(|v| {
        v.insert("EMAIL_BACKEND".into(), "file".into());
    })
    .await;
    assert!(app.state.mailer.outbox().is_none());
    for _ in 0..2 {
        app.state.mailer.send(test_message(None)).await.unwrap();
    }
    let outbox = app.dir.path().join("data/outbox");
    let files: Vec<_> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    for file in files {
        assert_eq!(file.extension().unwrap(), "eml");
        let raw = std::fs::read_to_string(&file).unwrap();
        assert!(raw.contains("Subject: Hello Ann"), "{raw}");
    }
}

#[tokio::test]
async fn an_unreachable_smtp_server_is_a_temporary_failure() {
    let app = spawn_app_with(|v| {
        v.insert("EMAIL_BACKEND".into(), "smtp".into());
        v.insert("SMTP_PORT".into(), "1".into());
        v.insert("SMTP_TIMEOUT_SECS".into(), "2".into());
    })
    .await;
    let err = app.state.mailer.send(test_message(None)).await.unwrap_err();
    assert!(
        matches!(err, autosend::mail::SendError::Temporary(_)),
        "a refused connection may work later: {err}"
    );
}

/// `Date` parses and `Message-ID` is this install's (`<….{install}@{domain}>`), or — error
/// reports, whose parts share a thread — carries a random 128-bit id.
fn assert_dated_and_identified(raw: &str, install: &str, what: &str) {
    use mailparse::MailHeaderMap;
    let parsed = mailparse::parse_mail(raw.as_bytes()).unwrap();
    let date = parsed
        .headers
        .get_first_value("Date")
        .unwrap_or_else(|| panic!("{what}: no Date in {raw}"));
    assert!(mailparse::dateparse(&date).is_ok(), "{what}: Date {date:?}");
    let id = parsed
        .headers
        .get_first_value("Message-ID")
        .unwrap_or_else(|| panic!("{what}: no Message-ID in {raw}"));
    let random = id
        .trim_start_matches('<')
        .split('.')
        .next()
        .is_some_and(|first| first.len() == 32 && first.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(
        id.starts_with('<')
            && id.ends_with('>')
            && (id.contains(&format!(".{install}@")) || random),
        "{what}: Message-ID {id:?} is neither this install's ({install}) nor random"
    );
}

fn header_value(raw: &str, name: &str) -> Option<String> {
    use mailparse::MailHeaderMap;
    mailparse::parse_mail(raw.as_bytes())
        .unwrap()
        .headers
        .get_first_value(name)
}

#[tokio::test]
async fn account_mail_and_reports_carry_date_message_id_and_auto_submitted() {
    use crate::helpers::{ACTIVE, SUPERUSER};
    let app = spawn_app_with(|v| {
        v.insert("ADMINS".into(), "ops@example.com".into());
        v.insert("MANAGERS".into(), "manager@example.com".into());
        v.insert("ERROR_EMAIL_CHUNK_SIZE".into(), "10000000".into());
    })
    .await;
    let install = app.state.mailer.identity().install.clone();
    assert_eq!(install.len(), 16);
    app.create_user("ann@example.com", ACTIVE).await;

    let resp = app
        .post_page(
            "/users/signup",
            &[
                ("email", "new.user@example.com"),
                ("full_name", "New User"),
                ("password", crate::helpers::PASSWORD),
                ("password2", crate::helpers::PASSWORD),
            ],
        )
        .await;
    assert_eq!(resp.status, 200);
    let resp = app
        .post_page("/users/password-reset", &[("email", "ann@example.com")])
        .await;
    assert!(resp.status.is_success() || resp.status.is_redirection());

    // A 500 (to ADMINS) and a broken link (to MANAGERS).
    app.create_user("root@example.com", SUPERUSER).await;
    app.login_as("root@example.com").await;
    let token = app.csrf_token().await;
    let resp = app
        .client
        .post(app.url("/admin/error-test"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    let resp = crate::helpers::client()
        .get(app.url("/gone-for-good"))
        .header("Referer", "https://elsewhere.example/links")
        .header("User-Agent", "Mozilla/5.0 Firefox/140.0")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    app.state.reporter.flush().await;

    let sent = app.outbox.messages();
    let to = |addr: &str| {
        sent.iter()
            .filter(|m| m.to.iter().any(|t| t == addr))
            .map(|m| m.raw.clone())
            .collect::<Vec<_>>()
    };
    let mut ids = std::collections::HashSet::new();
    for (addr, what, report) in [
        ("new.user@example.com", "activation", false),
        ("ann@example.com", "password reset", false),
        ("ops@example.com", "error report", true),
        ("manager@example.com", "broken-link report", true),
    ] {
        let mails = to(addr);
        assert!(!mails.is_empty(), "no {what} mail");
        for raw in mails {
            assert_dated_and_identified(&raw, &install, what);
            assert!(
                ids.insert(header_value(&raw, "Message-ID")),
                "{what}: id reused"
            );
            let auto = header_value(&raw, "Auto-Submitted");
            if report {
                assert_eq!(auto.as_deref(), Some("auto-generated"), "{what}");
            } else {
                assert_eq!(auto, None, "{what} is not a machine report");
            }
        }
    }
}

#[tokio::test]
async fn the_test_email_has_a_date_and_a_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let secret = crate::helpers::SECRET_KEY;
    let (code, _, stderr) = crate::cli::output(crate::cli::autosend(
        dir.path(),
        &["sendtestemail", "someone@example.com"],
        &[("EMAIL_BACKEND", "file"), ("SECRET_KEY", secret)],
    ))
    .await;
    assert_eq!(code, 0, "{stderr}");
    let settings =
        autosend::config::Settings::from_vars(&crate::helpers::test_vars(dir.path())).unwrap();
    let install = autosend::mail::Identity::from_settings(&settings).install;
    let files: Vec<_> = std::fs::read_dir(dir.path().join("data/outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let raw = std::fs::read_to_string(&files[0]).unwrap();
    assert_dated_and_identified(&raw, &install, "sendtestemail");
}

#[tokio::test]
async fn quoted_local_parts_and_address_literals_are_refused_at_input() {
    use crate::helpers::ACTIVE;
    let app = spawn_app().await;
    app.create_user("owner@example.com", ACTIVE).await;
    app.login_as("owner@example.com").await;
    for bad in [
        "\"anna k\"@example.com",
        "\"anna\"@example.com",
        "anna@[192.0.2.1]",
        "anna@[IPv6:2001:db8::1]",
    ] {
        let resp = app
            .post_page(
                "/clients/",
                &[("email", bad), ("full_name", "Anna"), ("comment", "")],
            )
            .await;
        assert_eq!(resp.status, 422, "{bad}");
    }
    let list = app.get_html("/clients/").await;
    assert!(!list.contains("anna"), "nothing was saved");
}

#[tokio::test]
async fn check_warns_when_one_click_unsubscribe_is_off_because_base_url_is_not_https() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) =
        crate::cli::output(crate::cli::autosend(dir.path(), &["check"], &[])).await;
    assert_eq!(code, 0, "a warning, not a failure: {stdout}{stderr}");
    assert!(
        stdout.contains("warning: BASE_URL") && stdout.contains("List-Unsubscribe-Post"),
        "{stdout}"
    );
    let (code, stdout, stderr) = crate::cli::output(crate::cli::autosend(
        dir.path(),
        &["check"],
        &[("BASE_URL", "https://mail.example.org")],
    ))
    .await;
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(!stdout.contains("warning: BASE_URL"), "{stdout}");
}
