//! The OpenAPI document of the participant JSON API, served at `GET /api/v1/openapi.json`.

use std::sync::OnceLock;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::error::AppError;
use crate::web::api::{sessions, trial_images};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "meilab participant API",
        description = "Sessions, trials and responses of participants (DESIGN 2.2). Every error is JSON \
                       `{error, message}`; a 4xx is never retried, a 503 after its Retry-After."
    ),
    paths(
        sessions::create,
        sessions::show,
        sessions::consent,
        sessions::instructions,
        sessions::next_trial,
        trial_images::image,
        sessions::respond,
        sessions::finish,
    ),
    tags((name = "participants", description = "A participant's path through a session"))
)]
pub struct ApiDoc;

/// The body of every error reply.
#[derive(Serialize, ToSchema)]
pub struct ApiError {
    /// A stable code, e.g. `bad_request`, `not_found`, `already_answered`
    pub error: String,
    /// What went wrong, for people
    pub message: String,
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/openapi.json").route(web::get().to(document)));
}

async fn document() -> Result<HttpResponse, AppError> {
    static JSON: OnceLock<String> = OnceLock::new();
    let json = match JSON.get() {
        Some(json) => json,
        None => {
            let json = ApiDoc::openapi()
                .to_json()
                .map_err(|e| AppError::Internal(e.into()))?;
            JSON.get_or_init(|| json)
        }
    };
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(json.clone()))
}
