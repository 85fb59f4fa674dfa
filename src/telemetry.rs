//! Logs: structured lines on stderr, and the span every HTTP request runs in.

use std::io::IsTerminal;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::HttpMessage;
use tracing::Span;
use tracing_actix_web::{RequestId, RootSpanBuilder};
use tracing_subscriber::{fmt, EnvFilter};

/// Structured logs on stderr; `RUST_LOG` filters, `MEILAB_LOG_FORMAT=json` for machines. Colours only
/// when stderr is a terminal, so files and journals get plain text.
pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,actix_server=warn"));
    let builder = fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second init (tests, repeated commands) is harmless.
    let _ = if json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

/// The span of an HTTP request, shown with every line logged while it runs, and the one line logged
/// for a request that failed (an error for a 5xx, a warning for a 4xx, and an info line for the
/// outcomes a working client meets: 409, a repeat or a race, and 429, a limit): the error's code and message,
/// with an internal error's cause chain (see `AppError`'s `Debug`), cut to [`MAX_ERROR_CHARS`].
/// Unlike tracing-actix-web's default span it carries no secrets and nothing a client can make long:
/// the path with session tokens cut to their first 8 characters and no query string (recruitment
/// links carry participants' ids there), at most [`MAX_FIELD_CHARS`] characters of path and user
/// agent, and the peer address. (The crate's own error event, which writes the error's whole `Debug`,
/// backtraces included, is switched off in Cargo.toml.)
pub struct RequestSpan;

/// The longest path or user agent a log line shows.
pub const MAX_FIELD_CHARS: usize = 160;
/// The longest error description a log line shows.
pub const MAX_ERROR_CHARS: usize = 400;

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &ServiceRequest) -> Span {
        let request_id = request
            .extensions()
            .get::<RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        let user_agent = request
            .headers()
            .get("User-Agent")
            .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
            .unwrap_or_default();
        tracing::info_span!(
            "HTTP request",
            http.method = %request.method(),
            http.route = %request.match_pattern().unwrap_or_else(|| "default".into()),
            http.target = %redacted_path(request.path()),
            http.client_ip = %request.peer_addr().map(|a| a.ip().to_string()).unwrap_or_default(),
            http.user_agent = %shortened(&user_agent),
            request_id = %request_id,
        )
    }

    fn on_request_end<B: MessageBody>(
        span: Span,
        outcome: &Result<ServiceResponse<B>, actix_web::Error>,
    ) {
        let (status, error) = match outcome {
            Ok(response) => (
                response.status(),
                response.response().error().map(|e| e.as_response_error()),
            ),
            Err(error) => (
                error.as_response_error().status_code(),
                Some(error.as_response_error()),
            ),
        };
        let Some(error) = error else {
            return;
        };
        let _entered = span.enter();
        let error = shortened_to(&format!("{error:?}"), MAX_ERROR_CHARS);
        let status = status.as_u16();
        if status >= 500 {
            tracing::error!(status, %error, "request failed");
        } else if status == 409 || status == 429 {
            tracing::info!(status, %error, "request declined");
        } else if status >= 400 {
            tracing::warn!(status, %error, "request refused");
        } else {
            // The admin pages' redirect to the login page.
            tracing::debug!(status, %error, "request redirected");
        }
    }
}

/// `path` as logged: a session token (the segment after `/api/v1/sessions/`) cut to 8 characters,
/// the whole at most [`MAX_FIELD_CHARS`] characters.
pub fn redacted_path(path: &str) -> String {
    const SESSIONS: &str = "/api/v1/sessions/";
    let redacted = match path.strip_prefix(SESSIONS) {
        Some(rest) => {
            let (token, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let prefix: String = token.chars().take(8).collect();
            let cut = if prefix.len() < token.len() {
                "…"
            } else {
                ""
            };
            format!("{SESSIONS}{prefix}{cut}{tail}")
        }
        None => path.to_string(),
    };
    shortened(&redacted)
}

/// At most [`MAX_FIELD_CHARS`] characters, control characters replaced.
fn shortened(text: &str) -> String {
    shortened_to(text, MAX_FIELD_CHARS)
}

/// One line of at most `max` characters, control characters replaced.
pub fn shortened_to(text: &str, max: usize) -> String {
    let mut short: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(max).is_some() {
        short.push('…');
    }
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_token_is_logged_as_its_first_eight_characters() {
        let token = "0123456789abcdef".repeat(4);
        assert_eq!(
            redacted_path(&format!("/api/v1/sessions/{token}/responses")),
            "/api/v1/sessions/01234567…/responses"
        );
        assert_eq!(
            redacted_path(&format!("/api/v1/sessions/{token}")),
            "/api/v1/sessions/01234567…"
        );
        assert_eq!(
            redacted_path("/api/v1/sessions/%00"),
            "/api/v1/sessions/%00"
        );
        assert_eq!(redacted_path("/s/demo"), "/s/demo");
    }

    #[test]
    fn a_long_path_is_cut() {
        let path = format!("/s/{}", "a".repeat(10_000));
        assert_eq!(redacted_path(&path).chars().count(), MAX_FIELD_CHARS + 1);
    }
}
