//! `/clients/…` over HTTP: CRUD, visibility, search, htmx fragments, CSV.

use crate::helpers::{ACTIVE, MANAGER, Page, TestApp, client, post_form_with, spawn_app};
use crate::html::figure;

async fn add(app: &TestApp, email: &str, name: &str, comment: &str) -> reqwest::Response {
    app.post_form(
        "/clients/",
        &[("email", email), ("full_name", name), ("comment", comment)],
    )
    .await
}

#[tokio::test]
async fn owners_create_read_update_and_delete() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    app.login_as("ann@example.com").await;

    let resp = add(&app, " Bob@Example.com ", "Bob Stone", "met at the fair").await;
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/clients/");
    let list = app.get_html("/clients/").await;
    assert!(list.contains("bob@example.com"), "stored normalised");
    assert!(list.contains("was added"), "flash");
    assert!(list.contains("hx-confirm"), "delete asks first");

    let id = app.recipient_id("bob@example.com").await;
    app.get_page(&format!("/clients/{id}"))
        .await
        .assert_status(200)
        .assert_contains("met at the fair");

    let edit = app.get_html(&format!("/clients/{id}/edit")).await;
    assert!(edit.contains("value=\"Bob Stone\""));
    let resp = app
        .post_page(
            &format!("/clients/{id}/edit"),
            &[
                ("email", "bob@example.com"),
                ("full_name", "Robert Stone"),
                ("comment", ""),
            ],
        )
        .await;
    assert_eq!(resp.status, 303);
    assert!(
        app.get_html(&format!("/clients/{id}"))
            .await
            .contains("Robert Stone")
    );

    // htmx delete: an empty 200 that removes the row in place.
    let resp = Page::read(app.htmx_post(&format!("/clients/{id}/delete")).await).await;
    resp.assert_status(200);
    assert!(resp.text.is_empty());
    assert_eq!(app.count("recipients").await, 0);
    assert_eq!(app.get(&format!("/clients/{id}")).await.status(), 404);

    // Without JavaScript: the form posts and the list comes back.
    let id = app.add_recipient("cat@example.com", "Cat", "").await;
    let resp = app.post_page(&format!("/clients/{id}/delete"), &[]).await;
    assert_eq!(resp.status, 303);
    assert_eq!(app.count("recipients").await, 0);
}

#[tokio::test]
async fn invalid_input_is_422_with_the_values_and_changes_nothing() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    app.login_as("ann@example.com").await;
    let long = "x".repeat(2001);
    let cases: [(&str, &str, &str, &str); 4] = [
        ("not-an-address", "Bob", "", "not a valid e-mail"),
        ("bob@example.com", "B", "", "at least 2 characters"),
        ("bob@example.com", "Bob", &long, "at most 2000"),
        ("bob@example.com", "Bob\r\nInjected", "", "single line"),
    ];
    for (email, name, comment, message) in cases {
        let resp = add(&app, email, name, comment).await;
        assert_eq!(resp.status(), 422, "{email} {name}");
        let body = resp.text().await.unwrap();
        assert!(body.contains(message), "{message}");
        assert!(body.contains("aria-invalid=\"true\""));
        assert!(
            body.contains(&format!("value=\"{}\"", email.trim())),
            "the typed e-mail is kept"
        );
    }
    assert_eq!(app.count("recipients").await, 0);

    assert_eq!(add(&app, "bob@example.com", "Bob", "").await.status(), 303);
    let dup = add(&app, "BOB@example.com", "Bobby", "").await;
    Page::read(dup)
        .await
        .assert_status(422)
        .assert_contains("already in your recipients");
    assert_eq!(app.count("recipients").await, 1);

    // Unique per owner, not across users.
    let other = client();
    app.create_user("zed@example.com", ACTIVE).await;
    post_form_with(
        &other,
        &app,
        "/users/login",
        &[
            ("email", "zed@example.com"),
            ("password", crate::helpers::PASSWORD),
        ],
    )
    .await;
    let resp = post_form_with(
        &other,
        &app,
        "/clients/",
        &[
            ("email", "bob@example.com"),
            ("full_name", "Bob"),
            ("comment", ""),
        ],
    )
    .await;
    assert_eq!(resp.status(), 303);
    assert_eq!(app.count("recipients").await, 2);
}

