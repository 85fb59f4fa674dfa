//! Sessions, trials and responses of participants. Each request is one transaction; a reply is sent
//! only after its transaction committed.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use crate::error::AppError;
use crate::study::participation::{self, Answer, NewSession};
use crate::web::AppState;

use super::limit::SessionLimiter;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/studies/{slug}/sessions", web::post().to(create))
        .route("/sessions/{token}", web::get().to(show))
        .route("/sessions/{token}/consent", web::post().to(consent))
        .route(
            "/sessions/{token}/instructions",
            web::post().to(instructions),
        )
        .route("/sessions/{token}/trials/next", web::get().to(next_trial))
        .route("/sessions/{token}/responses", web::post().to(respond))
        .route("/sessions/{token}/finish", web::post().to(finish));
}

async fn create(
    state: web::Data<AppState>,
    request: HttpRequest,
    slug: web::Path<String>,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<HttpResponse, AppError> {
    // Checked before the body is parsed or the database is asked anything.
    if let (Some(limiter), Some(peer)) = (
        request.app_data::<web::Data<SessionLimiter>>(),
        request.peer_addr(),
    ) {
        limiter.check(peer.ip())?;
    }
    let new: NewSession = optional_json(&body.map_err(super::payload_error)?)?;
    let mut tx = state.pool.begin().await?;
    let (started, created) = participation::start(&mut tx, &state.key, &slug, new).await?;
    tx.commit().await?;
    Ok(if created {
        HttpResponse::Created().json(started)
    } else {
        HttpResponse::Ok().json(started)
    })
}

async fn show(
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let mut conn = state.pool.acquire().await?;
    let session = participation::state(&mut conn, &token).await?;
    Ok(HttpResponse::Ok().json(session))
}

async fn consent(
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let mut tx = state.pool.begin().await?;
    let stage = participation::consent(&mut tx, &token).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(json!({ "stage": stage })))
}

async fn instructions(
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let mut tx = state.pool.begin().await?;
    let stage = participation::finish_instructions(&mut tx, &token).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(json!({ "stage": stage })))
}

async fn next_trial(
    state: web::Data<AppState>,
    token: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let mut conn = state.pool.acquire().await?;
    Ok(match participation::next_trial(&mut conn, &token).await? {
        Some(trial) => HttpResponse::Ok()
            .insert_header(("Cache-Control", "no-store"))
            .json(trial),
        None => HttpResponse::NoContent().finish(),
    })
}

async fn respond(
    state: web::Data<AppState>,
    token: web::Path<String>,
    answer: web::Json<Answer>,
) -> Result<HttpResponse, AppError> {
    let mut tx = state.pool.begin().await?;
    let reply = participation::respond(&mut tx, &token, answer.into_inner()).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(reply))
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FinishBody {
    feedback: Option<String>,
}

async fn finish(
    state: web::Data<AppState>,
    token: web::Path<String>,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<HttpResponse, AppError> {
    let body: FinishBody = optional_json(&body.map_err(super::payload_error)?)?;
    let mut tx = state.pool.begin().await?;
    let completion = participation::finish(&mut tx, &token, body.feedback).await?;
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(completion))
}

/// A JSON body that may be left out entirely.
fn optional_json<T: for<'de> Deserialize<'de> + Default>(body: &[u8]) -> Result<T, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| AppError::BadRequest(format!("invalid JSON body: {e}")))
}
