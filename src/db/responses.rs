use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

pub struct NewResponse {
    pub response_id: Uuid,
    pub session_id: i64,
    pub position: i32,
    pub chosen: i16,
    pub correct: bool,
    pub confidence: i16,
    pub rt_ms: i32,
    pub client_at: Option<DateTime<Utc>>,
}

/// What a participant sent for a trial.
pub struct Answered {
    pub response_id: Uuid,
    pub position: i32,
    pub chosen: i16,
    pub confidence: i16,
    pub rt_ms: i32,
    pub client_at: Option<DateTime<Utc>>,
}

/// Stores the response with the reply its sender gets, now and on every retry of the same id.
pub async fn insert(
    conn: &mut PgConnection,
    r: &NewResponse,
    reply: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO responses (response_id, session_id, position, chosen, correct, confidence, rt_ms, client_at, reply)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        r.response_id,
        r.session_id,
        r.position,
        r.chosen,
        r.correct,
        r.confidence,
        r.rt_ms,
        r.client_at,
        reply
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// The answer to a session's current trial, as one autocommitted statement: checked against the
/// session of `token` and stored with its reply when its session is at a stage that takes answers,
/// `position` is the first unanswered trial of the block, the answer does not end the block and its id
/// is new. Returns the stored reply; `None` when nothing was stored (an error, a replay, a race or the
/// end of a block), which the locked path then sorts out. The reply is the one that path would give:
/// feedback in practice or when the study gives it, the block's next unanswered position, the stage.
pub async fn insert_current(
    conn: &mut PgConnection,
    token: &str,
    r: &Answered,
) -> sqlx::Result<Option<serde_json::Value>> {
    sqlx::query_scalar!(
        r#"WITH block AS (
             SELECT s.id, s.stage, coalesce((st.config->>'feedback')::boolean, false) AS feedback,
                    a.max_first, a.position, r.response_id AS answered
             FROM sessions s
             JOIN studies st ON st.id = s.study_id
             JOIN assignments a ON a.session_id = s.id
             LEFT JOIN responses r ON r.session_id = a.session_id AND r.position = a.position
             WHERE s.token = $1 AND CASE s.stage
               WHEN 'practice' THEN a.position >= s.main_total AND a.attempt = s.practice_attempts
               WHEN 'trials' THEN a.position < s.main_total AND a.attempt = 0
               ELSE false END
           ), current AS (
             SELECT b.id, b.stage, b.feedback, (($4::smallint = 0) = b.max_first) AS correct,
                    (SELECT min(n.position) FROM block n WHERE n.answered IS NULL AND n.position > $2) AS following
             FROM block b
             WHERE b.position = $2
               AND b.position = (SELECT min(e.position) FROM block e WHERE e.answered IS NULL)
               AND (SELECT count(*) FROM block u WHERE u.answered IS NULL) > 1
           )
           INSERT INTO responses (response_id, session_id, position, chosen, correct, confidence, rt_ms, client_at, reply)
           SELECT $3, c.id, $2, $4, c.correct, $5, $6, $7,
                  jsonb_build_object(
                    'correct', CASE WHEN c.stage = 'practice' OR c.feedback THEN c.correct END,
                    'next_position', c.following, 'stage', c.stage, 'practice_round', NULL)
           FROM current c
           ON CONFLICT DO NOTHING
           RETURNING reply"#,
        token,
        r.position,
        r.response_id,
        r.chosen,
        r.confidence,
        r.rt_ms,
        r.client_at
    )
    .fetch_optional(conn)
    .await
}

/// A checked answer, ready to store with its reply.
pub struct Checked {
    pub response: NewResponse,
    pub reply: serde_json::Value,
}

/// Stores many checked answers in one autocommitted statement; returns the response ids stored. A row
/// whose id or (session, position) is taken is skipped, not an error.
pub async fn insert_many(conn: &mut PgConnection, rows: &[&Checked]) -> sqlx::Result<Vec<Uuid>> {
    let ids: Vec<Uuid> = rows.iter().map(|c| c.response.response_id).collect();
    let sessions: Vec<i64> = rows.iter().map(|c| c.response.session_id).collect();
    let positions: Vec<i32> = rows.iter().map(|c| c.response.position).collect();
    let chosen: Vec<i16> = rows.iter().map(|c| c.response.chosen).collect();
    let correct: Vec<bool> = rows.iter().map(|c| c.response.correct).collect();
    let confidence: Vec<i16> = rows.iter().map(|c| c.response.confidence).collect();
    let rt_ms: Vec<i32> = rows.iter().map(|c| c.response.rt_ms).collect();
    let client_at: Vec<Option<DateTime<Utc>>> = rows.iter().map(|c| c.response.client_at).collect();
    let replies: Vec<serde_json::Value> = rows.iter().map(|c| c.reply.clone()).collect();
    sqlx::query_scalar!(
        r#"INSERT INTO responses (response_id, session_id, position, chosen, correct, confidence, rt_ms, client_at, reply)
           SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::int[], $4::smallint[], $5::bool[], $6::smallint[],
                                $7::int[], $8::timestamptz[], $9::jsonb[])
           ON CONFLICT DO NOTHING
           RETURNING response_id"#,
        &ids,
        &sessions,
        &positions,
        &chosen,
        &correct,
        &confidence,
        &rt_ms,
        &client_at as &[Option<DateTime<Utc>>],
        &replies
    )
    .fetch_all(conn)
    .await
}
