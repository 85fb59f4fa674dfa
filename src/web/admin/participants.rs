//! Resetting a participant: their session (and its answers) is deleted, so their external id can start
//! afresh. For a participant who lost the browser that holds their session token, or whose id was
//! claimed first by someone else (the monitor lists ids with refused starts).

use actix_web::web;
use serde::Deserialize;

use super::form::admin_form;
use super::{load_study, see_other, AdminError, AdminForm, PageResult};
use crate::study::session;
use crate::web::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/studies/{id}/participants/reset", web::post().to(reset));
}

#[derive(Deserialize)]
struct ResetForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    external_id: String,
}

admin_form!(ResetForm);

async fn reset(
    state: web::Data<AppState>,
    AdminForm { admin, form }: AdminForm<ResetForm>,
    id: web::Path<i64>,
) -> PageResult {
    let external_id = form.external_id.trim();
    if external_id.is_empty() || external_id.chars().count() > 200 || external_id.contains('\0') {
        return Err(AdminError::BadRequest(
            "give the participant's id on the recruitment platform (1 to 200 characters)".into(),
        ));
    }
    let mut tx = state.pool.begin().await?;
    let study = load_study(&mut tx, *id).await?;
    let withdrawn = session::withdraw(&mut tx, &state.key, &study.slug, external_id).await?;
    tx.commit().await?;
    let outcome = match &withdrawn {
        Some(w) => {
            tracing::info!(
                admin = %admin.username,
                study = study.id,
                responses = w.deleted.responses,
                "participant reset"
            );
            "reset"
        }
        None => "unknown",
    };
    Ok(see_other(&format!(
        "/admin/studies/{}/monitor?participant={outcome}",
        study.id
    )))
}
