//! Downloads of a study's data. `responses.csv` and `lower-quality.csv` are streamed: rows go out as
//! PostgreSQL returns them, so a large study never sits in memory. The analysis tables (`units.csv`,
//! `agreement.csv`, `roc.csv`) are small and computed on request.

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpResponse, HttpResponseBuilder};
use futures_util::TryStreamExt;
use tokio::sync::mpsc;

use super::{load_study, Admin, PageResult};
use crate::analysis::bootstrap::RESAMPLES;
use crate::db;
use crate::export::responses::ResponsesCsv;
use crate::export::{study as export_study, What};
use crate::web::AppState;

/// Rows are sent in chunks of about this many bytes.
const CHUNK_BYTES: usize = 64 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/studies/{id}/responses.csv", web::get().to(responses_csv))
        .route(
            "/studies/{id}/lower-quality.csv",
            web::get().to(lower_quality_csv),
        )
        .route("/studies/{id}/units.csv", web::get().to(units_csv))
        .route("/studies/{id}/agreement.csv", web::get().to(agreement_csv))
        .route("/studies/{id}/roc.csv", web::get().to(roc_csv));
}

type Chunk = Result<Bytes, std::io::Error>;

fn attachment(slug: &str, what: What) -> HttpResponseBuilder {
    let filename = format!("{slug}-{}", what.file_name());
    let mut response = HttpResponse::Ok();
    response
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Content-Type-Options", "nosniff"));
    response
}

async fn responses_csv(state: web::Data<AppState>, admin: Admin, id: web::Path<i64>) -> PageResult {
    stream_responses(state, admin, *id, What::Responses).await
}

async fn lower_quality_csv(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
) -> PageResult {
    stream_responses(state, admin, *id, What::LowerQuality).await
}

async fn stream_responses(
    state: web::Data<AppState>,
    admin: Admin,
    id: i64,
    what: What,
) -> PageResult {
    let mut conn = state.pool.acquire().await?;
    let study = load_study(&mut conn, id).await?;
    let observers = db::judgments::observers(&mut conn, study.id).await?;
    drop(conn);
    tracing::info!(admin = %admin.username, study = study.id, file = what.file_name(), "downloaded");

    let mut table = ResponsesCsv::new(observers).map_err(anyhow::Error::from)?;
    let (tx, mut rx) = mpsc::channel::<Chunk>(4);
    let pool = state.pool.clone();
    let study_id = study.id;
    tokio::spawn(async move {
        let observers = table.observers().to_vec();
        let mut rows =
            db::response_export::rows(&pool, study_id, &observers, what == What::LowerQuality);
        loop {
            let failed = match rows.try_next().await {
                Ok(Some(row)) => match table.push(&row) {
                    Ok(()) if table.buffered() < CHUNK_BYTES => continue,
                    Ok(()) => None,
                    Err(e) => Some(e.to_string()),
                },
                Ok(None) => break,
                Err(e) => Some(format!("{e:#}")),
            };
            let chunk = match failed {
                None => table.take_chunk(),
                Some(error) => {
                    tracing::error!(error, "CSV export stopped");
                    Err(std::io::Error::other("export failed"))
                }
            };
            // An error ends the body abruptly, so the client sees a failed download, not a short file.
            let stop = chunk.is_err();
            if tx.send(chunk.map(Bytes::from)).await.is_err() || stop {
                return; // the client went away, or the export failed
            }
        }
        let _ = tx.send(table.take_chunk().map(Bytes::from)).await;
    });
    let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok(attachment(&study.slug, what).streaming(body))
}

async fn table(state: web::Data<AppState>, admin: Admin, id: i64, what: What) -> PageResult {
    let mut conn = state.pool.acquire().await?;
    let study = load_study(&mut conn, id).await?;
    drop(conn);
    tracing::info!(admin = %admin.username, study = study.id, file = what.file_name(), "downloaded");
    let analysed = export_study::analyse_study(&state.pool, study.id, None, RESAMPLES).await?;
    let bytes = export_study::table(&analysed, what)?;
    Ok(attachment(&study.slug, what).body(bytes))
}

async fn units_csv(state: web::Data<AppState>, admin: Admin, id: web::Path<i64>) -> PageResult {
    table(state, admin, *id, What::Units).await
}

async fn agreement_csv(state: web::Data<AppState>, admin: Admin, id: web::Path<i64>) -> PageResult {
    table(state, admin, *id, What::Agreement).await
}

async fn roc_csv(state: web::Data<AppState>, admin: Admin, id: web::Path<i64>) -> PageResult {
    table(state, admin, *id, What::Roc).await
}
