//! Delivery throughput and memory: a 10 000-recipient run sent by `autosend send-mailing` to
//! postfix's `smtp-sink` on loopback with the rate limit off, next to postfix's `smtp-source`
//! sending the same number of messages to the same sink (what this machine's loopback SMTP can
//! do); then a 100 000-recipient run, for peak memory against the number of recipients.
//!
//! `cargo bench --bench delivery` (SQLite); with `BENCH_DATABASE_URL=postgres://…` on a fresh
//! PostgreSQL database. Needs `smtp-sink` and `smtp-source` (Debian: `postfix`); says so and
//! stops when they are missing. Figures go to stdout and `target/bench/delivery-<backend>.txt`.
//!
//! autosend runs as its own process (the release binary), as in production: its resident set
//! is read from `/proc/<pid>/status` (VmHWM, the peak) while it sends.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use autosend::db::bulk::{self, Value};
use autosend::domain::mailing::Period;

/// Parallel SMTP sessions, for autosend (`SEND_CONCURRENCY`) and for smtp-source (`-s`).
const CONCURRENCY: usize = 4;
const RUNS: [usize; 2] = [10_000, 100_000];
/// The message body, about the size of a short newsletter (smtp-source sends the same size).
const BODY_BYTES: usize = 1_500;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `smtp-sink` accepting everything on `port` (backlog 256), killed on drop.
struct Sink(Child);

