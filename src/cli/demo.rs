//! `meilab demo`: a working study on localhost with no configuration.

use crate::config::Settings;
use crate::db::{self, Database};
use crate::stimuli::store::ImageStore;
use crate::stimuli::synthetic::{self, SyntheticOptions};
use crate::study::{self, StudyConfig};

pub const DEMO_SLUG: &str = "demo";

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    println!(
        "starting the database (data in {}) ...",
        settings.data_dir.display()
    );
    let database = Database::open(&settings).await?;
    let result = async {
        ensure_demo_study(&settings, &database).await?;
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

/// The calibration study, drawn and stored on first run.
async fn ensure_demo_study(settings: &Settings, database: &Database) -> anyhow::Result<()> {
    let mut tx = database.pool.begin().await?;
    if db::studies::by_slug(&mut tx, DEMO_SLUG).await?.is_some() {
        return Ok(());
    }
    let store = ImageStore::new(settings.data_dir.join("images"));
    let set =
        tokio::task::spawn_blocking(move || synthetic::build(&store, &SyntheticOptions::default()))
            .await??;
    study::create(
        &mut tx,
        DEMO_SLUG,
        "Which image fits the examples? (calibration)",
        "active",
        &demo_config(),
        &set,
    )
    .await?;
    tx.commit().await?;
    println!(
        "created the demo study: {} units, {} trials, {} images",
        set.units.len(),
        set.trials.len(),
        set.images.len()
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