#[tokio::test]
async fn html_in_every_field_is_escaped_on_every_page() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    app.login_as("ann@example.com").await;
    let evil = "<script>alert(1)</script>";
    assert_eq!(add(&app, "x@example.com", evil, evil).await.status(), 303);
    let id = app.recipient_id("x@example.com").await;
    for path in [
        "/clients/".to_string(),
        format!("/clients/{id}"),
        format!("/clients/{id}/edit"),
        "/clients/?q=script".into(),
    ] {
        let body = app.get_html(&path).await;
        assert!(!body.contains(evil), "{path} shows raw HTML");
        assert!(
            body.contains("&lt;script&gt;"),
            "{path} shows the escaped text"
        );
    }
}

/// Who gets which status on each recipient route is the access matrix of security.rs; here,
/// what each one sees in the list, on the page and in the CSV.
#[tokio::test]
async fn who_sees_which_recipients() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    app.create_user("zed@example.com", ACTIVE).await;
    app.create_user("mgr@example.com", MANAGER).await;
    app.login_as("ann@example.com").await;
    let id = app.add_recipient("bob@example.com", "Bob", "").await;

    // Anonymous: the list and the export send to the login page too.
    let anon = client();
    for path in ["/clients/", "/clients/export.csv"] {
        assert_eq!(app.get_as(&anon, path).await.status(), 303, "{path}");
    }

    // Another user: not in the list, not in the CSV.
    let zed = app.browser_for("zed@example.com").await;
    assert!(
        !app.get_html_as(&zed, "/clients/")
            .await
            .contains("bob@example.com")
    );
    assert!(
        !app.get_html_as(&zed, "/clients/export.csv")
            .await
            .contains("bob@example.com")
    );

    // A viewer with view_all_mailings: sees it, with its owner, read-only.
    let mgr = app.browser_for("mgr@example.com").await;
    let list = app.get_html_as(&mgr, "/clients/").await;
    assert!(
        list.contains("bob@example.com") && list.contains("ann@example.com"),
        "owner column"
    );
    assert!(
        !list.contains(&format!("/clients/{id}/edit")),
        "no edit button on others' rows"
    );
    assert!(
        app.get_html_as(&mgr, &format!("/clients/{id}"))
            .await
            .contains("Read-only")
    );
    assert!(
        app.get_html_as(&mgr, "/clients/export.csv")
            .await
            .contains("bob@example.com")
    );

    // Ids that are not ids are simply not found.
    for path in [
        "/clients/abc",
        "/clients/-1",
        "/clients/0/edit",
        "/clients/99999999999999999999",
    ] {
        assert_eq!(app.get(path).await.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn search_sort_pagination_and_htmx_fragments() {
    let app = spawn_app().await;
    let ann = app.create_user("ann@example.com", ACTIVE).await;
    app.login_as("ann@example.com").await;
    for i in 0..30 {
        autosend::db::recipients::insert(
            &app.state.db,
            ann,
            &format!("user{i:02}@example.com"),
            &format!("Name {:02}", 29 - i),
            if i == 7 { "VIP_customer" } else { "" },
        )
        .await
        .unwrap();
    }
    let page1 = app.get_html("/clients/").await;
    assert_eq!(page1.matches("<tr id=\"recipient-").count(), 25);
    assert!(page1.contains("Page 1 of 2"));
    let page2 = app.get_html("/clients/?page=2").await;
    assert_eq!(page2.matches("<tr id=\"recipient-").count(), 5);
    let beyond = app.get_page("/clients/?page=99").await;
    assert_eq!(beyond.status, 200);

    let by_name = app.get_html("/clients/?sort=name").await;
    let first = by_name.find("Name 00").unwrap();
    let second = by_name.find("Name 01").unwrap();
    assert!(first < second);

    // Search covers comments; `_` is literal, not a wildcard.
    let found = app.get_html("/clients/?q=vip_").await;
    assert_eq!(found.matches("<tr id=\"recipient-").count(), 1);
    assert!(found.contains("user07@example.com"));
    let none = app.get_html("/clients/?q=v_p").await;
    assert_eq!(none.matches("<tr id=\"recipient-").count(), 0);
    assert!(none.contains("No recipient matches"));

    // Active search: htmx targets #results and gets only that fragment.
    let page = app.get_html("/clients/").await;
    assert!(page.contains("hx-push-url=\"true\"") && page.contains("hx-target=\"#results\""));
    let fragment = app
        .get_with(
            "/clients/?q=user1",
            &[("HX-Request", "true"), ("HX-Target", "results")],
        )
        .await;
    assert_eq!(fragment.headers["vary"], "HX-Request");
    let fragment = fragment.text;
    assert!(
        fragment.starts_with("<div id=\"results\">"),
        "{}",
        &fragment[..60]
    );
    assert!(!fragment.contains("<html"));
    assert_eq!(fragment.matches("<tr id=\"recipient-").count(), 10);
    assert!(fragment.contains("q=user1"), "pager keeps the search");
    // Any other htmx request gets the page content without the layout.
    let content = app.htmx_get("/clients/").await.text;
    assert!(!content.contains("<html") && content.contains("<h1>Recipients</h1>"));
    // Absurd queries are answered, not failed.
    let huge = format!("/clients/?q={}&page=-5&sort=%00", "%25".repeat(5000));
    assert_eq!(app.get(&huge).await.status(), 200);
}

/// How many rows `/clients/?q=…` shows.
async fn hits(app: &TestApp, search: &str) -> usize {
    let url = format!(
        "/clients/?q={}",
        percent_encoding::utf8_percent_encode(search, percent_encoding::NON_ALPHANUMERIC)
    );
    let resp = app.get_page(&url).await;
    assert_eq!(resp.status, 200, "{url}");
    resp.text.matches("<tr id=\"recipient-").count()
}

/// Searches of three characters or more go through the trigram index (SQLite's FTS5 table,
/// PostgreSQL's pg_trgm), shorter ones scan: both must give the answers a scan would, follow
/// every create, edit, delete and import, ignore case beyond ASCII, and read nothing the user
/// types as syntax.
#[tokio::test]
async fn search_follows_every_change_and_ignores_case() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    let bob = app.create_user("bob@example.com", ACTIVE).await;
    autosend::db::recipients::insert(&app.state.db, bob, "x@example.com", "Ünal Öztürk", "")
        .await
        .unwrap();
    app.login_as("ann@example.com").await;
    add(
        &app,
        "unal@example.com",
        "Ünal Öztürk",
        "said \"hi\" OR y* 50%",
    )
    .await;
    add(&app, "other@example.com", "Other Person", "").await;

    assert_eq!(
        hits(&app, "ÖZTÜRK").await,
        1,
        "case folded beyond ASCII; own rows only"
    );
    // A short search scans; SQLite's LIKE folds ASCII only, so "öz" would miss there.
    assert_eq!(hits(&app, "Öz").await, 1);
    assert_eq!(hits(&app, "ÜN").await, 1);
    assert_eq!(hits(&app, "EXAMPLE.COM").await, 2);
    assert_eq!(
        hits(&app, "\"hi\" OR y*").await,
        1,
        "FTS5 syntax is literal text"
    );
    assert_eq!(hits(&app, "hi OR").await, 0, "a phrase, not two terms");
    assert_eq!(hits(&app, "y*").await, 1);
    assert_eq!(hits(&app, "50%").await, 1);
    assert_eq!(hits(&app, "5%").await, 0, "% is literal");
    assert_eq!(hits(&app, "zzz").await, 0);

    let id = app.recipient_id("unal@example.com").await;
    let resp = app
        .post_page(
            &format!("/clients/{id}/edit"),
            &[
                ("email", "unal@example.com"),
                ("full_name", "Somebody Else"),
                ("comment", ""),
            ],
        )
        .await;
    assert_eq!(resp.status, 303);
    assert_eq!(
        hits(&app, "öztürk").await,
        0,
        "the old name is gone from the index"
    );
    assert_eq!(hits(&app, "somebody").await, 1);
    assert_eq!(hits(&app, "y*").await, 0, "the old comment too");

    let resp = app.post_page(&format!("/clients/{id}/delete"), &[]).await;
    assert_eq!(resp.status, 303);
    assert_eq!(hits(&app, "somebody").await, 0);

    let resp = Page::read(app.import_csv("more.csv",
        b"email,full_name,comment\nnew@example.com,Imported Name,\nother@example.com,Other Renamed,\n"
            .to_vec(),
    ).await).await;
    assert_eq!(resp.status, 200);
    assert_eq!(hits(&app, "imported").await, 1, "import inserts");
    assert_eq!(hits(&app, "renamed").await, 1, "re-import updates");
    assert_eq!(hits(&app, "other person").await, 0);
}

#[tokio::test]
async fn unsubscribed_recipients_are_marked() {
    let app = spawn_app().await;
    let ann = app.create_user("ann@example.com", ACTIVE).await;
    app.login_as("ann@example.com").await;
    add(&app, "gone@example.com", "Gone Girl", "").await;
    add(&app, "here@example.com", "Here Boy", "").await;
    app.unsubscribe(ann, "gone@example.com").await;
    let list = app.get_html("/clients/").await;
    assert_eq!(list.matches("badge unsubscribed").count(), 1);
    let id = app.recipient_id("gone@example.com").await;
    assert!(
        app.get_html(&format!("/clients/{id}"))
            .await
            .contains("unsubscribed")
    );
}

#[tokio::test]
async fn csv_import_export_round_trip() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    app.login_as("ann@example.com").await;
    let file = "\u{feff}email,full_name,comment\r\n\
                ann.lee@example.com,\"Lee, Ann\",\"said \"\"hi\"\"\"\r\n\
                bob@example.com,Bob,\r\n\
                broken,Nobody,\r\n\
                cat@example.com,C,\r\n\
                BOB@example.com,Bob Twice,\r\n\
                дарья@пример.рф,Дарья,кириллица\r\n";
    let resp = Page::read(app.import_csv("people.csv", file.as_bytes().to_vec()).await).await;
    assert_eq!(resp.status, 200);
    let page = resp.text;
    assert_eq!(
        (
            figure(&page, "created"),
            figure(&page, "updated"),
            figure(&page, "rejected")
        ),
        (3, 0, 3),
        "{page}"
    );
    assert!(page.contains("duplicate of line 3"), "{page}");
    assert!(page.contains("not a valid e-mail"));

    let export = app.get("/clients/export.csv").await;
    assert_eq!(export.headers()["content-type"], "text/csv; charset=utf-8");
    assert!(
        export.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let csv = export.text().await.unwrap();
    assert!(csv.starts_with("email,full_name,comment\n"));
    assert!(csv.contains("\"Lee, Ann\",\"said \"\"hi\"\"\""));
    assert!(csv.contains("дарья@пример.рф,Дарья,кириллица"));

    // Round trip: importing the export changes nothing but counts every row as updated.
    let resp = Page::read(app.import_csv("export.csv", csv.clone().into_bytes()).await).await;
    let page = resp.text;
    assert_eq!(
        (
            figure(&page, "created"),
            figure(&page, "updated"),
            figure(&page, "rejected")
        ),
        (0, 3, 0)
    );
    assert_eq!(app.get_html("/clients/export.csv").await, csv);

    // The export honours the search.
    let filtered = app.get_html("/clients/export.csv?q=lee").await;
    assert_eq!(filtered.lines().count(), 2);
}

#[tokio::test]
async fn bad_files_get_a_clear_message_and_change_nothing() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    app.login_as("ann@example.com").await;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "photo.png",
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(),
            "not a CSV text file",
        ),
        (
            "latin1.csv",
            b"email,full_name\nbob@example.com,Bj\xf6rn\n".to_vec(),
            "not UTF-8",
        ),
        (
            "wrong.csv",
            b"name;mail\nBob;bob@example.com\n".to_vec(),
            "header email,full_name,comment",
        ),
        ("empty.csv", Vec::new(), "empty"),
    ];
    for (name, bytes, message) in cases {
        let resp = Page::read(app.import_csv(name, bytes).await).await;
        assert_eq!(resp.status, 422, "{name}");
        assert!(resp.text.contains(message), "{name}: {message}");
    }
    assert_eq!(app.count("recipients").await, 0);

    // The upload form needs its CSRF token like any other.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(b"email,full_name\nx@example.com,Xavier\n".to_vec())
            .file_name("x.csv"),
    );
    let resp = app
        .client
        .post(app.url("/clients/import"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // A form without a file says so.
    let token = app.csrf_token().await;
    let form = reqwest::multipart::Form::new().text("csrf_token", token);
    let resp = app
        .client
        .post(app.url("/clients/import"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    assert_eq!(app.count("recipients").await, 0);
}

#[tokio::test]
async fn bulk_inserts_work_on_both_backends() {
    use autosend::db::bulk::{self, Value};
    let app = spawn_app().await;
    let ann = app.create_user("ann@example.com", ACTIVE).await;
    let rows: Vec<Vec<Value>> = (0..3)
        .map(|i| {
            vec![
                ann.into(),
                format!("b{i}@example.com").into(),
                "Bulk Person".into(),
                "".into(),
                1i64.into(),
                1i64.into(),
            ]
        })
        .collect();
    let ids = bulk::insert(
        &app.state.db.pool,
        "INSERT INTO recipients (owner_id, email, full_name, comment, created_at, updated_at)",
        &rows,
        "RETURNING id",
    )
    .await
    .unwrap();
    assert_eq!(ids.len(), 3);
    assert_eq!(app.count("recipients").await, 3);
}

/// Issue 12 item 12: a big import holds SQLite's one write lock; other users' saves made
/// meanwhile must wait their turn (or at worst be told to retry), never answer 500.
#[tokio::test]
async fn saves_during_a_big_import_never_answer_500() {
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    app.login_as("ann@example.com").await;
    let mut file = String::from("email,full_name,comment\n");
    for i in 0..IMPORT_ROWS {
        file.push_str(&format!("person{i}@example.com,Person {i},row {i}\n"));
    }
    let mut others = Vec::new();
    for n in 0..SAVERS {
        let email = format!("user{n}@example.com");
        app.create_user(&email, ACTIVE).await;
        others.push(app.browser_for(&email).await);
    }

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut savers = Vec::new();
    for (n, browser) in others.into_iter().enumerate() {
        let done = done.clone();
        let token = app.csrf_token_as(&browser).await;
        let url = app.url("/clients/");
        savers.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            let mut i = 0;
            // At least a few saves, and on until the import is over.
            while i < 5 || !done.load(std::sync::atomic::Ordering::Relaxed) {
                let email = format!("saved{n}-{i}@example.com");
                let resp = browser
                    .post(&url)
                    .form(&[
                        ("email", email.as_str()),
                        ("full_name", "Saved Meanwhile"),
                        ("comment", ""),
                        ("csrf_token", token.as_str()),
                    ])
                    .send()
                    .await
                    .unwrap();
                // A 303 elsewhere than the list (the login page) is a save that did not land.
                let status = match resp.headers().get("location") {
                    Some(to) if resp.status() == 303 && to != "/clients/" => {
                        eprintln!("save {email} answered 303 to {to:?}");
                        399
                    }
                    // "503 + Retry-After at worst": a 503 without it is as broken as a 500.
                    _ if resp.status() == 503 && resp.headers().get("retry-after").is_none() => 599,
                    _ => resp.status().as_u16(),
                };
                statuses.push(status);
                i += 1;
            }
            statuses
        }));
    }
    let import = app.import_csv("big.csv", file.into_bytes()).await;
    let import_status = import.status().as_u16();
    let page = import.text().await.unwrap();
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut statuses = Vec::new();
    for saver in savers {
        statuses.extend(saver.await.unwrap());
    }
    let failed: Vec<u16> = statuses
        .iter()
        .copied()
        .filter(|s| *s >= 500 && *s != 503)
        .collect();
    let told_to_retry = statuses.iter().filter(|s| **s == 503).count();
    let saved = statuses.iter().filter(|s| **s == 303).count();
    eprintln!(
        "import {import_status}; {} saves meanwhile: {saved} saved, {told_to_retry} told to retry \
         (503 + Retry-After), {} other 5xx {failed:?}",
        statuses.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "saves answered {failed:?}");
    // Issue 12: "503 + Retry-After at worst, never 500". Before the fix 31 of 59 saves failed;
    // on a loaded machine a rare pool or Redis timeout may still ask one save in thousands to
    // retry, which the user sees as a page saying so, with nothing lost.
    assert!(
        told_to_retry * 1000 <= statuses.len(),
        "{told_to_retry} of {} saves were told to retry",
        statuses.len()
    );
    assert!(
        !statuses.contains(&399),
        "saves were sent elsewhere (see above)"
    );
    assert_eq!(import_status, 200, "{page}");
    assert_eq!(figure(&page, "created"), IMPORT_ROWS as i64, "{page}");
    // A save told to retry may have landed before its answer failed (the flash could not be
    // stored in the session): between the saves that said so and those plus the retries.
    let stored = app.count("recipients").await - IMPORT_ROWS as i64;
    assert!(
        (saved as i64..=(saved + told_to_retry) as i64).contains(&stored),
        "{stored} saves stored, {saved} answered saved, {told_to_retry} told to retry"
    );
}

