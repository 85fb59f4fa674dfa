//! Sessions and their assignments (the trials a session shows, by position). A session's current block
//! is defined once, by the SQL function `in_current_block` (migration 0009).

use sqlx::PgConnection;

use crate::states::{Stage, TrialKind};

#[derive(Debug, Clone)]
pub struct Session {
    pub id: i64,
    pub token: String,
    pub study_id: i64,
    pub stage: Stage,
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

/// Counts a refused start with the external id of an existing session; `false` if there is none.
pub async fn refuse_start(
    conn: &mut PgConnection,
    study_id: i64,
    external_id_hash: &str,
) -> sqlx::Result<bool> {
    let updated = sqlx::query!(
        "UPDATE sessions SET refused_starts = refused_starts + 1, last_refused_at = now()
         WHERE study_id = $1 AND external_id_hash = $2",
        study_id,
        external_id_hash
    )
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() > 0)
}

/// The session of `token`, locked for the rest of the transaction so its answers are taken one at a time.
pub async fn by_token_for_update(
    conn: &mut PgConnection,
    token: &str,
) -> sqlx::Result<Option<Session>> {
    sqlx::query_as!(
        Session,
        r#"SELECT id, token, study_id, stage AS "stage: Stage", main_total, practice_attempts, completion_code
         FROM sessions WHERE token = $1 FOR UPDATE"#,
        token
    )
    .fetch_optional(conn)
    .await
}

pub async fn by_token(conn: &mut PgConnection, token: &str) -> sqlx::Result<Option<Session>> {
    sqlx::query_as!(
        Session,
        r#"SELECT id, token, study_id, stage AS "stage: Stage", main_total, practice_attempts, completion_code
         FROM sessions WHERE token = $1"#,
        token
    )
    .fetch_optional(conn)
    .await
}

/// Moves to `stage`, stamping the time the previous stage ended.
pub async fn advance(conn: &mut PgConnection, session_id: i64, stage: Stage) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE sessions SET
            consented_at = CASE WHEN stage = 'consent' THEN now() ELSE consented_at END,
            instructions_done_at = CASE WHEN stage = 'instructions' THEN now() ELSE instructions_done_at END,
            practice_done_at = CASE WHEN stage = 'practice' THEN now() ELSE practice_done_at END,
            trials_done_at = CASE WHEN stage = 'trials' THEN now() ELSE trials_done_at END,
            stage = $2
         WHERE id = $1",
        session_id,
        stage.as_str()
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

/// Counts a new practice round: its number (1 for the first) and the position after the session's last
/// assignment, where the round starts.
pub async fn next_practice_round(
    conn: &mut PgConnection,
    session_id: i64,
) -> sqlx::Result<(i32, i32)> {
    let row = sqlx::query!(
        r#"UPDATE sessions SET practice_attempts = practice_attempts + 1 WHERE id = $1
           RETURNING practice_attempts,
             (SELECT coalesce(max(a.position) + 1, 0) FROM assignments a WHERE a.session_id = $1) AS "end!""#,
        session_id
    )
    .fetch_one(conn)
    .await?;
    Ok((row.practice_attempts, row.end))
}

/// Records consent of the session of `token` if it is at the consent stage; returns its new stage.
pub async fn consent(conn: &mut PgConnection, token: &str) -> sqlx::Result<Option<Stage>> {
    sqlx::query_scalar!(
        r#"UPDATE sessions SET consented_at = now(), stage = 'instructions'
           WHERE token = $1 AND stage = 'consent'
           RETURNING stage AS "stage: Stage""#,
        token
    )
    .fetch_optional(conn)
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

/// A session's scheduled trial: the trial and whether its max query is shown first (on top).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub trial_id: i64,
    pub max_first: bool,
}

/// A main or catch trial with the number of sessions (not excluded) it was assigned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrialLoad {
    pub trial_id: i64,
    pub unit_id: i64,
    pub served: i64,
}

/// A trial as a session shows it.
#[derive(Debug, Clone)]
pub struct AssignedTrial {
    pub position: i32,
    pub attempt: i32,
    pub max_first: bool,
    pub kind: TrialKind,
    pub max_query: String,
    pub min_query: String,
    pub max_refs: Vec<String>,
    pub min_refs: Vec<String>,
}

