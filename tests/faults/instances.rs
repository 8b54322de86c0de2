//! Several instances on one PostgreSQL + Redis (SPEC §2, §7, §8): two `serve` processes and
//! one `scheduler` race for the same 20 due mailings; each run starts once, each recipient
//! gets one message, and a broken link hit on both web instances is e-mailed once.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use autosend::domain::RunStatus;

use crate::sink::{Sink, free_port, python_with_aiosmtpd};
use crate::world::{World, http_client, test_env, wait_until};

const MAILINGS: usize = 20;
const PER_MAILING: usize = 50;
const MANAGER: &str = "managers@example.com";

#[tokio::test]
async fn two_servers_and_a_scheduler_send_each_due_mailing_once_to_everyone_once() {
    let Some(redis_url) = test_env("TEST_REDIS_URL") else {
        eprintln!("skipped: several instances need TEST_REDIS_URL and TEST_DATABASE_URL");
        return;
    };
    let Some(mut w) = World::postgres("several instances").await else {
        return;
    };
    let Some(python) = python_with_aiosmtpd() else {
        eprintln!("skipped: python3-aiosmtpd is not installed (.ci/run installs it)");
        return;
    };
    let sink = Sink::start(python, free_port(), w.dir.path(), 0).await;
    w.smtp(sink.port);
    w.set("REDIS_URL", redis_url);
    w.set(
        "REDIS_PREFIX",
        format!("faults-{}:", uuid::Uuid::new_v4().simple()),
    );
    w.set("SEND_RATE_PER_SECOND", "100");
    w.set("MANAGERS", format!("Managers <{MANAGER}>"));
    let owner = w.owner().await;
    let mut mailings = Vec::new();
    let mut emails = Vec::new();
    for m in 0..MAILINGS {
        let (id, to) = w
            .due_mailing(owner, PER_MAILING, &format!("m{m:02}-"))
            .await;
        mailings.push(id);
        emails.extend(to);
    }

    // Each process logs to its own directory, so its share of the work can be read back.
    let log_dirs: Vec<PathBuf> = ["a", "b", "scheduler"]
        .iter()
        .map(|name| w.dir.path().join(format!("logs-{name}")))
        .collect();
    let log_dir = |i: usize| vec![("LOG_DIR", log_dirs[i].display().to_string())];
    let began = Instant::now();
    let web_a = w.serve_with(&log_dir(0)).await;
    let web_b = w.serve_with(&log_dir(1)).await;
    let _scheduler = w.spawn(&["scheduler"], &log_dir(2));

    // The same broken link, followed on both web instances.
    let browser = http_client();
    for app in [&web_a, &web_b] {
        let resp = browser
            .get(app.url("/no-such-page"))
            .header("Referer", "https://elsewhere.example/links")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 404);
    }
    wait_until(
        "both instances counted the broken link",
        Duration::from_secs(20),
        || async {
            let seen: Option<i64> = sqlx::query_scalar(
                "SELECT CAST(SUM(occurrences) AS BIGINT) FROM error_groups \
                 WHERE kind = 'broken_link'",
            )
            .fetch_one(&w.db.pool)
            .await
            .unwrap();
            seen == Some(2)
        },
    )
    .await;

    wait_until(
        "every mailing's run finished",
        Duration::from_secs(60),
        || async {
            let done: i64 = sqlx::query_scalar(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM runs WHERE status <> 'running'",
            )
            .fetch_one(&w.db.pool)
            .await
            .unwrap();
            done >= MAILINGS as i64
        },
    )
    .await;
    let took = began.elapsed();
    // What each process's scheduler says it sent, from its tick lines (`sent=N`), which are
    // written after the run finished and through a non-blocking log writer: wait for them.
    let shares = || -> Vec<usize> { log_dirs.iter().map(|dir| sent_in_ticks(dir)).collect() };
    wait_until(
        "the instances' tick lines account for every message",
        Duration::from_secs(10),
        || async { shares().iter().sum::<usize>() >= MAILINGS * PER_MAILING },
    )
    .await;
    let shares = shares();

    let mut counts = sink.per_recipient();
    let reports = counts.remove(MANAGER).unwrap_or(0);
    let received: usize = counts.values().sum();
    eprintln!(
        "instances: {MAILINGS} mailings, {received} messages for {} recipients in {:.1} s \
         (serve a / serve b / scheduler sent {shares:?}); {reports} broken-link e-mail(s) \
         for 2 hits",
        counts.len(),
        took.as_secs_f64()
    );
    for id in &mailings {
        let runs = w.runs(*id).await;
        assert_eq!(runs.len(), 1, "mailing {id} ran {} times", runs.len());
        assert_eq!(runs[0].status, RunStatus::Success, "{:?}", runs[0]);
        assert_eq!(runs[0].totals.sent, PER_MAILING as i64);
    }
    let missing: Vec<&String> = emails.iter().filter(|e| !counts.contains_key(*e)).collect();
    assert!(missing.is_empty(), "never received: {missing:?}");
    let twice: Vec<(&String, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "received more than once: {twice:?}");
    assert_eq!(received, MAILINGS * PER_MAILING);
    assert_eq!(
        shares.iter().sum::<usize>(),
        received,
        "the instances' own counts add up to what the sink received"
    );
    assert_eq!(
        reports, 1,
        "the broken link was e-mailed by one instance only"
    );
}

/// The sum of `sent=N` over the tick lines a process wrote under `log_dir/scheduler/`.
fn sent_in_ticks(log_dir: &Path) -> usize {
    let Ok(files) = std::fs::read_dir(log_dir.join("scheduler")) else {
        return 0;
    };
    let mut sent = 0;
    for file in files {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap_or_default();
        for line in text.lines().filter(|l| l.contains("tick")) {
            if let Some(n) = line
                .split_whitespace()
                .find_map(|field| field.strip_prefix("sent="))
            {
                sent += n.parse::<usize>().unwrap_or(0);
            }
        }
    }
    sent
}