const IMPORT_ROWS: usize = 100_000;
const SAVERS: usize = 6;

/// A database error that is not passing trouble, part-way through an import: PostgreSQL
/// keeps the file one transaction, so nothing is saved; SQLite commits chunks, so the first
/// is saved. Either way the user is told how far it got and that the same file finishes it,
/// not a bare 500. No input a user can type fails a validated row in the database, so a
/// trigger stands in for the failure (a bug, a constraint the validation missed).
#[tokio::test]
async fn an_import_a_database_error_stops_says_what_is_saved() {
    use autosend::config::DatabaseBackend;
    let app = spawn_app().await;
    app.create_user("ann@example.com", ACTIVE).await;
    app.login_as("ann@example.com").await;
    let backend = app.state.db.backend;
    let poison = "poison@example.com";
    let trigger: &[&str] = match backend {
        DatabaseBackend::Sqlite => &["CREATE TRIGGER refuse_poison BEFORE INSERT ON recipients \
              WHEN NEW.email = 'poison@example.com' \
              BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"],
        DatabaseBackend::Postgres => &[
            "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN \
               IF NEW.email = 'poison@example.com' THEN RAISE EXCEPTION 'refused by the test'; \
               END IF; RETURN NEW; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON recipients \
               FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
        ],
    };
    for sql in trigger {
        sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
            .execute(&app.state.db.pool)
            .await
            .unwrap();
    }
    let total = autosend::db::WRITE_CHUNK_ROWS + 500;
    let mut file = String::from("email,full_name\n");
    for i in 0..total {
        if i == autosend::db::WRITE_CHUNK_ROWS + 200 {
            file.push_str(&format!("{poison},Poison Row\n"));
        } else {
            file.push_str(&format!("p{i}@example.com,Person {i}\n"));
        }
    }
    let resp = Page::read(app.import_csv("big.csv", file.clone().into_bytes()).await).await;
    assert_eq!(resp.status, 503);
    assert!(resp.headers.contains_key("retry-after"));
    let page = resp.text;
    let landed = match backend {
        DatabaseBackend::Sqlite => autosend::db::WRITE_CHUNK_ROWS,
        DatabaseBackend::Postgres => 0,
    };
    assert!(
        page.contains(&format!("stopped after {landed} of {total} rows")),
        "{page}"
    );
    assert!(page.contains("upload the same file"), "{page}");
    assert_eq!(app.count("recipients").await, landed as i64);

    // With the fault gone, the same file finishes the import.
    let drop = match backend {
        DatabaseBackend::Sqlite => "DROP TRIGGER refuse_poison",
        DatabaseBackend::Postgres => "DROP TRIGGER refuse_poison ON recipients",
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop))
        .execute(&app.state.db.pool)
        .await
        .unwrap();
    let resp = Page::read(app.import_csv("big.csv", file.into_bytes()).await).await;
    assert_eq!(resp.status, 200);
    assert_eq!(app.count("recipients").await, total as i64);
}
