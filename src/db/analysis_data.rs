//! The facts an analysis starts from: units, valid main responses with the observer's evidence, and
//! the observer's judgments of main trials.
//!
//! A response is *valid* when it answers a main trial in a session that completed and was not excluded.

use sqlx::PgConnection;

use crate::analysis::report::{ResponseFact, TrialJudgment, UnitInfo};

/// The study's units, with their interpretability index when the schema has one.
pub async fn units(conn: &mut PgConnection, study_id: i64) -> sqlx::Result<Vec<UnitInfo>> {
    let rows = sqlx::query!(
        "SELECT id, model, tap, basis, unit_index FROM units WHERE study_id = $1 ORDER BY id",
        study_id
    )
    .fetch_all(&mut *conn)
    .await?;
    let ii = interpretability_indices(conn, study_id).await?;
    Ok(rows
        .into_iter()
        .map(|r| UnitInfo {
            id: r.id,
            ii: ii.iter().find(|(id, _)| *id == r.id).map(|(_, v)| *v),
            model: r.model,
            tap: r.tap,
            basis: r.basis,
            unit_index: r.unit_index,
        })
        .collect())
}

/// `units.ii` comes with the stimuli builder's migration; until a database has it, units have no II.
/// Checked at run time so this file compiles against either schema.
async fn interpretability_indices(
    conn: &mut PgConnection,
    study_id: i64,
) -> sqlx::Result<Vec<(i64, f64)>> {
    let present: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns
                        WHERE table_schema = current_schema() AND table_name = 'units'
                          AND column_name = 'ii')",
    )
    .fetch_one(&mut *conn)
    .await?;
    if !present {
        return Ok(Vec::new());
    }
    sqlx::query_as("SELECT id, ii::float8 FROM units WHERE study_id = $1 AND ii IS NOT NULL")
        .bind(study_id)
        .fetch_all(conn)
        .await
}

/// Valid main responses, each with the observer's evidence s_t on its trial (if scored).
pub async fn responses(
    conn: &mut PgConnection,
    study_id: i64,
    observer: &str,
) -> sqlx::Result<Vec<ResponseFact>> {
    let rows = sqlx::query!(
        r#"SELECT t.unit_id, t.condition, r.correct, j.score AS "score?"
           FROM responses r
           JOIN sessions s ON s.id = r.session_id
           JOIN assignments a ON a.session_id = r.session_id AND a.position = r.position
           JOIN trials t ON t.id = a.trial_id
           LEFT JOIN judgments j ON j.trial_id = t.id AND j.observer = $2
           WHERE s.study_id = $1 AND t.kind = 'main' AND s.stage = 'complete' AND NOT s.excluded
           ORDER BY r.session_id, r.position"#,
        study_id,
        observer
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| ResponseFact {
            unit_id: r.unit_id,
            condition: r.condition,
            correct: r.correct,
            score: r.score,
        })
        .collect())
}

/// The observer's judgments of the study's main trials.
pub async fn judgments(
    conn: &mut PgConnection,
    study_id: i64,
    observer: &str,
) -> sqlx::Result<Vec<TrialJudgment>> {
    let rows = sqlx::query!(
        r#"SELECT t.unit_id, j.score, j.correct
           FROM judgments j JOIN trials t ON t.id = j.trial_id
           WHERE t.study_id = $1 AND t.kind = 'main' AND j.observer = $2
           ORDER BY t.id"#,
        study_id,
        observer
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| TrialJudgment {
            unit_id: r.unit_id,
            score: r.score,
            correct: r.correct,
        })
        .collect())
}
