//! HTML as functions (maud): no view queries, no view holds SQL.

pub mod admin;
pub mod errors;
pub mod home;
pub mod layout;
pub mod unsubscribe;
pub mod users;
