use serde::Serialize;
use sqlx::types::Json;
use sqlx::PgConnection;

use crate::states::StudyStatus;

/// A study as stored; the study module parses its configuration.
#[derive(Debug, Clone)]
pub struct StudyRow {
    pub id: i64,
    pub slug: String,
    pub title: String,
    pub status: StudyStatus,
    pub config: serde_json::Value,
}

pub async fn insert<C: Serialize + Sync>(
    conn: &mut PgConnection,
    slug: &str,
    title: &str,
    status: StudyStatus,
    config: &C,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        "INSERT INTO studies (slug, title, status, config) VALUES ($1, $2, $3, $4) RETURNING id",
        slug,
        title,
        status.as_str(),
        Json(config) as _
    )
    .fetch_one(conn)
    .await
}

pub async fn by_slug(conn: &mut PgConnection, slug: &str) -> sqlx::Result<Option<StudyRow>> {
    sqlx::query_as!(
        StudyRow,
        r#"SELECT id, slug, title, status AS "status: StudyStatus", config
           FROM studies WHERE slug = $1"#,
        slug
    )
    .fetch_optional(conn)
    .await
}

pub async fn by_study_id(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<StudyRow>> {
    sqlx::query_as!(
        StudyRow,
        r#"SELECT id, slug, title, status AS "status: StudyStatus", config
           FROM studies WHERE id = $1"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Serialises the scheduling of new sessions of one study.
pub async fn lock(conn: &mut PgConnection, study_id: i64) -> sqlx::Result<()> {
    sqlx::query!("SELECT id FROM studies WHERE id = $1 FOR UPDATE", study_id)
        .fetch_one(conn)
        .await
        .map(|_| ())
}

pub async fn set_status(
    conn: &mut PgConnection,
    study_id: i64,
    status: StudyStatus,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE studies SET status = $2, updated_at = now() WHERE id = $1",
        study_id,
        status.as_str()
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Saves a study's name, title and configuration (validated by the caller).
pub async fn update<C: Serialize + Sync>(
    conn: &mut PgConnection,
    study_id: i64,
    slug: &str,
    title: &str,
    config: &C,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE studies SET slug = $2, title = $3, config = $4, updated_at = now() WHERE id = $1",
        study_id,
        slug,
        title,
        Json(config) as _
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Copies the units (with their exemplars) and trials of one study into another (the images are
/// shared by hash); returns the number of trials copied.
pub async fn copy_stimuli(conn: &mut PgConnection, from: i64, to: i64) -> sqlx::Result<u64> {
    sqlx::query!(
        "INSERT INTO units (study_id, model, tap, basis, unit_index, vector, ii, explained_variance)
         SELECT $2, model, tap, basis, unit_index, vector, ii, explained_variance
         FROM units WHERE study_id = $1 ORDER BY id",
        from,
        to
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO exemplars (unit_id, side, rank, sha256, activation)
         SELECT c.id, e.side, e.rank, e.sha256, e.activation
         FROM exemplars e
         JOIN units u ON u.id = e.unit_id AND u.study_id = $1
         JOIN units c ON c.study_id = $2
              AND (c.model, c.tap, c.basis, c.unit_index) = (u.model, u.tap, u.basis, u.unit_index)",
        from,
        to
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "INSERT INTO trials (study_id, unit_id, kind, condition, batch, max_query, min_query, max_refs, min_refs)
         SELECT $2, c.id, t.kind, t.condition, t.batch, t.max_query, t.min_query, t.max_refs, t.min_refs
         FROM trials t
         JOIN units u ON u.id = t.unit_id
         JOIN units c ON c.study_id = $2
              AND (c.model, c.tap, c.basis, c.unit_index) = (u.model, u.tap, u.basis, u.unit_index)
         WHERE t.study_id = $1
         ORDER BY t.id",
        from,
        to
    )
    .execute(conn)
    .await
    .map(|r| r.rows_affected())
}

/// Whether a slug is in use by another study than `except`.
pub async fn slug_taken(conn: &mut PgConnection, slug: &str, except: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM studies WHERE slug = $1 AND id <> $2) AS "taken!""#,
        slug,
        except
    )
    .fetch_one(conn)
    .await
}
