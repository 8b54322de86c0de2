//! `/messages/…` over HTTP: CRUD, preview, visibility, the in-use rule.

use crate::helpers::{ACTIVE, MANAGER, MailingForm, id_in, spawn_app};
use crate::html::location;

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
    let id = id_in(&location(&resp), "/messages/");
    assert_eq!(app.count("messages").await, 1);

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
        .post_page(
            &format!("/messages/{id}/edit"),
            &[("subject", "Bye"), ("body", "Text"), ("body_html", "")],
        )
        .await;
    assert_eq!(resp.status, 303);
    let html: Option<String> = sqlx::query_scalar("SELECT body_html FROM messages WHERE id = $1")
        .bind(id)
        .fetch_one(&app.state.db.pool)
        .await
        .unwrap();
    assert_eq!(html, None, "an emptied HTML body is removed");

    let list = app.get_html("/messages/").await;
    assert!(list.contains("Bye"));
    let resp = app.post_page(&format!("/messages/{id}/delete"), &[]).await;
    assert_eq!(resp.status, 303);
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
        app.post_page(
            "/messages/",
            &[("subject", subject), ("body", body), ("body_html", "")],
        )
        .await
        .assert_status(422)
        .assert_contains(message);
    }
    assert_eq!(app.count("messages").await, 0);
}

#[tokio::test]
async fn a_message_used_by_a_mailing_cannot_be_deleted() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    app.login_as("ann@example.com").await;
    let id = app.add_message("Used", "Body").await;
    let bob = app.add_recipient("bob@example.com", "Bob", "").await;
    let mailing = app.add_mailing(&MailingForm::once(id, &[bob])).await;

    let page = app.get_html(&format!("/messages/{id}")).await;
    assert!(
        page.contains(&format!("mailing #{mailing}")),
        "the page says which mailings use it"
    );
    let refused = app.post_page(&format!("/messages/{id}/delete"), &[]).await;
    refused
        .assert_status(409)
        .assert_contains(&format!("used by mailing #{mailing}"));
    assert!(
        refused
            .header("x-error-message")
            .contains("used%20by%20mailing"),
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
    let id = app.add_message("Ann's <news>", "Body").await;

    let zed = app.browser_for("zed@example.com").await;
    assert!(!app.get_html_as(&zed, "/messages/").await.contains("news"));

    let mgr = app.browser_for("mgr@example.com").await;
    assert!(
        app.get_html_as(&mgr, "/messages/").await.contains("news"),
        "a viewer lists everyone's messages"
    );
    app.get_page_as(&mgr, &format!("/messages/{id}"))
        .await
        .assert_status(200)
        .assert_contains("Read-only")
        .assert_contains("Ann's &lt;news&gt;");
}
