//! The SQLite file under operator faults (issue 12 item 12): its filesystem full for a while,
//! the file deleted under a running server. Over HTTP on the real binary.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::world::{Autosend, World, csrf_token_of, http_client, login, wait_until};

/// A small tmpfs mounted for the test, unmounted when dropped. Mounting needs root (or
/// CAP_SYS_ADMIN); without it the test fails saying so rather than pretending.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "this test mounts a {size} tmpfs to fill it for real, which needs root or \
             CAP_SYS_ADMIN: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the filesystem is full; returns it.
    fn fill(&self) -> PathBuf {
        let filler = self.path().join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 64 * 1024];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .args(["-l"])
            .arg(self.dir.path())
            .status();
    }
}

/// Saves a recipient with a long comment (new pages, so a full disk cannot hide in free ones).
async fn save(client: &reqwest::Client, app: &Autosend, n: usize) -> reqwest::Response {
    let token = csrf_token_of(client, app, "/").await;
    let email = format!("saved{n}@example.com");
    let comment = "c".repeat(1900);
    client
        .post(app.url("/clients/"))
        .form(&[
            ("email", email.as_str()),
            ("full_name", "Saved Person"),
            ("comment", comment.as_str()),
            ("csrf_token", token.as_str()),
        ])
        .send()
        .await
        .unwrap()
}

async fn healthz(client: &reqwest::Client, app: &Autosend) -> (u16, serde_json::Value) {
    let resp = client.get(app.url("/healthz")).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn a_full_disk_answers_503_and_writes_work_again_once_space_is_freed() {
    let disk = SmallDisk::mount("4m");
    let world = World::sqlite_at(&disk.path().join("autosend.db")).await;
    world.owner().await;
    let app = world.serve().await;
    let client = http_client();
    login(&client, &app).await;
    let mut n = 0;
    for _ in 0..3 {
        n += 1;
        assert_eq!(save(&client, &app, n).await.status(), 303);
    }

    let filler = disk.fill();
    let mut statuses = Vec::new();
    for _ in 0..20 {
        n += 1;
        let resp = save(&client, &app, n).await;
        if resp.status() == 503 {
            assert!(resp.headers().contains_key("retry-after"));
        }
        statuses.push(resp.status().as_u16());
    }
    assert!(
        statuses.iter().all(|s| *s == 303 || *s == 503),
        "a full disk answered {statuses:?}\n{}",
        app.output()
    );
    assert!(
        statuses.contains(&503),
        "the disk never filled: {statuses:?}"
    );
    let (status, body) = healthz(&client, &app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"], "unwritable");

    // Space comes back: writes work again, without a restart.
    std::fs::remove_file(filler).unwrap();
    wait_until("a save works again", Duration::from_secs(10), || {
        n += 1;
        let n = n;
        let client = client.clone();
        let app = &app;
        async move { save(&client, app, n).await.status() == 303 }
    })
    .await;
    for _ in 0..10 {
        n += 1;
        let resp = save(&client, &app, n).await;
        assert_eq!(resp.status(), 303, "{}", app.output());
    }
    let (status, body) = healthz(&client, &app).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_deleted_database_fails_healthz_and_no_command_but_migrate_starts_empty() {
    let world = World::sqlite().await;
    world.owner().await;
    let db_file = world.dir.path().join("autosend.db");
    let marker = world.dir.path().join("autosend.db.marker");
    assert!(marker.exists(), "the first migration leaves a marker");
    let mut app = world.serve().await;
    let client = http_client();
    assert_eq!(healthz(&client, &app).await.0, 200);

    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db_file.display()));
    }
    let (status, body) = healthz(&client, &app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["database"], "file missing");
    app.kill().await;

    for command in [&["serve"][..], &["scheduler"], &["send-due"], &["check"]] {
        let (code, output) = world.run_to_end(command).await;
        assert_ne!(code, 0, "{command:?} started on a lost database:\n{output}");
        assert!(
            output.contains(&db_file.display().to_string()) && output.contains("autosend migrate"),
            "{command:?} did not say what is wrong and what to do:\n{output}"
        );
        assert!(!db_file.exists(), "{command:?} created an empty database");
    }

    let (code, output) = world.run_to_end(&["migrate"]).await;
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("applied"), "{output}");
    let app = world.serve().await;
    assert_eq!(healthz(&client, &app).await.0, 200);
}
