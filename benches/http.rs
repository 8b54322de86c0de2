//! The HTTP suite of `just bench`: autosend's release binary serving a fixed data set, loaded
//! by `wrk` from its own process at 32 connections.
//!
//! Data: one owner with 100 000 recipients, 200 mailings (50 recipients each) and 1 000 000
//! delivery rows of finished runs over a year, plus a second owner with a little of each.
//! Paths: `/healthz`, `/` logged in, `/clients/` page 1 and a search, `/mailings/stats/`,
//! `/mailings/reports/` uncached (a Lua script asks for a different period each request),
//! cached (one URL) and 304 (`If-None-Match`). Also: release binary size, cold start (spawn
//! to the first `/healthz` answer, on the seeded database), resident memory idle and its peak
//! under load (`/proc/<pid>/status`).
//!
//! `cargo bench --bench http` (SQLite, in-process cache); with
//! `BENCH_DATABASE_URL=postgres://…` and `BENCH_REDIS_URL=redis://…`, PostgreSQL and Redis.
//! `BENCH_SECS` sets each load's length (default 10; CI's smoke run uses 1); `BENCH_ONLY=text`
//! loads only the paths whose label contains it (for profiling one). Needs `wrk`
//! (Debian: `apt-get install wrk`); says so and stops without it. Figures go to stdout and
//! `target/bench/http-<backend>.txt`, each wrk output to `target/bench/raw/`.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::seed::{self, DAY_MS};

const RECIPIENTS: usize = 100_000;
const MAILINGS: usize = 200;
const AUDIENCE: usize = 50;
const DELIVERIES: usize = 1_000_000;
const DAYS: i64 = 365;
const CONNECTIONS: usize = 32;
const PASSWORD: &str = common::PASSWORD;

/// A different 1–365-day period for every request, from 2 wrk threads seeded apart: each one
/// a new cache key, so the report is computed from the database.
const UNCACHED_LUA: &str = r#"
local n = 0
function setup(thread)
  thread:set("id", n)
  n = n + 1
end
function init(args)
  math.randomseed(os.time() * 16 + id)
end
function request()
  local from = os.time() - math.random(1, 1000) * 86400
  local to = from + math.random(0, 364) * 86400
  return wrk.format("GET", "/mailings/reports/?from=" .. os.date("!%Y-%m-%d", from)
    .. "&to=" .. os.date("!%Y-%m-%d", to))
end
"#;

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn proc_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The release binary serving, killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What one wrk run measured.
struct Load {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    bad: u64,
}

/// wrk's latency figures ("1.23ms", "850.00us", "1.02s") in milliseconds.
fn millis(text: &str) -> f64 {
    let (number, unit) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic()).unwrap());
    let value: f64 = number.parse().unwrap();
    match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        other => panic!("unknown wrk unit {other}"),
    }
}

fn parse_wrk(output: &str) -> Load {
    let field = |prefix: &str| {
        output
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with(prefix))
            .map(|l| l[prefix.len()..].trim().to_string())
    };
    let rps = field("Requests/sec:").unwrap().parse().unwrap();
    let p50_ms = millis(field("50%").unwrap().as_str());
    let p99_ms = millis(field("99%").unwrap().as_str());
    let requests = output
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    let bad = field("Non-2xx or 3xx responses:")
        .map(|n| n.parse().unwrap())
        .unwrap_or(0);
    Load {
        rps,
        p50_ms,
        p99_ms,
        requests,
        bad,
    }
}

/// Runs wrk against `path` for `secs` seconds and keeps its output under target/bench/raw/.
fn wrk(
    base: &str,
    path: &str,
    headers: &[String],
    script: Option<&std::path::Path>,
    secs: u64,
    raw_name: &str,
) -> Load {
    let mut command = Command::new("wrk");
    command.args([
        "-t2",
        &format!("-c{CONNECTIONS}"),
        &format!("-d{secs}s"),
        "--latency",
    ]);
    for header in headers {
        command.args(["-H", header]);
    }
    if let Some(script) = script {
        command.args(["-s", &script.display().to_string()]);
    }
    let output = command.arg(format!("{base}{path}")).output().unwrap();
    assert!(output.status.success(), "wrk failed on {path}");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    std::fs::create_dir_all("target/bench/raw").unwrap();
    std::fs::write(format!("target/bench/raw/{raw_name}.txt"), &text).unwrap();
    parse_wrk(&text)
}

