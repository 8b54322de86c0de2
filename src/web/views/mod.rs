//! HTML as functions (maud): no view queries, no view holds SQL.

pub mod errors;
pub mod home;
pub mod layout;
