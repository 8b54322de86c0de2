//! Panics, wherever they happen: a hook that logs each one and keeps its message, location
//! and backtrace for the code that catches it on the same thread (the edge middleware for
//! requests, [`crate::reporting::ErrorNotifier::catch_task_panics`] for background tasks).
//!
//! It lives outside `web` so that reporting and the scheduler can use it without the web.

use std::backtrace::Backtrace;
use std::cell::RefCell;
use std::sync::{Arc, Once};

/// What a panic left behind: its message, where it happened, and the backtrace.
#[derive(Debug, Clone)]
pub struct PanicDetails {
    pub message: String,
    pub location: String,
    /// Captured in the hook, resolved to text only when a report or page shows it.
    pub backtrace: Option<Arc<Backtrace>>,
}

thread_local! {
    static LAST_PANIC: RefCell<Option<PanicDetails>> = const { RefCell::new(None) };
}

/// Installs (once) a panic hook that logs the panic and keeps its details for the code that
/// catches it on the same thread (`catch_unwind` in the edge middleware or a task runner).
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The previous hook still runs (it prints to stderr, and the test harness needs it).
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = match info.payload().downcast_ref::<&str>() {
                Some(s) => s.to_string(),
                None => match info.payload().downcast_ref::<String>() {
                    Some(s) => s.clone(),
                    None => "panic with a non-text payload".to_string(),
                },
            };
            let location = info
                .location()
                .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                .unwrap_or_default();
            tracing::error!(panic.message = %message, panic.location = %location, "panic");
            let details = PanicDetails {
                message,
                location,
                backtrace: Some(Arc::new(Backtrace::force_capture())),
            };
            LAST_PANIC.with(|slot| *slot.borrow_mut() = Some(details));
            previous(info);
        }));
    });
}

/// The details of the last panic on this thread, taken (so each is reported once).
pub fn take_panic(payload: &(dyn std::any::Any + Send)) -> PanicDetails {
    LAST_PANIC
        .with(|slot| slot.borrow_mut().take())
        .unwrap_or_else(|| PanicDetails {
            message: payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_string()),
            location: String::new(),
            backtrace: None,
        })
}
