//! The SMTP sink of the delivery and fault tests: tests/support/delivery_sink.py (aiosmtpd)
//! as a child process, and what it received.
//!
//! Shared by two test binaries (`api`, `faults`) through `#[path]`; each uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

/// Debian's python3 with aiosmtpd, else any python3 that has it. `None` lets a test print
/// "skipped" on a developer's machine; in CI (`CI` set) a missing sink is a failure, since
/// `.ci/run` installs it and a skipped check must never pass as a passed one.
pub fn python_with_aiosmtpd() -> Option<&'static str> {
    let found = ["/usr/bin/python3", "python3"].into_iter().find(|python| {
        std::process::Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    assert!(
        found.is_some() || std::env::var_os("CI").is_none(),
        "aiosmtpd is missing in CI: .ci/run installs python3-aiosmtpd"
    );
    found
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// tests/support/delivery_sink.py on `port`, killed when dropped.
pub struct Sink {
    child: Option<tokio::process::Child>,
    python: &'static str,
    pub port: u16,
    tempfails: u32,
    log: PathBuf,
}

impl Sink {
    pub async fn start(python: &'static str, port: u16, dir: &Path, tempfails: u32) -> Self {
        let mut sink = Self {
            child: None,
            python,
            port,
            tempfails,
            log: dir.join(format!("sink-{port}.jsonl")),
        };
        sink.restart().await;
        sink
    }

    /// Starts the process again on the same port and log (after [`Sink::stop`]).
    pub async fn restart(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/delivery_sink.py");
        let mut child = tokio::process::Command::new(self.python)
            .arg(script)
            .arg(self.port.to_string())
            .arg(&self.log)
            .arg(self.tempfails.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("the SMTP sink starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the SMTP sink became ready")
            .unwrap();
        assert_eq!(ready.as_deref(), Some("READY"));
        self.child = Some(child);
    }

    /// Kills the process: connections are refused until [`Sink::restart`]. A message whose
    /// DATA was logged but not yet answered may be sent again, like with a real server.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("the SMTP sink is killed");
        }
    }

    /// While down, the running sink answers every recipient `421` (see delivery_sink.py).
    pub fn set_down(&self, down: bool) {
        let switch = PathBuf::from(format!("{}.down", self.log.display()));
        if down {
            std::fs::write(&switch, "").unwrap();
        } else if switch.exists() {
            std::fs::remove_file(&switch).unwrap();
        }
    }

    /// While strict, the sink refuses every EHLO and HELO with 504 (a relay that wants a
    /// fully qualified name).
    pub fn set_strict(&self, strict: bool) {
        let switch = PathBuf::from(format!("{}.strict", self.log.display()));
        if strict {
            std::fs::write(&switch, "").unwrap();
        } else if switch.exists() {
            std::fs::remove_file(&switch).unwrap();
        }
    }

    /// Session events so far: `EHLO name`, `HELO name`, `QUIT`.
    pub fn sessions(&self) -> Vec<String> {
        std::fs::read_to_string(format!("{}.sessions", self.log.display()))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// (recipient, raw message) of every accepted message.
    pub fn received(&self) -> Vec<(String, String)> {
        self.lines()
            .map(|v| {
                (
                    v["to"].as_str().unwrap().to_string(),
                    v["data"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Accepted messages so far (cheap enough to poll: one JSON line each).
    pub fn count(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .map(|text| text.lines().count())
            .unwrap_or(0)
    }

    /// How many messages each recipient received.
    pub fn per_recipient(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for v in self.lines() {
            *counts
                .entry(v["to"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        counts
    }

    fn lines(&self) -> impl Iterator<Item = serde_json::Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line per message"))
            .collect::<Vec<_>>()
            .into_iter()
    }
}
