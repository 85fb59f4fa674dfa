//! The HTTP application: participant pages, the JSON API, images and static files.

pub mod admin;
pub mod api;
pub mod assets;
pub mod health;
pub mod images;
pub mod openapi;
pub mod pages;
pub mod participant;
pub mod paths;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpServer};
use askama::Template;
use sqlx::PgPool;
use tracing_actix_web::TracingLogger;

use crate::error::AppError;
use crate::stimuli::store::ImageStore;
use crate::study::recruit::ParticipantKey;
use crate::study::session::Sessions;
use crate::telemetry::RequestSpan;

/// Request bodies larger than this are refused before they are read.
pub const MAX_JSON_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub store: ImageStore,
    pub key: ParticipantKey,
    /// The participant operations, with this process's kept blocks and answer writer.
    pub sessions: Arc<Sessions>,
    /// Base of the links the dashboard shows (the `public_url` setting); `None`: the address the
    /// server listens on. Never taken from request headers, which a client sets.
    pub public_url: Option<String>,
}

impl AppState {
    /// The state of a server process; starts its answer writer on the current Tokio runtime.
    pub fn new(pool: PgPool, store: ImageStore, key: ParticipantKey) -> Self {
        let sessions = Arc::new(Sessions::start(pool.clone(), key.clone()));
        Self {
            pool,
            store,
            key,
            sessions,
            public_url: None,
        }
    }

    pub fn with_public_url(mut self, url: String) -> Self {
        self.public_url = Some(url.trim_end_matches('/').to_string());
        self
    }

    /// The data directory: the image store lives at `<data-dir>/images`.
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.store
            .root()
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default()
    }
}

/// Every route of the application, area by area.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(MAX_JSON_BYTES)
            .error_handler(|err, _| api::json_error(err).into()),
    )
    .app_data(web::PayloadConfig::default().limit(MAX_JSON_BYTES))
    .app_data(
        web::PathConfig::default()
            .error_handler(|err, _| AppError::BadRequest(format!("invalid path: {err}")).into()),
    )
    .app_data(
        web::QueryConfig::default()
            .error_handler(|err, _| AppError::BadRequest(format!("invalid query: {err}")).into()),
    )
    .configure(health::configure)
    .configure(api::configure)
    .configure(images::configure)
    .configure(assets::configure)
    .configure(participant::configure)
    .configure(admin::configure);
}

/// Starts serving on `listener`; the returned server stops gracefully on SIGINT / SIGTERM.
pub fn serve(listener: TcpListener, state: AppState) -> std::io::Result<Server> {
    let limiter = api::limit::SessionLimiter::per_minute(api::limit::DEFAULT_PER_MINUTE);
    serve_with(listener, state, limiter)
}

/// [`serve`] with the given per-IP limit on starting sessions (shared by all workers).
pub fn serve_with(
    listener: TcpListener,
    state: AppState,
    limiter: api::limit::SessionLimiter,
) -> std::io::Result<Server> {
    let state = web::Data::new(state);
    let limiter = web::Data::new(limiter);
    let server = HttpServer::new(move || {
        App::new()
            .wrap(from_fn(security_headers))
            .wrap(TracingLogger::<RequestSpan>::new())
            .app_data(state.clone())
            .app_data(limiter.clone())
            .configure(configure)
            .default_service(web::to(pages::not_found))
    })
    .listen(listener)?
    .shutdown_timeout(10)
    .run();
    Ok(server)
}

/// Sent with every response. Scripts and styles come from this site only (`static/`); inline `style`
/// attributes stay allowed because progress bars carry their width there (no inline script exists).
/// Nothing may frame a page, no other site learns the address of a page (recruitment links carry
/// participants' ids), and no response is content-sniffed.
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "same-origin"),
    ("x-content-type-options", "nosniff"),
    ("cross-origin-opener-policy", "same-origin"),
];

/// Adds [`SECURITY_HEADERS`] to every response, error responses included, and shows the participant pages'
/// errors (which the handlers raise as API errors) as the HTML error page.
async fn security_headers(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // Handlers' and extractors' errors arrive as responses; no middleware inside fails outright.
    let mut response = next.call(request).await?.map_into_boxed_body();
    if response.request().path().starts_with("/s/")
        && response.response().error().is_some()
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|t| t.as_bytes().starts_with(b"application/json"))
    {
        response = error_page(response);
    }
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        if !headers.contains_key(name) {
            headers.insert(
                header::HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
    }
    Ok(response)
}

/// The HTML error page in place of a JSON error body; status, headers and the error (for the request
/// log) are kept.
fn error_page(response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = response.status();
    let (title, message) = match status.as_u16() {
        400 | 404 => (
            "Page not found",
            "There is nothing at this address. Please check the link you were given.",
        ),
        429 | 503 => (
            "Please try again shortly",
            "The study cannot be opened at the moment. Please reload this page in a minute.",
        ),
        _ => (
            "Something went wrong",
            "The page could not be shown. Please reload it, or contact the researchers.",
        ),
    };
    let body = pages::ErrorPage { title, message }
        .render()
        .unwrap_or_else(|_| message.to_string());
    let mut response = response.map_body(|_, _| BoxBody::new(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}
