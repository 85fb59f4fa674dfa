use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct StoredResponse {
    pub response_id: Uuid,
    pub session_id: i64,
    pub position: i32,
    pub chosen: i16,
    pub confidence: i16,
    pub reply: serde_json::Value,
}

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

pub async fn by_id(
    conn: &mut PgConnection,
    response_id: Uuid,
) -> sqlx::Result<Option<StoredResponse>> {
    sqlx::query_as!(
        StoredResponse,
        "SELECT response_id, session_id, position, chosen, confidence, reply FROM responses WHERE response_id = $1",
        response_id
    )
    .fetch_optional(conn)
    .await
}

pub async fn exists_at(
    conn: &mut PgConnection,
    session_id: i64,
    position: i32,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM responses WHERE session_id = $1 AND position = $2) AS "exists!""#,
        session_id,
        position
    )
    .fetch_one(conn)
    .await
}

/// Stores the response; its reply is set by `set_reply` in the same transaction.
pub async fn insert(conn: &mut PgConnection, r: &NewResponse) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO responses (response_id, session_id, position, chosen, correct, confidence, rt_ms, client_at, reply)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'null')",
        r.response_id,
        r.session_id,
        r.position,
        r.chosen,
        r.correct,
        r.confidence,
        r.rt_ms,
        r.client_at
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// The reply the sender gets, now and on every retry of the same response id.
pub async fn set_reply(
    conn: &mut PgConnection,
    response_id: Uuid,
    reply: &serde_json::Value,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE responses SET reply = $2 WHERE response_id = $1",
        response_id,
        reply
    )
    .execute(conn)
    .await
    .map(|_| ())
}
