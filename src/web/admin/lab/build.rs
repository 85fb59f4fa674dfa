//! The trial-building form: its fields as typed, checked into a build spec and queued as a job.

use actix_web::http::StatusCode;
use actix_web::web;
use serde::Deserialize;

use super::render;
use crate::db;
use crate::jobs::worker;
use crate::stimuli::build::{BuildSpec, UnitSampling};
use crate::stimuli::directions::Basis;
use crate::vision::{Arch, LpipsNet};
use crate::web::admin::form::admin_form;
use crate::web::admin::{see_other, AdminError, AdminForm, PageResult};
use crate::web::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/lab/builds", web::post().to(start));
}

/// The build form's fields as typed, kept to show them again with an error. A field the browser
/// leaves out (an unchecked box) is empty.
#[derive(Deserialize, Clone, Default)]
#[serde(default)]
pub(super) struct BuildForm {
    pub(super) csrf: String,
    pub(super) study: String,
    pub(super) title: String,
    pub(super) image_set: String,
    pub(super) model: String,
    pub(super) taps: String,
    pub(super) neuron: Option<String>,
    pub(super) pca: Option<String>,
    pub(super) kmeans: Option<String>,
    pub(super) units: String,
    pub(super) conditions: String,
    pub(super) batches: String,
    pub(super) references: String,
    pub(super) catch_units: String,
    pub(super) practice_units: String,
    pub(super) kmeans_activation: String,
    pub(super) allow_query_overlap: Option<String>,
    pub(super) seed: String,
}

impl BuildForm {
    /// What a new form shows.
    pub(super) fn initial() -> Self {
        BuildForm {
            csrf: String::new(),
            study: String::new(),
            title: String::new(),
            image_set: String::new(),
            model: "alexnet".into(),
            taps: "conv1,conv2,conv3,conv4,conv5".into(),
            neuron: Some("on".into()),
            pca: None,
            kmeans: None,
            units: "5".into(),
            conditions: "easy".into(),
            batches: "20".into(),
            references: "9".into(),
            catch_units: crate::stimuli::build::default_catch_units().to_string(),
            practice_units: "3".into(),
            kmeans_activation: "distance".into(),
            allow_query_overlap: None,
            seed: "0".into(),
        }
    }
}

admin_form!(BuildForm);

async fn start(
    state: web::Data<AppState>,
    AdminForm { admin, form }: AdminForm<BuildForm>,
) -> PageResult {
    match validate(&state, &form).await? {
        Ok(spec) => {
            worker::submit_build(&state.pool, &spec).await?;
            Ok(see_other("/admin/lab?notice=queued"))
        }
        Err(message) => {
            render(
                &state,
                &admin,
                StatusCode::UNPROCESSABLE_ENTITY,
                form,
                Some(message),
                None,
            )
            .await
        }
    }
}

/// The build as a spec, or what is wrong with the form.
async fn validate(
    state: &AppState,
    form: &BuildForm,
) -> Result<Result<BuildSpec, String>, AdminError> {
    let number = |text: &str, what: &str, max: usize| {
        text.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| format!("{what} is a whole number from 0 to {max}."))
    };
    let slug = form.study.trim();
    let checked = (|| {
        if !crate::study::valid_slug(slug) {
            return Err(
                "The study's URL name uses lowercase letters, digits and '-' (up to 63)."
                    .to_string(),
            );
        }
        let arch = Arch::ALL
            .into_iter()
            .find(|a| a.name() == form.model)
            .ok_or("Choose a model.")?;
        let mut bases = Vec::new();
        for (on, basis) in [
            (&form.neuron, Basis::Neuron),
            (&form.pca, Basis::Pca),
            (&form.kmeans, Basis::Kmeans),
        ] {
            if on.is_some() {
                bases.push(basis);
            }
        }
        if bases.is_empty() {
            return Err("Choose at least one basis.".into());
        }
        let spec = BuildSpec {
            study_slug: slug.to_string(),
            study_title: match form.title.trim() {
                "" => slug.to_string(),
                t => t.chars().take(200).collect(),
            },
            image_set_id: form
                .image_set
                .trim()
                .parse()
                .map_err(|_| "Choose an image set.")?,
            arch,
            taps: form
                .taps
                .split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect(),
            bases,
            units: form
                .units
                .trim()
                .parse::<UnitSampling>()
                .map_err(|e| format!("Units: {e}"))?,
            kmeans_k: 16,
            batches: number(&form.batches, "Batches", 100)?.max(1),
            references: number(&form.references, "References", 36)?.max(1),
            conditions: form
                .conditions
                .split(',')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect(),
            catch_units: number(&form.catch_units, "Catch units", 20)?,
            practice_units: number(&form.practice_units, "Practice units", 20)?,
            kmeans_activation: match form.kmeans_activation.trim() {
                "" => Default::default(),
                k => k.parse().map_err(|e| format!("k-means activation: {e}"))?,
            },
            allow_query_overlap: form.allow_query_overlap.is_some(),
            ii_net: LpipsNet::Alex,
            seed: form
                .seed
                .trim()
                .parse()
                .map_err(|_| "The seed is a whole number.")?,
        };
        spec.protocol().map_err(|e| format!("Conditions: {e}"))?;
        let taps = spec.parsed_taps().map_err(|e| format!("Taps: {e}"))?;
        let known = arch.taps();
        if let Some(t) = taps.iter().find(|t| !known.contains(&t.name)) {
            return Err(format!(
                "{} has no tap `{}`; its taps are {}.",
                arch.name(),
                t.name,
                known.join(", ")
            ));
        }
        Ok(spec)
    })();
    let spec = match checked {
        Ok(spec) => spec,
        Err(message) => return Ok(Err(message)),
    };
    let mut conn = state.pool.acquire().await?;
    if db::studies::by_slug(&mut conn, slug).await?.is_some() {
        return Ok(Err(format!("A study called `{slug}` exists already.")));
    }
    let images = db::image_sets::members(&mut conn, spec.image_set_id)
        .await?
        .len();
    let needed = 2 * (spec.batches * spec.references + spec.batches);
    if images == 0 {
        return Ok(Err("Choose an image set.".into()));
    }
    if images < needed {
        return Ok(Err(format!(
            "{} batches x {} references need at least {needed} images; the set has {images}.",
            spec.batches, spec.references
        )));
    }
    if let Err(refusal) = spec.query_overlap(images) {
        return Ok(Err(format!("{refusal}")));
    }
    Ok(Ok(spec))
}
