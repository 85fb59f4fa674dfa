//! Image sets: a server folder (recursive) or a zip archive, each picture brought to one square size
//! and kept in the content-addressed store, so that participants, the studied network and the
//! observer all see identical pixels. Unreadable or unsupported files are listed and skipped.
//! Nothing is held in memory beyond the pictures being decoded: folders are read a chunk of files at a
//! time, zip archives a chunk of entries at a time from the file, each picture read only up to its limit.
//! Jobs queued by the dashboard carry the import roots they may read under, and every file (after
//! symbolic links are followed) must lie within one of them.

use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use anyhow::{bail, Context};
use rayon::prelude::*;
use sqlx::PgPool;

use super::store::{ImageStore, StoredImage};
use crate::db;
use crate::progress::{self, Progress};
use crate::vision::{decode_image, Resize};

const EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];
/// A picture over this size (a file or a zip entry) is skipped, and an archive expanding past the
/// total is refused.
pub const MAX_PICTURE_BYTES: u64 = 64 << 20;
const MAX_ARCHIVE_BYTES: u64 = 4 << 30;
/// Deflate rarely beats 20:1 on photographs; far higher ratios on large entries mark a zip bomb.
const MAX_RATIO: u64 = 200;
/// Pictures read, decoded and stored together.
const CHUNK: usize = 64;
/// Bytes of zip entries read together, at most (one larger entry is read alone).
const CHUNK_BYTES: u64 = 256 << 20;

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
    register_folder_within(pool, store, name, dir, None, size, progress).await
}

/// As [`register_folder`]; with `within`, the folder and every file taken from it (links followed)
/// must lie under one of these directories, and files that do not are skipped.
pub async fn register_folder_within(
    pool: &PgPool,
    store: &ImageStore,
    name: &str,
    dir: &Path,
    within: Option<&[PathBuf]>,
    size: u32,
    progress: &dyn Progress,
) -> anyhow::Result<Registered> {
    if !dir.is_dir() {
        bail!("{} is not a folder", dir.display());
    }
    let roots = within.map(canonical_roots);
    if let Some(roots) = &roots {
        let inside = dir.canonicalize().is_ok_and(|d| is_within(&d, roots));
        if !inside {
            bail!("{} is outside the import roots", dir.display());
        }
    }
    let dir_owned = dir.to_path_buf();
    let (files, mut skipped) =
        tokio::task::spawn_blocking(move || list_folder(&dir_owned, roots.as_deref())).await??;
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
    let archive = std::io::Cursor::new(archive);
    register_zip_from(pool, store, name, archive, size, progress).await
}

/// As [`register_zip`], reading the archive from a file a chunk of entries at a time.
pub async fn register_zip_file(
    pool: &PgPool,
    store: &ImageStore,
    name: &str,
    path: &Path,
    size: u32,
    progress: &dyn Progress,
) -> anyhow::Result<Registered> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read the upload {}", path.display()))?;
    register_zip_from(
        pool,
        store,
        name,
        std::io::BufReader::new(file),
        size,
        progress,
    )
    .await
}

async fn register_zip_from<R: Read + Seek + Send + 'static>(
    pool: &PgPool,
    store: &ImageStore,
    name: &str,
    archive: R,
    size: u32,
    progress: &dyn Progress,
) -> anyhow::Result<Registered> {
    let (mut zip, entries, mut skipped) =
        tokio::task::spawn_blocking(move || list_zip(archive)).await??;
    progress.start_phase("reading images", entries.len() as u64);
    let mut members = Vec::new();
    let mut expanded: u64 = 0;
    let mut pending = entries.into_iter().peekable();
    while pending.peek().is_some() {
        progress::check(progress)?;
        let (mut chunk, mut bytes) = (Vec::new(), 0u64);
        while let Some(entry) = pending.peek() {
            if !chunk.is_empty() && (chunk.len() >= CHUNK || bytes + entry.declared > CHUNK_BYTES) {
                break;
            }
            bytes += entry.declared;
            chunk.extend(pending.next());
        }
        expanded += bytes;
        if expanded > MAX_ARCHIVE_BYTES {
            bail!("the archive expands beyond {MAX_ARCHIVE_BYTES} bytes");
        }
        let (back, read) = tokio::task::spawn_blocking(move || {
            let read = read_entries(&mut zip, chunk);
            (zip, read)
        })
        .await?;
        zip = back;
        let (sources, bad) = read?;
        skipped.extend(bad);
        let (stored, bad) = store_in_chunks(store, sources, size, progress).await?;
        members.extend(stored);
        skipped.extend(bad);
    }
    save(pool, name, "zip upload", members, skipped).await
}

