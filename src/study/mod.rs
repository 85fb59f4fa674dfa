//! Studies: configuration, recruitment, scheduling and the participant's path through a session.

pub mod appearance;
pub mod config;
pub mod exclusion;
pub mod recruit;
pub mod schedule;
pub mod session;

pub use config::StudyConfig;

use anyhow::{bail, Context};
use sqlx::PgConnection;

use crate::db;
use crate::db::trials::{NewExemplar, NewTrial, NewUnit};
use crate::states::StudyStatus;
use crate::stimuli::StimulusSet;

/// A study with its configuration, validated on load.
#[derive(Debug, Clone)]
pub struct Study {
    pub id: i64,
    pub slug: String,
    pub title: String,
    pub status: StudyStatus,
    pub config: StudyConfig,
}

impl Study {
    fn from_row(row: db::studies::StudyRow) -> anyhow::Result<Self> {
        let config = StudyConfig::from_json(row.config)
            .map_err(|e| anyhow::anyhow!("study {} has an invalid configuration: {e}", row.slug))?;
        Ok(Self {
            id: row.id,
            slug: row.slug,
            title: row.title,
            status: row.status,
            config,
        })
    }
}

pub async fn by_slug(conn: &mut PgConnection, slug: &str) -> anyhow::Result<Option<Study>> {
    db::studies::by_slug(conn, slug)
        .await?
        .map(Study::from_row)
        .transpose()
}

pub async fn by_id(conn: &mut PgConnection, id: i64) -> anyhow::Result<Option<Study>> {
    db::studies::by_study_id(conn, id)
        .await?
        .map(Study::from_row)
        .transpose()
}

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
    status: StudyStatus,
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
    add_stimuli(conn, study_id, set).await?;
    Ok(study_id)
}

/// Records the set's images (already written to the store) and inserts its units, exemplars and
/// trials into a study, in the caller's transaction.
pub async fn add_stimuli(
    conn: &mut PgConnection,
    study_id: i64,
    set: &StimulusSet,
) -> sqlx::Result<()> {
    let images: Vec<_> = set.images.iter().map(|i| i.row()).collect();
    db::images::insert_many(conn, &images).await?;
    insert_stimuli(conn, study_id, set).await
}

async fn insert_stimuli(
    conn: &mut PgConnection,
    study_id: i64,
    set: &StimulusSet,
) -> sqlx::Result<()> {
    let mut unit_ids = Vec::with_capacity(set.units.len());
    for unit in &set.units {
        let row = NewUnit {
            model: &unit.model,
            tap: &unit.tap,
            basis: &unit.basis,
            index: unit.index,
            vector: unit.vector.as_deref(),
            ii: unit.ii,
            explained_variance: unit.explained_variance,
        };
        unit_ids.push(db::trials::insert_unit(conn, study_id, &row).await?);
    }
    let exemplars: Vec<NewExemplar> = set
        .exemplars
        .iter()
        .map(|e| NewExemplar {
            unit_id: unit_ids[e.unit],
            side: e.side,
            rank: e.rank,
            sha256: &e.sha256,
            activation: e.activation,
        })
        .collect();
    db::trials::insert_exemplars(conn, &exemplars).await?;
    for trial in &set.trials {
        let row = NewTrial {
            unit_id: unit_ids[trial.unit],
            kind: trial.kind,
            condition: &trial.condition,
            batch: trial.batch,
            max_query: &trial.max_query,
            min_query: &trial.min_query,
            max_refs: &trial.max_refs,
            min_refs: &trial.min_refs,
        };
        db::trials::insert_trial(conn, study_id, &row).await?;
    }
    Ok(())
}
