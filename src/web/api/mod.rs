//! The JSON API under `/api/v1` (DESIGN 2.2).

pub mod sessions;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::scope("/api/v1").configure(sessions::configure));
}
