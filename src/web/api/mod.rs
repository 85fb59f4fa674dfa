//! The JSON API under `/api/v1` (DESIGN 2.2).

pub mod limit;
pub mod sessions;
pub mod trial_images;

use actix_web::body::EitherBody;
use actix_web::dev::ServiceResponse;
use actix_web::error::{JsonPayloadError, PayloadError};
use actix_web::http::StatusCode;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, HttpResponse};

use crate::error::AppError;
use crate::web::MAX_JSON_BYTES;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .wrap(ErrorHandlers::new().handler(StatusCode::METHOD_NOT_ALLOWED, method_not_allowed))
            .configure(sessions::configure)
            .configure(trial_images::configure)
            .configure(crate::web::openapi::configure),
    );
}

/// A known path asked with a method it does not take: a JSON error like every other API error.
fn method_not_allowed<B>(
    response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let (request, _) = response.into_parts();
    let reply = HttpResponse::MethodNotAllowed().json(serde_json::json!({
        "error": "method_not_allowed",
        "message": format!("{} is not allowed here", request.method()),
    }));
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(request, reply).map_body(|_, body| EitherBody::right(body)),
    ))
}

/// A JSON body that could not be read: too large (413) or malformed (400), as a JSON error.
pub fn json_error(error: JsonPayloadError) -> AppError {
    match error {
        JsonPayloadError::Overflow { .. }
        | JsonPayloadError::OverflowKnownLength { .. }
        | JsonPayloadError::Payload(PayloadError::Overflow) => AppError::TooLarge(MAX_JSON_BYTES),
        other => AppError::BadRequest(format!("invalid JSON body: {other}")),
    }
}

/// A raw body that could not be read (the `Bytes` extractor): too large or broken off.
pub fn payload_error(error: actix_web::Error) -> AppError {
    if error.as_response_error().status_code() == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE {
        AppError::TooLarge(MAX_JSON_BYTES)
    } else {
        AppError::BadRequest(format!("the request body could not be read: {error}"))
    }
}
