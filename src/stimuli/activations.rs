//! Activation extraction: each image of a set through the studied network once, per tap the spatial
//! mean of every channel (DESIGN 1.1), stored batch by batch so an interrupted run resumes where it
//! stopped and later bases or conditions never run the network again.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use sqlx::PgPool;

use super::store::ImageStore;
use crate::db;
use crate::progress::{self, Progress};
use crate::vision::{Arch, Backbone, Tap, WeightSet};

/// Images per network pass and per database transaction.
pub const BATCH: usize = 16;

/// A studied network loaded with its weights, known to the database by architecture + weights hash.
pub struct Model {
    pub id: i64,
    pub arch: Arch,
    pub backbone: Arc<Backbone>,
}

impl Model {
    pub async fn load(pool: &PgPool, arch: Arch, data_dir: &Path) -> anyhow::Result<Model> {
        let data_dir = data_dir.to_path_buf();
        let (backbone, sha) = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let path = crate::vision::locate(&data_dir, WeightSet::Trunk(arch))?;
            let sha = crate::vision::weights::file_sha256(&path)?;
            Ok((Backbone::from_data_dir(arch, &data_dir)?, sha))
        })
        .await??;
        let mut conn = pool.acquire().await?;
        let id = db::activations::ensure_model(&mut conn, arch.name(), &sha).await?;
        Ok(Model {
            id,
            arch,
            backbone: Arc::new(backbone),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extracted {
    /// Images that went through the network in this run.
    pub computed: usize,
    /// Images whose activations were already stored.
    pub reused: usize,
}

/// Makes sure every image has stored activations for every tap; returns `Cancelled` (leaving the
/// finished batches stored) when asked to stop.
pub async fn extract(
    pool: &PgPool,
    store: &ImageStore,
    model: &Model,
    taps: &[Tap],
    images: &[String],
    progress: &dyn Progress,
) -> anyhow::Result<Extracted> {
    model.backbone.check_taps(taps)?;
    let names: Vec<String> = taps.iter().map(Tap::to_string).collect();
    let done: HashSet<String> = {
        let mut conn = pool.acquire().await?;
        db::activations::complete_images(&mut conn, model.id, &names, images)
            .await?
            .into_iter()
            .collect()
    };
    let todo: Vec<String> = images
        .iter()
        .filter(|s| !done.contains(*s))
        .cloned()
        .collect();
    progress.start_phase("activations", todo.len() as u64);
    for chunk in todo.chunks(BATCH) {
        progress::check(progress)?;
        let backbone = model.backbone.clone();
        let (store, shas, taps) = (store.clone(), chunk.to_vec(), taps.to_vec());
        let per_image = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let pictures = shas
                .iter()
                .map(|sha| load(&store, sha))
                .collect::<anyhow::Result<Vec<_>>>()?;
            // Batches must share one size; sets registered by meilab do, imported ones may not.
            let mut out = vec![Vec::new(); pictures.len()];
            let mut sizes: Vec<(u32, u32)> = pictures.iter().map(|p| p.dimensions()).collect();
            sizes.sort();
            sizes.dedup();
            for size in sizes {
                let idx: Vec<usize> = (0..pictures.len())
                    .filter(|&i| pictures[i].dimensions() == size)
                    .collect();
                let group: Vec<&image::RgbImage> = idx.iter().map(|&i| &pictures[i]).collect();
                for (i, acts) in idx
                    .into_iter()
                    .zip(backbone.image_activations(&group, &taps)?)
                {
                    out[i] = acts;
                }
            }
            Ok(out)
        })
        .await??;
        let mut tx = pool.begin().await?;
        for (t, name) in names.iter().enumerate() {
            let channels = per_image[0][t].len();
            let flat: Vec<f32> = per_image
                .iter()
                .flat_map(|a| a[t].iter().copied())
                .collect();
            db::activations::insert_tap(&mut tx, model.id, name, chunk, &flat, channels as i64)
                .await?;
        }
        tx.commit().await?;
        progress.advance(chunk.len() as u64);
    }
    Ok(Extracted {
        computed: todo.len(),
        reused: done.len(),
    })
}

/// A stored picture, decoded.
pub fn load(store: &ImageStore, sha256: &str) -> anyhow::Result<image::RgbImage> {
    let path = store.path(sha256).context("invalid image key")?;
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "image {sha256} is missing from the store ({})",
            path.display()
        )
    })?;
    Ok(crate::vision::decode_image(&bytes, sha256)?)
}

/// One tap's activations in the order of `images`.
pub async fn tap_matrix(
    pool: &PgPool,
    model_id: i64,
    tap: &str,
    images: &[String],
) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut conn = pool.acquire().await?;
    let mut by_image = db::activations::load_tap(&mut conn, model_id, tap, images).await?;
    images
        .iter()
        .map(|sha| {
            by_image
                .remove(sha)
                .with_context(|| format!("no stored activations of tap {tap} for image {sha}"))
        })
        .collect()
}
