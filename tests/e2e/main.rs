//! Browser tests (issue 9): the real app in-process (the api tests' `spawn_app`) driven through
//! headless Chromium over WebDriver, asserting what a user sees after each step.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them); without them the
//! test prints "skipped: …" and passes. Screenshots of every step go to `target/e2e/`.
//! Runs on SQLite by default, on PostgreSQL and Redis with `TEST_DATABASE_URL` / `TEST_REDIS_URL`.

mod browser;
// The api tests' harness, shared rather than copied; this binary uses only part of it.
#[allow(dead_code)]
#[path = "../api/helpers.rs"]
mod helpers;
#[path = "../support/html.rs"]
mod html;
mod journey;
#[path = "../support/pg.rs"]
mod pg;
#[path = "../support/sink.rs"]
mod sink;
