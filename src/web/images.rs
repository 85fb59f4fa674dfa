use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

use super::AppState;
use crate::error::AppError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/img/{sha256}", web::get().to(image));
}

/// Image bytes by content hash: immutable, so cached forever.
async fn image(
    state: web::Data<AppState>,
    sha256: web::Path<String>,
    request: HttpRequest,
) -> Result<HttpResponse, AppError> {
    let path = state.store.path(&sha256).ok_or_else(|| {
        AppError::BadRequest("an image is named by its lowercase hex SHA-256".into())
    })?;
    let etag = format!("\"{sha256}\"");
    let cache = ("Cache-Control", "public, max-age=31536000, immutable");
    if request
        .headers()
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tag| tag.as_bytes() == etag.as_bytes())
    {
        return Ok(HttpResponse::NotModified().insert_header(cache).finish());
    }
    let (bytes, mime) = read(&path).await?;
    Ok(HttpResponse::Ok()
        .content_type(mime)
        .insert_header(cache)
        .insert_header((header::ETAG, etag))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .body(bytes))
}

/// A stored image's bytes and their media type; 404 when it is not stored.
pub(crate) async fn read(path: &std::path::Path) -> Result<(Vec<u8>, &'static str), AppError> {
    let bytes = match tokio::fs::read(path).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(AppError::NotFound("no such image".into()))
        }
        Err(e) => return Err(AppError::Internal(e.into())),
    };
    let mime = image::guess_format(&bytes)
        .map(|f| f.to_mime_type())
        .unwrap_or("application/octet-stream");
    Ok((bytes, mime))
}
