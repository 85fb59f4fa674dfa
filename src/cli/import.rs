//! `meilab study import`: a study from stimuli made elsewhere, in the IMI dataset's folder layouts.

use std::path::PathBuf;

use anyhow::Context;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::config::Settings;
use crate::db::Database;
use crate::states::StudyStatus;
use crate::stimuli::store::ImageStore;
use crate::stimuli::{imi, TrialKind};
use crate::study::config::ExclusionThresholds;
use crate::study::{self, StudyConfig};

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The folder: trial folders (index.json + trials/) or exemplar folders (<layer>/channel_<u>/natural_images/)
    pub folder: PathBuf,
    /// The new study's URL name (lowercase letters, digits, '-')
    #[arg(long)]
    pub slug: String,
    /// The study's title [default: the slug]
    #[arg(long)]
    pub title: Option<String>,
    /// The network the stimuli come from (trial folders do not name it)
    #[arg(long, default_value = "imported")]
    pub model: String,
    /// A JSON file with the study configuration [default: IMI defaults; the answer-timing exclusion
    /// is off unless the file sets `exclusion.max_fast_answers`]
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Units held out of the main pool (the last ones) whose trials become obvious catch trials,
    /// when the folder names no catch trials (index.json's catch_trial_idxs)
    #[arg(long, default_value_t = 1)]
    pub catch_units: usize,
    /// A trial or exemplar folder (IMI's demo_natural_9_references, say) whose trials become the
    /// practice trials, as units of their own
    #[arg(long)]
    pub practice: Option<PathBuf>,
    /// Without --practice: units held out of the main pool (the last ones) whose trials become
    /// obvious practice trials
    #[arg(long, default_value_t = 1)]
    pub practice_units: usize,
    /// Open the study to participants right away (otherwise it is a draft)
    #[arg(long)]
    pub activate: bool,
}

pub async fn run(settings: Settings, args: ImportArgs) -> anyhow::Result<()> {
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let value: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", path.display()))?;
            let timing_named = value.pointer("/exclusion/max_fast_answers").is_some();
            let mut config = StudyConfig::from_json(value)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            if !timing_named {
                config.exclusion.max_fast_answers = None;
            }
            config
        }
        None => StudyConfig {
            exclusion: ExclusionThresholds {
                max_fast_answers: None,
                ..ExclusionThresholds::default()
            },
            ..StudyConfig::default()
        },
    };
    let store = ImageStore::new(settings.data_dir.join("images"));
    let (folder, model) = (args.folder.clone(), args.model.clone());
    let (practice, catch_units, practice_units) =
        (args.practice.clone(), args.catch_units, args.practice_units);
    let seed = config.seed;
    let imported = tokio::task::spawn_blocking(move || {
        let mut imported = imi::import(&folder, &model, &store)?;
        let set = &mut imported.set;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Practice and catch trials show units held out of the main pool, as IMI's.
        if set.count(TrialKind::Catch) == 0 {
            set.hold_out_units(TrialKind::Catch, catch_units, &mut rng)
                .context("catch units")?;
        }
        match &practice {
            Some(practice) => {
                let demo = imi::import(practice, &model, &store)
                    .with_context(|| format!("practice folder {}", practice.display()))?;
                set.merge_held_out(demo.set, TrialKind::Practice)?;
            }
            None => {
                set.hold_out_units(TrialKind::Practice, practice_units, &mut rng)
                    .context("practice units")?;
            }
        }
        anyhow::Ok(imported)
    })
    .await??;

    let database = Database::open(&settings).await?;
    let result = async {
        let mut tx = database.pool.begin().await?;
        let status = if args.activate {
            StudyStatus::Active
        } else {
            StudyStatus::Draft
        };
        let title = args.title.as_deref().unwrap_or(&args.slug);
        study::create(&mut tx, &args.slug, title, status, &config, &imported.set).await?;
        tx.commit().await?;
        let set = &imported.set;
        println!(
            "imported {:?} from {}: study {} ({status}) with {} units, {} main, {} catch and {} practice trials, {} images",
            imported.layout,
            args.folder.display(),
            args.slug,
            set.units.len(),
            set.count(TrialKind::Main),
            set.count(TrialKind::Catch),
            set.count(TrialKind::Practice),
            set.images.len()
        );
        anyhow::Ok(())
    }
    .await;
    database.close().await;
    result
}