fn main() {
    if !have("wrk") {
        eprintln!("http benchmark skipped: wrk not found (Debian: apt-get install wrk)");
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let secs: u64 = std::env::var("BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let env = common::BenchEnv::create("http").await;
    let backend = env.backend;
    let settings = env.settings();
    let db = autosend::db::Db::connect(&settings.database, false)
        .await
        .unwrap();
    db.migrate().await.unwrap();
    let pool = &db.pool;

    // The data set.
    let started = Instant::now();
    let now = autosend::db::now_ms();
    let today = now.div_euclid(DAY_MS);
    let mut owners = Vec::new();
    for email in ["bench@example.com", "second@example.com"] {
        owners.push(
            autosend::db::users::create(
                &db,
                &autosend::db::users::NewUser {
                    email: email.into(),
                    password_hash: autosend::accounts::passwords::hash(PASSWORD).await.unwrap(),
                    full_name: "Bench".into(),
                    is_active: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap(),
        );
    }
    for (owner, recipients, mailings, runs) in [
        (owners[0], RECIPIENTS, MAILINGS, DELIVERIES / AUDIENCE),
        (owners[1], 1_000, 5, 100),
    ] {
        let ids = seed::recipients(pool, owner, recipients, now).await;
        let audiences: Vec<&[i64]> = ids.chunks(AUDIENCE).take(mailings).collect();
        let mailings = seed::mailings(pool, owner, &audiences, DAYS, now).await;
        let schedule = seed::Schedule {
            mailings: &mailings,
            audience: AUDIENCE,
            days: DAYS,
            today,
        };
        seed::history(pool, owner, &schedule, runs, &mut seed::History::default()).await;
    }
    if backend == "postgres" {
        sqlx::query("ANALYZE").execute(pool).await.unwrap();
    }
    let seeded_secs = started.elapsed().as_secs_f64();
    eprintln!("seeded in {seeded_secs:.1}s");

    // Cold start: spawn to the first answer of /healthz.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let binary = env!("CARGO_BIN_EXE_autosend");
    let started = Instant::now();
    let server = Server(
        Command::new(binary)
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&env.vars)
            .env("BIND", format!("127.0.0.1:{port}"))
            .env("LOG_LEVEL", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cold_start_ms = loop {
        if let Ok(resp) = client.get(format!("{base}/healthz")).send().await
            && resp.status().is_success()
        {
            break started.elapsed().as_secs_f64() * 1000.0;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "serve did not start"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let pid = server.0.id();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss_mb = proc_kb(pid, "VmRSS:").unwrap() as f64 / 1024.0;

    // A logged-in browser's cookies, for wrk.
    let jar = Arc::new(reqwest::cookie::Jar::default());
    let browser = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    common::log_in(&browser, &base, "bench@example.com").await;
    use reqwest::cookie::CookieStore as _;
    let cookie = jar
        .cookies(&base.parse().unwrap())
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let logged_in = vec![format!("Cookie: {cookie}")];
    let reports = format!(
        "/mailings/reports/?from={}&to={}",
        autosend::reports::format_date(autosend::reports::day_date(today - 29)),
        autosend::reports::format_date(autosend::reports::day_date(today))
    );
    let etag = browser
        .get(format!("{base}{reports}"))
        .send()
        .await
        .unwrap()
        .headers()["etag"]
        .to_str()
        .unwrap()
        .to_string();
    let mut not_modified = logged_in.clone();
    not_modified.push(format!("If-None-Match: {etag}"));
    let script = env.vars["DATA_DIR"].clone() + "/uncached.lua";
    std::fs::create_dir_all(&env.vars["DATA_DIR"]).unwrap();
    std::fs::write(&script, UNCACHED_LUA).unwrap();
    let script = std::path::PathBuf::from(script);

    // Peak memory while loaded: VmHWM after the loads, minus nothing (the idle figure is
    // below it); sampled RSS also kept to show it is not one spike.
    let sampling = Arc::new(AtomicBool::new(true));
    let peak_rss_kb = Arc::new(AtomicU64::new(0));
    let sampler = {
        let sampling = sampling.clone();
        let peak = peak_rss_kb.clone();
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                if let Some(kb) = proc_kb(pid, "VmRSS:") {
                    peak.fetch_max(kb, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };

    let cases: Vec<(&str, String, &[String], Option<&std::path::Path>)> = vec![
        ("/healthz", "/healthz".into(), &[], None),
        ("/ (dashboard)", "/".into(), &logged_in, None),
        ("/clients/ page 1", "/clients/".into(), &logged_in, None),
        (
            "/clients/?q=user4242",
            "/clients/?q=user4242".into(),
            &logged_in,
            None,
        ),
        (
            "/mailings/stats/",
            "/mailings/stats/".into(),
            &logged_in,
            None,
        ),
        (
            "/mailings/reports/ uncached",
            "/mailings/reports/".into(),
            &logged_in,
            Some(script.as_path()),
        ),
        (
            "/mailings/reports/ cached",
            reports.clone(),
            &logged_in,
            None,
        ),
        (
            "/mailings/reports/ 304",
            reports.clone(),
            &not_modified,
            None,
        ),
    ];
    let mut report = format!(
        "HTTP benchmark on {backend}{}: wrk -t2 -c{CONNECTIONS} -d{secs}s against the release \
         binary; {RECIPIENTS} recipients, {MAILINGS} mailings, {DELIVERIES} deliveries of one \
         owner (seeded in {seeded_secs:.0} s)\n\
         | path | requests/s | p50 ms | p99 ms | requests | non-2xx/3xx |\n\
         | --- | ---: | ---: | ---: | ---: | ---: |\n",
        if env.vars.contains_key("REDIS_URL") {
            " + Redis"
        } else {
            ""
        }
    );
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    for (label, path, headers, script) in cases.iter().filter(|c| c.0.contains(&only)) {
        let raw = format!(
            "{backend}-{}",
            label
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect::<String>()
        );
        let load = wrk(&base, path, headers, *script, secs, &raw);
        eprintln!("{label}: {:.0}/s", load.rps);
        report.push_str(&format!(
            "| {label} | {:.0} | {:.2} | {:.2} | {} | {} |\n",
            load.rps, load.p50_ms, load.p99_ms, load.requests, load.bad
        ));
    }
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    let size_mb = std::fs::metadata(binary).unwrap().len() as f64 / 1_048_576.0;
    report.push_str(&format!(
        "\nrelease binary: {size_mb:.1} MB; cold start to first /healthz answer: \
         {cold_start_ms:.0} ms; resident memory idle {idle_rss_mb:.1} MB, peak under load \
         {:.1} MB (VmHWM {:.1} MB)\n",
        peak_rss_kb.load(Ordering::Relaxed) as f64 / 1024.0,
        proc_kb(pid, "VmHWM:").unwrap_or(0) as f64 / 1024.0,
    ));
    drop(server);
    env.finish("http", &report, Some(&db)).await;
}
