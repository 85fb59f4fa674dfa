//! Sessions, trials and responses of participants: each handler calls one operation of
//! [`crate::study::session::Sessions`]; a reply is sent only after what it reports was committed.

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::AppError;
use crate::states::Stage;
use crate::study::session::{
    Answer, Completion, NewSession, Reply, SessionState, Started, TrialView,
};
use crate::web::openapi::ApiError;
use crate::web::paths::{SessionToken, StudySlug};
use crate::web::AppState;

use super::limit::SessionLimiter;

pub fn configure(cfg: &mut web::ServiceConfig) {
    // Resources, not bare routes: a known path asked with another method is a 405, not a 404.
    cfg.service(web::resource("/studies/{slug}/sessions").route(web::post().to(create)))
        .service(web::resource("/sessions/{token}").route(web::get().to(show)))
        .service(web::resource("/sessions/{token}/consent").route(web::post().to(consent)))
        .service(
            web::resource("/sessions/{token}/instructions").route(web::post().to(instructions)),
        )
        .service(web::resource("/sessions/{token}/trials/next").route(web::get().to(next_trial)))
        .service(web::resource("/sessions/{token}/responses").route(web::post().to(respond)))
        .service(web::resource("/sessions/{token}/finish").route(web::post().to(finish)));
}

/// Start a session. An external id that has already started or taken part gets `409 already_started`
/// (the same for both): resuming needs the token the participant's browser was given.
#[utoipa::path(
    post,
    path = "/api/v1/studies/{slug}/sessions",
    tag = "participants",
    params(("slug" = String, Path, description = "The study's URL name")),
    request_body(content = NewSession, content_type = "application/json", description = "May be left out entirely for an anonymous participant; when sent, as application/json"),
    responses(
        (status = 201, description = "A new session", body = Started),
        (status = 400, description = "Malformed JSON, wrong types, or a body not sent as application/json", body = ApiError),
        (status = 404, description = "No such study", body = ApiError),
        (status = 409, description = "The study is not active (`study_not_active`), or this external id has already started or taken part (`already_started`; continue with the token kept by the browser that started)", body = ApiError),
        (status = 413, description = "Body over 64 KiB", body = ApiError),
        (status = 422, description = "An external id or params out of bounds", body = ApiError),
        (status = 429, description = "Too many sessions started from this address", body = ApiError,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Database unavailable; retry", body = ApiError,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub(crate) async fn create(
    state: web::Data<AppState>,
    request: HttpRequest,
    slug: StudySlug,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<HttpResponse, AppError> {
    // Checked before the body is parsed or the database is asked anything.
    if let Some(limiter) = request.app_data::<web::Data<SessionLimiter>>() {
        limiter.check(limiter.client_ip(&request))?;
    }
    let new: NewSession = optional_json(&request, &body.map_err(super::payload_error)?)?;
    let started = state.sessions.start_session(&slug, new).await?;
    Ok(HttpResponse::Created().json(started))
}

/// The session's stage and progress.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{token}",
    tag = "participants",
    params(("token" = String, Path, description = "The session token returned when the session started")),
    responses(
        (status = 200, description = "The session", body = SessionState),
        (status = 404, description = "Unknown session", body = ApiError),
    )
)]
pub(crate) async fn show(
    state: web::Data<AppState>,
    token: SessionToken,
) -> Result<HttpResponse, AppError> {
    let session = state.sessions.state(&token).await?;
    Ok(HttpResponse::Ok().json(session))
}

/// Record consent (repeating it is harmless).
#[utoipa::path(
    post,
    path = "/api/v1/sessions/{token}/consent",
    tag = "participants",
    params(("token" = String, Path, description = "The session token returned when the session started")),
    responses(
        (status = 200, description = "The stage the session is now at", body = StageReply),
        (status = 404, description = "Unknown session", body = ApiError),
    )
)]
pub(crate) async fn consent(
    state: web::Data<AppState>,
    token: SessionToken,
) -> Result<HttpResponse, AppError> {
    let stage = state.sessions.consent(&token).await?;
    Ok(HttpResponse::Ok().json(StageReply { stage }))
}

/// End the instructions; the practice (if any) or the trials start.
#[utoipa::path(
    post,
    path = "/api/v1/sessions/{token}/instructions",
    tag = "participants",
    params(("token" = String, Path, description = "The session token returned when the session started")),
    responses(
        (status = 200, description = "The stage the session is now at", body = StageReply),
        (status = 404, description = "Unknown session", body = ApiError),
        (status = 409, description = "Consent comes first", body = ApiError),
    )
)]
pub(crate) async fn instructions(
    state: web::Data<AppState>,
    token: SessionToken,
) -> Result<HttpResponse, AppError> {
    let stage = state.sessions.finish_instructions(&token).await?;
    Ok(HttpResponse::Ok().json(StageReply { stage }))
}

