//! The HTTP application: participant pages, the JSON API, images and static files.

pub mod admin;
pub mod api;
pub mod assets;
pub mod health;
pub mod images;
pub mod openapi;
pub mod pages;
pub mod participant;

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::{web, App, HttpServer};
use sqlx::PgPool;
use tracing_actix_web::TracingLogger;

use crate::error::AppError;
use crate::stimuli::store::ImageStore;
use crate::study::live::Live;
use crate::study::recruit::ParticipantKey;

/// Request bodies larger than this are refused before they are read.
pub const MAX_JSON_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub store: ImageStore,
    pub key: ParticipantKey,
    /// The participants' current blocks and the answer writer of this process.
    pub live: Arc<Live>,
    /// Base of the links the dashboard shows (the `public_url` setting); `None`: the address the
    /// server listens on. Never taken from request headers, which a client sets.
    pub public_url: Option<String>,
}

impl AppState {
    /// The state of a server process; starts its answer writer on the current Tokio runtime.
    pub fn new(pool: PgPool, store: ImageStore, key: ParticipantKey) -> Self {
        let live = Arc::new(Live::start(pool.clone()));
        Self {
            pool,
            store,
            key,
            live,
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
            .wrap(TracingLogger::default())
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
