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
