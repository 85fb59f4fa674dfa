//! `GET /api/v1/sessions/{token}/images/{position}/{tag}`: a trial image under the opaque URL of one
//! appearance (see [`crate::study::appearance`]). Only the session's own trials resolve.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::error::AppError;
use crate::study::appearance;
use crate::web::paths::SessionToken;
use crate::web::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/sessions/{token}/images/{position}/{tag}").route(web::get().to(image)),
    );
}

/// One appearance of a trial image; its URL is used once, so the browser keeps it only for itself.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{token}/images/{position}/{tag}",
    tag = "participants",
    params(
        ("token" = String, Path, description = "The session token returned when the session started"),
        ("position" = i32, Path, description = "The trial's position"),
        ("tag" = String, Path, description = "The opaque tag of the image's place on that trial, as listed by `trials/next`"),
    ),
    responses(
        (status = 200, description = "The image bytes (PNG or JPEG)", content_type = "image/png"),
        (status = 404, description = "No such image on that trial of that session", body = crate::web::openapi::ApiError),
    )
)]
pub(crate) async fn image(
    state: web::Data<AppState>,
    token: SessionToken,
    request: HttpRequest,
) -> Result<HttpResponse, AppError> {
    let not_found = || AppError::NotFound("no such image".into());
    let info = request.match_info();
    let position = info.get("position").and_then(|p| p.parse::<i32>().ok());
    let tag = info.get("tag").unwrap_or_default();
    let valid_tag = tag.len() == appearance::TAG_LEN
        && tag.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let Some(position) = position.filter(|p| *p >= 0 && valid_tag) else {
        return Err(not_found());
    };
    let sha = state
        .sessions
        .image(&token, position, tag)
        .await?
        .ok_or_else(not_found)?;
    let path = state.store.path(&sha).ok_or_else(not_found)?;
    let (bytes, mime) = crate::web::images::read(&path).await?;
    Ok(HttpResponse::Ok()
        .content_type(mime)
        .insert_header((header::CACHE_CONTROL, "private, max-age=86400, immutable"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(appearance::marked(bytes, tag)))
}
