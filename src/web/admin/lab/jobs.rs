//! The jobs the lab queued: their progress as JSON for the page, and cancelling one.

use actix_web::{web, HttpResponse};
use serde::Serialize;

use super::CsrfOnly;
use crate::db;
use crate::jobs::worker::ScoreJob;
use crate::jobs::JobResult;
use crate::states::JobStatus;
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
        let done = j.status == JobStatus::Done;
        let result = done
            .then(|| JobResult::read(j.kind, j.result.as_ref()))
            .flatten();
        let (outcome, link) = match result {
            Some(JobResult::Build(s)) => (
                format!("{} units, {} main trials", s.units, s.main_trials),
                format!("/admin/studies/{}", s.study_id),
            ),
            Some(JobResult::Images(s)) => (
                format!("{} images, {} files skipped", s.images, s.skipped.len()),
                String::new(),
            ),
            Some(JobResult::Score(s)) => (
                format!("{} trials scored, accuracy {:.3}", s.trials, s.accuracy),
                serde_json::from_value::<ScoreJob>(j.payload.clone())
                    .map(|job| format!("/admin/studies/{}/results", job.study_id))
                    .unwrap_or_default(),
            ),
            Some(JobResult::Weights(sets)) => {
                (format!("{} weight sets", sets.len()), String::new())
            }
            None => (String::new(), String::new()),
        };
        JobView {
            id: j.id,
            percent: crate::web::admin::percent(j.progress, j.total),
            cancellable: !j.status.finished(),
            kind: j.kind.to_string(),
            status: j.status.to_string(),
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
