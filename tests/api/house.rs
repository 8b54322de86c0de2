//! Rules of the web layer that live in one module each (issue 13): `Vary: HX-Request` is set
//! by `web::htmx` on every htmx-aware answer, and static assets are served without the
//! session and user lookup.

use autosend::web::route_table;

use crate::helpers::{ACTIVE, SUPERUSER, spawn_app, spawn_app_with};

/// Every HTML page of the route table (a superuser sees them all) names `HX-Request` in
/// `Vary`, as a page and as a fragment, so a cache never hands one for the other.
#[tokio::test]
async fn every_htmx_aware_page_varies_on_hx_request() {
    let app = spawn_app().await;
    app.create_user("root@example.com", SUPERUSER).await;
    app.login_as("root@example.com").await;
    let mut checked = 0;
    for (path, method) in route_table() {
        if method != poem::http::Method::GET || path.contains([':', '*']) {
            continue;
        }
        for headers in [
            &[][..],
            &[("HX-Request", "true")][..],
            &[("HX-Request", "true"), ("HX-Target", "results")][..],
        ] {
            let mut request = app.client.get(app.url(path));
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let resp = request.send().await.unwrap();
            let html = resp
                .headers()
                .get("content-type")
                .is_some_and(|v| v.to_str().unwrap().starts_with("text/html"));
            if resp.status() != 200 || !html {
                continue;
            }
            let vary = resp
                .headers()
                .get_all("vary")
                .iter()
                .map(|v| v.to_str().unwrap().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            assert!(
                vary.split(',')
                    .any(|v| v.trim().eq_ignore_ascii_case("HX-Request")),
                "GET {path} with {headers:?} answered Vary {vary:?}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} HTML answers were checked");
}

/// The list fragments of an active search answer `Vary: HX-Request` (built by `web::htmx`).
#[tokio::test]
async fn list_result_fragments_vary_on_hx_request() {
    let app = spawn_app().await;
    app.create_user("root@example.com", SUPERUSER).await;
    app.login_as("root@example.com").await;
    for path in ["/clients/?q=a", "/messages/?q=a"] {
        let resp = app
            .client
            .get(app.url(path))
            .header("HX-Request", "true")
            .header("HX-Target", "results")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(resp.headers()["vary"], "HX-Request", "{path}");
        let body = resp.text().await.unwrap();
        assert!(
            body.starts_with(r#"<div id="results">"#),
            "{path} answered more than its results: {body}"
        );
    }
}

/// A static asset is served without loading the session: with the session store broken
/// (its table gone), pages that need the session answer 503 while the stylesheet, asked
/// for with the same session cookie, still answers 200.
#[tokio::test]
async fn assets_are_served_without_a_session_lookup() {
    // Sessions in the database, even when the suite runs with Redis: the table is what breaks.
    let app = spawn_app_with(|vars| {
        vars.remove("REDIS_URL");
    })
    .await;
    app.create_user("someone@example.com", ACTIVE).await;
    app.login_as("someone@example.com").await;
    sqlx::query("ALTER TABLE sessions RENAME TO sessions_gone")
        .execute(&app.state.db.pool)
        .await
        .unwrap();

    let page = app.get("/").await;
    assert_eq!(page.status(), 503, "the page should need the broken store");

    let css = app.get(&autosend::web::assets::url("app.css")).await;
    assert_eq!(css.status(), 200);
    assert!(
        css.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert!(css.headers().get("set-cookie").is_none());
}
