//! Handlers, one file per area. Routes hold no SQL: they call services and render views.

pub mod admin;
pub mod errors;
pub mod health;
pub mod home;
pub mod mailings;
pub mod messages;
pub mod metrics;
pub mod recipients;
pub mod reports;
pub mod unsubscribe;
pub mod users;
