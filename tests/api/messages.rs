//! `/messages/…` over HTTP: CRUD, preview, visibility, the in-use rule.

use crate::helpers::{ACTIVE, MANAGER, TestApp, spawn_app};

async fn latest_message(app: &TestApp) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT MAX(id) FROM messages")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn messages_are_created_previewed_edited_and_deleted() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    app.login_as("ann@example.com").await;
    let form = app.get_html("/messages/new").await;
    assert!(
        form.contains("{{full_name}}") && form.contains("{{email}}"),
        "placeholders are explained"
    );

    let resp = app
        .post_form(
            "/messages/",
            &[
                ("subject", "Hello {{full_name}}"),
                ("body", "Dear {{full_name}},\nyour address is {{email}}."),
                (
                    "body_html",
                    "<p>Dear <b>{{full_name}}</b></p><script>alert(1)</script>",
                ),
            ],
        )
        .await;
    assert_eq!(resp.status(), 303);
    let id = latest_message(&app).await;
    assert_eq!(
        resp.headers()["location"],
        format!("/messages/{id}").as_str()
    );

    let page = app.get_html(&format!("/messages/{id}")).await;
    assert!(
        page.contains("Hello Ann Example"),
        "subject previewed for the sample recipient"
    );
    assert!(page.contains("your address is ann@example.com."));
    assert!(
        page.contains("<iframe class=\"preview\" sandbox=\"\""),
        "HTML preview is sandboxed"
    );
    assert!(page.contains("srcdoc=\"&lt;p&gt;Dear &lt;b&gt;Ann Example&lt;/b&gt;"));
    assert!(
        !page.contains("<script>alert(1)</script>"),
        "never inline in our page"
    );

    let resp = app
        .post_form(
            &format!("/messages/{id}/edit"),
            &[("subject", "Bye"), ("body", "Text"), ("body_html", "")],
        )
        .await;
    assert_eq!(resp.status(), 303);
    let html: Option<String> = sqlx::query_scalar("SELECT body_html FROM messages WHERE id = $1")
        .bind(id)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(html, None, "an emptied HTML body is removed");

    let list = app.get_html("/messages/").await;
    assert!(list.contains("Bye"));
    let resp = app.post_form(&format!("/messages/{id}/delete"), &[]).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(app.get(&format!("/messages/{id}")).await.status(), 404);
}

#[tokio::test]
async fn invalid_messages_are_422() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    app.login_as("ann@example.com").await;
    let long = "s".repeat(256);
    let cases: [(&str, &str, &str); 4] = [
        ("", "Body", "Enter a subject"),
        ("Hi\r\nBcc: victim@example.com", "Body", "single line"),
        (&long, "Body", "at most 255"),
        ("Hi", "   ", "Enter the text"),
    ];
    for (subject, body, message) in cases {
        let resp = app
            .post_form(
                "/messages/",
                &[("subject", subject), ("body", body), ("body_html", "")],
            )
            .await;
        assert_eq!(resp.status(), 422, "{subject:?}");
        assert!(resp.text().await.unwrap().contains(message), "{message}");
    }
    let n: i64 = sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM messages")
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test]
async fn a_message_used_by_a_mailing_cannot_be_deleted() {
    let app = spawn_app().await;
    let ann = app.create_user("ann@example.com", ACTIVE).await;
    app.login_as("ann@example.com").await;
    app.post_form(
        "/messages/",
        &[("subject", "Used"), ("body", "Body"), ("body_html", "")],
    )
    .await;
    let id = latest_message(&app).await;
    let now = autosend::db::now_ms();
    let mailing: i64 = sqlx::query_scalar(
        "INSERT INTO mailings (owner_id, message_id, start_at, end_at, period, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, 'once', 'created', $3, $3) RETURNING id",
    )
    .bind(ann)
    .bind(id)
    .bind(now)
    .bind(now + 3_600_000)
    .fetch_one(&app.state.db.pool)
    .await
    .unwrap();

    let page = app.get_html(&format!("/messages/{id}")).await;
    assert!(
        page.contains(&format!("mailing #{mailing}")),
        "the page says which mailings use it"
    );
    let resp = app.post_form(&format!("/messages/{id}/delete"), &[]).await;
    assert_eq!(resp.status(), 409);
    let encoded = resp.headers()["x-error-message"]
        .to_str()
        .unwrap()
        .to_string();
    let body = resp.text().await.unwrap();
    assert!(
        body.contains(&format!("used by mailing #{mailing}")),
        "{body}"
    );
    assert!(
        encoded.contains("used%20by%20mailing"),
        "htmx gets the reason too"
    );
    assert_eq!(
        app.get(&format!("/messages/{id}")).await.status(),
        200,
        "still there"
    );
}

/// Who gets which status on each message route is the access matrix of security.rs; here,
/// what each one sees in the list and on the page.
#[tokio::test]
async fn who_sees_which_messages() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    app.create_user("zed@example.com", ACTIVE).await;
    app.create_user("mgr@example.com", MANAGER).await;
    app.login_as("ann@example.com").await;
    app.post_form(
        "/messages/",
        &[
            ("subject", "Ann's <news>"),
            ("body", "Body"),
            ("body_html", ""),
        ],
    )
    .await;
    let id = latest_message(&app).await;

    let zed = app.browser_for("zed@example.com").await;
    assert!(
        !zed.get(app.url("/messages/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("news")
    );

    let mgr = app.browser_for("mgr@example.com").await;
    assert!(
        mgr.get(app.url("/messages/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("news"),
        "a viewer lists everyone's messages"
    );
    let page = mgr
        .get(app.url(&format!("/messages/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(page.contains("Read-only"));
    assert!(
        page.contains("Ann's &lt;news&gt;"),
        "escaped for the viewer too"
    );
}