/// The first unanswered main trial (positions below `main_total`) of a session.
pub async fn first_unanswered_main(
    conn: &mut PgConnection,
    session_id: i64,
    main_total: i32,
) -> sqlx::Result<Option<i32>> {
    sqlx::query_scalar!(
        "SELECT a.position FROM assignments a
         WHERE a.session_id = $1 AND a.position < $2 AND a.attempt = 0
           AND NOT EXISTS (SELECT 1 FROM responses r WHERE r.session_id = a.session_id AND r.position = a.position)
         ORDER BY a.position
         LIMIT 1",
        session_id,
        main_total
    )
    .fetch_optional(conn)
    .await
}

/// The number of answered main trials (positions below `main_total`) of a session.
pub async fn main_answered(
    conn: &mut PgConnection,
    session_id: i64,
    main_total: i32,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "answered!" FROM responses WHERE session_id = $1 AND position < $2"#,
        session_id,
        main_total
    )
    .fetch_one(conn)
    .await
}

/// What a finished session did, as the exclusion rules need it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionSummary {
    pub catch_total: i64,
    pub catch_correct: i64,
    /// Main and catch answers that chose the query shown first / second.
    pub chose_first: i64,
    pub chose_second: i64,
    pub instructions_secs: Option<f64>,
    pub total_secs: Option<f64>,
    pub practice_attempts: i64,
    /// Main answers sooner than the button lock allows after the one before them.
    pub fast_answers: i64,
    pub lock_ms: i64,
}

