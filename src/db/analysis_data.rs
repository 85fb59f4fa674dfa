//! The facts an analysis starts from: main units, valid main responses, and observers' judgments of
//! main trials.
//!
//! A unit is a *main* unit when it has main trials (practice and catch units are held out of the
//! main pool). A response is *valid* when it answers a main trial in a session that completed and
//! was not excluded.

use sqlx::PgConnection;

/// A main unit, with its interpretability index where the schema has one.
#[derive(Debug, Clone)]
pub struct UnitRow {
    pub id: i64,
    pub model: String,
    pub tap: String,
    pub basis: String,
    pub unit_index: i32,
    pub ii: Option<f64>,
}

/// A valid main response: its unit, session, trial and condition, and whether it was right.
#[derive(Debug, Clone)]
pub struct ResponseRow {
    pub unit_id: i64,
    pub session_id: i64,
    pub trial_id: i64,
    pub condition: String,
    pub correct: bool,
    pub max_first: bool,
}

/// An observer's judgment of a main trial.
#[derive(Debug, Clone)]
pub struct JudgmentRow {
    pub observer: String,
    pub trial_id: i64,
    pub unit_id: i64,
    pub score: f64,
    pub correct: f64,
}

/// The study's main units, with their interpretability index when the schema has one.
pub async fn units(conn: &mut PgConnection, study_id: i64) -> sqlx::Result<Vec<UnitRow>> {
    let rows = sqlx::query!(
        "SELECT id, model, tap, basis, unit_index FROM units u
         WHERE study_id = $1
           AND EXISTS (SELECT 1 FROM trials t WHERE t.unit_id = u.id AND t.kind = 'main')
         ORDER BY id",
        study_id
    )
    .fetch_all(&mut *conn)
    .await?;
    let ii = interpretability_indices(conn, study_id).await?;
    Ok(rows
        .into_iter()
        .map(|r| UnitRow {
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

/// Valid main responses.
pub async fn responses(conn: &mut PgConnection, study_id: i64) -> sqlx::Result<Vec<ResponseRow>> {
    sqlx::query_as!(
        ResponseRow,
        r#"SELECT t.unit_id, r.session_id, t.id AS trial_id, t.condition, r.correct, a.max_first
           FROM responses r
           JOIN sessions s ON s.id = r.session_id
           JOIN assignments a ON a.session_id = r.session_id AND a.position = r.position
           JOIN trials t ON t.id = a.trial_id
           WHERE s.study_id = $1 AND t.kind = 'main' AND s.stage = 'complete' AND NOT s.excluded
           ORDER BY r.session_id, r.position"#,
        study_id
    )
    .fetch_all(conn)
    .await
}

/// The judgments of the study's main trials by `observers`.
pub async fn judgments(
    conn: &mut PgConnection,
    study_id: i64,
    observers: &[String],
) -> sqlx::Result<Vec<JudgmentRow>> {
    sqlx::query_as!(
        JudgmentRow,
        r#"SELECT j.observer, t.id AS trial_id, t.unit_id, j.score, j.correct
           FROM judgments j JOIN trials t ON t.id = j.trial_id
           WHERE t.study_id = $1 AND t.kind = 'main' AND j.observer = ANY($2)
           ORDER BY j.observer, t.id"#,
        study_id,
        observers
    )
    .fetch_all(conn)
    .await
}

/// Main units that also carry practice or catch trials: studies built before practice and catch units
/// were held out have them, and their accuracy is biased (practice gives feedback on them).
pub async fn units_also_practice_or_catch(
    conn: &mut PgConnection,
    study_id: i64,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM units u
           WHERE u.study_id = $1
             AND EXISTS (SELECT 1 FROM trials t WHERE t.unit_id = u.id AND t.kind = 'main')
             AND EXISTS (SELECT 1 FROM trials t WHERE t.unit_id = u.id AND t.kind <> 'main')"#,
        study_id
    )
    .fetch_one(conn)
    .await
}
