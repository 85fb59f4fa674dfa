//! The jobs the lab queued: their progress as JSON for the page, and cancelling one.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::CsrfOnly;
use crate::db;
use crate::web::admin::{see_other, Admin, AdminForm, PageResult};
use crate::web::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/jobs.json", web::get().to(json))
        .route("/jobs/{id}/cancel", web::post().to(cancel));
}

#[derive(Serialize)]
pub struct JobView {
    pub(super) id: i64,
    pub(super) kind: String,
    pub(super) status: String,
    pub(super) phase: String,
    pub(super) progress: i64,
    pub(super) total: i64,
    pub(super) percent: i64,
    pub(super) error: String,
    pub(super) outcome: String,
    pub(super) link: String,
    pub(super) cancellable: bool,
}

impl JobView {
    pub(super) fn from_row(j: db::jobs::JobRow) -> JobView {
        let result = j.result.clone().unwrap_or_default();
        let (outcome, link) = match (j.kind.as_str(), j.status.as_str()) {
            ("build", "done") => (
                format!(
                    "{} units, {} main trials",
                    result["units"], result["main_trials"]
                ),
                result["study_id"]
                    .as_i64()
                    .map(|id| format!("/admin/studies/{id}"))
                    .unwrap_or_default(),
            ),
            ("images", "done") => (
                format!(
                    "{} images, {} files skipped",
                    result["images"],
                    result["skipped"].as_array().map_or(0, Vec::len)
                ),
                String::new(),
            ),
            ("score", "done") => (
                format!(
                    "{} trials scored, accuracy {:.3}",
                    result["trials"],
                    result["accuracy"].as_f64().unwrap_or(f64::NAN)
                ),
                j.payload["study_id"]
                    .as_i64()
                    .map(|id| format!("/admin/studies/{id}/results"))
                    .unwrap_or_default(),
            ),
            ("weights", "done") => (
                format!("{} weight sets", result.as_array().map_or(0, Vec::len)),
                String::new(),
            ),
            _ => (String::new(), String::new()),
        };
        JobView {
            id: j.id,
            percent: crate::web::admin::percent(j.progress, j.total),
            cancellable: matches!(j.status.as_str(), "queued" | "running"),
            kind: j.kind,
            status: j.status,
            phase: j.phase,
            progress: j.progress,
            total: j.total,
            error: j.error.unwrap_or_default(),
            outcome,
            link,
        }
    }
}

async fn json(state: web::Data<AppState>, _admin: Admin) -> PageResult {
    let mut conn = state.pool.acquire().await?;
    let jobs: Vec<JobView> = db::jobs::recent(&mut conn, 20)
        .await?
        .into_iter()
        .map(JobView::from_row)
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(serde_json::json!({ "jobs": jobs })))
}

async fn cancel(
    state: web::Data<AppState>,
    _: AdminForm<CsrfOnly>,
    id: web::Path<i64>,
) -> PageResult {
    let mut conn = state.pool.acquire().await?;
    db::jobs::cancel(&mut conn, *id).await?;
    Ok(see_other("/admin/lab"))
}