/// The canonical forms of the roots that exist.
fn canonical_roots(roots: &[PathBuf]) -> Vec<PathBuf> {
    roots.iter().filter_map(|r| r.canonicalize().ok()).collect()
}

/// Whether canonical `path` lies in (or is) one of the canonical `roots`.
pub fn is_within(path: &Path, roots: &[PathBuf]) -> bool {
    roots.iter().any(|root| path.starts_with(root))
}

fn list_folder(
    dir: &Path,
    roots: Option<&[PathBuf]>,
) -> anyhow::Result<(Vec<PathBuf>, Vec<Skipped>)> {
    let mut files = Vec::new();
    // Entries that lead out of the roots are listed once and not descended into.
    let mut outside = Vec::new();
    let walk = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|entry| {
            let Some(roots) = roots else { return true };
            let inside = entry
                .path()
                .canonicalize()
                .is_ok_and(|p| is_within(&p, roots));
            if !inside {
                outside.push(Skipped {
                    path: entry.path().display().to_string(),
                    reason: "leads outside the import roots (refused)".into(),
                });
            }
            inside
        });
    let mut skipped = Vec::new();
    for entry in walk {
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
    skipped.extend(outside);
    Ok((files, skipped))
}

fn has_picture_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// A zip entry to read: its index and declared size.
struct ZipEntry {
    index: usize,
    name: String,
    declared: u64,
}

/// Opens an archive and lists the pictures to read; the rest are skipped with a reason.
#[allow(clippy::type_complexity)]
fn list_zip<R: Read + Seek>(
    archive: R,
) -> anyhow::Result<(zip::ZipArchive<R>, Vec<ZipEntry>, Vec<Skipped>)> {
    let mut zip =
        zip::ZipArchive::new(archive).context("the upload is not a readable zip archive")?;
    let (mut entries, mut skipped) = (Vec::new(), Vec::new());
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).context("damaged zip archive")?;
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
        if declared > MAX_PICTURE_BYTES || (declared > (1 << 20) && declared / packed > MAX_RATIO) {
            skipped.push(Skipped {
                path: raw_name,
                reason: format!("expands to {declared} bytes (refused)"),
            });
            continue;
        }
        entries.push(ZipEntry {
            index: i,
            name: path.display().to_string(),
            declared,
        });
    }
    Ok((zip, entries, skipped))
}

/// Reads the listed entries; an entry holding more than it declared is skipped.
fn read_entries<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    entries: Vec<ZipEntry>,
) -> anyhow::Result<(Vec<Source>, Vec<Skipped>)> {
    let (mut sources, mut skipped) = (Vec::new(), Vec::new());
    for entry in entries {
        let mut file = zip.by_index(entry.index).context("damaged zip archive")?;
        // The declared size can lie: never read more than it.
        let mut bytes = Vec::with_capacity(entry.declared as usize);
        (&mut file)
            .take(entry.declared + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {} from the archive", entry.name))?;
        if bytes.len() as u64 > entry.declared {
            skipped.push(Skipped {
                path: entry.name,
                reason: "larger than declared (refused)".into(),
            });
            continue;
        }
        sources.push(Source {
            path: entry.name,
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
        read_bounded(&self, MAX_PICTURE_BYTES)
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
    let images: Vec<_> = members.iter().map(|m| m.image.row()).collect();
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
    /// A folder's files must lie under one of these (the dashboard's import roots); none: anywhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<Vec<PathBuf>>,
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
            let within = job.within.as_deref();
            register_folder_within(pool, store, &job.name, dir, within, job.size, progress).await
        }
        ImageSource::Zip(path) => {
            let result = register_zip_file(pool, store, &job.name, path, job.size, progress).await;
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

/// A regular file's bytes, refused without reading when its size is over `limit`; never more than
/// `limit` bytes are read, even from a file that grows meanwhile.
pub fn read_bounded(path: &Path, limit: u64) -> anyhow::Result<Vec<u8>> {
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    if meta.len() > limit {
        bail!("{} is larger than {limit} bytes", path.display());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if bytes.len() as u64 > limit {
        bail!("{} is larger than {limit} bytes", path.display());
    }
    Ok(bytes)
}
