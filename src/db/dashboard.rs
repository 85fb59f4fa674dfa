//! Read-only queries of the admin dashboard: study progress, monitoring figures and trial previews.
//! A response is valid when it answers a main trial in a session that is not excluded.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::PgConnection;

pub struct StudySummary {
    pub id: i64,
    pub slug: String,
    pub title: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub config: Json<serde_json::Value>,
    pub units: i64,
    pub trials: i64,
    pub sessions: i64,
    pub completed: i64,
    pub valid: i64,
}

/// Every study, newest first, with its stimuli and progress counts.
pub async fn studies(conn: &mut PgConnection) -> sqlx::Result<Vec<StudySummary>> {
    sqlx::query_as!(
        StudySummary,
        r#"SELECT s.id, s.slug, s.title, s.status, s.created_at,
                  s.config AS "config: Json<serde_json::Value>",
                  (SELECT count(DISTINCT t.unit_id) FROM trials t
                    WHERE t.study_id = s.id AND t.kind = 'main') AS "units!",
                  (SELECT count(*) FROM trials t WHERE t.study_id = s.id) AS "trials!",
                  (SELECT count(*) FROM sessions x WHERE x.study_id = s.id) AS "sessions!",
                  (SELECT count(*) FROM sessions x
                    WHERE x.study_id = s.id AND x.stage = 'complete' AND NOT x.excluded) AS "completed!",
                  (SELECT count(*) FROM responses r
                     JOIN sessions x ON x.id = r.session_id
                     JOIN assignments a ON a.session_id = r.session_id AND a.position = r.position
                     JOIN trials t ON t.id = a.trial_id
                    WHERE x.study_id = s.id AND NOT x.excluded AND t.kind = 'main') AS "valid!"
           FROM studies s
           ORDER BY s.created_at DESC, s.id DESC"#
    )
    .fetch_all(conn)
    .await
}

/// Trials of a study by kind, and its units with main trials.
pub struct StimulusCounts {
    pub units: i64,
    pub main: i64,
    pub catch: i64,
    pub practice: i64,
    pub images: i64,
}

pub async fn stimulus_counts(
    conn: &mut PgConnection,
    study_id: i64,
) -> sqlx::Result<StimulusCounts> {
    sqlx::query_as!(
        StimulusCounts,
        r#"SELECT count(DISTINCT unit_id) FILTER (WHERE kind = 'main') AS "units!",
                  count(*) FILTER (WHERE kind = 'main') AS "main!",
                  count(*) FILTER (WHERE kind = 'catch') AS "catch!",
                  count(*) FILTER (WHERE kind = 'practice') AS "practice!",
                  (SELECT count(DISTINCT img) FROM trials t2,
                          unnest(t2.max_refs || t2.min_refs || ARRAY[t2.max_query, t2.min_query]) AS img
                    WHERE t2.study_id = $1) AS "images!"
           FROM trials WHERE study_id = $1"#,
        study_id
    )
    .fetch_one(conn)
    .await
}

pub struct SessionCounts {
    pub started: i64,
    pub in_progress: i64,
    pub completed: i64,
    pub excluded: i64,
    pub median_completion_secs: Option<f64>,
}

pub async fn session_counts(conn: &mut PgConnection, study_id: i64) -> sqlx::Result<SessionCounts> {
    sqlx::query_as!(
        SessionCounts,
        r#"SELECT count(*) AS "started!",
                  count(*) FILTER (WHERE stage <> 'complete' AND NOT excluded) AS "in_progress!",
                  count(*) FILTER (WHERE stage = 'complete' AND NOT excluded) AS "completed!",
                  count(*) FILTER (WHERE excluded) AS "excluded!",
                  percentile_cont(0.5) WITHIN GROUP (
                      ORDER BY extract(epoch FROM completed_at - created_at)::float8)
                      FILTER (WHERE completed_at IS NOT NULL AND NOT excluded) AS median_completion_secs
           FROM sessions WHERE study_id = $1"#,
        study_id
    )
    .fetch_one(conn)
    .await
}

pub struct ResponseCounts {
    pub valid: i64,
    pub catch_answered: i64,
    pub catch_correct: i64,
    pub median_rt_ms: Option<f64>,
}

pub async fn response_counts(
    conn: &mut PgConnection,
    study_id: i64,
) -> sqlx::Result<ResponseCounts> {
    sqlx::query_as!(
        ResponseCounts,
        r#"SELECT count(*) FILTER (WHERE t.kind = 'main') AS "valid!",
                  count(*) FILTER (WHERE t.kind = 'catch') AS "catch_answered!",
                  count(*) FILTER (WHERE t.kind = 'catch' AND r.correct) AS "catch_correct!",
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY r.rt_ms::float8)
                      FILTER (WHERE t.kind = 'main') AS median_rt_ms
           FROM responses r
           JOIN sessions s ON s.id = r.session_id
           JOIN assignments a ON a.session_id = r.session_id AND a.position = r.position
           JOIN trials t ON t.id = a.trial_id
           WHERE s.study_id = $1 AND NOT s.excluded"#,
        study_id
    )
    .fetch_one(conn)
    .await
}

