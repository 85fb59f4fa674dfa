//! Downloads of a study's data. `responses.csv` is streamed: rows go out as PostgreSQL returns them,
//! so a large study never sits in memory.

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};
use futures_util::TryStreamExt;
use tokio::sync::mpsc;

use super::{load_study, Admin, PageResult};
use crate::db;
use crate::export::responses;
use crate::web::AppState;

/// Rows are sent in chunks of about this many bytes.
const CHUNK_BYTES: usize = 64 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/studies/{id}/responses.csv", web::get().to(responses_csv));
}

type Chunk = Result<Bytes, std::io::Error>;

async fn responses_csv(state: web::Data<AppState>, admin: Admin, id: web::Path<i64>) -> PageResult {
    let mut conn = state.pool.acquire().await?;
    let study = load_study(&mut conn, *id).await?;
    drop(conn);
    tracing::info!(admin = %admin.username, study = study.id, "responses.csv downloaded");

    let (tx, mut rx) = mpsc::channel::<Chunk>(4);
    let pool = state.pool.clone();
    let study_id = study.id;
    tokio::spawn(async move {
        let mut buffer = responses::header();
        let mut rows = db::response_export::rows(&pool, study_id);
        loop {
            match rows.try_next().await {
                Ok(Some(row)) => {
                    responses::push_row(&mut buffer, &row);
                    if buffer.len() >= CHUNK_BYTES {
                        let chunk = Bytes::from(std::mem::take(&mut buffer));
                        if tx.send(Ok(chunk)).await.is_err() {
                            return; // the client went away
                        }
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), "responses.csv stopped");
                    // Ends the body abruptly, so the client sees a failed download, not a short file.
                    let _ = tx.send(Err(std::io::Error::other("export failed"))).await;
                    return;
                }
            }
        }
        if !buffer.is_empty() {
            let _ = tx.send(Ok(Bytes::from(buffer))).await;
        }
    });
    let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    let filename = format!("{}-responses.csv", study.slug);
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Content-Type-Options", "nosniff"))
        .streaming(body))
}
