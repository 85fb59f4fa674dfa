//! The weights forms: fetch the pip-installable sets (a job), or import a file already on the server.
//! A weight file is read only up to a size limit, checked before reading.

use std::path::PathBuf;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use serde::Deserialize;

use super::build::BuildForm;
use super::files::{import_roots, server_path};
use super::{render, CsrfOnly};
use crate::jobs::worker;
use crate::stimuli::image_set;
use crate::vision::{self, WeightSet};
use crate::web::admin::form::admin_form;
use crate::web::admin::{see_other, AdminForm, PageResult};
use crate::web::AppState;

pub(super) fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/lab/weights", web::post().to(fetch))
        .route("/lab/weights/import", web::post().to(import));
}

/// Weight files larger than this are refused before they are read (the largest supported set, a
/// torchvision VGG16 checkpoint with its classifier, is 528 MB).
pub const MAX_WEIGHT_FILE_BYTES: u64 = 1 << 30;

async fn fetch(state: web::Data<AppState>, _: AdminForm<CsrfOnly>) -> PageResult {
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

admin_form!(ImportForm);

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
async fn import(
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
