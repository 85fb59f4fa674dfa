//! The participant's pages.

pub mod study_page;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/s/{slug}", web::get().to(study_page::show));
}
