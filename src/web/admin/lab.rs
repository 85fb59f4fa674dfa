//! `/admin/lab`: weights, image sets (a server folder or an uploaded zip), the trial-building form,
//! and the jobs that do the work, with live progress from `/admin/jobs.json` and cancel buttons.
//!
//! Files on the server are read only under the import roots (`import_roots`, default the data
//! directory), after links are resolved, only when they are regular files (or, for image sets, folders),
//! and only up to a size limit checked before reading. Uploads stream to a file in the data directory,
//! refused with 413 past `max_upload_mib`.

use std::path::{Path, PathBuf};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::form::{self, admin_form};
use super::{page, see_other, Admin, AdminError, AdminForm, AdminUpload, Chrome, PageResult};
use crate::db;
use crate::error::AppError;
use crate::jobs::worker;
use crate::observer::{Layers, Metric};
use crate::stimuli::build::{BuildSpec, UnitSampling};
use crate::stimuli::directions::Basis;
use crate::stimuli::image_set::{self, ImageSource, ImagesJob};
use crate::vision::{self, Arch, LpipsNet, WeightSet};
use crate::web::api::limit;
use crate::web::AppState;

/// Weight files larger than this are refused before they are read (the largest supported set, a
/// torchvision VGG16 checkpoint with its classifier, is 528 MB).
pub const MAX_WEIGHT_FILE_BYTES: u64 = 1 << 30;
/// Room for the form's other fields and the multipart framing around an upload.
const MULTIPART_SLACK: u64 = 64 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/lab", web::get().to(show))
        .route("/lab/weights", web::post().to(fetch_weights))
        .route("/lab/weights/import", web::post().to(import_weights))
        .route("/lab/image-sets", web::post().to(add_folder))
        .route("/lab/uploads", web::post().to(upload_zip))
        .route("/lab/builds", web::post().to(start_build))
        .route("/studies/{id}/observer", web::post().to(run_observer))
        .route("/jobs.json", web::get().to(jobs_json))
        .route("/jobs/{id}/cancel", web::post().to(cancel));
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

#[derive(Serialize)]
pub struct JobView {
    id: i64,
    kind: String,
    status: String,
    phase: String,
    progress: i64,
    total: i64,
    percent: i64,
    error: String,
    outcome: String,
    link: String,
    cancellable: bool,
}

impl JobView {
    fn from_row(j: db::jobs::JobRow) -> JobView {
        let result = j.result.clone().unwrap_or_default();
        let (outcome, link) = match (j.kind.as_str(), j.status.as_str()) {
            ("build", "done") => (
                format!(
                    "{} units, {} main trials",
                    result["units"], result["main_trials"]
                ),
                result["study_id"]
                    .as_i64()
                    .map(|id| format!("/admin/studies/{id}"))
                    .unwrap_or_default(),
            ),
            ("images", "done") => (
                format!(
                    "{} images, {} files skipped",
                    result["images"],
                    result["skipped"].as_array().map_or(0, Vec::len)
                ),
                String::new(),
            ),
            ("score", "done") => (
                format!(
                    "{} trials scored, accuracy {:.3}",
                    result["trials"],
                    result["accuracy"].as_f64().unwrap_or(f64::NAN)
                ),
                j.payload["study_id"]
                    .as_i64()
                    .map(|id| format!("/admin/studies/{id}/results"))
                    .unwrap_or_default(),
            ),
            ("weights", "done") => (
                format!("{} weight sets", result.as_array().map_or(0, Vec::len)),
                String::new(),
            ),
            _ => (String::new(), String::new()),
        };
        JobView {
            id: j.id,
            percent: super::percent(j.progress, j.total),
            cancellable: matches!(j.status.as_str(), "queued" | "running"),
            kind: j.kind,
            status: j.status,
            phase: j.phase,
            progress: j.progress,
            total: j.total,
            error: j.error.unwrap_or_default(),
            outcome,
            link,
        }
    }
}

/// The build form's fields as typed, kept to show them again with an error. A field the browser
/// leaves out (an unchecked box) is empty.
#[derive(Deserialize, Clone, Default)]
#[serde(default)]
struct BuildForm {
    csrf: String,
    study: String,
    title: String,
    image_set: String,
    model: String,
    taps: String,
    neuron: Option<String>,
    pca: Option<String>,
    kmeans: Option<String>,
    units: String,
    conditions: String,
    batches: String,
    references: String,
    catch_units: String,
    practice_units: String,
    kmeans_activation: String,
    allow_query_overlap: Option<String>,
    seed: String,
}