/// The next trial to show. Nothing in it tells which query is the max one.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{token}/trials/next",
    tag = "participants",
    params(("token" = String, Path, description = "The session token returned when the session started")),
    responses(
        (status = 200, description = "The trial", body = TrialView),
        (status = 204, description = "No trial left in the current stage"),
        (status = 404, description = "Unknown session", body = ApiError),
    )
)]
pub(crate) async fn next_trial(
    state: web::Data<AppState>,
    token: SessionToken,
) -> Result<HttpResponse, AppError> {
    Ok(match state.sessions.next_trial(&token).await? {
        Some(trial) => HttpResponse::Ok()
            .insert_header(("Cache-Control", "no-store"))
            .json(trial),
        None => HttpResponse::NoContent().finish(),
    })
}

/// Answer a trial. Idempotent on `response_id`; acknowledged only once stored.
#[utoipa::path(
    post,
    path = "/api/v1/sessions/{token}/responses",
    tag = "participants",
    params(("token" = String, Path, description = "The session token returned when the session started")),
    request_body(content = Answer, content_type = "application/json"),
    responses(
        (status = 200, description = "Stored (or stored before under this response id)", body = Reply),
        (status = 400, description = "Malformed JSON, wrong types, or a body not sent as application/json", body = ApiError),
        (status = 404, description = "Unknown session", body = ApiError),
        (status = 409, description = "Wrong stage, out of order, already answered, or the response id was used for another answer", body = ApiError),
        (status = 413, description = "Body over 64 KiB", body = ApiError),
        (status = 422, description = "A value out of range, or a position never assigned", body = ApiError),
        (status = 503, description = "Database unavailable; retry", body = ApiError,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    )
)]
pub(crate) async fn respond(
    state: web::Data<AppState>,
    token: SessionToken,
    answer: web::Json<Answer>,
) -> Result<HttpResponse, AppError> {
    // `respond` returns once the answer is committed: a reply is sent only for a stored answer.
    let reply = state.sessions.respond(&token, answer.into_inner()).await?;
    Ok(HttpResponse::Ok().json(reply))
}

#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FinishBody {
    /// Comments for the researchers, at most 5000 characters
    feedback: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct StageReply {
    stage: Stage,
}

/// End the session after the debrief; finishing again returns the same code.
#[utoipa::path(
    post,
    path = "/api/v1/sessions/{token}/finish",
    tag = "participants",
    params(("token" = String, Path, description = "The session token returned when the session started")),
    request_body(content = FinishBody, content_type = "application/json", description = "May be left out; when sent, as application/json"),
    responses(
        (status = 200, description = "The completion code", body = Completion),
        (status = 400, description = "Malformed JSON, wrong types, or a body not sent as application/json", body = ApiError),
        (status = 404, description = "Unknown session", body = ApiError),
        (status = 409, description = "Not at the debrief yet", body = ApiError),
        (status = 422, description = "Feedback too long or with NUL characters", body = ApiError),
    )
)]
pub(crate) async fn finish(
    state: web::Data<AppState>,
    request: HttpRequest,
    token: SessionToken,
    body: Result<web::Bytes, actix_web::Error>,
) -> Result<HttpResponse, AppError> {
    let body: FinishBody = optional_json(&request, &body.map_err(super::payload_error)?)?;
    let completion = state.sessions.finish(&token, body.feedback).await?;
    Ok(HttpResponse::Ok().json(completion))
}

/// A JSON body that may be left out entirely. A body that is there must be declared JSON, as for
/// answers (`web::Json`): `application/json` or a `+json` type.
fn optional_json<T: for<'de> Deserialize<'de> + Default>(
    request: &HttpRequest,
    body: &[u8],
) -> Result<T, AppError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let declared_json = request.mime_type().ok().flatten().is_some_and(|mime| {
        mime.type_() == "application"
            && (mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json"))
    });
    if !declared_json {
        return Err(AppError::BadRequest(
            "a request body must be JSON sent as Content-Type: application/json".into(),
        ));
    }
    serde_json::from_slice(body)
        .map_err(|e| AppError::BadRequest(format!("invalid JSON body: {e}")))
}
