//! Image sets: a server folder (recursive) or a zip archive, each picture brought to one square size
//! and kept in the content-addressed store, so that participants, the studied network and the
//! observer all see identical pixels. Unreadable or unsupported files are listed and skipped.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use anyhow::{bail, Context};
use rayon::prelude::*;
use sqlx::PgPool;

use super::store::{ImageStore, StoredImage};
use crate::db;
use crate::jobs::{progress, Progress};
use crate::vision::{decode_image, Resize};

const EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];
/// Zip limits: a picture over this size, or an archive expanding past the total, is refused.
const MAX_ENTRY_BYTES: u64 = 64 << 20;
const MAX_ARCHIVE_BYTES: u64 = 4 << 30;
/// Deflate rarely beats 20:1 on photographs; far higher ratios on large entries mark a zip bomb.
const MAX_RATIO: u64 = 200;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
pub struct Member {
    pub image: StoredImage,
    pub source_path: String,
}

#[derive(Debug)]
pub struct Registered {
    pub set_id: i64,
    pub members: Vec<Member>,
    pub skipped: Vec<Skipped>,
}

/// One picture's bytes and where it came from.
struct Source {
    path: String,
    bytes: Vec<u8>,
}

/// Registers (or extends) the image set `name` from every JPEG / PNG / WebP file under `dir`.
pub async fn register_folder(
    pool: &PgPool,
    store: &ImageStore,
    name: &str,
    dir: &Path,
    size: u32,
    progress: &dyn Progress,
) -> anyhow::Result<Registered> {
    if !dir.is_dir() {
        bail!("{} is not a folder", dir.display());
    }
    let dir_owned = dir.to_path_buf();
    let (files, mut skipped) =
        tokio::task::spawn_blocking(move || list_folder(&dir_owned)).await??;
    progress.start_phase("reading images", files.len() as u64);
    let (members, bad) = store_in_chunks(store, files, size, progress).await?;
    skipped.extend(bad);
    save(pool, name, &dir.display().to_string(), members, skipped).await
}

/// Registers (or extends) the image set `name` from a zip archive's pictures, refusing entries that
/// leave the archive's root and archives that expand beyond sane sizes.
pub async fn register_zip(
    pool: &PgPool,
    store: &ImageStore,
    name: &str,
    archive: Vec<u8>,
    size: u32,
    progress: &dyn Progress,
) -> anyhow::Result<Registered> {
    let (sources, mut skipped) = tokio::task::spawn_blocking(move || read_zip(&archive)).await??;
    progress.start_phase("reading images", sources.len() as u64);
    let (members, bad) = store_in_chunks(store, sources, size, progress).await?;
    skipped.extend(bad);
    save(pool, name, "zip upload", members, skipped).await
}

fn list_folder(dir: &Path) -> anyhow::Result<(Vec<PathBuf>, Vec<Skipped>)> {
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for entry in walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
    {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                skipped.push(Skipped {
                    path: e
                        .path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let path = entry.into_path();
        if has_picture_extension(&path) {
            files.push(path);
        } else {
            skipped.push(Skipped {
                path: path.display().to_string(),
                reason: "not a JPEG, PNG or WebP file".into(),
            });
        }
    }
    Ok((files, skipped))
}

fn has_picture_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn read_zip(archive: &[u8]) -> anyhow::Result<(Vec<Source>, Vec<Skipped>)> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(archive))
        .context("the upload is not a readable zip archive")?;
    let (mut sources, mut skipped) = (Vec::new(), Vec::new());
    let mut expanded: u64 = 0;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).context("damaged zip archive")?;
        let raw_name = entry
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| format!("entry {i}"));
        if entry.is_dir() {
            continue;
        }
        let Some(path) = entry.enclosed_name() else {
            skipped.push(Skipped {
                path: raw_name,
                reason: "path leaves the archive (refused)".into(),
            });
            continue;
        };
        if !has_picture_extension(&path) {
            skipped.push(Skipped {
                path: raw_name,
                reason: "not a JPEG, PNG or WebP file".into(),
            });
            continue;
        }
        let declared = entry.size();
        let packed = entry.compressed_size().max(1);
        if declared > MAX_ENTRY_BYTES || (declared > (1 << 20) && declared / packed > MAX_RATIO) {
            skipped.push(Skipped {
                path: raw_name,
                reason: format!("expands to {declared} bytes (refused)"),
            });
            continue;
        }
        // The declared size can lie: never read more than the limit.
        let mut bytes = Vec::new();
        (&mut entry)
            .take(MAX_ENTRY_BYTES + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {raw_name} from the archive"))?;
        if bytes.len() as u64 > MAX_ENTRY_BYTES {
            skipped.push(Skipped {
                path: raw_name,
                reason: "larger than declared (refused)".into(),
            });
            continue;
        }
        expanded += bytes.len() as u64;
        if expanded > MAX_ARCHIVE_BYTES {
            bail!("the archive expands beyond {MAX_ARCHIVE_BYTES} bytes");
        }
        sources.push(Source {
            path: path.display().to_string(),
            bytes,
        });
    }
    Ok((sources, skipped))
}

