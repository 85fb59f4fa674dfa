//! `/admin`: every study with its status and live progress (valid responses against the target of
//! units x responses per unit), refreshed by `/admin/studies.json`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::Serialize;

use super::{count, page, percent, AdminError, Chrome, PageResult};
use crate::db;
use crate::db::dashboard::StudySummary;
use crate::study::StudyConfig;
use crate::web::admin::Admin;
use crate::web::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("", web::get().to(list))
        .route("/", web::get().to(list))
        .route("/studies.json", web::get().to(progress_json));
}

#[derive(Serialize)]
pub struct StudyRow {
    pub id: i64,
    pub slug: String,
    pub title: String,
    pub status: String,
    pub created: String,
    pub units: i64,
    pub trials: i64,
    pub sessions: i64,
    pub completed: i64,
    pub valid: i64,
    pub target: i64,
    pub percent: i64,
    pub progress: String,
}

impl StudyRow {
    fn from_summary(s: StudySummary) -> Self {
        let per_unit = serde_json::from_value::<StudyConfig>(s.config.0)
            .map(|c| c.responses_per_unit)
            .unwrap_or(0);
        let target = s.units * per_unit;
        Self {
            id: s.id,
            created: s.created_at.format("%Y-%m-%d").to_string(),
            slug: s.slug,
            title: s.title,
            status: s.status,
            units: s.units,
            trials: s.trials,
            sessions: s.sessions,
            completed: s.completed,
            valid: s.valid,
            target,
            percent: percent(s.valid, target),
            progress: format!("{} / {}", count(s.valid), count(target)),
        }
    }
}

#[derive(Template)]
#[template(path = "admin/studies.html")]
struct StudiesPage {
    chrome: Chrome,
    studies: Vec<StudyRow>,
}

async fn rows(state: &AppState) -> Result<Vec<StudyRow>, AdminError> {
    let mut conn = state.pool.acquire().await?;
    Ok(db::dashboard::studies(&mut conn)
        .await?
        .into_iter()
        .map(StudyRow::from_summary)
        .collect())
}

async fn list(state: web::Data<AppState>, admin: Admin) -> PageResult {
    let studies = rows(&state).await?;
    page(
        StatusCode::OK,
        &StudiesPage {
            chrome: Chrome::new(&admin, "studies"),
            studies,
        },
    )
}

async fn progress_json(state: web::Data<AppState>, _admin: Admin) -> PageResult {
    let studies = rows(&state).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(serde_json::json!({ "studies": studies })))
}
