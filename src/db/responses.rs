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
