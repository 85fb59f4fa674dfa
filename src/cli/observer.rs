//! `meilab observer score STUDY [--rule max-set|contrast] [--net alex|vgg|squeeze]`: the in-silico
//! observer on every trial of a study, in the foreground with a progress bar.

use crate::config::Settings;
use crate::db::Database;
use crate::jobs::progress::Terminal;
use crate::observer::{self, Rule, ScoreOptions};
use crate::stimuli::store::ImageStore;
use crate::vision::LpipsNet;

#[derive(Debug, clap::Args)]
pub struct ScoreArgs {
    /// The study: its URL name (slug) or numeric id
    pub study: String,
    /// max-set (the seed paper's rule) or contrast
    #[arg(long, default_value = "max-set")]
    pub rule: Rule,
    /// The LPIPS network
    #[arg(long, default_value = "alex")]
    pub net: LpipsNet,
    /// Also score practice trials
    #[arg(long)]
    pub practice: bool,
}

pub async fn score(settings: Settings, args: ScoreArgs) -> anyhow::Result<()> {
    let database = Database::open(&settings).await?;
    let result = async {
        let mut conn = database.pool.acquire().await?;
        let (id, slug) = super::export::find_study(&mut conn, &args.study).await?;
        drop(conn);
        let mut options = ScoreOptions::new(&settings.data_dir);
        options.rule = args.rule;
        options.net = args.net;
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
        anyhow::Ok(())
    }
    .await;
    database.close().await;
    result
}
