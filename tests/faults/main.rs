//! Process-level fault tests (issue 9): the real binary as child processes, killed, cut off
//! from SMTP, Redis or PostgreSQL, and run as several instances, with what the SMTP sink
//! received and what the database recorded compared afterwards.
//!
//! SQLite by default; PostgreSQL and Redis parts need `TEST_DATABASE_URL` / `TEST_REDIS_URL`
//! and print "skipped: …" without them.

mod crash;
mod disk;
#[path = "../support/html.rs"]
mod html;
mod instances;
mod outages;
#[path = "../support/pg.rs"]
mod pg;
mod proxy;
mod resume;
#[path = "../support/sink.rs"]
mod sink;
mod world;