/// What the exclusion rules need to know of a session.
pub async fn exclusion_summary(
    conn: &mut PgConnection,
    session_id: i64,
    lock_ms: i64,
) -> sqlx::Result<SessionSummary> {
    let row = sqlx::query!(
        r#"SELECT
             count(r.response_id) FILTER (WHERE t.kind = 'catch') AS "catch_total!",
             count(r.response_id) FILTER (WHERE t.kind = 'catch' AND r.correct) AS "catch_correct!",
             count(r.response_id) FILTER (WHERE t.kind IN ('main', 'catch') AND r.chosen = 0) AS "chose_first!",
             count(r.response_id) FILTER (WHERE t.kind IN ('main', 'catch') AND r.chosen = 1) AS "chose_second!",
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
    .fetch_one(&mut *conn)
    .await?;
    // An answer sooner than the lock after the one before it (or after the instructions, for the
    // first): the page fetches a trial only once the previous answer is stored, then locks the buttons.
    let fast_answers = sqlx::query_scalar!(
        r#"SELECT count(*) AS "fast!"
           FROM (
             SELECT r.position, r.rt_ms, r.server_at,
                    lag(r.server_at) OVER (ORDER BY r.server_at, r.position) AS previous
             FROM responses r WHERE r.session_id = $1
           ) r
           JOIN sessions s ON s.id = $1
           WHERE r.position < s.main_total
             AND (r.rt_ms < $2::bigint
                  OR r.server_at - coalesce(r.previous, s.instructions_done_at)
                     < make_interval(secs => $2::bigint / 1000.0))"#,
        session_id,
        lock_ms
    )
    .fetch_one(conn)
    .await?;
    Ok(SessionSummary {
        catch_total: row.catch_total,
        catch_correct: row.catch_correct,
        chose_first: row.chose_first,
        chose_second: row.chose_second,
        instructions_secs: row.instructions_secs,
        total_secs: row.total_secs,
        practice_attempts: i64::from(row.practice_attempts),
        fast_answers,
        lock_ms,
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

/// Locks the session of `token` for the rest of the transaction; its answers are taken one at a time.
pub async fn lock(conn: &mut PgConnection, token: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!("SELECT id FROM sessions WHERE token = $1 FOR UPDATE", token)
        .fetch_optional(conn)
        .await
}

/// Everything an answer at `position` is checked against, in one round trip. The block is the part of
/// the session its stage is in: the current practice round, or the main trials.
#[derive(Debug)]
pub struct AnswerContext {
    pub stage: Stage,
    pub main_total: i32,
    pub practice_attempts: i32,
    pub study_id: i64,
    pub config: serde_json::Value,
    /// Whether the max query is shown first at `position`; `None` if nothing is assigned there.
    pub max_first: Option<bool>,
    pub answered: bool,
    pub block_assigned: i64,
    pub block_answered: i64,
    pub block_correct: i64,
    /// The block's first unanswered position, and the first one after `position`.
    pub expected: Option<i32>,
    pub following: Option<i32>,
    /// A response stored earlier under the same id.
    pub stored: Option<StoredResponse>,
}

/// A stored response as a retry of it is checked against: its session, position, choice, confidence
/// and the reply it got.
#[derive(Debug)]
pub struct StoredResponse {
    pub session_id: i64,
    pub position: i32,
    pub chosen: i16,
    pub confidence: i16,
    pub reply: serde_json::Value,
}

pub async fn answer_context(
    conn: &mut PgConnection,
    session_id: i64,
    position: i32,
    response_id: uuid::Uuid,
) -> sqlx::Result<AnswerContext> {
    let row = sqlx::query!(
        r#"SELECT s.stage AS "stage: Stage", s.main_total, s.practice_attempts, s.study_id, st.config,
             (SELECT a.max_first FROM assignments a WHERE a.session_id = s.id AND a.position = $2) AS max_first,
             EXISTS (SELECT 1 FROM responses r WHERE r.session_id = s.id AND r.position = $2) AS "answered!",
             b.assigned AS "assigned!", b.answered AS "block_answered!", b.correct AS "correct!",
             b.expected, b.following,
             x.session_id AS "stored_session?", x.position AS "stored_position?", x.chosen AS "stored_chosen?",
             x.confidence AS "stored_confidence?", x.reply AS "stored_reply?"
           FROM sessions s
           JOIN studies st ON st.id = s.study_id
           CROSS JOIN LATERAL (
             SELECT count(*) AS assigned, count(r.response_id) AS answered,
                    count(*) FILTER (WHERE r.correct) AS correct,
                    min(a.position) FILTER (WHERE r.response_id IS NULL) AS expected,
                    min(a.position) FILTER (WHERE r.response_id IS NULL AND a.position > $2) AS following
             FROM assignments a
             LEFT JOIN responses r ON r.session_id = a.session_id AND r.position = a.position
             WHERE a.session_id = s.id
               AND in_current_block(s.stage, s.main_total, s.practice_attempts, a.position, a.attempt)
           ) b
           LEFT JOIN responses x ON x.response_id = $3
           WHERE s.id = $1"#,
        session_id,
        position,
        response_id
    )
    .fetch_one(conn)
    .await?;
    let stored = match (
        row.stored_session,
        row.stored_position,
        row.stored_chosen,
        row.stored_confidence,
        row.stored_reply,
    ) {
        (Some(session_id), Some(position), Some(chosen), Some(confidence), Some(reply)) => {
            Some(StoredResponse {
                session_id,
                position,
                chosen,
                confidence,
                reply,
            })
        }
        _ => None,
    };
    Ok(AnswerContext {
        stage: row.stage,
        main_total: row.main_total,
        practice_attempts: row.practice_attempts,
        study_id: row.study_id,
        config: row.config,
        max_first: row.max_first,
        answered: row.answered,
        block_assigned: row.assigned,
        block_answered: row.block_answered,
        block_correct: row.correct,
        expected: row.expected,
        following: row.following,
        stored,
    })
}

/// The session's next trial in its current block, with its study's configuration and main-block progress.
#[derive(Debug)]
pub struct NextTrial {
    pub session_id: i64,
    pub stage: Stage,
    pub main_total: i32,
    pub config: serde_json::Value,
    pub answered: i64,
    pub trial: Option<AssignedTrial>,
}

pub async fn next_trial(conn: &mut PgConnection, token: &str) -> sqlx::Result<Option<NextTrial>> {
    let row = sqlx::query!(
        r#"SELECT s.id AS session_id, s.stage AS "stage: Stage", s.main_total, st.config,
             (SELECT count(*) FROM responses r WHERE r.session_id = s.id AND r.position < s.main_total) AS "answered!",
             n.position AS "position?", n.attempt AS "attempt?", n.max_first AS "max_first?", t.kind AS "kind?: TrialKind",
             t.max_query AS "max_query?", t.min_query AS "min_query?", t.max_refs AS "max_refs?",
             t.min_refs AS "min_refs?"
           FROM sessions s
           JOIN studies st ON st.id = s.study_id
           LEFT JOIN LATERAL (
             SELECT a.position, a.attempt, a.max_first, a.trial_id FROM assignments a
             WHERE a.session_id = s.id
               AND in_current_block(s.stage, s.main_total, s.practice_attempts, a.position, a.attempt)
               AND NOT EXISTS (SELECT 1 FROM responses r WHERE r.session_id = a.session_id AND r.position = a.position)
             ORDER BY a.position LIMIT 1
           ) n ON true
           LEFT JOIN trials t ON t.id = n.trial_id
           WHERE s.token = $1"#,
        token
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| {
        let trial = match (
            r.position,
            r.attempt,
            r.max_first,
            r.kind,
            r.max_query,
            r.min_query,
            r.max_refs,
            r.min_refs,
        ) {
            (
                Some(position),
                Some(attempt),
                Some(max_first),
                Some(kind),
                Some(max_query),
                Some(min_query),
                Some(max_refs),
                Some(min_refs),
            ) => Some(AssignedTrial {
                position,
                attempt,
                max_first,
                kind,
                max_query,
                min_query,
                max_refs,
                min_refs,
            }),
            _ => None,
        };
        NextTrial {
            session_id: r.session_id,
            stage: r.stage,
            main_total: r.main_total,
            config: r.config,
            answered: r.answered,
            trial,
        }
    }))
}

/// The trial at `position` of the session of `token`, whatever its block.
#[derive(Debug)]
pub struct TrialAt {
    pub session_id: i64,
    pub max_first: bool,
    pub max_query: String,
    pub min_query: String,
    pub max_refs: Vec<String>,
    pub min_refs: Vec<String>,
}

pub async fn trial_at(
    conn: &mut PgConnection,
    token: &str,
    position: i32,
) -> sqlx::Result<Option<TrialAt>> {
    sqlx::query_as!(
        TrialAt,
        "SELECT s.id AS session_id, a.max_first, t.max_query, t.min_query, t.max_refs, t.min_refs
         FROM sessions s
         JOIN assignments a ON a.session_id = s.id AND a.position = $2
         JOIN trials t ON t.id = a.trial_id
         WHERE s.token = $1",
        token,
        position
    )
    .fetch_optional(conn)
    .await
}

/// What deleting a participant's session removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    pub assignments: u64,
    pub responses: u64,
}

/// The session of `external_id_hash` in the study, locked for deletion.
pub async fn lock_by_external_id(
    conn: &mut PgConnection,
    study_id: i64,
    external_id_hash: &str,
) -> sqlx::Result<Option<Session>> {
    sqlx::query_as!(
        Session,
        r#"SELECT id, token, study_id, stage AS "stage: Stage", main_total, practice_attempts, completion_code
         FROM sessions WHERE study_id = $1 AND external_id_hash = $2 FOR UPDATE"#,
        study_id,
        external_id_hash
    )
    .fetch_optional(conn)
    .await
}

/// Deletes a session with its responses and assignments (children first, so the counts are exact).
pub async fn delete(conn: &mut PgConnection, session_id: i64) -> sqlx::Result<Deleted> {
    let responses = sqlx::query!("DELETE FROM responses WHERE session_id = $1", session_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    let assignments = sqlx::query!("DELETE FROM assignments WHERE session_id = $1", session_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    sqlx::query!("DELETE FROM sessions WHERE id = $1", session_id)
        .execute(&mut *conn)
        .await?;
    Ok(Deleted {
        assignments,
        responses,
    })
}

/// The main and catch trials of a study with how many sessions that were not excluded had each, in one
/// read: the study's valid sessions' assignments counted by trial.
pub async fn schedule_loads(
    conn: &mut PgConnection,
    study_id: i64,
    release_after_secs: f64,
) -> sqlx::Result<(Vec<TrialLoad>, Vec<TrialLoad>)> {
    // An unfinished session older than `release_after_secs` is abandoned: its units go back.
    let rows = sqlx::query!(
        r#"SELECT t.id, t.unit_id, t.kind AS "kind: TrialKind", coalesce(c.served, 0) AS "served!"
           FROM trials t
           LEFT JOIN (
             SELECT a.trial_id, count(*) AS served
             FROM sessions s JOIN assignments a ON a.session_id = s.id
             WHERE s.study_id = $1 AND NOT s.excluded
               AND (s.stage = 'complete' OR s.created_at > now() - make_interval(secs => $2))
             GROUP BY a.trial_id
           ) c ON c.trial_id = t.id
           WHERE t.study_id = $1 AND t.kind IN ('main', 'catch')
           ORDER BY t.id"#,
        study_id,
        release_after_secs
    )
    .fetch_all(conn)
    .await?;
    let (mut main, mut catch) = (Vec::new(), Vec::new());
    for r in rows {
        let load = TrialLoad {
            trial_id: r.id,
            unit_id: r.unit_id,
            served: r.served,
        };
        if r.kind == TrialKind::Main {
            main.push(load);
        } else {
            catch.push(load);
        }
    }
    Ok((main, catch))
}

/// Assigns the main block (positions from 0) and records its size, in one statement.
pub async fn assign_main(
    conn: &mut PgConnection,
    session_id: i64,
    slots: &[Slot],
) -> sqlx::Result<()> {
    let positions: Vec<i32> = (0..slots.len() as i32).collect();
    let trials: Vec<i64> = slots.iter().map(|s| s.trial_id).collect();
    let max_first: Vec<bool> = slots.iter().map(|s| s.max_first).collect();
    sqlx::query!(
        "WITH assigned AS (
           INSERT INTO assignments (session_id, position, trial_id, attempt, max_first)
           SELECT $1, p, t, 0, m FROM UNNEST($2::int[], $3::bigint[], $4::bool[]) AS u(p, t, m)
           RETURNING 1
         )
         UPDATE sessions SET main_total = (SELECT count(*) FROM assigned) WHERE id = $1",
        session_id,
        &positions,
        &trials,
        &max_first
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// One assignment of a session's current block (the practice round or the main trials), with its trial.
#[derive(Debug, Clone)]
pub struct BlockRow {
    pub session_id: i64,
    pub stage: Stage,
    pub main_total: i32,
    /// The study, whose configuration is read once per block, not sent with every row.
    pub study_id: i64,
    /// Answered main trials (positions below `main_total`).
    pub main_answered: i64,
    pub position: i32,
    pub attempt: i32,
    pub max_first: bool,
    pub answered: bool,
    pub trial_id: i64,
    pub kind: TrialKind,
    pub max_query: String,
    pub min_query: String,
    pub max_refs: Vec<String>,
    pub min_refs: Vec<String>,
}

/// The current block of the session of `token`, in position order; empty for an unknown token or a
/// session at a stage without trials.
pub async fn current_block(conn: &mut PgConnection, token: &str) -> sqlx::Result<Vec<BlockRow>> {
    sqlx::query_as!(
        BlockRow,
        r#"SELECT s.id AS session_id, s.stage AS "stage: Stage", s.main_total, s.study_id, m.answered AS "main_answered!",
             a.position, a.attempt, a.max_first, r.response_id IS NOT NULL AS "answered!",
             t.id AS trial_id, t.kind AS "kind: TrialKind", t.max_query, t.min_query, t.max_refs, t.min_refs
           FROM sessions s
           CROSS JOIN LATERAL (
             SELECT count(*) AS answered FROM responses mr
             WHERE mr.session_id = s.id AND mr.position < s.main_total
           ) m
           JOIN assignments a ON a.session_id = s.id
               AND in_current_block(s.stage, s.main_total, s.practice_attempts, a.position, a.attempt)
           JOIN trials t ON t.id = a.trial_id
           LEFT JOIN responses r ON r.session_id = a.session_id AND r.position = a.position
           WHERE s.token = $1
           ORDER BY a.position"#,
        token
    )
    .fetch_all(conn)
    .await
}

/// The trials of a session's main block (for returning them to the pool when it is excluded).
pub async fn main_trials(conn: &mut PgConnection, session_id: i64) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!(
        "SELECT trial_id FROM assignments WHERE session_id = $1 AND attempt = 0",
        session_id
    )
    .fetch_all(conn)
    .await
}
