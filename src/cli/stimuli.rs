//! `meilab stimuli build`: an image set and a network's units to a draft study of IMI-protocol
//! trials, in the foreground (progress bar) or queued as a job; `meilab worker` runs queued jobs.

use std::path::PathBuf;

use anyhow::Context;

use crate::config::Settings;
use crate::db::Database;
use crate::jobs::Worker;
use crate::progress::Terminal;
use crate::stimuli::build::{self, BuildSpec, UnitSampling};
use crate::stimuli::directions::Basis;
use crate::stimuli::image_set::{self, Registered};
use crate::stimuli::store::ImageStore;
use crate::vision::{Arch, LpipsNet};

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The studied network: alexnet, vgg16, squeezenet1_1, resnet18, resnet50
    #[arg(long, default_value = "alexnet")]
    pub model: String,
    /// Taps, comma-separated; `conv3` is pre-ReLU, `conv3:relu` after it
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "conv1,conv2,conv3,conv4,conv5"
    )]
    pub taps: Vec<String>,
    /// Bases, comma-separated: neuron, pca, kmeans
    #[arg(long, value_delimiter = ',', default_value = "neuron")]
    pub basis: Vec<String>,
    /// A folder of JPEG / PNG / WebP images (recursive) or a .zip of them
    #[arg(long)]
    pub images: PathBuf,
    /// The image set's name [default: the folder's name]
    #[arg(long)]
    pub image_set: Option<String>,
    /// Side of the square every image is brought to (shorter side scaled, centre crop)
    #[arg(long, default_value_t = 224)]
    pub image_size: u32,
    /// Conditions, comma-separated: easy, hard99, hard95, hard85, custom:LO-HI[:LO-HI]
    #[arg(long, value_delimiter = ',', default_value = "easy")]
    pub conditions: Vec<String>,
    /// Units per tap and basis: all, a number (random, seeded), or list:I,J,K
    #[arg(long, default_value = "5")]
    pub units: String,
    /// Centroids per tap for the kmeans basis
    #[arg(long, default_value_t = 16)]
    pub kmeans_k: usize,
    /// B: trials per unit and condition
    #[arg(long, default_value_t = 20)]
    pub batches: usize,
    /// R: references per side
    #[arg(long, default_value_t = 9)]
    pub references: usize,
    /// Units held out of the main pool for catch trials, one per batch (queries from the references)
    #[arg(long, default_value_t = build::default_catch_units())]
    pub catch_units: usize,
    /// The clearest units (by II) held out of the main pool for practice, one trial each
    #[arg(long, default_value_t = 3)]
    pub practice_units: usize,
    /// How k-means units score an image: distance (to the centroid, the seed paper's) or projection
    #[arg(long, default_value = "distance")]
    pub kmeans_activation: String,
    /// Build conditions whose query window overlaps the references or easy queries anyway (recorded
    /// on the study)
    #[arg(long)]
    pub allow_query_overlap: bool,
    /// LPIPS net of the interpretability index
    #[arg(long, default_value = "alex")]
    pub ii_net: String,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The new (draft) study's URL name
    #[arg(long)]
    pub study: String,
    #[arg(long)]
    pub title: Option<String>,
    /// Queue the build as a job for a worker instead of running it here
    #[arg(long)]
    pub queue: bool,
}

