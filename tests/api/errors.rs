//! The 500 page of SPEC §8, for errors and panics, behind the real middleware stack.

use anyhow::Context as _;
use autosend::config::Settings;
use autosend::state::AppState;
use autosend::web::error::AppError;
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Route, Server, get, handler};

use crate::helpers::{SECRET_KEY, client, test_vars};

#[handler]
async fn failing() -> Result<String, poem::Error> {
    let inner: Result<(), std::io::Error> = Err(std::io::Error::other(format!(
        "disk said no to key {SECRET_KEY}"
    )));
    inner
        .context("cannot save the draft")
        .map_err(AppError::from)?;
    Ok("unreachable".into())
}

#[handler]
async fn panicking() -> String {
    let items: Vec<u8> = Vec::new();
    if items.is_empty() {
        panic!("index out of range in the test handler");
    }
    String::new()
}

/// The real middleware stack around two deliberately broken handlers.
async fn spawn_broken(debug: bool) -> (String, tempfile::TempDir) {
    autosend::panics::install_panic_hook();
    let dir = tempfile::tempdir().unwrap();
    let mut vars = test_vars(dir.path());
    vars.insert("DEBUG".into(), debug.to_string());
    let settings = Settings::from_vars(&vars).unwrap();
    let state = AppState::build(settings).await.unwrap();
    let routes = Route::new()
        .at("/fail", get(failing))
        .at("/panic", get(panicking));
    let app = autosend::web::with_middleware(routes, state);
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    (format!("http://127.0.0.1:{port}"), dir)
}

#[tokio::test]
async fn without_debug_the_500_page_shows_only_a_reference() {
    let (base, _dir) = spawn_broken(false).await;
    for path in ["/fail", "/panic"] {
        let resp = client().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(resp.status(), 500, "{path}");
        let rid = resp.headers()["x-request-id"].to_str().unwrap().to_string();
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let body = resp.text().await.unwrap();
        assert!(body.contains("Something went wrong"), "{body}");
        assert!(body.contains(&rid), "the request id is the reference");
        assert!(
            !body.contains("cannot save the draft"),
            "no details without DEBUG"
        );
        assert!(!body.contains("index out of range"));
        assert!(!body.contains("Backtrace"));
    }
}

#[tokio::test]
async fn with_debug_the_500_page_shows_chain_backtrace_and_request_masked() {
    let (base, _dir) = spawn_broken(true).await;
    let resp = client()
        .get(format!("{base}/fail?q=1"))
        .header("Authorization", "Bearer very-private-token")
        .header("X-Trace", "visible-value")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 500);
    let body = resp.text().await.unwrap();
    assert!(body.contains("cannot save the draft"), "{body}");
    assert!(
        body.contains("disk said no to key"),
        "the cause chain is shown"
    );
    assert!(
        !body.contains(SECRET_KEY),
        "configured secrets are scrubbed"
    );
    assert!(body.contains("Backtrace"));
    assert!(body.contains("/fail?q=1"));
    assert!(body.contains("visible-value"));
    assert!(
        !body.contains("very-private-token"),
        "sensitive headers are masked"
    );

    let panic = client().get(format!("{base}/panic")).send().await.unwrap();
    assert_eq!(panic.status(), 500);
    let body = panic.text().await.unwrap();
    assert!(
        body.contains("index out of range in the test handler"),
        "{body}"
    );
    assert!(body.contains("errors.rs"), "the panic location is shown");
}

#[tokio::test]
async fn the_server_keeps_serving_after_a_panic() {
    let (base, _dir) = spawn_broken(false).await;
    for _ in 0..3 {
        let resp = client().get(format!("{base}/panic")).send().await.unwrap();
        assert_eq!(resp.status(), 500);
    }
    let resp = client().get(format!("{base}/fail")).send().await.unwrap();
    assert_eq!(resp.status(), 500);
}
