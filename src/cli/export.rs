//! `meilab export STUDY --what responses|units|agreement|roc|lower-quality --out FILE.csv` and
//! `--what plots --out DIR`.

use std::path::PathBuf;

use anyhow::Context;
use sqlx::PgConnection;

use crate::config::Settings;
use crate::db::{self, Database};
use crate::export::{study, What};

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The study: its URL name (slug) or numeric id
    pub study: String,
    /// What to export
    #[arg(long, value_enum)]
    pub what: What,
    /// The file to write (a folder for `plots`)
    #[arg(long)]
    pub out: PathBuf,
    /// The observer whose judgments the analysis uses [default: lpips-alex/max-set if scored]
    #[arg(long)]
    pub observer: Option<String>,
}

/// A study named by slug or id: its id and slug, or a message naming what was not found.
pub(super) async fn find_study(
    conn: &mut PgConnection,
    name: &str,
) -> anyhow::Result<(i64, String)> {
    let by_slug = db::studies::by_slug(conn, name).await?;
    let found = match (by_slug, name.parse::<i64>()) {
        (Some(s), _) => Some(s),
        (None, Ok(id)) => db::studies::by_study_id(conn, id).await?,
        (None, Err(_)) => None,
    };
    found
        .map(|s| (s.id, s.slug))
        .with_context(|| format!("there is no study `{name}` (give its slug or id)"))
}

pub async fn run(settings: Settings, args: ExportArgs) -> anyhow::Result<()> {
    let database = Database::open(&settings).await?;
    let result = async {
        let mut conn = database.pool.acquire().await?;
        let (id, slug) = find_study(&mut conn, &args.study).await?;
        drop(conn);
        let written = study::export(
            &database.pool,
            id,
            args.what,
            &args.out,
            args.observer.as_deref(),
        )
        .await?;
        for path in written {
            println!("{slug}: wrote {}", path.display());
        }
        anyhow::Ok(())
    }
    .await;
    database.close().await;
    result
}
