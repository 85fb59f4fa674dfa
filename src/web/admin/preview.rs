//! A trial as a participant sees it (the participant page's markup and styles), with the answer marked:
//! this page is for signed-in accounts only, so the mark never reaches a participant.

use actix_web::http::StatusCode;
use actix_web::web;
use askama::Template;
use serde::Deserialize;

use super::{load_study, page, Admin, Chrome, PageResult, StudyNav};
use crate::db;
use crate::db::dashboard::PreviewTrial;
use crate::web::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/studies/{id}/preview", web::get().to(show));
}

#[derive(Deserialize)]
struct PreviewQuery {
    n: Option<i64>,
}

pub struct Query {
    pub url: String,
    pub is_max: bool,
}

#[derive(Template)]
#[template(path = "admin/preview.html")]
struct PreviewPage {
    chrome: Chrome,
    nav: StudyNav,
    trial: Option<PreviewTrial>,
    n: i64,
    total: i64,
    max_side: &'static str,
    left: Vec<String>,
    right: Vec<String>,
    queries: Vec<Query>,
    lock_ms: i64,
}

impl PreviewPage {
    fn caption(&self, side: &str) -> &'static str {
        if side == self.max_side {
            "Examples to match"
        } else {
            "Other examples"
        }
    }
}

async fn show(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
    query: web::Query<PreviewQuery>,
) -> PageResult {
    let mut conn = state.pool.acquire().await?;
    let study = load_study(&mut conn, *id).await?;
    let n = query.n.unwrap_or(0).max(0);
    let (trial, total) = db::dashboard::preview_trial(&mut conn, study.id, n).await?;
    let max_side = study.config.max_side.as_str();
    let url = |sha: &String| format!("/img/{sha}");
    let (mut left, mut right, mut queries) = (vec![], vec![], vec![]);
    if let Some(t) = &trial {
        let max_refs: Vec<String> = t.max_refs.iter().map(url).collect();
        let min_refs: Vec<String> = t.min_refs.iter().map(url).collect();
        (left, right) = if max_side == "left" {
            (max_refs, min_refs)
        } else {
            (min_refs, max_refs)
        };
        let max = Query {
            url: url(&t.max_query),
            is_max: true,
        };
        let min = Query {
            url: url(&t.min_query),
            is_max: false,
        };
        // Participants get either order; the preview alternates so both are seen.
        queries = if n % 2 == 0 {
            vec![max, min]
        } else {
            vec![min, max]
        };
    }
    page(
        StatusCode::OK,
        &PreviewPage {
            chrome: Chrome::new(&admin, "studies"),
            nav: StudyNav::new(&study, "preview"),
            trial,
            n,
            total,
            max_side,
            left,
            right,
            queries,
            lock_ms: study.config.lock_ms,
        },
    )
}