impl Sink {
    fn start(port: u16) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        let mut command = Command::new("smtp-sink");
        // smtp-sink refuses to run as root unless told whose privileges to drop to.
        if std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
            command.args(["-u", "nobody"]);
        }
        // Owned by `Sink` at once, so a failure below still kills and reaps it.
        let sink = Self(
            command
                .args([&format!("127.0.0.1:{port}"), "256"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("smtp-sink starts"),
        );
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return sink;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("smtp-sink did not listen on {port}");
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Messages per second smtp-source reaches: `count` messages of `BODY_BYTES`, `CONCURRENCY`
/// sessions, each kept open for its next message (`-d`), as autosend's pool does.
fn smtp_source(port: u16, count: usize) -> f64 {
    let started = Instant::now();
    let status = Command::new("smtp-source")
        .args([
            "-d",
            "-s",
            &CONCURRENCY.to_string(),
            "-m",
            &count.to_string(),
            "-l",
            &BODY_BYTES.to_string(),
            "-f",
            "bench@example.com",
            "-t",
            "someone@example.com",
            &format!("127.0.0.1:{port}"),
        ])
        .status()
        .unwrap();
    assert!(status.success(), "smtp-source failed");
    count as f64 / started.elapsed().as_secs_f64()
}

/// Reads a `/proc/<pid>/status` field in kB.
fn proc_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

struct RunFigures {
    secs: f64,
    rate: f64,
    peak_rss_mb: f64,
    sent: i64,
}

/// One mailing to `recipients` new recipients of the owner, sent by `autosend send-mailing`.
async fn send_run(
    bench: &common::BenchApp,
    message: i64,
    recipients: usize,
    port: u16,
) -> RunFigures {
    let db = &bench.state.db;
    let now = autosend::db::now_ms();
    let mut ids = Vec::with_capacity(recipients);
    let rows: Vec<Vec<Value>> = (0..recipients)
        .map(|i| {
            vec![
                bench.owner.into(),
                format!("r{recipients}-{i}@example.com").into(),
                format!("Recipient {i}").into(),
                "".into(),
                now.into(),
                now.into(),
            ]
        })
        .collect();
    // 6 binds a row: 5 000 rows stay under SQLite's 32 766 bind limit.
    for part in rows.chunks(5_000) {
        ids.extend(
            bulk::insert(
                &db.pool,
                "INSERT INTO recipients (owner_id, email, full_name, comment, created_at, \
                   updated_at)",
                part,
                "RETURNING id",
            )
            .await
            .unwrap(),
        );
    }
    let day = 86_400_000;
    let mailing = autosend::db::mailings::create_mailing(
        db,
        &autosend::db::mailings::NewMailing {
            owner_id: bench.owner,
            message_id: message,
            recipient_ids: ids,
            // Far in the future, so no scheduler picks it up: only send-mailing sends it.
            start_at: now + 300 * day,
            end_at: now + 301 * day,
            period: Period::Once,
        },
        now,
    )
    .await
    .unwrap();

    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_autosend"))
        .args(["send-mailing", "--id", &mailing.to_string()])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(&bench.vars)
        .env("EMAIL_BACKEND", "smtp")
        .env("SMTP_HOST", "127.0.0.1")
        .env("SMTP_PORT", port.to_string())
        .env("SEND_CONCURRENCY", CONCURRENCY.to_string())
        .env("SEND_RATE_PER_SECOND", "1000000")
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak_kb = 0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if let Some(kb) = proc_kb(pid, "VmHWM:") {
            peak_kb = peak_kb.max(kb);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let secs = started.elapsed().as_secs_f64();
    assert!(status.success(), "send-mailing failed: {status}");
    let sent: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM deliveries WHERE mailing_id = $1 AND status = 'sent'",
    )
    .bind(mailing)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    if sent != recipients as i64 {
        let by_status: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT status, CAST(COUNT(*) AS BIGINT), MAX(detail) FROM deliveries \
             WHERE mailing_id = $1 GROUP BY status",
        )
        .bind(mailing)
        .fetch_all(&db.pool)
        .await
        .unwrap();
        panic!("{recipients} recipients but {sent} sent: {by_status:?}");
    }
    RunFigures {
        secs,
        rate: recipients as f64 / secs,
        peak_rss_mb: peak_kb as f64 / 1024.0,
        sent,
    }
}

fn main() {
    if !have("smtp-sink") || !have("smtp-source") {
        eprintln!(
            "delivery benchmark skipped: smtp-sink and smtp-source not found \
             (Debian: apt-get install postfix, with 'No configuration')"
        );
        return;
    }
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(run());
}

async fn run() {
    let bench = common::BenchApp::start("delivery").await;
    let backend = bench.backend;
    let now = autosend::db::now_ms();
    let body: String = "Hello {{full_name}}, this is the benchmark newsletter. "
        .repeat(BODY_BYTES / 55 + 1)
        .chars()
        .take(BODY_BYTES)
        .collect();
    let message: i64 = sqlx::query_scalar(
        "INSERT INTO messages (owner_id, subject, body, created_at, updated_at) \
         VALUES ($1, 'Benchmark newsletter', $2, $3, $3) RETURNING id",
    )
    .bind(bench.owner)
    .bind(body)
    .bind(now)
    .fetch_one(&bench.state.db.pool)
    .await
    .unwrap();

    let port = free_port();
    let sink = Sink::start(port);
    let source_rate = smtp_source(port, RUNS[0]);
    let mut report = format!(
        "delivery benchmark on {backend}: autosend send-mailing (release binary, \
         SEND_CONCURRENCY={CONCURRENCY}, rate limit off) and smtp-source -d -s {CONCURRENCY} \
         -l {BODY_BYTES}, both to smtp-sink on loopback\n\
         | sender | messages | seconds | messages/s | peak RSS MB |\n\
         | --- | ---: | ---: | ---: | ---: |\n\
         | smtp-source | {} | {:.2} | {source_rate:.0} | – |\n",
        RUNS[0],
        RUNS[0] as f64 / source_rate
    );
    let mut first_rate = None;
    for recipients in RUNS {
        let figures = send_run(&bench, message, recipients, port).await;
        eprintln!(
            "{recipients} recipients: {:.1}s, {:.0}/s, peak {:.1} MB",
            figures.secs, figures.rate, figures.peak_rss_mb
        );
        first_rate.get_or_insert(figures.rate);
        report.push_str(&format!(
            "| autosend | {} | {:.2} | {:.0} | {:.1} |\n",
            figures.sent, figures.secs, figures.rate, figures.peak_rss_mb
        ));
    }
    report.push_str(&format!(
        "autosend / smtp-source at {} messages: {:.2}\n",
        RUNS[0],
        first_rate.unwrap() / source_rate
    ));
    drop(sink);
    bench.finish("delivery", &report).await;
}
