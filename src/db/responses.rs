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

/// A checked answer, ready to store with its reply.
pub struct Checked {
    pub response: NewResponse,
    pub reply: serde_json::Value,
}

/// Stores many checked answers in one autocommitted statement; returns the response ids stored. A row
/// whose id or (session, position) is taken is skipped, not an error.
///
/// The rows go first as a plain insert, which stores all of them or none. Only when one is taken (a
/// retry racing its first copy, another process's answer) are they sent again with `ON CONFLICT DO
/// NOTHING`, whose speculative insertion costs every row more: about a fifth of the statement's time.
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
    let all = sqlx::query!(
        r#"INSERT INTO responses (response_id, session_id, position, chosen, correct, confidence, rt_ms, client_at, reply)
           SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::int[], $4::smallint[], $5::bool[], $6::smallint[],
                                $7::int[], $8::timestamptz[], $9::jsonb[])"#,
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
    .execute(&mut *conn)
    .await;
    match all {
        Ok(_) => return Ok(ids),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {}
        Err(e) => return Err(e),
    }
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
