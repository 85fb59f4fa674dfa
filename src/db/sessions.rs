//! Sessions and their assignments (the trials a session shows, by position).

use sqlx::PgConnection;

use crate::study::schedule::Slot;

#[derive(Debug, Clone)]
pub struct Session {
    pub id: i64,
    pub token: String,
    pub study_id: i64,
    pub stage: String,
    pub main_total: i32,
    pub practice_attempts: i32,
    pub completion_code: Option<String>,
}

/// A new session; `None` when the external id already has a session in this study.
pub async fn insert(
    conn: &mut PgConnection,
    study_id: i64,
    token: &str,
    external_id_hash: Option<&str>,
    source: &str,
    params: &serde_json::Value,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!(
        "INSERT INTO sessions (study_id, token, external_id_hash, source, params, main_total)
         VALUES ($1, $2, $3, $4, $5, 0)
         ON CONFLICT (study_id, external_id_hash) WHERE external_id_hash IS NOT NULL DO NOTHING
         RETURNING id",
        study_id,
        token,
        external_id_hash,
        source,
        params
    )
    .fetch_optional(conn)
    .await
}

pub async fn by_external_id(
    conn: &mut PgConnection,
    study_id: i64,
    external_id_hash: &str,
) -> sqlx::Result<Option<Session>> {
    sqlx::query_as!(
        Session,
        "SELECT id, token, study_id, stage, main_total, practice_attempts, completion_code
         FROM sessions WHERE study_id = $1 AND external_id_hash = $2",
        study_id,
        external_id_hash
    )
    .fetch_optional(conn)
    .await
}

/// The session of `token`, locked for the rest of the transaction so its answers are taken one at a time.
pub async fn by_token_for_update(
    conn: &mut PgConnection,
    token: &str,
) -> sqlx::Result<Option<Session>> {
    sqlx::query_as!(
        Session,
        "SELECT id, token, study_id, stage, main_total, practice_attempts, completion_code
         FROM sessions WHERE token = $1 FOR UPDATE",
        token
    )
    .fetch_optional(conn)
    .await
}

pub async fn by_token(conn: &mut PgConnection, token: &str) -> sqlx::Result<Option<Session>> {
    sqlx::query_as!(
        Session,
        "SELECT id, token, study_id, stage, main_total, practice_attempts, completion_code
         FROM sessions WHERE token = $1",
        token
    )
    .fetch_optional(conn)
    .await
}

/// Moves to `stage`, stamping the time the previous stage ended.
pub async fn advance(conn: &mut PgConnection, session_id: i64, stage: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE sessions SET
            consented_at = CASE WHEN stage = 'consent' THEN now() ELSE consented_at END,
            instructions_done_at = CASE WHEN stage = 'instructions' THEN now() ELSE instructions_done_at END,
            practice_done_at = CASE WHEN stage = 'practice' THEN now() ELSE practice_done_at END,
            trials_done_at = CASE WHEN stage = 'trials' THEN now() ELSE trials_done_at END,
            stage = $2
         WHERE id = $1",
        session_id,
        stage
    )
    .execute(conn)
    .await
    .map(|_| ())
}

pub async fn complete(
    conn: &mut PgConnection,
    session_id: i64,
    code: &str,
    feedback: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE sessions SET stage = 'complete', completed_at = now(), completion_code = $2, feedback = $3
         WHERE id = $1",
        session_id,
        code,
        feedback
    )
    .execute(conn)
    .await
    .map(|_| ())
}

