//! `/mailings/reports/` at 10 000 and at 1 000 000 delivery rows of one owner: the report
//! uncached (each request a different period, so a different cache key), cached (the same
//! URL again), and answered 304 (`If-None-Match`); plus `/mailings/stats/` figures read
//! straight from the database.
//!
//! `cargo bench --bench reports` (SQLite); with `BENCH_DATABASE_URL=postgres://…` it runs on a
//! fresh PostgreSQL database made next to that one and dropped afterwards. Figures go to
//! stdout and to `target/bench/reports-<backend>.txt`. Rows (runs, deliveries, daily_stats)
//! are seeded directly: runs and daily_stats with multi-row INSERTs, deliveries with one
//! INSERT … SELECT per batch of runs. The report reads daily_stats; the deliveries are there so
//! that "cost does not grow with them" is measured, not assumed.

use std::time::{Duration, Instant};

mod common;

use common::seed::{self, DAY_MS};

const MAILINGS: usize = 20;
const AUDIENCE: usize = 50;
const DAYS: i64 = 365;
const UNCACHED: usize = 60;
const SEQUENTIAL: usize = 200;
const CONCURRENCY: usize = 8;
const WINDOW: Duration = Duration::from_secs(3);

struct Figures {
    p50_ms: f64,
    p99_ms: f64,
    rps: f64,
}

fn percentile(latencies: &mut [f64], q: f64) -> f64 {
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    latencies[((latencies.len() as f64 - 1.0) * q) as usize]
}

/// Sequential latency over `urls` (one request each), then throughput of `CONCURRENCY`
/// clients cycling through them for `WINDOW`.
async fn measure(
    client: &reqwest::Client,
    urls: &[String],
    etag: Option<&str>,
    expect: u16,
) -> Figures {
    let etag: Option<String> = etag.map(str::to_string);
    let send = move |client: reqwest::Client, url: String| {
        let etag = etag.clone();
        async move {
            let mut req = client.get(&url);
            if let Some(tag) = etag {
                req = req.header("If-None-Match", tag);
            }
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            resp.bytes().await.unwrap();
            status
        }
    };
    // Several URLs: each once (every one a cache miss); one URL: SEQUENTIAL times.
    let count = if urls.len() > 1 {
        urls.len()
    } else {
        SEQUENTIAL
    };
    let mut latencies = Vec::new();
    for i in 0..count {
        let url = urls[i % urls.len()].clone();
        let started = Instant::now();
        assert_eq!(send(client.clone(), url.clone()).await, expect, "{url}");
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let p50_ms = percentile(&mut latencies, 0.5);
    let p99_ms = percentile(&mut latencies, 0.99);

    let deadline = Instant::now() + WINDOW;
    let mut tasks = Vec::new();
    for t in 0..CONCURRENCY {
        let client = client.clone();
        let urls = urls.to_vec();
        let send = send.clone();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                send(
                    client.clone(),
                    urls[(t + done as usize) % urls.len()].clone(),
                )
                .await;
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
        p50_ms,
        p99_ms,
        rps: total as f64 / WINDOW.as_secs_f64(),
    }
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let bench = common::BenchApp::start("reports").await;
    let (base, state, client, owner, backend) = (
        bench.base.clone(),
        bench.state.clone(),
        bench.client.clone(),
        bench.owner,
        bench.backend,
    );

    let now = autosend::db::now_ms();
    let today = now.div_euclid(DAY_MS);
    let recipients = seed::recipients(&state.db.pool, owner, MAILINGS * AUDIENCE, now).await;
    let audiences: Vec<&[i64]> = recipients.chunks(AUDIENCE).collect();
    let mailings = seed::mailings(&state.db.pool, owner, &audiences, DAYS, now).await;
    let schedule = seed::Schedule {
        mailings: &mailings,
        audience: AUDIENCE,
        days: DAYS,
        today,
    };
    let mut history = seed::History::default();

    let mut report = format!(
        "/mailings/reports/ benchmark on {backend}: {MAILINGS} mailings × {AUDIENCE} recipients, \
         runs spread over {DAYS} days; uncached = {UNCACHED} sequential requests for different \
         30-day periods; cached and 304 = {SEQUENTIAL} sequential requests, then {CONCURRENCY} \
         clients for {}s\n",
        WINDOW.as_secs()
    );
    report.push_str(
        "| deliveries | daily_stats rows | path | p50 ms | p99 ms | requests/s |\n\
         | ---: | ---: | --- | ---: | ---: | ---: |\n",
    );
    let mut uncached_p50 = Vec::new();
    for deliveries in [10_000usize, 1_000_000] {
        let runs = deliveries / AUDIENCE;
        let started = Instant::now();
        seed::history(&state.db.pool, owner, &schedule, runs, &mut history).await;
        if backend == "postgres" {
            sqlx::query("ANALYZE")
                .execute(&state.db.pool)
                .await
                .unwrap();
        }
        eprintln!(
            "seeded {deliveries} deliveries in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        let rows = history.daily.len();

        let periods: Vec<String> = (0..UNCACHED as i64)
            .map(|i| {
                let to = autosend::reports::day_date(today - i);
                let from = autosend::reports::day_date(today - i - 29);
                format!(
                    "{base}/mailings/reports/?from={}&to={}",
                    autosend::reports::format_date(from),
                    autosend::reports::format_date(to)
                )
            })
            .collect();
        let uncached = measure(&client, &periods, None, 200).await;
        uncached_p50.push(uncached.p50_ms);
        let one = vec![periods[0].clone()];
        let cached = measure(&client, &one, None, 200).await;
        let etag = client.get(&one[0]).send().await.unwrap().headers()["etag"]
            .to_str()
            .unwrap()
            .to_string();
        let fresh = measure(&client, &one, Some(&etag), 304).await;

        let mut stats_ms = Vec::new();
        for _ in 0..20 {
            let started = Instant::now();
            autosend::db::stats::mailings(&state.db, Some(owner))
                .await
                .unwrap();
            stats_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        for (label, f) in [
            ("report, uncached", &uncached),
            ("report, cached", &cached),
            ("report, 304", &fresh),
        ] {
            // After one pass the periods are cached, so only the latency of the first
            // (cold) pass speaks for the uncached path.
            let rps = if label.ends_with("uncached") {
                "–".to_string()
            } else {
                format!("{:.0}", f.rps)
            };
            report.push_str(&format!(
                "| {deliveries} | {rows} | {label} | {:.2} | {:.2} | {rps} |\n",
                f.p50_ms, f.p99_ms
            ));
        }
        report.push_str(&format!(
            "| {deliveries} | {rows} | stats query (db only) | {:.2} | {:.2} | – |\n",
            percentile(&mut stats_ms.clone(), 0.5),
            percentile(&mut stats_ms, 0.99)
        ));
    }
    report.push_str(&format!(
        "ratio 1 000 000 / 10 000 (report uncached p50): ×{:.2}\n",
        uncached_p50[1] / uncached_p50[0]
    ));
    bench.finish("reports", &report).await;
}
