//! Accounts over HTTP (SPEC §5): every flow and every refusal.

use autosend::accounts::tokens::{self, Purpose};
use autosend::db::users;

use crate::helpers::{
    ACTIVE, MANAGER, PASSWORD, Page, SUPERUSER, client, post_form_with, spawn_app,
};
use crate::html::location;

fn session_cookie(resp: &reqwest::Response) -> Option<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("sessionid="))
        .map(|c| c.split(';').next().unwrap().to_string())
}

#[tokio::test]
async fn signup_activation_and_login() {
    let app = spawn_app().await;
    app.post_page(
        "/users/signup",
        &[
            ("email", "New.User@Example.com"),
            ("full_name", "New User"),
            ("password", PASSWORD),
            ("password2", PASSWORD),
        ],
    )
    .await
    .assert_status(200)
    .assert_contains("activation link");

    // Not active yet: the right password still does not let them in.
    Page::read(app.login("new.user@example.com", PASSWORD).await)
        .await
        .assert_status(422)
        .assert_contains("not active");

    let mails = app.mails_to("new.user@example.com");
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].subject, "Activate your autosend account");
    let path = mails[0].link_path();
    assert!(path.starts_with("/users/activate/"), "{path}");
    assert!(
        mails[0].html.contains(&path),
        "the HTML alternative carries the same link"
    );
    app.get_page(&path)
        .await
        .assert_status(200)
        .assert_contains("Your account is active");

    // The link works once.
    app.get_page(&path)
        .await
        .assert_status(400)
        .assert_contains("already been used");

    let resp = app.login("NEW.USER@example.com", PASSWORD).await;
    assert_eq!(resp.status(), 303, "e-mail is case-insensitive");
    assert_eq!(location(&resp), "/");
    let home = app.get_html("/").await;
    assert!(
        home.contains("new.user@example.com"),
        "navigation shows who is logged in"
    );
    assert!(home.contains("Log out"));
    assert!(
        home.contains("count-mailings"),
        "the dashboard replaces the landing page"
    );
}

