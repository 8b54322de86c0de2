use crate::helpers::{Page, spawn_app, spawn_app_with};

#[tokio::test]
async fn a_sane_request_id_is_echoed() {
    let app = spawn_app().await;
    let resp = app
        .get_with("/", &[("X-Request-Id", "abc.DEF_123-xyz")])
        .await;
    assert_eq!(resp.headers["x-request-id"], "abc.DEF_123-xyz");
}

#[tokio::test]
async fn an_insane_request_id_is_replaced() {
    let app = spawn_app().await;
    for bad in ["has space", "semi;colon", "<script>", &"a".repeat(65), ""] {
        let resp = app
            .client
            .get(app.url("/"))
            .header("X-Request-Id", bad)
            .send()
            .await
            .unwrap();
        let rid = resp.headers()["x-request-id"].to_str().unwrap().to_string();
        assert_ne!(rid, bad);
        assert_eq!(rid.len(), 32, "fresh ids are 32 hex digits: {rid}");
        assert!(rid.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    // Without one, a fresh id is made for every request.
    let a = app.get("/").await.headers()["x-request-id"].clone();
    let b = app.get("/").await.headers()["x-request-id"].clone();
    assert_ne!(a, b);
}

#[tokio::test]
async fn unknown_hosts_get_400_and_allowed_ones_pass() {
    let app = spawn_app().await;
    let resp = app.get_with("/", &[("Host", "evil.example")]).await;
    assert_eq!(resp.status, 400);
    assert!(resp.headers.contains_key("x-request-id"));
    let body = resp.text;
    assert!(body.contains("Invalid Host header"), "{body}");
    assert!(body.contains("evil.example"));

    let resp = app
        .client
        .get(app.url("/"))
        .header("Host", format!("localhost:{}", app.port))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn allowed_hosts_star_accepts_any_host() {
    let app = spawn_app_with(|v| {
        v.insert("ALLOWED_HOSTS".into(), "*".into());
    })
    .await;
    let resp = app.get_with("/", &[("Host", "anything.example")]).await;
    assert_eq!(resp.status, 200);
}

#[tokio::test]
async fn security_headers_are_on_every_response() {
    let app = spawn_app().await;
    for (path, status) in [("/", 200), ("/no-such-page", 404), ("/healthz", 200)] {
        let resp = app.get_page(path).await;
        assert_eq!(resp.status, status, "{path}");
        let h = resp.headers;
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "same-origin", "{path}");
        assert!(
            !h.contains_key("strict-transport-security"),
            "no HSTS over plain http"
        );
    }
}

#[tokio::test]
async fn https_base_url_adds_hsts_and_secure_cookies() {
    let app = spawn_app_with(|v| {
        v.insert("BASE_URL".into(), "https://mail.example.com".into());
    })
    .await;
    let resp = app.get_page("/").await;
    assert!(resp.headers.contains_key("strict-transport-security"));
    let cookie = resp.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("Secure"), "{cookie}");
}

#[tokio::test]
async fn the_csrf_cookie_is_httponly_and_lax() {
    let app = spawn_app().await;
    let resp = app.get_page("/").await;
    let cookie = resp.headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("csrftoken="), "{cookie}");
    assert!(cookie.contains("HttpOnly"));
    assert!(cookie.contains("SameSite=Lax"));
    assert!(!cookie.contains("Secure"), "plain http: no Secure flag");
    // Machine endpoints do not hand out cookies.
    assert!(
        !app.get("/healthz")
            .await
            .headers()
            .contains_key("set-cookie")
    );
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let app = spawn_app_with(|v| {
        v.insert("MAX_BODY_BYTES".into(), "2048".into());
    })
    .await;
    let token = app.csrf_token().await;
    let resp = app
        .client
        .post(app.url("/"))
        .header("X-CSRF-Token", token)
        .body("x".repeat(10_000))
        .send()
        .await
        .unwrap();
    Page::read(resp)
        .await
        .assert_status(413)
        .assert_contains("too large");
}

#[tokio::test]
async fn state_changing_requests_need_a_valid_csrf_token() {
    let app = spawn_app().await;
    // No cookie, no token.
    let resp = crate::helpers::client()
        .post(app.url("/"))
        .form(&[("a", "b")])
        .send()
        .await
        .unwrap();
    Page::read(resp)
        .await
        .assert_status(403)
        .assert_contains("CSRF verification failed");

    let token = app.csrf_token().await;
    // Cookie present, token missing or wrong.
    for form in [vec![("a", "b")], vec![("csrf_token", "forged")]] {
        let resp = app
            .client
            .post(app.url("/"))
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403);
    }
    // A token from another browser's cookie does not fit this one.
    let other = crate::helpers::client();
    let foreign = app.csrf_token_as(&other).await;
    let resp = app
        .client
        .post(app.url("/"))
        .form(&[("csrf_token", foreign.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);

    // The right token passes CSRF (POST / itself is then 405), as form field and as header.
    let resp = app
        .client
        .post(app.url("/"))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let resp = app
        .client
        .post(app.url("/"))
        .header("X-CSRF-Token", token.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn htmx_requests_get_fragments_and_boosted_ones_pages() {
    let app = spawn_app().await;
    let page = app.get_page("/").await;
    assert_eq!(page.headers["vary"], "HX-Request");
    assert!(page.text.starts_with("<!DOCTYPE html>"));

    let fragment = app.htmx_get("/").await.text;
    assert!(!fragment.contains("<html"), "{fragment}");
    assert!(fragment.contains("<h1>autosend</h1>"));

    let boosted = app
        .get_with("/", &[("HX-Request", "true"), ("HX-Boosted", "true")])
        .await
        .text;
    assert!(boosted.starts_with("<!DOCTYPE html>"));
}

#[tokio::test]
async fn the_404_page_is_styled_and_says_what_happened() {
    let app = spawn_app().await;
    let resp = app.get_page("/definitely/not/here").await;
    assert_eq!(resp.status, 404);
    let body = resp.text;
    assert!(body.contains("<!DOCTYPE html>"));
    assert!(body.contains("Not Found"));
    assert!(body.contains("/assets/app.css"));
}