/// Where a picture's bytes come from: a file, or an archive entry already read.
trait Picture: Send + 'static {
    fn name(&self) -> String;
    fn bytes(self) -> anyhow::Result<Vec<u8>>;
}

impl Picture for PathBuf {
    fn name(&self) -> String {
        self.display().to_string()
    }
    fn bytes(self) -> anyhow::Result<Vec<u8>> {
        std::fs::read(&self).with_context(|| format!("cannot read {}", self.display()))
    }
}

impl Picture for Source {
    fn name(&self) -> String {
        self.path.clone()
    }
    fn bytes(self) -> anyhow::Result<Vec<u8>> {
        Ok(self.bytes)
    }
}

/// Decodes, squares and stores pictures, a chunk at a time in parallel off the async executor;
/// failures become `Skipped` entries.
async fn store_in_chunks<P: Picture>(
    store: &ImageStore,
    pictures: Vec<P>,
    size: u32,
    progress: &dyn Progress,
) -> anyhow::Result<(Vec<Member>, Vec<Skipped>)> {
    const CHUNK: usize = 64;
    let resize = Resize::ShorterSideThenCrop {
        resize: size,
        crop: size,
    };
    let (mut members, mut skipped) = (Vec::new(), Vec::new());
    let mut pending = pictures.into_iter().peekable();
    while pending.peek().is_some() {
        progress::check(progress)?;
        let chunk: Vec<P> = pending.by_ref().take(CHUNK).collect();
        let n = chunk.len() as u64;
        let store = store.clone();
        let outcomes = tokio::task::spawn_blocking(move || {
            chunk
                .into_par_iter()
                .map(|picture| {
                    let name = picture.name();
                    picture
                        .bytes()
                        .and_then(|bytes| Ok(decode_image(&bytes, &name)?))
                        .and_then(|rgb| store.put_rgb(&resize.apply(&rgb)))
                        .map(|image| Member {
                            image,
                            source_path: name.clone(),
                        })
                        .map_err(|e| Skipped {
                            path: name,
                            reason: format!("{e:#}"),
                        })
                })
                .collect::<Vec<_>>()
        })
        .await?;
        for outcome in outcomes {
            match outcome {
                Ok(m) => members.push(m),
                Err(s) => skipped.push(s),
            }
        }
        progress.advance(n);
    }
    Ok((members, skipped))
}

async fn save(
    pool: &PgPool,
    name: &str,
    source: &str,
    members: Vec<Member>,
    skipped: Vec<Skipped>,
) -> anyhow::Result<Registered> {
    if members.is_empty() {
        bail!(
            "no readable images in {source} ({} files skipped)",
            skipped.len()
        );
    }
    let mut tx = pool.begin().await?;
    let images: Vec<StoredImage> = members.iter().map(|m| m.image.clone()).collect();
    db::images::insert_many(&mut tx, &images).await?;
    let set_id = db::image_sets::ensure(&mut tx, name, source).await?;
    let sha: Vec<String> = members.iter().map(|m| m.image.sha256.clone()).collect();
    let paths: Vec<String> = members.iter().map(|m| m.source_path.clone()).collect();
    db::image_sets::add_members(&mut tx, set_id, &sha, &paths).await?;
    tx.commit().await?;
    Ok(Registered {
        set_id,
        members,
        skipped,
    })
}

/// An image-set registration run as a job (a server folder, or an uploaded zip removed afterwards).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImagesJob {
    pub name: String,
    pub source: ImageSource,
    pub size: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageSource {
    Folder(PathBuf),
    Zip(PathBuf),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImagesSummary {
    pub set_id: i64,
    pub images: usize,
    pub skipped: Vec<Skipped>,
}

pub async fn run_job(
    pool: &PgPool,
    store: &ImageStore,
    job: &ImagesJob,
    progress: &dyn Progress,
) -> anyhow::Result<ImagesSummary> {
    let registered = match &job.source {
        ImageSource::Folder(dir) => {
            register_folder(pool, store, &job.name, dir, job.size, progress).await
        }
        ImageSource::Zip(path) => {
            let bytes = tokio::fs::read(path)
                .await
                .with_context(|| format!("cannot read the upload {}", path.display()))?;
            let result = register_zip(pool, store, &job.name, bytes, job.size, progress).await;
            let _ = tokio::fs::remove_file(path).await;
            result
        }
    }?;
    Ok(ImagesSummary {
        set_id: registered.set_id,
        images: registered.members.len(),
        skipped: registered.skipped,
    })
}