#[tokio::test]
async fn signup_refusals_keep_input_and_change_nothing() {
    let app = spawn_app().await;
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[
                ("email", "not-an-email"),
                ("full_name", "Ann"),
                ("password", PASSWORD),
                ("password2", PASSWORD),
            ],
            "not a valid e-mail",
        ),
        (
            &[
                ("email", "ann@example.com"),
                ("full_name", "A"),
                ("password", PASSWORD),
                ("password2", PASSWORD),
            ],
            "at least 2 characters",
        ),
        (
            &[
                ("email", "ann@example.com"),
                ("full_name", "Ann"),
                ("password", "short"),
                ("password2", "short"),
            ],
            "at least 8",
        ),
        (
            &[
                ("email", "ann@example.com"),
                ("full_name", "Ann"),
                ("password", PASSWORD),
                ("password2", "different one"),
            ],
            "do not match",
        ),
        (
            &[
                ("email", "ann@example.com"),
                ("full_name", "<script>alert(1)</script>"),
                ("password", "1"),
                ("password2", "1"),
            ],
            "at least 8",
        ),
    ];
    for (fields, message) in cases {
        let resp = app.post_page("/users/signup", fields).await;
        assert_eq!(resp.status, 422, "{fields:?}");
        let body = resp.text;
        assert!(body.contains(message), "{message} missing for {fields:?}");
        assert!(!body.contains("<script>alert"), "input is escaped");
        assert!(!body.contains(PASSWORD), "passwords are never echoed");
    }
    assert!(
        users::find_by_email(&app.state.db, "ann@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(app.outbox.messages().is_empty());
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_answer() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    let wrong = Page::read(app.login("ann@example.com", "not the password").await).await;
    assert_eq!(wrong.status, 422);
    let wrong = wrong.text;
    let unknown = Page::read(app.login("nobody@example.com", "not the password").await).await;
    assert_eq!(unknown.status, 422);
    let unknown = unknown.text;
    let message = "The e-mail address or the password is not right.";
    assert!(wrong.contains(message) && unknown.contains(message));
    // Apart from the typed address (kept in the form) and the per-render CSRF tokens, the
    // two pages are byte for byte the same.
    let tokens = regex::Regex::new(r#"(content|value)="[A-Za-z0-9_-]{40,}""#).unwrap();
    let normalise = |page: &str, email: &str| {
        tokens
            .replace_all(&page.replace(email, "EMAIL"), "$1=\"T\"")
            .into_owned()
    };
    assert_eq!(
        normalise(&wrong, "ann@example.com"),
        normalise(&unknown, "nobody@example.com")
    );
}

#[tokio::test]
async fn inactive_users_cannot_log_in() {
    let app = spawn_app().await;
    let mut role = ACTIVE;
    role.active = false;
    app.create_user("sleepy@example.com", role).await;
    Page::read(app.login("sleepy@example.com", PASSWORD).await)
        .await
        .assert_status(422)
        .assert_contains("not active");
    assert_eq!(app.get("/users/profile").await.status(), 303);
}

#[tokio::test]
async fn anonymous_visitors_go_to_login_and_come_back() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    let resp = app.get("/users/profile?tab=1").await;
    assert_eq!(resp.status(), 303);
    let target = location(&resp);
    assert_eq!(target, "/users/login?next=%2Fusers%2Fprofile%3Ftab%3D1");

    let resp = app
        .post_form(
            &target,
            &[("email", "ann@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(location(&resp), "/users/profile?tab=1");
}

#[tokio::test]
async fn open_redirects_are_refused() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    for evil in [
        "https://evil.example/",
        "//evil.example",
        "/\\evil.example",
        "javascript:alert(1)",
    ] {
        let path = format!(
            "/users/login?next={}",
            percent_encoding::utf8_percent_encode(evil, percent_encoding::NON_ALPHANUMERIC)
        );
        let resp = app
            .post_form(
                &path,
                &[("email", "ann@example.com"), ("password", PASSWORD)],
            )
            .await;
        assert_eq!(resp.status(), 303);
        assert_eq!(location(&resp), "/", "next={evil} must not be followed");
    }
}

#[tokio::test]
async fn login_issues_a_new_session_id_and_logout_ends_it() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    let first = app.login("ann@example.com", PASSWORD).await;
    let first_sid = session_cookie(&first).expect("login sets the session cookie");
    assert!(first.headers()["set-cookie"].to_str().is_ok());
    let cookie_line = first
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("sessionid="))
        .unwrap();
    assert!(
        cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Lax"),
        "{cookie_line}"
    );
    assert!(!cookie_line.contains("Secure"), "plain http");

    let second = app.login("ann@example.com", PASSWORD).await;
    let second_sid = session_cookie(&second).expect("a second login renews the session");
    assert_ne!(
        first_sid, second_sid,
        "no session fixation: the id changes at login"
    );

    // The replaced id is dead.
    let replay = client()
        .get(app.url("/users/profile"))
        .header("Cookie", first_sid.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 303);

    let resp = app.post_page("/users/logout", &[]).await;
    assert_eq!(resp.status, 303);
    assert_eq!(app.get("/users/profile").await.status(), 303);
    let replay = client()
        .get(app.url("/users/profile"))
        .header("Cookie", second_sid.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(
        replay.status(),
        303,
        "a replayed cookie after logout is refused"
    );
}

#[tokio::test]
async fn logout_needs_a_csrf_token() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    app.login_as("ann@example.com").await;
    let resp = app
        .client
        .post(app.url("/users/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    assert_eq!(
        app.get("/users/profile").await.status(),
        200,
        "still logged in"
    );
    let resp = app
        .client
        .post(app.url("/users/login"))
        .form(&[("email", "ann@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403, "login needs the token too");
}

#[tokio::test]
async fn login_is_rate_limited_per_account() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            app.login("ann@example.com", "wrong password")
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, vec![422, 422, 422, 422, 422, 429]);
    let resp = Page::read(app.login("ann@example.com", PASSWORD).await).await;
    assert_eq!(resp.status, 429, "even the right password waits");
    let retry: u64 = resp.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body = resp.text;
    assert!(body.contains("Too many attempts"), "{body}");
    // Other accounts are not locked by someone hammering Ann's.
    app.create_user("bob@example.com", ACTIVE).await;
    assert_eq!(app.login("bob@example.com", PASSWORD).await.status(), 303);
}

#[tokio::test]
async fn password_reset_flow() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;

    // Unknown address: the same answer, no e-mail.
    let unknown = app
        .post_page("/users/password-reset", &[("email", "nobody@example.com")])
        .await;
    assert_eq!(unknown.status, 200);
    let unknown = unknown.text;
    app.post_page("/users/password-reset", &[("email", "ann@example.com")])
        .await
        .assert_status(200)
        .assert_contains("If an active account uses this address");
    assert!(unknown.contains("If an active account uses this address"));
    assert!(app.mails_to("nobody@example.com").is_empty());

    let bad = app
        .post_page("/users/password-reset", &[("email", "not an address")])
        .await;
    assert_eq!(bad.status, 422);

    let mails = app.mails_to("ann@example.com");
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].subject, "Reset your autosend password");
    let path = mails[0].link_path();
    assert_eq!(app.get(&path).await.status(), 200);

    let mismatch = app
        .post_page(
            &path,
            &[
                ("password", "new password 1"),
                ("password2", "new password 2"),
            ],
        )
        .await;
    assert_eq!(mismatch.status, 422);

    let done = app
        .post_form(
            &path,
            &[
                ("password", "brand new secret"),
                ("password2", "brand new secret"),
            ],
        )
        .await;
    assert_eq!(done.status(), 303);
    assert_eq!(location(&done), "/users/login");
    let login_page = app.get_html("/users/login").await;
    assert!(
        login_page.contains("Your password was changed"),
        "the flash shows once"
    );

    assert_eq!(app.login("ann@example.com", PASSWORD).await.status(), 422);
    assert_eq!(
        app.login("ann@example.com", "brand new secret")
            .await
            .status(),
        303
    );

    // Used once: the link is dead now, for GET and POST.
    app.get_page(&path)
        .await
        .assert_status(400)
        .assert_contains("already been used");
    let reused = app
        .post_page(
            &path,
            &[
                ("password", "another secret 1"),
                ("password2", "another secret 1"),
            ],
        )
        .await;
    assert_eq!(reused.status, 400);
}

