use serde_json::Value;
use sqlx::PgConnection;

use crate::states::{JobKind, JobStatus};

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct JobRow {
    pub id: i64,
    pub kind: JobKind,
    pub status: JobStatus,
    pub payload: Value,
    pub phase: String,
    pub progress: i64,
    pub total: i64,
    pub error: Option<String>,
    pub result: Option<Value>,
    pub cancel_requested: bool,
    pub attempts: i32,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

pub async fn enqueue(conn: &mut PgConnection, kind: JobKind, payload: &Value) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        "INSERT INTO jobs (kind, payload) VALUES ($1, $2) RETURNING id",
        kind.as_str(),
        payload
    )
    .fetch_one(conn)
    .await
}

/// Takes the oldest queued job, or a running one whose worker stopped sending heartbeats
/// (it crashed), for `worker`; other workers skip the locked row.
pub async fn claim(
    conn: &mut PgConnection,
    worker: &str,
    stale_secs: f64,
) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as!(
        JobRow,
        r#"UPDATE jobs SET status = 'running', worker = $1, attempts = attempts + 1,
                started_at = now(), heartbeat_at = now()
         WHERE id = (
             SELECT id FROM jobs
             WHERE status = 'queued'
                OR (status = 'running' AND heartbeat_at < now() - make_interval(secs => $2))
             ORDER BY id
             FOR UPDATE SKIP LOCKED
             LIMIT 1)
         RETURNING id, kind AS "kind: JobKind", status AS "status: JobStatus", payload, phase,
                   progress, total, error, result, cancel_requested, attempts, created_at, finished_at"#,
        worker,
        stale_secs
    )
    .fetch_optional(conn)
    .await
}

/// Records progress and the heartbeat; returns whether cancellation was requested.
pub async fn heartbeat(
    conn: &mut PgConnection,
    id: i64,
    phase: &str,
    progress: i64,
    total: i64,
) -> sqlx::Result<bool> {
    let cancel = sqlx::query_scalar!(
        "UPDATE jobs SET phase = $2, progress = $3, total = $4, heartbeat_at = now()
         WHERE id = $1 RETURNING cancel_requested",
        id,
        phase,
        progress,
        total
    )
    .fetch_optional(conn)
    .await?;
    Ok(cancel.unwrap_or(true))
}

pub async fn finish(
    conn: &mut PgConnection,
    id: i64,
    status: JobStatus,
    result: Option<&Value>,
    error: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE jobs SET status = $2, result = $3, error = $4, finished_at = now(), heartbeat_at = now()
         WHERE id = $1",
        id,
        status.as_str(),
        result,
        error
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Asks a job to stop: a queued job is cancelled at once, a running one at its next check.
/// Returns false for an unknown or finished job.
pub async fn cancel(conn: &mut PgConnection, id: i64) -> sqlx::Result<bool> {
    let hit = sqlx::query_scalar!(
        "UPDATE jobs SET cancel_requested = true,
                status = CASE WHEN status = 'queued' THEN 'cancelled' ELSE status END,
                finished_at = CASE WHEN status = 'queued' THEN now() ELSE finished_at END
         WHERE id = $1 AND status IN ('queued', 'running') RETURNING id",
        id
    )
    .fetch_optional(conn)
    .await?;
    Ok(hit.is_some())
}

pub async fn get(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as!(
        JobRow,
        r#"SELECT id, kind AS "kind: JobKind", status AS "status: JobStatus", payload, phase,
                  progress, total, error, result, cancel_requested, attempts, created_at, finished_at
           FROM jobs WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

pub async fn recent(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<JobRow>> {
    sqlx::query_as!(
        JobRow,
        r#"SELECT id, kind AS "kind: JobKind", status AS "status: JobStatus", payload, phase,
                  progress, total, error, result, cancel_requested, attempts, created_at, finished_at
           FROM jobs ORDER BY id DESC LIMIT $1"#,
        limit
    )
    .fetch_all(conn)
    .await
}
