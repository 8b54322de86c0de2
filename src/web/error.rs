//! Errors as handlers raise them, and the details the 500 page and reports need.
//!
//! Handlers return [`AppError`]; it becomes a `poem::Error` whose status the edge middleware
//! turns into a styled page. Unexpected failures keep their cause chain and a backtrace taken
//! where they were raised; panics leave theirs in a thread-local for the edge to collect.

use std::backtrace::Backtrace;
use std::cell::RefCell;
use std::sync::Once;

use poem::http::StatusCode;

/// What a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Internal(#[from] InternalError),
}

impl From<anyhow::Error> for AppError {
    fn from(error: anyhow::Error) -> Self {
        AppError::Internal(InternalError::new(error))
    }
}

impl From<AppError> for poem::Error {
    fn from(error: AppError) -> Self {
        match error {
            AppError::NotFound => poem::Error::from_status(StatusCode::NOT_FOUND),
            AppError::BadRequest(msg) => poem::Error::from_string(msg, StatusCode::BAD_REQUEST),
            AppError::Forbidden(msg) => poem::Error::from_string(msg, StatusCode::FORBIDDEN),
            AppError::Internal(internal) => {
                poem::Error::new(internal, StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

impl From<crate::objects::ObjectError> for poem::Error {
    fn from(error: crate::objects::ObjectError) -> Self {
        use crate::objects::ObjectError;
        match error {
            ObjectError::NotFound => AppError::NotFound.into(),
            ObjectError::ReadOnly => {
                poem::Error::from_string(error.to_string(), StatusCode::FORBIDDEN)
            }
            ObjectError::Refused(message) => {
                poem::Error::from_string(message, StatusCode::CONFLICT)
            }
            // Handlers re-render their forms; reaching here means a form without fields.
            ObjectError::Validation(_) => poem::Error::from_string(
                "Some fields are not valid.",
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            ObjectError::Unexpected(err) => AppError::from(err).into(),
        }
    }
}

/// An unexpected failure with its cause chain and the backtrace of where it was raised.
#[derive(Debug)]
pub struct InternalError {
    pub error: anyhow::Error,
    pub backtrace: String,
}

impl InternalError {
    pub fn new(error: anyhow::Error) -> Self {
        Self {
            error,
            backtrace: Backtrace::force_capture().to_string(),
        }
    }

    /// The messages of the error and each of its causes, outermost first.
    pub fn chain(&self) -> Vec<String> {
        self.error.chain().map(|e| e.to_string()).collect()
    }
}

impl std::fmt::Display for InternalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for InternalError {}

/// What a panic left behind: its message, where it happened, and the backtrace.
#[derive(Debug, Clone)]
pub struct PanicDetails {
    pub message: String,
    pub location: String,
    pub backtrace: String,
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
                backtrace: Backtrace::force_capture().to_string(),
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
            backtrace: String::new(),
        })
}
