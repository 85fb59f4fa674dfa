use sqlx::PgConnection;

use crate::stimuli::{StimulusSet, TrialKind};
use crate::study::schedule::TrialLoad;

/// Inserts the set's units and trials into a study (its images must be recorded already).
pub async fn insert_set(
    conn: &mut PgConnection,
    study_id: i64,
    set: &StimulusSet,
) -> sqlx::Result<()> {
    let mut unit_ids = Vec::with_capacity(set.units.len());
    for unit in &set.units {
        let id = sqlx::query_scalar!(
            "INSERT INTO units (study_id, model, tap, basis, unit_index, vector, ii, explained_variance)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (study_id, model, tap, basis, unit_index) DO UPDATE SET model = EXCLUDED.model
             RETURNING id",
            study_id,
            unit.model,
            unit.tap,
            unit.basis,
            unit.index,
            unit.vector.as_deref(),
            unit.ii,
            unit.explained_variance
        )
        .fetch_one(&mut *conn)
        .await?;
        unit_ids.push(id);
    }
    if !set.exemplars.is_empty() {
        let unit: Vec<i64> = set.exemplars.iter().map(|e| unit_ids[e.unit]).collect();
        let side: Vec<String> = set.exemplars.iter().map(|e| e.side.to_string()).collect();
        let rank: Vec<i32> = set.exemplars.iter().map(|e| e.rank).collect();
        let sha: Vec<String> = set.exemplars.iter().map(|e| e.sha256.clone()).collect();
        let activation: Vec<f32> = set.exemplars.iter().map(|e| e.activation).collect();
        sqlx::query!(
            "INSERT INTO exemplars (unit_id, side, rank, sha256, activation)
             SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::int[], $4::text[], $5::real[])",
            &unit,
            &side,
            &rank,
            &sha,
            &activation
        )
        .execute(&mut *conn)
        .await?;
    }
    for trial in &set.trials {
        sqlx::query!(
            "INSERT INTO trials (study_id, unit_id, kind, condition, batch, max_query, min_query, max_refs, min_refs)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            study_id,
            unit_ids[trial.unit],
            trial.kind.as_str(),
            trial.condition,
            trial.batch,
            trial.max_query,
            trial.min_query,
            &trial.max_refs,
            &trial.min_refs
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Main and catch trials with the number of assignments each had in sessions that were not excluded.
pub async fn loads(
    conn: &mut PgConnection,
    study_id: i64,
    kind: TrialKind,
) -> sqlx::Result<Vec<TrialLoad>> {
    let rows = sqlx::query!(
        r#"SELECT t.id, t.unit_id, count(s.id) AS "served!"
           FROM trials t
           LEFT JOIN assignments a ON a.trial_id = t.id
           LEFT JOIN sessions s ON s.id = a.session_id AND NOT s.excluded
           WHERE t.study_id = $1 AND t.kind = $2
           GROUP BY t.id ORDER BY t.id"#,
        study_id,
        kind.as_str()
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| TrialLoad {
            trial_id: r.id,
            unit_id: r.unit_id,
            served: r.served,
        })
        .collect())
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
