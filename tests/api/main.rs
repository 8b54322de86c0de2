//! The one integration-test binary: the real app over HTTP (see helpers::spawn_app).

mod abuse;
mod accounts;
mod assets;
mod bad_input;
pub mod cli;
mod content;
mod delivery;
mod errors;
mod health;
mod helpers;
mod house;
#[path = "../support/html.rs"]
mod html;
mod mail;
mod mailings;
mod messages;
mod middleware;
#[path = "../support/pg.rs"]
mod pg;
mod recipients;
mod reporting;
mod reports;
mod security;
#[path = "../support/sink.rs"]
mod sink;
mod world;
