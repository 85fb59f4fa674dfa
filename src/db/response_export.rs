//! The rows of the long per-response table (`responses.csv`), read as a stream.

use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use sqlx::PgPool;
use uuid::Uuid;

pub struct ResponseRow {
    pub session_id: i64,
    pub token: String,
    pub source: String,
    pub session_excluded: bool,
    pub session_stage: String,
    pub position: i32,
    pub attempt: i32,
    pub max_first: bool,
    pub kind: String,
    pub condition: String,
    pub batch: i32,
    pub model: String,
    pub tap: String,
    pub basis: String,
    pub unit_index: i32,
    pub chosen: i16,
    pub correct: bool,
    pub confidence: i16,
    pub rt_ms: i32,
    pub client_at: Option<DateTime<Utc>>,
    pub server_at: DateTime<Utc>,
    pub response_id: Uuid,
}

/// Every response of the study, excluded sessions included (they are flagged), by session and position.
pub fn rows(pool: &PgPool, study_id: i64) -> BoxStream<'_, sqlx::Result<ResponseRow>> {
    sqlx::query_as!(
        ResponseRow,
        r#"SELECT s.id AS session_id, s.token, s.source, s.excluded AS session_excluded,
                  s.stage AS session_stage, r.position, a.attempt, a.max_first, t.kind, t.condition,
                  t.batch, u.model, u.tap, u.basis, u.unit_index, r.chosen, r.correct, r.confidence,
                  r.rt_ms, r.client_at, r.server_at, r.response_id
           FROM responses r
           JOIN sessions s ON s.id = r.session_id
           JOIN assignments a ON a.session_id = r.session_id AND a.position = r.position
           JOIN trials t ON t.id = a.trial_id
           JOIN units u ON u.id = t.unit_id
           WHERE s.study_id = $1
           ORDER BY s.id, r.position"#,
        study_id
    )
    .fetch(pool)
}
