//! A study's results page: human accuracy by layer, basis, condition and layer x basis with bootstrap
//! CIs, agreement per layer x basis x condition with each layer's stratified summary, the studied layer
//! x observer table, their figures (inline SVG), split-half consistency, the interpretability index
//! against human accuracy, and a download for every export.

use actix_web::http::StatusCode;
use actix_web::web;
use askama::Template;

use super::{count, load_study, page, Admin, Chrome, PageResult, StudyNav};
use crate::analysis::agreement::RESAMPLED;
use crate::analysis::bootstrap::{Interval, RESAMPLES};
use crate::analysis::report::{GroupAccuracy, IiCorrelation};
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

/// A row of the agreement table, formatted: a stratum, or a layer's stratified summary.
pub struct StratumRow {
    pub layer: String,
    pub basis: String,
    pub condition: String,
    pub summary: bool,
    pub units: usize,
    pub participants: usize,
    pub responses: usize,
    pub auc_correct: String,
    pub ci_correct: String,
    pub auc_choice: String,
    pub ci_choice: String,
    pub agreement: String,
    pub kappa: String,
    pub human: String,
    pub model: String,
}

/// A table with a label column and formatted cells (layer x basis, layer x observer).
pub struct Grid {
    pub columns: Vec<String>,
    pub rows: Vec<(String, Vec<String>)>,
}

impl Grid {
    /// Rows and columns in first-seen order; `cells` gives (row, column, text).
    fn new(cells: Vec<(String, String, String)>) -> Grid {
        let (mut rows, mut columns): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
        for (r, c, _) in &cells {
            if !rows.contains(r) {
                rows.push(r.clone());
            }
            if !columns.contains(c) {
                columns.push(c.clone());
            }
        }
        let rows = rows
            .into_iter()
            .map(|r| {
                let texts = columns
                    .iter()
                    .map(|c| {
                        cells
                            .iter()
                            .find(|(x, y, _)| *x == r && y == c)
                            .map_or("–".to_string(), |(_, _, t)| t.clone())
                    })
                    .collect();
                (r, texts)
            })
            .collect();
        Grid { columns, rows }
    }
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
    layer_by_basis: Grid,
    strata: Vec<StratumRow>,
    layer_by_observer: Grid,
    figures: Vec<Figure>,
    split_half: Option<String>,
    ii: String,
    ii_by_basis: Vec<(String, String)>,
    resampled: &'static str,
    units_also_practice_or_catch: i64,
    overlap_override: Vec<String>,
    kmeans_activation: Option<&'static str>,
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
            what: "Per main unit (practice and catch units are held out): human accuracy with its Wilson 95 % CI and number of responses, the observer's accuracy and mean evidence, the interpretability index, the conditions built despite overlapping the references (an override), and how k-means units score an image.",
            href: href(What::Units),
        },
        Download {
            name: "agreement.csv",
            what: "Per observer, layer, basis and condition (row `stratum`), and per layer a stratified summary (basis and condition `all`, row `stratified summary`): auc_correct and auc_choice with 95 % bootstrap CIs resampling units and participants, agreement rate, Cohen's kappa, human and model accuracy, numbers of units, participants and responses.",
            href: href(What::Agreement),
        },
        Download {
            name: "roc.csv",
            what: "The ROC curve (of auc_correct) of every observer and stratum: threshold, false and true positive rates.",
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
        .map(|(_, title, svg)| Figure { title, svg })
        .collect();
    let primary = analysed.observer.as_deref().unwrap_or_default();
    let strata = a
        .agreement
        .iter()
        .filter(|r| r.observer == primary)
        .map(|r| {
            let g = &r.agreement;
            StratumRow {
                layer: r.layer(),
                basis: r.basis.clone(),
                condition: r.condition.clone(),
                summary: r.summary,
                units: g.n_units,
                participants: g.n_participants,
                responses: g.n_responses,
                auc_correct: fixed(g.auc_correct),
                ci_correct: interval(g.ci_correct),
                auc_choice: fixed(g.auc_choice),
                ci_choice: interval(g.ci_choice),
                agreement: fixed(Some(g.agreement)),
                kappa: fixed(g.kappa),
                human: fixed(Some(g.human_accuracy)),
                model: fixed(Some(g.model_accuracy)),
            }
        })
        .collect();
    let layer_by_observer = Grid::new(
        a.agreement
            .iter()
            .filter(|r| r.summary)
            .map(|r| {
                let g = &r.agreement;
                (
                    r.layer(),
                    r.observer.clone(),
                    format!(
                        "{} {} · choice {} {}",
                        fixed(g.auc_correct),
                        interval(g.ci_correct),
                        fixed(g.auc_choice),
                        interval(g.ci_choice)
                    ),
                )
            })
            .collect(),
    );
    let layer_by_basis = Grid::new(
        a.by_layer_and_basis
            .iter()
            .map(|g| {
                (
                    g.layer.clone(),
                    g.basis.clone(),
                    format!(
                        "{} {} ({} units)",
                        fixed(Some(g.accuracy.mean)),
                        interval(g.accuracy.ci),
                        g.accuracy.n_units
                    ),
                )
            })
            .collect(),
    );
    let split_half = a.split_half.map(|s| {
        format!(
            "{:.3} (Spearman-Brown; half-vs-half r = {:.3} over {} units, mean of {} random splits)",
            s.spearman_brown, s.r_half, s.units, s.splits
        )
    });
    let correlation = |c: &IiCorrelation| match c.spearman {
        Some(rho) => format!("Spearman ρ = {rho:.3} over {} units", c.n_units),
        None if c.n_units == 0 => "no unit has an interpretability index yet".to_string(),
        None => format!("undefined ({} units)", c.n_units),
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
            layer_by_basis,
            strata,
            layer_by_observer,
            figures,
            split_half,
            ii: correlation(&a.ii),
            ii_by_basis: a
                .ii_by_basis
                .iter()
                .map(|(b, c)| (b.clone(), correlation(c)))
                .collect(),
            resampled: RESAMPLED,
            units_also_practice_or_catch: analysed.units_also_practice_or_catch,
            overlap_override: analysed.construction.overlap_override.clone(),
            kmeans_activation: analysed.construction.kmeans_activation.map(|a| a.as_str()),
            downloads: downloads(study.id),
        },
    )
}
