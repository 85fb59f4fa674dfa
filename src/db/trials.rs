//! Units, their exemplars and their trials.

use sqlx::PgConnection;

use crate::states::TrialKind;

/// A unit to insert.
pub struct NewUnit<'a> {
    pub model: &'a str,
    pub tap: &'a str,
    pub basis: &'a str,
    pub index: i32,
    pub vector: Option<&'a [f32]>,
    pub ii: Option<f64>,
    pub explained_variance: Option<f64>,
}

/// Inserts a unit of a study (an existing one with the same key is kept); returns its id.
pub async fn insert_unit(
    conn: &mut PgConnection,
    study_id: i64,
    unit: &NewUnit<'_>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        "INSERT INTO units (study_id, model, tap, basis, unit_index, vector, ii, explained_variance)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (study_id, model, tap, basis, unit_index) DO UPDATE SET model = EXCLUDED.model
         RETURNING id",
        study_id,
        unit.model,
        unit.tap,
        unit.basis,
        unit.index,
        unit.vector,
        unit.ii,
        unit.explained_variance
    )
    .fetch_one(conn)
    .await
}

/// One of a unit's most (`max`) or least (`min`) activating images.
pub struct NewExemplar<'a> {
    pub unit_id: i64,
    pub side: &'a str,
    pub rank: i32,
    pub sha256: &'a str,
    pub activation: f32,
}

pub async fn insert_exemplars(
    conn: &mut PgConnection,
    exemplars: &[NewExemplar<'_>],
) -> sqlx::Result<()> {
    if exemplars.is_empty() {
        return Ok(());
    }
    let unit: Vec<i64> = exemplars.iter().map(|e| e.unit_id).collect();
    let side: Vec<&str> = exemplars.iter().map(|e| e.side).collect();
    let rank: Vec<i32> = exemplars.iter().map(|e| e.rank).collect();
    let sha: Vec<&str> = exemplars.iter().map(|e| e.sha256).collect();
    let activation: Vec<f32> = exemplars.iter().map(|e| e.activation).collect();
    sqlx::query!(
        "INSERT INTO exemplars (unit_id, side, rank, sha256, activation)
         SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::int[], $4::text[], $5::real[])",
        &unit,
        &side as &[&str],
        &rank,
        &sha as &[&str],
        &activation
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// A trial to insert; images are SHA-256 keys of the store.
pub struct NewTrial<'a> {
    pub unit_id: i64,
    pub kind: TrialKind,
    pub condition: &'a str,
    pub batch: i32,
    pub max_query: &'a str,
    pub min_query: &'a str,
    pub max_refs: &'a [String],
    pub min_refs: &'a [String],
}

pub async fn insert_trial(
    conn: &mut PgConnection,
    study_id: i64,
    trial: &NewTrial<'_>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO trials (study_id, unit_id, kind, condition, batch, max_query, min_query, max_refs, min_refs)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        study_id,
        trial.unit_id,
        trial.kind.as_str(),
        trial.condition,
        trial.batch,
        trial.max_query,
        trial.min_query,
        trial.max_refs,
        trial.min_refs
    )
    .execute(conn)
    .await
    .map(|_| ())
}

pub async fn ids(
    conn: &mut PgConnection,
    study_id: i64,
    kind: TrialKind,
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!(
        "SELECT id FROM trials WHERE study_id = $1 AND kind = $2 ORDER BY id",
        study_id,
        kind.as_str()
    )
    .fetch_all(conn)
    .await
}
