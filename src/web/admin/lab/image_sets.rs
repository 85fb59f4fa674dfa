//! Image sets from a folder on the server or from an uploaded zip, registered by a job. Uploads stream
//! to a file in the data directory, refused with 413 past `max_upload_mib`.

use std::path::{Path, PathBuf};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::build::BuildForm;
use super::files::{import_roots, server_path};
use super::render;
use crate::error::AppError;
use crate::jobs::worker;
use crate::stimuli::image_set::{ImageSource, ImagesJob};
use crate::web::admin::form::{self, admin_form};
use crate::web::admin::{see_other, AdminError, AdminForm, AdminUpload, PageResult};
use crate::web::api::limit;
use crate::web::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/lab/image-sets", web::post().to(add_folder))
        .route("/lab/uploads", web::post().to(upload_zip));
}

/// Room for the form's other fields and the multipart framing around an upload.
const MULTIPART_SLACK: u64 = 64 * 1024;

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

admin_form!(FolderForm);

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
