//! Studies: configuration, recruitment, scheduling and the participant's path through a session.

pub mod appearance;
pub mod config;
pub mod exclusion;
pub mod live;
pub mod participation;
pub mod recruit;
pub mod schedule;

pub use config::StudyConfig;

use anyhow::{bail, Context};
use sqlx::PgConnection;

use crate::db;
use crate::stimuli::StimulusSet;

/// A study's URL name: 1 to 63 lowercase letters, digits or '-', not starting with '-' (the
/// database enforces it too).
pub fn valid_slug(slug: &str) -> bool {
    (1..=63).contains(&slug.len())
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
}

/// Creates a study with its stimuli (whose images are already in the store) in the caller's transaction.
pub async fn create(
    conn: &mut PgConnection,
    slug: &str,
    title: &str,
    status: &str,
    config: &StudyConfig,
    set: &StimulusSet,
) -> anyhow::Result<i64> {
    if let Some(error) = config.validate().first() {
        bail!(
            "invalid study configuration: {}: {}",
            error.field,
            error.message
        );
    }
    let study_id = db::studies::insert(conn, slug, title, status, config)
        .await
        .with_context(|| format!("cannot create study {slug} (is the name taken, or not lowercase letters, digits and '-'?)"))?;
    db::images::insert_many(conn, &set.images).await?;
    db::trials::insert_set(conn, study_id, set).await?;
    Ok(study_id)
}
