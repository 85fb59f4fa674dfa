//! A study's results page: human accuracy by layer, basis and condition with bootstrap CIs, the
//! agreement AUC table with its ROC and AUC figures (inline SVG), split-half consistency, the
//! interpretability index against human accuracy, and a download for every export.

use actix_web::http::StatusCode;
use actix_web::web;
use askama::Template;

use super::{count, load_study, page, Admin, Chrome, PageResult, StudyNav};
use crate::analysis::bootstrap::{Interval, RESAMPLES};
use crate::analysis::report::GroupAccuracy;
use crate::db;
use crate::export::study::{analyse_study, figures};
use crate::export::What;
use crate::web::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/studies/{id}/results", web::get().to(show));
}

/// An export: its file and what it holds.
pub struct Download {
    pub name: &'static str,
    pub what: &'static str,
    pub href: String,
}

/// A row of an accuracy table, formatted.
pub struct GroupRow {
    pub group: String,
    pub units: usize,
    pub responses: usize,
    pub mean: String,
    pub ci: String,
}

/// A row of the agreement table, formatted.
pub struct LayerRow {
    pub layer: String,
    pub units: usize,
    pub responses: usize,
    pub auc: String,
    pub ci: String,
    pub agreement: String,
    pub kappa: String,
    pub human: String,
    pub model: String,
}

/// A figure: its title and SVG markup (plotters escapes every text it draws).
pub struct Figure {
    pub title: &'static str,
    pub svg: String,
}

#[derive(Template)]
#[template(path = "admin/results.html")]
struct ResultsPage {
    chrome: Chrome,
    nav: StudyNav,
    responses: String,
    observer: Option<String>,
    resamples: String,
    by_layer: Vec<GroupRow>,
    by_basis: Vec<GroupRow>,
    by_condition: Vec<GroupRow>,
    layers: Vec<LayerRow>,
    figures: Vec<Figure>,
    split_half: Option<String>,
    ii: String,
    downloads: Vec<Download>,
}

fn fixed(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.3}"),
        _ => "–".to_string(),
    }
}

fn interval(ci: Option<Interval>) -> String {
    ci.map_or("–".to_string(), |c| {
        format!("[{:.3}, {:.3}]", c.low, c.high)
    })
}

fn rows(groups: &[GroupAccuracy]) -> Vec<GroupRow> {
    groups
        .iter()
        .map(|g| GroupRow {
            group: g.group.clone(),
            units: g.n_units,
            responses: g.n_responses,
            mean: fixed(Some(g.mean)),
            ci: interval(g.ci),
        })
        .collect()
}

fn downloads(id: i64) -> Vec<Download> {
    let href = |what: What| format!("/admin/studies/{id}/{}", what.file_name());
    vec![
        Download {
            name: "responses.csv",
            what: "One row per response with every design field: session and participant pseudonyms, trial kind, unit, condition, batch, query order, choice, correctness, confidence, reaction time, timestamps, exclusion and its reasons, and each observer's score, choice and correctness.",
            href: href(What::Responses),
        },
        Download {
            name: "units.csv",
            what: "Per unit: human accuracy with its Wilson 95 % CI and number of responses, the observer's accuracy and mean evidence, and the interpretability index.",
            href: href(What::Units),
        },
        Download {
            name: "agreement.csv",
            what: "Per layer: human / model agreement AUC with its bootstrap CI over units, agreement rate, Cohen's kappa, human and model accuracy, numbers of units and responses.",
            href: href(What::Agreement),
        },
        Download {
            name: "roc.csv",
            what: "The ROC curve of every layer: threshold, false and true positive rates.",
            href: href(What::Roc),
        },
        Download {
            name: "lower-quality.csv",
            what: "The responses of excluded sessions, in the columns of responses.csv.",
            href: href(What::LowerQuality),
        },
    ]
}

async fn show(state: web::Data<AppState>, admin: Admin, id: web::Path<i64>) -> PageResult {
    let mut conn = state.pool.acquire().await?;
    let study = load_study(&mut conn, *id).await?;
    let responses = db::dashboard::response_counts(&mut conn, study.id).await?;
    drop(conn);
    let analysed = analyse_study(&state.pool, study.id, None, RESAMPLES).await?;
    let a = &analysed.analysis;
    let figures = figures(&analysed)?
        .into_iter()
        .zip([
            "ROC per layer",
            "Agreement AUC by layer",
            "Human vs model accuracy",
        ])
        .map(|((_, svg), title)| Figure { title, svg })
        .collect();
    let layers = a
        .agreement
        .iter()
        .map(|l| LayerRow {
            layer: l.name(),
            units: l.agreement.n_units,
            responses: l.agreement.n_responses,
            auc: fixed(l.agreement.auc),
            ci: interval(l.agreement.ci),
            agreement: fixed(Some(l.agreement.agreement)),
            kappa: fixed(l.agreement.kappa),
            human: fixed(Some(l.agreement.human_accuracy)),
            model: fixed(Some(l.agreement.model_accuracy)),
        })
        .collect();
    let split_half = a.split_half.map(|s| {
        format!(
            "{:.3} (Spearman-Brown; half-vs-half r = {:.3} over {} units, mean of {} random splits)",
            s.spearman_brown, s.r_half, s.units, s.splits
        )
    });
    let ii = match a.ii.spearman {
        Some(rho) => format!("Spearman ρ = {rho:.3} over {} units", a.ii.n_units),
        None if a.ii.n_units == 0 => "no unit has an interpretability index yet".to_string(),
        None => format!("undefined ({} units, no variance)", a.ii.n_units),
    };
    page(
        StatusCode::OK,
        &ResultsPage {
            chrome: Chrome::new(&admin, "studies"),
            nav: StudyNav::new(&study, "results"),
            responses: count(responses.valid),
            observer: analysed.observer.clone(),
            resamples: count(analysed.resamples as i64),
            by_layer: rows(&a.by_layer),
            by_basis: rows(&a.by_basis),
            by_condition: rows(&a.by_condition),
            layers,
            figures,
            split_half,
            ii,
            downloads: downloads(study.id),
        },
    )
}
