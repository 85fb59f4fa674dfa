//! `/admin/lab`: weights, image sets (a server folder or an uploaded zip), the trial-building form,
//! and the jobs that do the work, with live progress from `/admin/jobs.json` and cancel buttons. One
//! file per form; the page itself, shown again with a form's refusal, is here.

mod build;
pub mod files;
mod image_sets;
mod jobs;
mod observer;
mod weights;

use actix_web::http::StatusCode;
use actix_web::web;
use askama::Template;
use serde::Deserialize;

use self::build::BuildForm;
use self::jobs::JobView;
use crate::db;
use crate::vision::{self, Arch, WeightSet};
use crate::web::admin::form::admin_form;
use crate::web::admin::{page, Admin, Chrome, PageResult};
use crate::web::AppState;

pub use self::weights::MAX_WEIGHT_FILE_BYTES;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/lab", web::get().to(show))
        .configure(weights::configure)
        .configure(image_sets::configure)
        .configure(build::configure)
        .configure(observer::configure)
        .configure(jobs::configure);
}

struct WeightRow {
    name: String,
    location: Option<String>,
}

struct SetRow {
    id: i64,
    name: String,
    source: String,
    images: i64,
}

#[derive(Template)]
#[template(path = "admin/lab.html")]
struct LabPage {
    chrome: Chrome,
    weights: Vec<WeightRow>,
    sets: Vec<SetRow>,
    jobs: Vec<JobView>,
    models: Vec<(&'static str, String)>,
    form: BuildForm,
    error: Option<String>,
    notice: Option<String>,
}

#[derive(Deserialize)]
struct Notice {
    notice: Option<String>,
}

async fn show(state: web::Data<AppState>, admin: Admin, query: web::Query<Notice>) -> PageResult {
    let notice = query.notice.as_deref().map(|n| match n {
        "queued" => "The job is queued; its progress shows below.".to_string(),
        _ => "Done.".to_string(),
    });
    render(
        &state,
        &admin,
        StatusCode::OK,
        BuildForm::initial(),
        None,
        notice,
    )
    .await
}

async fn render(
    state: &AppState,
    admin: &Admin,
    status: StatusCode,
    form: BuildForm,
    error: Option<String>,
    notice: Option<String>,
) -> PageResult {
    let data_dir = state.data_dir();
    let weights = WeightSet::all()
        .into_iter()
        .map(|set| WeightRow {
            name: set.name(),
            location: vision::locate(&data_dir, set)
                .ok()
                .map(|p| p.display().to_string()),
        })
        .collect();
    let mut conn = state.pool.acquire().await?;
    let sets = db::image_sets::list(&mut conn)
        .await?
        .into_iter()
        .map(|(id, name, source, images)| SetRow {
            id,
            name,
            source,
            images,
        })
        .collect();
    let jobs = db::jobs::recent(&mut conn, 20)
        .await?
        .into_iter()
        .map(JobView::from_row)
        .collect();
    let models = Arch::ALL
        .iter()
        .map(|a| (a.name(), a.taps().join(", ")))
        .collect();
    page(
        status,
        &LabPage {
            chrome: Chrome::new(admin, "lab"),
            weights,
            sets,
            jobs,
            models,
            form,
            error,
            notice,
        },
    )
}

/// A form of nothing but its token: a button.
#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

admin_form!(CsrfOnly);
