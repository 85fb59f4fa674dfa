//! `meilab observer score STUDY [--rule max-set|contrast] [--net alex|vgg|squeeze|colour]
//! [--layers all|1,3]`: the in-silico observer on every trial of a study, in the foreground with a
//! progress bar.

use crate::config::Settings;
use crate::db::Database;
use crate::observer::{self, Layers, Metric, Rule, ScoreOptions};
use crate::progress::Terminal;
use crate::stimuli::store::ImageStore;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Judgments are stored per trial under the observer's name: \
lpips-NET/RULE for the full LPIPS distance (e.g. lpips-alex/max-set), lpips-NET:TAP/RULE for one \
layer alone (e.g. lpips-alex:conv3/max-set; alex taps conv1..conv5, vgg conv1_2, conv2_2, conv3_3, \
conv4_3, conv5_3, squeeze conv1, fire3, fire5..fire9), colour/RULE for the colour baseline. \
Re-scoring overwrites an observer's judgments."
)]
pub struct ScoreArgs {
    /// The study: its URL name (slug) or numeric id
    pub study: String,
    /// max-set (the seed paper's rule) or contrast
    #[arg(long, default_value = "max-set")]
    pub rule: Rule,
    /// The distance: an LPIPS network (alex, vgg, squeeze), or colour, the low-level baseline
    /// (Euclidean distance between the images' mean CIELAB colours; needs no weights)
    #[arg(long, default_value = "alex", value_name = "NET")]
    pub net: Metric,
    /// Also score single LPIPS layers, each alone, from the same feature pass: `all`, or layer numbers
    /// from 1 as the seed paper counts them (e.g. `1,3` for alex conv1 and conv3). The full distance
    /// is always scored; without this option it is the only one
    #[arg(long, value_name = "all|N,N..")]
    pub layers: Option<Layers>,
    /// Also score practice trials
    #[arg(long)]
    pub practice: bool,
}

pub async fn score(settings: Settings, args: ScoreArgs) -> anyhow::Result<()> {
    // A wrong layer number is refused before anything is opened.
    let layers = args.layers.unwrap_or_default();
    layers.resolve(args.net)?;
    let database = Database::open(&settings).await?;
    let result = async {
        let mut conn = database.pool.acquire().await?;
        let (id, slug) = super::export::find_study(&mut conn, &args.study).await?;
        drop(conn);
        let mut options = ScoreOptions::new(&settings.data_dir);
        options.rule = args.rule;
        options.metric = args.net;
        options.layers = layers;
        options.include_practice = args.practice;
        let store = ImageStore::new(settings.data_dir.join("images"));
        let progress = Terminal::new();
        let s = observer::score_study(&database.pool, &store, id, &options, &progress).await?;
        drop(progress);
        println!(
            "{slug}: {} scored {} trials ({} distinct images) in {:.1} s (features {:.1} s, distances {:.1} s); observer accuracy {:.3}",
            s.observer,
            s.trials,
            s.images,
            s.feature_seconds + s.distance_seconds,
            s.feature_seconds,
            s.distance_seconds,
            s.accuracy
        );
        for l in &s.layers {
            println!("{slug}: {} accuracy {:.3}", l.observer, l.accuracy);
        }
        anyhow::Ok(())
    }
    .await;
    database.close().await;
    result
}
