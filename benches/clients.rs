//! `/clients/` at 100 and at 100 000 recipients of one owner: page 1 and a search.
//!
//! `cargo bench --bench clients` (SQLite); with `BENCH_DATABASE_URL=postgres://…` it runs on a
//! fresh PostgreSQL database made next to that one and dropped afterwards. Figures go to stdout
//! and to `target/bench/clients-<backend>.txt`. Requests come from this process over loopback
//! (sequential latency, then 8 concurrent clients for a fixed time).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use autosend::config::Settings;
use autosend::db::bulk::{self, Value};
use autosend::startup::Application;

const PASSWORD: &str = "bench password 1";
const SEQUENTIAL: usize = 200;
const CONCURRENCY: usize = 8;
const WINDOW: Duration = Duration::from_secs(3);

struct Figures {
    p50_ms: f64,
    p99_ms: f64,
    rps: f64,
}

async fn measure(client: &reqwest::Client, url: &str) -> Figures {
    let mut latencies = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let started = Instant::now();
        let resp = client.get(url).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        resp.bytes().await.unwrap();
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];

    let deadline = Instant::now() + WINDOW;
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENCY {
        let client = client.clone();
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                client
                    .get(&url)
                    .send()
                    .await
                    .unwrap()
                    .bytes()
                    .await
                    .unwrap();
                done += 1;
            }
            done
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    Figures {
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        rps: total as f64 / WINDOW.as_secs_f64(),
    }
}

async fn seed(pool: &sqlx::AnyPool, owner: i64, from: usize, to: usize) {
    let now = autosend::db::now_ms();
    for chunk in (from..to).collect::<Vec<_>>().chunks(500) {
        let rows: Vec<Vec<Value>> = chunk
            .iter()
            .map(|i| {
                vec![
                    owner.into(),
                    format!("user{i}@example.com").into(),
                    format!("User Number {i}").into(),
                    (if i % 100 == 0 { "vip" } else { "" }).into(),
                    (now + *i as i64).into(),
                    (now + *i as i64).into(),
                ]
            })
            .collect();
        bulk::insert(
            pool,
            "INSERT INTO recipients (owner_id, email, full_name, comment, created_at, updated_at)",
            &rows,
            "",
        )
        .await
        .unwrap();
    }
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().unwrap();
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert(
        "SECRET_KEY".into(),
        "bench-secret-key-0123456789abcdef0123456789".into(),
    );
    vars.insert("BIND".into(), "127.0.0.1:0".into());
    vars.insert(
        "DATA_DIR".into(),
        dir.path().join("data").display().to_string(),
    );
    vars.insert(
        "LOG_DIR".into(),
        dir.path().join("logs").display().to_string(),
    );
    vars.insert("EMAIL_BACKEND".into(), "memory".into());
    vars.insert("SCHEDULER_INTERVAL_SECS".into(), "0".into());
    let pg = std::env::var("BENCH_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let mut pg_name = None;
    if let Some(admin) = &pg {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let name = format!("autosend_bench_{}", std::process::id());
        let mut conn = sqlx::AnyConnection::connect(admin).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .execute(&mut conn)
            .await
            .unwrap();
        let mut url = url::Url::parse(admin).unwrap();
        url.set_path(&name);
        vars.insert("DATABASE_URL".into(), url.to_string());
        pg_name = Some(name);
    }
    let backend = if pg.is_some() { "postgres" } else { "sqlite" };
    let settings = Settings::from_vars(&vars).unwrap();
    let app = Application::build(settings).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    tokio::spawn(app.run_until_stopped(std::future::pending()));

    let owner = autosend::db::users::create(
        &state.db,
        &autosend::db::users::NewUser {
            email: "bench@example.com".into(),
            password_hash: autosend::accounts::passwords::hash(PASSWORD).await.unwrap(),
            full_name: "Bench".into(),
            is_active: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let html = client
        .get(format!("{base}/users/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let start = html.find("name=\"csrf-token\" content=\"").unwrap() + 27;
    let token = &html[start..start + html[start..].find('"').unwrap()];
    let resp = client
        .post(format!("{base}/users/login"))
        .form(&[
            ("email", "bench@example.com"),
            ("password", PASSWORD),
            ("csrf_token", token),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);

    let mut report = format!(
        "/clients/ benchmark on {backend} ({SEQUENTIAL} sequential requests, then {CONCURRENCY} clients for {}s)\n",
        WINDOW.as_secs()
    );
    report.push_str("| recipients | page | p50 ms | p99 ms | requests/s |\n| ---: | --- | ---: | ---: | ---: |\n");
    let mut seeded = 0;
    let mut results = Vec::new();
    for size in [100usize, 100_000] {
        seed(&state.db.pool, owner, seeded, size).await;
        seeded = size;
        if pg.is_some() {
            sqlx::query("ANALYZE recipients")
                .execute(&state.db.pool)
                .await
                .unwrap();
        }
        for (label, path) in [("page 1", "/clients/"), ("search", "/clients/?q=user4242")] {
            let f = measure(&client, &format!("{base}{path}")).await;
            report.push_str(&format!(
                "| {size} | {label} | {:.2} | {:.2} | {:.0} |\n",
                f.p50_ms, f.p99_ms, f.rps
            ));
            results.push((size, label, f));
        }
    }
    for label in ["page 1", "search"] {
        let small = results
            .iter()
            .find(|(s, l, _)| *s == 100 && *l == label)
            .unwrap();
        let large = results
            .iter()
            .find(|(s, l, _)| *s == 100_000 && *l == label)
            .unwrap();
        report.push_str(&format!(
            "ratio 100 000 / 100 ({label}): p50 ×{:.1}, throughput ×{:.2}\n",
            large.2.p50_ms / small.2.p50_ms,
            large.2.rps / small.2.rps
        ));
    }
    println!("{report}");
    std::fs::create_dir_all("target/bench").unwrap();
    std::fs::write(format!("target/bench/clients-{backend}.txt"), &report).unwrap();

    if let (Some(admin), Some(name)) = (pg, pg_name) {
        use sqlx::Connection;
        state.db.close().await;
        let mut conn = sqlx::AnyConnection::connect(&admin).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
}
