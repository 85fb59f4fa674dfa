//! The observer form: scores every trial of a study as a job, the lab showing its progress.

use actix_web::web;
use serde::Deserialize;

use crate::jobs::worker;
use crate::observer::{Layers, Metric};
use crate::web::admin::form::admin_form;
use crate::web::admin::{load_study, see_other, AdminError, AdminForm, PageResult};
use crate::web::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/studies/{id}/observer", web::post().to(run));
}

#[derive(Deserialize)]
struct ObserverForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    rule: String,
    #[serde(default)]
    net: String,
    /// Single LPIPS layers beside the full distance: empty, `all` or numbers from 1 (`1,3`).
    #[serde(default)]
    layers: String,
}

admin_form!(ObserverForm);

/// Queues the observer on every trial of a study; the lab shows its progress.
async fn run(
    state: web::Data<AppState>,
    AdminForm { form, .. }: AdminForm<ObserverForm>,
    id: web::Path<i64>,
) -> PageResult {
    let mut conn = state.pool.acquire().await?;
    let study = load_study(&mut conn, *id).await?;
    let rule = match form.rule.as_str() {
        "" => "max-set",
        r @ ("max-set" | "contrast") => r,
        other => {
            return Err(AdminError::BadRequest(format!(
                "unknown observer rule `{other}`"
            )))
        }
    };
    let net = match form.net.as_str() {
        "" => Metric::default(),
        n => n
            .parse::<Metric>()
            .map_err(|e| AdminError::BadRequest(e.to_string()))?,
    };
    // Checked here so that a wrong layer is a 400 now, not a failed job later. The form's layers
    // field says it applies to LPIPS only, so the colour observer ignores it.
    let layers = match net {
        Metric::Colour => Layers::None,
        Metric::Lpips(_) => form
            .layers
            .parse::<Layers>()
            .and_then(|l| l.resolve(net).map(|_| l))
            .map_err(|e| AdminError::BadRequest(e.to_string()))?,
    };
    worker::submit_score(
        &state.pool,
        &worker::ScoreJob {
            study_id: study.id,
            rule: rule.to_string(),
            net,
            layers,
        },
    )
    .await?;
    Ok(see_other("/admin/lab?notice=queued"))
}
