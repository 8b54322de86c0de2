//! autosend: a self-hosted mailing manager with production-grade error reporting.
//!
//! Data flows one way: `web` → services → `db` / `cache` / `mail` → `domain`.

pub mod accounts;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod delivery;
pub mod demo;
pub mod domain;
pub mod mail;
pub mod mailings;
pub mod messages;
pub mod metrics;
pub mod objects;
pub mod panics;
pub mod recipients;
pub mod reporting;
pub mod reports;
pub mod signing;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod web;