pub struct ExclusionReason {
    pub reason: String,
    pub sessions: i64,
}

pub async fn exclusion_reasons(
    conn: &mut PgConnection,
    study_id: i64,
) -> sqlx::Result<Vec<ExclusionReason>> {
    // Each session keeps its checks ({rule, passed, detail}); a reason is a rule that failed.
    sqlx::query_as!(
        ExclusionReason,
        r#"SELECT coalesce(c->>'rule', c #>> '{}') AS "reason!", count(*) AS "sessions!"
           FROM sessions s, jsonb_array_elements(s.exclusion_reasons) AS c
           WHERE s.study_id = $1 AND s.excluded
             AND (jsonb_typeof(c) = 'string' OR NOT coalesce((c->>'passed')::boolean, false))
           GROUP BY 1 ORDER BY 2 DESC, 1"#,
        study_id
    )
    .fetch_all(conn)
    .await
}

pub struct UnitProgress {
    pub model: String,
    pub tap: String,
    pub basis: String,
    pub unit_index: i32,
    /// Main trials of the unit assigned in sessions that are not excluded.
    pub assigned: i64,
    pub valid: i64,
}

pub async fn unit_progress(
    conn: &mut PgConnection,
    study_id: i64,
) -> sqlx::Result<Vec<UnitProgress>> {
    sqlx::query_as!(
        UnitProgress,
        r#"SELECT u.model, u.tap, u.basis, u.unit_index,
                  count(s.id) AS "assigned!", count(r.response_id) AS "valid!"
           FROM units u
           JOIN trials t ON t.unit_id = u.id AND t.kind = 'main'
           LEFT JOIN assignments a ON a.trial_id = t.id
           LEFT JOIN sessions s ON s.id = a.session_id AND NOT s.excluded
           LEFT JOIN responses r ON r.session_id = s.id AND r.position = a.position
           WHERE u.study_id = $1
           GROUP BY u.id
           ORDER BY u.model, u.tap, u.basis, u.unit_index"#,
        study_id
    )
    .fetch_all(conn)
    .await
}

/// A trial with its unit, for the preview.
pub struct PreviewTrial {
    pub id: i64,
    pub kind: String,
    pub condition: String,
    pub batch: i32,
    pub max_query: String,
    pub min_query: String,
    pub max_refs: Vec<String>,
    pub min_refs: Vec<String>,
    pub model: String,
    pub tap: String,
    pub basis: String,
    pub unit_index: i32,
}

/// The `index`-th trial of the study (main trials first), and how many there are.
pub async fn preview_trial(
    conn: &mut PgConnection,
    study_id: i64,
    index: i64,
) -> sqlx::Result<(Option<PreviewTrial>, i64)> {
    let total = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM trials WHERE study_id = $1"#,
        study_id
    )
    .fetch_one(&mut *conn)
    .await?;
    let trial = sqlx::query_as!(
        PreviewTrial,
        "SELECT t.id, t.kind, t.condition, t.batch, t.max_query, t.min_query, t.max_refs, t.min_refs,
                u.model, u.tap, u.basis, u.unit_index
         FROM trials t JOIN units u ON u.id = t.unit_id
         WHERE t.study_id = $1
         ORDER BY CASE t.kind WHEN 'main' THEN 0 WHEN 'catch' THEN 1 ELSE 2 END, t.id
         OFFSET $2 LIMIT 1",
        study_id,
        index
    )
    .fetch_optional(conn)
    .await?;
    Ok((trial, total))
}

pub struct ExcludedSession {
    pub token: String,
    pub completed_at: Option<DateTime<Utc>>,
    pub checks: serde_json::Value,
}

/// The most recently finished excluded sessions with their stored checks.
pub async fn recent_exclusions(
    conn: &mut PgConnection,
    study_id: i64,
    limit: i64,
) -> sqlx::Result<Vec<ExcludedSession>> {
    sqlx::query_as!(
        ExcludedSession,
        r#"SELECT token, completed_at, exclusion_reasons AS checks
           FROM sessions WHERE study_id = $1 AND excluded
           ORDER BY completed_at DESC NULLS LAST, id DESC LIMIT $2"#,
        study_id,
        limit
    )
    .fetch_all(conn)
    .await
}

/// A session whose external id was used again to start: by its participant in another browser, or
/// by someone else who knows the id.
pub struct RefusedStarts {
    pub token: String,
    pub stage: String,
    pub refused_starts: i32,
    pub last_refused_at: Option<DateTime<Utc>>,
}

pub async fn refused_starts(
    conn: &mut PgConnection,
    study_id: i64,
    limit: i64,
) -> sqlx::Result<Vec<RefusedStarts>> {
    sqlx::query_as!(
        RefusedStarts,
        r#"SELECT token, stage, refused_starts, last_refused_at
           FROM sessions WHERE study_id = $1 AND refused_starts > 0
           ORDER BY last_refused_at DESC NULLS LAST, id DESC LIMIT $2"#,
        study_id,
        limit
    )
    .fetch_all(conn)
    .await
}
