//! HTML as functions (maud): no view queries, no view holds SQL.

pub mod admin;
pub mod error_groups;
pub mod errors;
pub mod home;
pub mod layout;
pub mod mailings;
pub mod messages;
pub mod recipients;
pub mod reports;
pub mod unsubscribe;
pub mod users;