#[tokio::test]
async fn expired_and_forged_reset_links_are_refused() {
    let app = spawn_app().await;
    let id = app.create_user("ann@example.com", ACTIVE).await;
    let user = users::find_by_id(&app.state.db, id).await.unwrap().unwrap();
    let past = time::OffsetDateTime::now_utc().unix_timestamp() - 10;
    let expired = tokens::make(&app.state.signer, Purpose::PasswordReset, &user, past);
    app.get_page(&format!("/users/password-reset/{expired}"))
        .await
        .assert_status(400)
        .assert_contains("expired");

    // An activation token is not a reset token, and garbage is garbage.
    let future = past + 3600;
    let activation = tokens::make(&app.state.signer, Purpose::Activation, &user, future);
    for token in [
        activation.as_str(),
        "1.2.3",
        "garbage",
        "999.999999999999.AAAA",
    ] {
        let resp = app
            .get_page(&format!("/users/password-reset/{token}"))
            .await;
        assert_eq!(resp.status, 400, "{token}");
    }
    let resp = app.get_page(&format!("/users/activate/{expired}")).await;
    assert_eq!(resp.status, 400);
}

#[tokio::test]
async fn password_change_ends_other_sessions() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    app.login_as("ann@example.com").await;
    let other = client();
    let resp = post_form_with(
        &other,
        &app,
        "/users/login",
        &[("email", "ann@example.com"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(app.get_as(&other, "/users/profile").await.status(), 200);

    app.post_page(
        "/users/password-change",
        &[
            ("old_password", "nope nope"),
            ("password", "a new secret!"),
            ("password2", "a new secret!"),
        ],
    )
    .await
    .assert_status(422)
    .assert_contains("current password is not right");

    let resp = app
        .post_page(
            "/users/password-change",
            &[
                ("old_password", PASSWORD),
                ("password", "a new secret!"),
                ("password2", "a new secret!"),
            ],
        )
        .await;
    assert_eq!(resp.status, 303);
    assert_eq!(
        app.get("/users/profile").await.status(),
        200,
        "this session carries on"
    );
    assert_eq!(
        app.get_as(&other, "/users/profile").await.status(),
        303,
        "the other session ended"
    );
}

#[tokio::test]
async fn profile_edit_validates_and_saves() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    app.login_as("ann@example.com").await;
    let page = app.get_page("/users/profile/edit").await;
    assert_eq!(page.status, 200);

    let resp = app
        .post_page(
            "/users/profile/edit",
            &[
                ("full_name", "Ann Lee"),
                ("phone", "call me maybe"),
                ("country", "NZ"),
                ("time_zone", "Mars/Base"),
            ],
        )
        .await;
    assert_eq!(resp.status, 422);
    let body = resp.text;
    assert!(body.contains("not a time zone"));
    assert!(body.contains("digits"));
    assert!(body.contains("Ann Lee"), "typed values are kept");
    let user = users::find_by_email(&app.state.db, "ann@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.full_name, "Test User", "nothing saved");

    let resp = app
        .post_page(
            "/users/profile/edit",
            &[
                ("full_name", "Ann Lee"),
                ("phone", "+64 21 555 0100"),
                ("country", "New Zealand"),
                ("time_zone", "Pacific/Auckland"),
            ],
        )
        .await;
    assert_eq!(resp.status, 303);
    let profile = app.get_html("/users/profile").await;
    for shown in [
        "Ann Lee",
        "+64 21 555 0100",
        "New Zealand",
        "Pacific/Auckland",
        "Your profile was saved",
    ] {
        assert!(profile.contains(shown), "{shown}");
    }
}

#[tokio::test]
async fn admin_users_is_for_superusers_only() {
    let app = spawn_app().await;
    app.create_user("root@example.com", SUPERUSER).await;
    let ann = app.create_user("ann@example.com", ACTIVE).await;
    app.create_user("mgr@example.com", MANAGER).await;

    assert_eq!(
        app.get("/admin/users").await.status(),
        303,
        "anonymous → login"
    );
    app.login_as("ann@example.com").await;
    assert_eq!(app.get("/admin/users").await.status(), 404);
    let resp = app
        .post_page(
            &format!("/admin/users/{ann}"),
            &[("is_active", "1"), ("view_all_mailings", "1")],
        )
        .await;
    assert_eq!(resp.status, 404);
    let user = users::find_by_id(&app.state.db, ann)
        .await
        .unwrap()
        .unwrap();
    assert!(!user.view_all_mailings, "a refused request changes nothing");

    let manager = client();
    post_form_with(
        &manager,
        &app,
        "/users/login",
        &[("email", "mgr@example.com"), ("password", PASSWORD)],
    )
    .await;
    assert_eq!(
        app.get_as(&manager, "/admin/users").await.status(),
        404,
        "managers are not superusers"
    );

    let root = client();
    post_form_with(
        &root,
        &app,
        "/users/login",
        &[("email", "root@example.com"), ("password", PASSWORD)],
    )
    .await;
    let list = app.get_html_as(&root, "/admin/users").await;
    for email in ["root@example.com", "ann@example.com", "mgr@example.com"] {
        assert!(list.contains(email));
    }
    let found = app.get_html_as(&root, "/admin/users?q=ANN").await;
    assert!(found.contains("ann@example.com") && !found.contains("mgr@example.com"));
    let none = app.get_html_as(&root, "/admin/users?q=%25").await;
    assert!(none.contains("No user matches"), "% is matched literally");

    // Grant both permissions, then deactivate: Ann's session ends.
    let resp = post_form_with(
        &root,
        &app,
        &format!("/admin/users/{ann}"),
        &[
            ("is_active", "1"),
            ("view_all_mailings", "1"),
            ("disable_mailing", "1"),
        ],
    )
    .await;
    assert_eq!(resp.status(), 303);
    let user = users::find_by_id(&app.state.db, ann)
        .await
        .unwrap()
        .unwrap();
    assert!(user.view_all_mailings && user.disable_mailing && user.is_active);
    assert_eq!(app.get("/users/profile").await.status(), 200);

    let resp = post_form_with(&root, &app, &format!("/admin/users/{ann}"), &[]).await;
    assert_eq!(resp.status(), 303);
    assert_eq!(
        app.get("/users/profile").await.status(),
        303,
        "deactivation ends the sessions"
    );
    assert_eq!(app.login("ann@example.com", PASSWORD).await.status(), 422);

    // htmx gets the row back; unknown ids are 404; nobody locks themselves out.
    let html = app.get_html_as(&root, "/admin/users").await;
    let token = crate::helpers::meta_csrf(&html).unwrap();
    let row = root
        .post(app.url(&format!("/admin/users/{ann}")))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", &token)
        .form(&[("is_active", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(row.status(), 200);
    let row = row.text().await.unwrap();
    assert!(
        row.starts_with("<tr") && row.contains("ann@example.com"),
        "{row}"
    );
    let resp = post_form_with(&root, &app, "/admin/users/999999", &[("is_active", "1")]).await;
    assert_eq!(resp.status(), 404);
    let resp = post_form_with(
        &root,
        &app,
        "/admin/users/not-a-number",
        &[("is_active", "1")],
    )
    .await;
    assert_eq!(resp.status(), 404);
    let root_id = users::find_by_email(&app.state.db, "root@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;
    let resp = post_form_with(&root, &app, &format!("/admin/users/{root_id}"), &[]).await;
    assert_eq!(resp.status(), 422);
    assert!(
        users::find_by_id(&app.state.db, root_id)
            .await
            .unwrap()
            .unwrap()
            .is_active
    );
}

#[tokio::test]
async fn sessions_survive_a_restart() {
    let mut app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    app.login_as("ann@example.com").await;
    assert_eq!(app.get("/users/profile").await.status(), 200);
    app.restart().await;
    let resp = app.get("/users/profile").await;
    assert_eq!(
        resp.status(),
        200,
        "the session is kept server-side ({})",
        app.state.cache.kind()
    );
    Page::read(resp).await.assert_contains("ann@example.com");
}