impl BuildForm {
    /// What a new form shows.
    fn initial() -> Self {
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

#[derive(Deserialize)]
struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

admin_form!(CsrfOnly, ImportForm, FolderForm, BuildForm, ObserverForm);

async fn fetch_weights(state: web::Data<AppState>, _: AdminForm<CsrfOnly>) -> PageResult {
    worker::submit_weights(&state.pool).await?;
    Ok(see_other("/admin/lab?notice=queued"))
}

#[derive(Deserialize)]
struct ImportForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    file: String,
    #[serde(default)]
    name: String,
}

/// The directories the dashboard may read files from, canonical: the configured import roots, or
/// the data directory.
pub(super) fn import_roots(request: &HttpRequest, state: &AppState) -> Vec<PathBuf> {
    let roots = match limit::of(request).and_then(|l| l.import_roots()) {
        Some(roots) => roots.to_vec(),
        None => vec![state.data_dir()],
    };
    roots.iter().filter_map(|r| r.canonicalize().ok()).collect()
}

fn roots_text(roots: &[PathBuf]) -> String {
    match roots {
        [] => "none are configured".to_string(),
        _ => roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// `typed` resolved (links followed) when it names a file (`folder`: a folder) under one of the
/// canonical `roots`; otherwise why not. Whether something exists outside the roots is not told.
pub(super) fn server_path(typed: &str, roots: &[PathBuf], folder: bool) -> Result<PathBuf, String> {
    let what = if folder { "folder" } else { "file" };
    if typed.is_empty() {
        return Err(format!("Give the path of a {what} on the server."));
    }
    let outside = || {
        format!(
            "`{typed}` is not a {what} under the folders the dashboard may read ({}); the \
             `import_roots` setting names them.",
            roots_text(roots)
        )
    };
    let path = Path::new(typed)
        .canonicalize()
        .ok()
        .filter(|p| image_set::is_within(p, roots))
        .ok_or_else(outside)?;
    let meta = std::fs::metadata(&path).map_err(|_| outside())?;
    if folder && !meta.is_dir() {
        return Err(format!("`{typed}` is not a folder."));
    }
    if !folder && !meta.is_file() {
        return Err(format!("`{typed}` is not a regular file."));
    }
    Ok(path)
}

/// A weight file under the import roots, read up to [`MAX_WEIGHT_FILE_BYTES`].
fn read_weight_file(typed: &str, roots: &[PathBuf]) -> Result<(PathBuf, Vec<u8>), String> {
    let path = server_path(typed, roots, false)?;
    let too_large = || {
        format!(
            "`{typed}` is larger than {} MiB, the limit for weight files.",
            MAX_WEIGHT_FILE_BYTES >> 20
        )
    };
    let size = std::fs::metadata(&path)
        .map(|m| m.len())
        .unwrap_or(u64::MAX);
    if size > MAX_WEIGHT_FILE_BYTES {
        return Err(too_large());
    }
    let bytes = image_set::read_bounded(&path, MAX_WEIGHT_FILE_BYTES).map_err(|_| {
        format!("`{typed}` could not be read (it changed, or is larger than the limit).")
    })?;
    Ok((path, bytes))
}

/// Imports a weight file already on the server (any supported format), checked against its set.
async fn import_weights(
    state: web::Data<AppState>,
    request: HttpRequest,
    AdminForm { admin, form }: AdminForm<ImportForm>,
) -> PageResult {
    let typed = form.file.trim().to_string();
    let roots = import_roots(&request, &state);
    let data_dir = state.data_dir();
    let set = WeightSet::parse(form.name.trim());
    let outcome = tokio::task::spawn_blocking(move || {
        let set = set.map_err(|e| e.to_string())?;
        let (path, bytes) = read_weight_file(&typed, &roots)?;
        vision::weights::import_bytes(&bytes, &path, set, &data_dir, None)
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(anyhow::Error::from)?;
    match outcome {
        Ok(imported) => {
            let notice = format!(
                "Imported {} tensors as {}.",
                imported.tensors,
                imported.set.name()
            );
            render(
                &state,
                &admin,
                StatusCode::OK,
                BuildForm::initial(),
                None,
                Some(notice),
            )
            .await
        }
        Err(error) => {
            let message = format!("The weights could not be imported: {error}");
            render(
                &state,
                &admin,
                StatusCode::UNPROCESSABLE_ENTITY,
                BuildForm::initial(),
                Some(message),
                None,
            )
            .await
        }
    }
}

#[derive(Deserialize)]
struct FolderForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    folder: String,
    #[serde(default)]
    size: String,
}

async fn add_folder(
    state: web::Data<AppState>,
    request: HttpRequest,
    AdminForm { admin, form }: AdminForm<FolderForm>,
) -> PageResult {
    let refuse = |message: String| {
        render(
            &state,
            &admin,
            StatusCode::UNPROCESSABLE_ENTITY,
            BuildForm::initial(),
            Some(message),
            None,
        )
    };
    let roots = import_roots(&request, &state);
    let folder = match server_path(form.folder.trim(), &roots, true) {
        Ok(folder) => folder,
        Err(message) => return refuse(message).await,
    };
    let Some(size) = parse_size(&form.size) else {
        return refuse("The image size is a whole number of pixels from 32 to 1024.".into()).await;
    };
    let name = match form.name.trim() {
        "" => folder
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("images")
            .to_string(),
        n => n.chars().take(200).collect(),
    };
    worker::submit_images(
        &state.pool,
        &ImagesJob {
            name,
            source: ImageSource::Folder(folder),
            size,
            within: Some(roots),
        },
    )
    .await?;
    Ok(see_other("/admin/lab?notice=queued"))
}

fn parse_size(text: &str) -> Option<u32> {
    match text.trim() {
        "" => Some(224),
        t => t.parse::<u32>().ok().filter(|s| (32..=1024).contains(s)),
    }
}

/// A zip of pictures streamed to `<data-dir>/uploads`, then registered by a job (which checks every
/// entry for path traversal and decompression bombs, reads it a chunk of entries at a time and removes
/// the upload). An upload over the limit is refused with 413: at once when its length says so, else as
/// soon as it crosses the limit, and what was written is removed.
async fn upload_zip(
    state: web::Data<AppState>,
    request: HttpRequest,
    mut upload: AdminUpload,
) -> PageResult {
    let max = limit::of(&request).map_or(limit::DEFAULT_MAX_UPLOAD_BYTES, |l| l.max_upload_bytes());
    let declared = request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max.saturating_add(MULTIPART_SLACK)) {
        return Err(too_large(max));
    }
    let (mut name, mut size) = (String::new(), String::new());
    let mut saved: Option<Upload> = None;
    while let Some(field) = upload.next_field().await {
        let field = field?;
        let field_name = field.name().unwrap_or_default().to_string();
        if field_name == "archive" {
            // The token comes first in the form; nothing is written to disk without it.
            let mut field = upload.file(field)?;
            let dir = state.data_dir().join("uploads");
            tokio::fs::create_dir_all(&dir)
                .await
                .map_err(anyhow::Error::from)?;
            let file = Upload(Some(dir.join(format!("{}.zip", uuid::Uuid::new_v4()))));
            if stream_to_file(&mut field, file.path(), max).await? > 0 {
                saved = Some(file);
            }
            continue;
        }
        let value = form::text(field).await?;
        match field_name.as_str() {
            "name" => name = value,
            "size" => size = value,
            _ => {}
        }
    }
    let admin = upload.finish()?;
    let refuse = |message: &str| {
        render(
            &state,
            &admin,
            StatusCode::UNPROCESSABLE_ENTITY,
            BuildForm::initial(),
            Some(message.to_string()),
            None,
        )
    };
    let Some(upload) = saved else {
        return refuse("Choose a .zip file of JPEG, PNG or WebP pictures.").await;
    };
    let Some(size) = parse_size(&size) else {
        return refuse("The image size is a whole number of pixels from 32 to 1024.").await;
    };
    let name = match name.trim() {
        "" => "upload".to_string(),
        n => n.chars().take(200).collect(),
    };
    worker::submit_images(
        &state.pool,
        &ImagesJob {
            name,
            source: ImageSource::Zip(upload.path().to_path_buf()),
            size,
            within: None,
        },
    )
    .await?;
    // The job owns the file now and removes it when done.
    upload.keep();
    Ok(see_other("/admin/lab?notice=queued"))
}

fn too_large(max: u64) -> AdminError {
    AdminError::App(AppError::TooLarge(
        usize::try_from(max).unwrap_or(usize::MAX),
    ))
}

/// An upload's file, removed when dropped (a refusal, an error, a client gone mid-way) unless kept.
struct Upload(Option<PathBuf>);

impl Upload {
    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }

    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Writes the field to `path` as it arrives; refused with 413 once it passes `max` bytes.
async fn stream_to_file(
    field: &mut actix_multipart::Field,
    path: &Path,
    max: u64,
) -> Result<u64, AdminError> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(anyhow::Error::from)?;
    let mut total = 0u64;
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(form::unreadable)?;
        total += chunk.len() as u64;
        if total > max {
            return Err(too_large(max));
        }
        file.write_all(&chunk).await.map_err(anyhow::Error::from)?;
    }
    file.sync_all().await.map_err(anyhow::Error::from)?;
    Ok(total)
}

async fn start_build(
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

async fn jobs_json(state: web::Data<AppState>, _admin: Admin) -> PageResult {
    let mut conn = state.pool.acquire().await?;
    let jobs: Vec<JobView> = db::jobs::recent(&mut conn, 20)
        .await?
        .into_iter()
        .map(JobView::from_row)
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(serde_json::json!({ "jobs": jobs })))
}

async fn cancel(
    state: web::Data<AppState>,
    _: AdminForm<CsrfOnly>,
    id: web::Path<i64>,
) -> PageResult {
    let mut conn = state.pool.acquire().await?;
    db::jobs::cancel(&mut conn, *id).await?;
    Ok(see_other("/admin/lab"))
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

/// Queues the observer on every trial of a study; the lab shows its progress.
async fn run_observer(
    state: web::Data<AppState>,
    AdminForm { form, .. }: AdminForm<ObserverForm>,
    id: web::Path<i64>,
) -> PageResult {
    let mut conn = state.pool.acquire().await?;
    let study = super::load_study(&mut conn, *id).await?;
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
