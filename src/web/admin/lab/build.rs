//! The trial-building form: its fields as typed, checked into a build spec and queued as a job.

use actix_web::http::StatusCode;
use actix_web::web;
use serde::Deserialize;

use super::render;
use crate::db;
use crate::jobs::worker;
use crate::stimuli::build::{BuildSpec, UnitSampling, MAX_TITLE_CHARS};
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

/// The build as a spec, or what is wrong with the form: the form's text, then [`BuildSpec::check`] and
/// [`BuildSpec::check_images`] as every build is checked, then the study's name against the existing ones.
async fn validate(
    state: &AppState,
    form: &BuildForm,
) -> Result<Result<BuildSpec, String>, AdminError> {
    let spec = match form.spec() {
        Ok(spec) => spec,
        Err(message) => return Ok(Err(message)),
    };
    if let Err(refusal) = spec.check() {
        return Ok(Err(format!("{refusal:#}")));
    }
    let mut conn = state.pool.acquire().await?;
    let slug = &spec.study_slug;
    if db::studies::by_slug(&mut conn, slug).await?.is_some() {
        return Ok(Err(format!("A study called `{slug}` exists already.")));
    }
    let images = db::image_sets::members(&mut conn, spec.image_set_id)
        .await?
        .len();
    if images == 0 {
        return Ok(Err("Choose an image set.".into()));
    }
    if let Err(refusal) = spec.check_images(images) {
        return Ok(Err(format!("{refusal:#}")));
    }
    Ok(Ok(spec))
}

impl BuildForm {
    /// The form's text as a build spec, or which field does not parse. 0 batches or references mean 1.
    fn spec(&self) -> Result<BuildSpec, String> {
        let number = |text: &str, what: &str| {
            text.trim()
                .parse::<usize>()
                .map_err(|_| format!("{what} is a whole number."))
        };
        let slug = self.study.trim();
        let arch = Arch::ALL
            .into_iter()
            .find(|a| a.name() == self.model)
            .ok_or("Choose a model.")?;
        let bases = [
            (&self.neuron, Basis::Neuron),
            (&self.pca, Basis::Pca),
            (&self.kmeans, Basis::Kmeans),
        ]
        .into_iter()
        .filter(|(on, _)| on.is_some())
        .map(|(_, basis)| basis)
        .collect();
        Ok(BuildSpec {
            study_slug: slug.to_string(),
            study_title: match self.title.trim() {
                "" => slug.to_string(),
                t => t.chars().take(MAX_TITLE_CHARS).collect(),
            },
            image_set_id: self
                .image_set
                .trim()
                .parse()
                .map_err(|_| "Choose an image set.")?,
            arch,
            taps: self
                .taps
                .split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect(),
            bases,
            units: self
                .units
                .trim()
                .parse::<UnitSampling>()
                .map_err(|e| format!("Units: {e}"))?,
            kmeans_k: 16,
            batches: number(&self.batches, "Batches")?.max(1),
            references: number(&self.references, "References")?.max(1),
            conditions: self
                .conditions
                .split(',')
                .map(|c| c.trim().to_string())
                .filter(|c| !c.is_empty())
                .collect(),
            catch_units: number(&self.catch_units, "Catch units")?,
            practice_units: number(&self.practice_units, "Practice units")?,
            kmeans_activation: match self.kmeans_activation.trim() {
                "" => Default::default(),
                k => k.parse().map_err(|e| format!("k-means activation: {e}"))?,
            },
            allow_query_overlap: self.allow_query_overlap.is_some(),
            ii_net: LpipsNet::Alex,
            seed: self
                .seed
                .trim()
                .parse()
                .map_err(|_| "The seed is a whole number.")?,
        })
    }
}
