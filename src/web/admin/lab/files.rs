//! Files on the server are read only under the import roots (`import_roots`, default the data
//! directory), after links are resolved, and only when they are regular files (or, for image sets,
//! folders).

use std::path::{Path, PathBuf};

use actix_web::HttpRequest;

use crate::stimuli::image_set;
use crate::web::api::limit;
use crate::web::AppState;

/// The directories the dashboard may read files from, canonical: the configured import roots, or
/// the data directory.
pub fn import_roots(request: &HttpRequest, state: &AppState) -> Vec<PathBuf> {
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
pub fn server_path(typed: &str, roots: &[PathBuf], folder: bool) -> Result<PathBuf, String> {
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