impl BuildArgs {
    fn spec(&self, image_set_id: i64) -> anyhow::Result<BuildSpec> {
        let arch = Arch::ALL
            .into_iter()
            .find(|a| a.name() == self.model)
            .with_context(|| {
                let known: Vec<&str> = Arch::ALL.iter().map(|a| a.name()).collect();
                format!(
                    "unknown model `{}` (known: {})",
                    self.model,
                    known.join(", ")
                )
            })?;
        let ii_net = LpipsNet::ALL
            .into_iter()
            .find(|n| n.name() == self.ii_net)
            .with_context(|| format!("unknown LPIPS net `{}` (alex, vgg, squeeze)", self.ii_net))?;
        let spec = BuildSpec {
            study_slug: self.study.clone(),
            study_title: self.title.clone().unwrap_or_else(|| self.study.clone()),
            image_set_id,
            arch,
            taps: self.taps.clone(),
            bases: self
                .basis
                .iter()
                .map(|b| b.parse::<Basis>())
                .collect::<anyhow::Result<_>>()?,
            units: self.units.parse::<UnitSampling>()?,
            kmeans_k: self.kmeans_k,
            batches: self.batches,
            references: self.references,
            conditions: self.conditions.clone(),
            catch_units: self.catch_units,
            practice_units: self.practice_units,
            kmeans_activation: self.kmeans_activation.parse()?,
            allow_query_overlap: self.allow_query_overlap,
            ii_net,
            seed: self.seed,
        };
        // The lab's check, before any work starts.
        spec.check()?;
        Ok(spec)
    }
}

pub async fn build(settings: Settings, args: BuildArgs) -> anyhow::Result<()> {
    args.spec(0)?;
    let database = Database::open(&settings).await?;
    let result = build_with(&settings, &database, &args).await;
    database.close().await;
    result
}

async fn build_with(
    settings: &Settings,
    database: &Database,
    args: &BuildArgs,
) -> anyhow::Result<()> {
    let store = ImageStore::new(settings.data_dir.join("images"));
    let name = match &args.image_set {
        Some(n) => n.clone(),
        None => args
            .images
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("images")
            .to_string(),
    };
    let terminal = Terminal::new();
    let registered = register(&database.pool, &store, &name, args, &terminal).await?;
    println!(
        "image set `{name}`: {} images, {} files skipped",
        registered.members.len(),
        registered.skipped.len()
    );
    for s in &registered.skipped {
        println!("  skipped {}: {}", s.path, s.reason);
    }
    let spec = args.spec(registered.set_id)?;
    if args.queue {
        let id = crate::jobs::worker::submit_build(&database.pool, &spec).await?;
        println!("queued build job {id}; `meilab worker` (or a running `meilab serve`) runs it");
        return Ok(());
    }
    let summary = build::run(&database.pool, &settings.data_dir, &store, &spec, &terminal).await?;
    drop(terminal);
    println!(
        "study `{}` (draft): {} units, {} main / {} catch / {} practice trials",
        args.study,
        summary.units,
        summary.main_trials,
        summary.catch_trials,
        summary.practice_trials
    );
    if !summary.construction.overlap_override.is_empty() {
        println!(
            "built despite query overlap (recorded on the study): {}",
            summary.construction.overlap_override.join(", ")
        );
    }
    println!(
        "activations: {} images computed, {} reused, {:.1} s ({:.1} images/s); total {:.1} s",
        summary.images_computed,
        summary.images_reused,
        summary.extraction_secs,
        summary.images_computed as f64 / summary.extraction_secs.max(1e-9),
        summary.total_secs
    );
    Ok(())
}

async fn register(
    pool: &sqlx::PgPool,
    store: &ImageStore,
    name: &str,
    args: &BuildArgs,
    terminal: &Terminal,
) -> anyhow::Result<Registered> {
    let is_zip = args
        .images
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    if is_zip {
        let bytes = std::fs::read(&args.images)
            .with_context(|| format!("cannot read {}", args.images.display()))?;
        image_set::register_zip(pool, store, name, bytes, args.image_size, terminal).await
    } else {
        image_set::register_folder(pool, store, name, &args.images, args.image_size, terminal).await
    }
}

/// Runs queued jobs until Ctrl-C / SIGTERM.
pub async fn worker(settings: Settings) -> anyhow::Result<()> {
    let database = Database::open(&settings).await?;
    let worker = Worker::new(database.pool.clone(), settings.data_dir.clone());
    println!("worker {} waiting for jobs", worker.name);
    worker.run(super::shutdown_signal()).await;
    database.close().await;
    Ok(())
}
