//! Errors as handlers raise them, and the details the 500 page and reports need.
//!
//! Handlers return [`AppError`]; it becomes a `poem::Error` whose status the edge middleware
//! turns into a styled page. Unexpected failures keep their cause chain and a backtrace taken
//! where they were raised (panics are caught by the edge with [`crate::panics`]).

use std::backtrace::Backtrace;
use std::sync::Arc;

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
                let status = if internal.is_unavailable() {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                };
                poem::Error::new(internal, status)
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
            ObjectError::Stale => poem::Error::from_string(
                "Someone else saved this in the meantime: reload the page to see their version.",
                StatusCode::CONFLICT,
            ),
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

impl From<crate::accounts::AccountError> for poem::Error {
    fn from(error: crate::accounts::AccountError) -> Self {
        use crate::accounts::AccountError;
        use crate::web::middleware::{Busy, RetryAfter};
        match error {
            AccountError::TooMany(wait) => {
                poem::Error::new(RetryAfter(wait), StatusCode::TOO_MANY_REQUESTS)
            }
            AccountError::Busy => Busy.into(),
            // Handlers re-render their forms; reaching here means a form without fields.
            AccountError::Validation(_) => poem::Error::from_string(
                "Some fields are not valid.",
                StatusCode::UNPROCESSABLE_ENTITY,
            ),
            AccountError::Unexpected(err) => AppError::from(err).into(),
        }
    }
}

/// An unexpected failure with its cause chain and the backtrace of where it was raised.
#[derive(Debug)]
pub struct InternalError {
    pub error: anyhow::Error,
    /// Captured where the error was raised; resolved to text only when shown or reported.
    pub backtrace: Arc<Backtrace>,
}

impl InternalError {
    pub fn new(error: anyhow::Error) -> Self {
        Self {
            error,
            backtrace: Arc::new(Backtrace::force_capture()),
        }
    }

    /// Whether the database had passing trouble ([`crate::db::is_transient`]: unreachable,
    /// locked or busy past the timeout, disk full): answered 503 with `Retry-After`, not a bug.
    pub fn is_unavailable(&self) -> bool {
        crate::db::is_transient_chain(&self.error)
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
