//! Handlers, one file per area. Routes hold no SQL: they call services and render views.

pub mod admin;
pub mod health;
pub mod home;
pub mod unsubscribe;
pub mod users;
