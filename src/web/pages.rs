//! Shared pieces of the HTML pages: rendering with a status, and the error page.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use crate::error::AppError;

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub title: &'a str,
    pub message: &'a str,
}

/// Renders `page` with `status`; a template that fails to render is an internal error.
pub fn html(status: StatusCode, page: &impl Template) -> Result<HttpResponse, AppError> {
    let body = page.render().map_err(|e| AppError::Internal(e.into()))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body))
}

/// Unknown routes: JSON under the API, a page elsewhere.
pub async fn not_found(request: HttpRequest) -> Result<HttpResponse, AppError> {
    if request.path().starts_with("/api/") {
        return Err(AppError::NotFound("no such endpoint".into()));
    }
    html(
        StatusCode::NOT_FOUND,
        &ErrorPage {
            title: "Page not found",
            message: "There is nothing at this address. Please check the link you were given.",
        },
    )
}
