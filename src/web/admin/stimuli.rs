//! Giving a draft study its stimuli: an IMI folder on the server (either layout) or the synthetic
//! calibration set, with catch and practice trials built from the main trials.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;

use super::form::admin_form;
use super::study_page::{render, Outcome};
use super::{load_study, see_other, AdminForm, PageResult};
use crate::db;
use crate::states::StudyStatus;
use crate::stimuli::synthetic::{self, SyntheticOptions};
use crate::stimuli::{imi, StimulusSet, TrialKind};
use crate::web::AppState;

/// Catch and practice trials built per study, at most.
const MAX_OBVIOUS_TRIALS: usize = 200;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/studies/{id}/stimuli", web::post().to(add));
}

#[derive(Deserialize)]
struct StimuliForm {
    #[serde(default)]
    csrf: String,
    /// `imi` or `synthetic`.
    #[serde(default)]
    source: String,
    #[serde(default)]
    folder: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    catch_trials: String,
    #[serde(default)]
    practice_trials: String,
}

admin_form!(StimuliForm);

async fn add(
    state: web::Data<AppState>,
    request: HttpRequest,
    AdminForm { admin, form }: AdminForm<StimuliForm>,
    id: web::Path<i64>,
) -> PageResult {
    let mut conn = state.pool.acquire().await?;
    let study = load_study(&mut conn, *id).await?;
    let existing = db::dashboard::stimulus_counts(&mut conn, study.id).await?;
    drop(conn);

    let refuse = |message: String| Outcome {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        error: Some(message),
        imi_folder: form.folder.clone(),
        imi_model: form.model.clone(),
        ..Outcome::default()
    };
    if study.status != StudyStatus::Draft || existing.main + existing.catch + existing.practice > 0
    {
        let outcome = refuse(
            "Stimuli can only be added to a draft that has none; clone the study to use other stimuli."
                .into(),
        );
        return render(&state, &request, &admin, &study, outcome).await;
    }
    let count = |text: &str, default: usize| match text.trim() {
        "" => Ok(default),
        t => t
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= MAX_OBVIOUS_TRIALS)
            .ok_or(()),
    };
    let (Ok(catch), Ok(practice)) = (
        count(&form.catch_trials, 20),
        count(&form.practice_trials, 3),
    ) else {
        let outcome = refuse(format!(
            "Catch and practice trials are whole numbers from 0 to {MAX_OBVIOUS_TRIALS}."
        ));
        return render(&state, &request, &admin, &study, outcome).await;
    };

    let store = state.store.clone();
    let seed = study.config.seed;
    let built = match form.source.as_str() {
        "synthetic" => {
            tokio::task::spawn_blocking(move || {
                synthetic::build(&store, &SyntheticOptions::default())
            })
            .await
        }
        "imi" => {
            // Only folders under the import roots, as for every server path the dashboard reads.
            let roots = super::lab::files::import_roots(&request, &state);
            let folder = match super::lab::files::server_path(form.folder.trim(), &roots, true) {
                Ok(folder) => folder,
                Err(message) => {
                    let outcome = refuse(message);
                    return render(&state, &request, &admin, &study, outcome).await;
                }
            };
            let model = match form.model.trim() {
                "" => "imported".to_string(),
                m => m.chars().take(100).collect(),
            };
            tokio::task::spawn_blocking(move || {
                let mut set = imi::import(&folder, &model, &store)?.set;
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                set.add_obvious_trials(TrialKind::Catch, catch, &mut rng);
                set.add_obvious_trials(TrialKind::Practice, practice, &mut rng);
                anyhow::Ok(set)
            })
            .await
        }
        _ => {
            let outcome = refuse("Choose an IMI folder or the synthetic calibration set.".into());
            return render(&state, &request, &admin, &study, outcome).await;
        }
    };
    let set: StimulusSet = match built {
        Ok(Ok(set)) => set,
        Ok(Err(error)) => {
            let outcome = refuse(format!("The stimuli could not be read: {error:#}"));
            return render(&state, &request, &admin, &study, outcome).await;
        }
        Err(join) => return Err(anyhow::Error::from(join).into()),
    };

    let mut tx = state.pool.begin().await?;
    db::studies::lock(&mut tx, study.id).await?;
    if db::dashboard::stimulus_counts(&mut tx, study.id)
        .await?
        .main
        > 0
    {
        drop(tx);
        let outcome = refuse("Another import for this study finished first.".into());
        return render(&state, &request, &admin, &study, outcome).await;
    }
    crate::study::add_stimuli(&mut tx, study.id, &set).await?;
    tx.commit().await?;
    tracing::info!(
        admin = %admin.username,
        study = study.id,
        units = set.units.len(),
        trials = set.trials.len(),
        "stimuli added"
    );
    Ok(see_other(&format!(
        "/admin/studies/{}?notice=stimuli",
        study.id
    )))
}
