//! A study's results page. The analysis (accuracy with CIs by layer, basis and condition, agreement AUC,
//! ROC, interpretability index, the observer) is not part of this build yet: the page says so and offers
//! the downloads that exist, and shows no figures it cannot compute.

use actix_web::http::StatusCode;
use actix_web::web;
use askama::Template;

use super::{count, load_study, page, Admin, Chrome, PageResult, StudyNav};
use crate::db;
use crate::web::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/studies/{id}/results", web::get().to(show));
}

/// An export: its file, what it holds, and whether this build can produce it.
pub struct Download {
    pub name: &'static str,
    pub what: &'static str,
    pub href: Option<String>,
}

#[derive(Template)]
#[template(path = "admin/results.html")]
struct ResultsPage {
    chrome: Chrome,
    nav: StudyNav,
    responses: String,
    downloads: Vec<Download>,
}

async fn show(state: web::Data<AppState>, admin: Admin, id: web::Path<i64>) -> PageResult {
    let mut conn = state.pool.acquire().await?;
    let study = load_study(&mut conn, *id).await?;
    let responses = db::dashboard::response_counts(&mut conn, study.id).await?;
    let downloads = vec![
        Download {
            name: "responses.csv",
            what: "One row per response: session pseudonym, position, trial kind, unit, condition, batch, query order, choice, correctness, confidence, reaction time and timestamps. Excluded sessions are included and flagged.",
            href: Some(format!("/admin/studies/{}/responses.csv", study.id)),
        },
        Download {
            name: "units.csv",
            what: "Human and in-silico accuracy per unit, with the interpretability index.",
            href: None,
        },
        Download {
            name: "agreement.csv",
            what: "Human / model agreement AUC per layer with bootstrap CIs, kappa and the ROC curve.",
            href: None,
        },
    ];
    page(
        StatusCode::OK,
        &ResultsPage {
            chrome: Chrome::new(&admin, "studies"),
            nav: StudyNav::new(&study, "results"),
            responses: count(responses.valid),
            downloads,
        },
    )
}