pub async fn set_main_total(
    conn: &mut PgConnection,
    session_id: i64,
    total: i32,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE sessions SET main_total = $2 WHERE id = $1",
        session_id,
        total
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Counts a new practice round and returns its number (1 for the first).
pub async fn next_practice_attempt(conn: &mut PgConnection, session_id: i64) -> sqlx::Result<i32> {
    sqlx::query_scalar!(
        "UPDATE sessions SET practice_attempts = practice_attempts + 1 WHERE id = $1 RETURNING practice_attempts",
        session_id
    )
    .fetch_one(conn)
    .await
}

pub async fn assign(
    conn: &mut PgConnection,
    session_id: i64,
    first_position: i32,
    attempt: i32,
    slots: &[Slot],
) -> sqlx::Result<()> {
    let positions: Vec<i32> = (0..slots.len() as i32)
        .map(|i| first_position + i)
        .collect();
    let trials: Vec<i64> = slots.iter().map(|s| s.trial_id).collect();
    let max_first: Vec<bool> = slots.iter().map(|s| s.max_first).collect();
    sqlx::query!(
        "INSERT INTO assignments (session_id, position, trial_id, attempt, max_first)
         SELECT $1, p, t, $4, m FROM UNNEST($2::int[], $3::bigint[], $5::bool[]) AS u(p, t, m)",
        session_id,
        &positions,
        &trials,
        attempt,
        &max_first
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// A trial as a session shows it.
#[derive(Debug, Clone)]
pub struct AssignedTrial {
    pub position: i32,
    pub attempt: i32,
    pub max_first: bool,
    pub kind: String,
    pub max_query: String,
    pub min_query: String,
    pub max_refs: Vec<String>,
    pub min_refs: Vec<String>,
}

/// The first unanswered assignment with a position in `from..to` of round `attempt` (0 for the main block).
pub async fn next_unanswered(
    conn: &mut PgConnection,
    session_id: i64,
    from: i32,
    to: i32,
    attempt: i32,
) -> sqlx::Result<Option<AssignedTrial>> {
    sqlx::query_as!(
        AssignedTrial,
        "SELECT a.position, a.attempt, a.max_first, t.kind, t.max_query, t.min_query, t.max_refs, t.min_refs
         FROM assignments a
         JOIN trials t ON t.id = a.trial_id
         WHERE a.session_id = $1 AND a.position >= $2 AND a.position < $3 AND a.attempt = $4
           AND NOT EXISTS (SELECT 1 FROM responses r WHERE r.session_id = a.session_id AND r.position = a.position)
         ORDER BY a.position
         LIMIT 1",
        session_id,
        from,
        to,
        attempt
    )
    .fetch_optional(conn)
    .await
}

/// Answered and correct counts among the assignments in `from..to` of round `attempt`, and their number.
pub struct Progress {
    pub assigned: i64,
    pub answered: i64,
    pub correct: i64,
}

pub async fn progress(
    conn: &mut PgConnection,
    session_id: i64,
    from: i32,
    to: i32,
    attempt: i32,
) -> sqlx::Result<Progress> {
    sqlx::query_as!(
        Progress,
        r#"SELECT count(*) AS "assigned!", count(r.response_id) AS "answered!",
                  count(*) FILTER (WHERE r.correct) AS "correct!"
           FROM assignments a
           LEFT JOIN responses r ON r.session_id = a.session_id AND r.position = a.position
           WHERE a.session_id = $1 AND a.position >= $2 AND a.position < $3 AND a.attempt = $4"#,
        session_id,
        from,
        to,
        attempt
    )
    .fetch_one(conn)
    .await
}

/// The position after the last assignment (where a new practice round starts).
pub async fn end_position(conn: &mut PgConnection, session_id: i64) -> sqlx::Result<i32> {
    sqlx::query_scalar!(
        r#"SELECT coalesce(max(position) + 1, 0) AS "end!" FROM assignments WHERE session_id = $1"#,
        session_id
    )
    .fetch_one(conn)
    .await
}

/// Whether the max query is shown first at `position`, or `None` if nothing is assigned there.
pub async fn max_first_at(
    conn: &mut PgConnection,
    session_id: i64,
    position: i32,
) -> sqlx::Result<Option<bool>> {
    sqlx::query_scalar!(
        "SELECT max_first FROM assignments WHERE session_id = $1 AND position = $2",
        session_id,
        position
    )
    .fetch_optional(conn)
    .await
}

/// What the exclusion rules need to know of a session.
pub async fn exclusion_summary(
    conn: &mut PgConnection,
    session_id: i64,
) -> sqlx::Result<crate::study::exclusion::SessionSummary> {
    let row = sqlx::query!(
        r#"SELECT
             count(r.response_id) FILTER (WHERE t.kind = 'catch') AS "catch_total!",
             count(r.response_id) FILTER (WHERE t.kind = 'catch' AND r.correct) AS "catch_correct!",
             count(r.response_id) FILTER (WHERE t.kind = 'main' AND r.chosen = 0) AS "chose_first!",
             count(r.response_id) FILTER (WHERE t.kind = 'main' AND r.chosen = 1) AS "chose_second!",
             extract(epoch FROM s.instructions_done_at - s.consented_at)::float8 AS instructions_secs,
             extract(epoch FROM coalesce(s.completed_at, now()) - s.created_at)::float8 AS total_secs,
             s.practice_attempts
           FROM sessions s
           LEFT JOIN assignments a ON a.session_id = s.id
           LEFT JOIN trials t ON t.id = a.trial_id
           LEFT JOIN responses r ON r.session_id = a.session_id AND r.position = a.position
           WHERE s.id = $1
           GROUP BY s.id"#,
        session_id
    )
    .fetch_one(conn)
    .await?;
    Ok(crate::study::exclusion::SessionSummary {
        catch_total: row.catch_total,
        catch_correct: row.catch_correct,
        chose_first: row.chose_first,
        chose_second: row.chose_second,
        instructions_secs: row.instructions_secs,
        total_secs: row.total_secs,
        practice_attempts: i64::from(row.practice_attempts),
    })
}

pub async fn set_exclusion(
    conn: &mut PgConnection,
    session_id: i64,
    excluded: bool,
    checks: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE sessions SET excluded = $2, exclusion_reasons = $3 WHERE id = $1",
        session_id,
        excluded,
        checks
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Completed sessions of a study, for re-evaluating exclusion after its thresholds changed.
pub async fn completed_ids(conn: &mut PgConnection, study_id: i64) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!(
        "SELECT id FROM sessions WHERE study_id = $1 AND stage = 'complete' ORDER BY id",
        study_id
    )
    .fetch_all(conn)
    .await
}
