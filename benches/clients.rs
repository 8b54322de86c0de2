//! `/clients/` at 100 and at 100 000 recipients of one owner: page 1 and a search.
//!
//! `cargo bench --bench clients` (SQLite); with `BENCH_DATABASE_URL=postgres://…` it runs on a
//! fresh PostgreSQL database made next to that one and dropped afterwards. Figures go to stdout
//! and to `target/bench/clients-<backend>.txt`. Requests come from this process over loopback
//! (sequential latency, then 8 concurrent clients for a fixed time).

use std::time::{Duration, Instant};

mod common;

use autosend::db::bulk::{self, Value};

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
    let bench = common::BenchApp::start("clients").await;
    let (base, state, client, owner, backend) = (
        bench.base.clone(),
        bench.state.clone(),
        bench.client.clone(),
        bench.owner,
        bench.backend,
    );

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
        if backend == "postgres" {
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
    bench.finish("clients", &report).await;
}
