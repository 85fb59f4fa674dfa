//! The application error: every failure a request can meet, mapped to one HTTP status.

use actix_web::{http::StatusCode, HttpResponse, ResponseError};
use serde::Serialize;

use crate::telemetry::shortened_to;

#[derive(thiserror::Error)]
pub enum AppError {
    /// Malformed input: bad JSON, wrong types, bad path segments.
    #[error("{0}")]
    BadRequest(String),
    /// Well-formed input that breaks a rule (out of range, wrong stage).
    #[error("{message}")]
    Validation { code: &'static str, message: String },
    /// A request body over the size cap.
    #[error("the request body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    NotFound(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("authentication required")]
    Unauthorized,
    #[error("not allowed")]
    Forbidden,
    /// Too many requests from one address: retry after this many seconds.
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// The database cannot be reached: the client should retry.
    #[error("service temporarily unavailable")]
    Unavailable,
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl AppError {
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Validation {
            code,
            message: message.into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Validation { code, .. } | Self::Conflict { code, .. } => code,
            Self::TooLarge(_) => "too_large",
            Self::NotFound(_) => "not_found",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::RowNotFound => Self::NotFound("not found".into()),
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                Self::Unavailable
            }
            sqlx::Error::Database(ref db) if is_connection_loss(db.code().as_deref()) => {
                Self::Unavailable
            }
            sqlx::Error::Database(ref db) if is_data_exception(db.code().as_deref()) => {
                Self::BadRequest(format!(
                    "a value in the request cannot be used: {}",
                    db.message()
                ))
            }
            other => Self::Internal(other.into()),
        }
    }
}

/// SQLSTATE class 22 (data exception): a value the database cannot take, such as a NUL byte or an
/// invalid byte sequence in text (22021), a number out of range (22003) or malformed text for a type
/// (22P02). Such values come from the request, so the client hears about it, not the error log.
fn is_data_exception(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.starts_with("22"))
}

/// SQLSTATE class 08 (connection) and 57P0x (server shutting down / restarting).
fn is_connection_loss(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.starts_with("08") || c.starts_with("57P0"))
}

/// One line: the code and the message, with an internal error's whole cause chain and never a
/// backtrace. The request logger writes errors with `Debug`, so this is what a log line shows.
impl std::fmt::Debug for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            Self::Internal(cause) => format!("{cause:#}"),
            other => other.to_string(),
        };
        // One line, cut to a length a log line can carry.
        write!(f, "{}: {}", self.code(), shortened_to(&text, 500))
    }
}

impl From<anyhow::Error> for AppError {
    fn from(error: anyhow::Error) -> Self {
        match error.downcast::<sqlx::Error>() {
            Ok(sql) => sql.into(),
            Err(other) => Self::Internal(other),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: String,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Validation { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = match self {
            // The request log (`telemetry::RequestSpan`) writes the cause chain (see `Debug`).
            Self::Internal(_) => "internal error".to_string(),
            other => other.to_string(),
        };
        let mut response = HttpResponse::build(self.status_code());
        match self {
            Self::Unavailable => {
                response.insert_header(("Retry-After", "2"));
            }
            Self::RateLimited { retry_after_secs } => {
                response.insert_header(("Retry-After", retry_after_secs.to_string()));
            }
            _ => {}
        }
        response.json(ErrorBody {
            error: self.code(),
            message,
        })
    }
}
