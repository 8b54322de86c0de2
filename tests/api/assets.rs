use crate::helpers::Page;
use crate::helpers::spawn_app;

#[tokio::test]
async fn vendored_htmx_is_served_immutable() {
    let app = spawn_app().await;
    let resp = app.get("/assets/vendor/htmx-2.0.11.min.js").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    Page::read(resp).await.assert_contains("2.0.11");
}

#[tokio::test]
async fn pages_link_fingerprinted_assets_that_are_cached_for_a_year() {
    let app = spawn_app().await;
    let html = app.get_html("/").await;
    let start = html.find("/assets/app.css?v=").expect("stylesheet link");
    let end = html[start..].find('"').unwrap() + start;
    let css_url = &html[start..end];
    let resp = app.get_page(css_url).await;
    assert_eq!(resp.status, 200);
    assert_eq!(
        resp.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert!(
        resp.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let etag = resp.headers["etag"].clone();

    // Without (or with a stale) fingerprint the file must be revalidated.
    let plain = app.get_page("/assets/app.css?v=000000000000").await;
    assert_eq!(
        plain.headers["cache-control"],
        "public, max-age=0, must-revalidate"
    );

    let revalidated = app
        .client
        .get(app.url("/assets/app.css"))
        .header("If-None-Match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);
    assert!(revalidated.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn unknown_assets_are_404() {
    let app = spawn_app().await;
    assert_eq!(app.get("/assets/nope.js").await.status(), 404);
    assert_eq!(app.get("/assets/../Cargo.toml").await.status(), 404);
}
