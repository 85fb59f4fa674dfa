use std::collections::HashMap;

use sqlx::PgConnection;

/// The id of the model (architecture + weights), created if new.
pub async fn ensure_model(
    conn: &mut PgConnection,
    arch: &str,
    weights_sha256: &str,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        "INSERT INTO models (arch, weights_sha256) VALUES ($1, $2)
         ON CONFLICT (arch, weights_sha256) DO UPDATE SET arch = EXCLUDED.arch
         RETURNING id",
        arch,
        weights_sha256
    )
    .fetch_one(conn)
    .await
}

/// Images among `sha256` that already have activations for every one of `taps`.
pub async fn complete_images(
    conn: &mut PgConnection,
    model_id: i64,
    taps: &[String],
    sha256: &[String],
) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        r#"SELECT sha256 AS "sha256!" FROM activations
           WHERE model_id = $1 AND tap = ANY($2) AND sha256 = ANY($3)
           GROUP BY sha256 HAVING count(DISTINCT tap) = cardinality($2)"#,
        model_id,
        taps,
        sha256
    )
    .fetch_all(conn)
    .await
}

/// Stores one tap's channel means for a batch of images: `means` holds `channels` values per image.
pub async fn insert_tap(
    conn: &mut PgConnection,
    model_id: i64,
    tap: &str,
    sha256: &[String],
    means: &[f32],
    channels: i64,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO activations (model_id, tap, sha256, means)
         SELECT $1, $2, s.sha, ($4::real[])[(s.i - 1) * $5 + 1 : s.i * $5]
         FROM UNNEST($3::text[]) WITH ORDINALITY AS s (sha, i)
         ON CONFLICT (model_id, tap, sha256) DO NOTHING",
        model_id,
        tap,
        sha256,
        means,
        channels
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// One tap's channel means by image.
pub async fn load_tap(
    conn: &mut PgConnection,
    model_id: i64,
    tap: &str,
    sha256: &[String],
) -> sqlx::Result<HashMap<String, Vec<f32>>> {
    let rows = sqlx::query!(
        "SELECT sha256, means FROM activations WHERE model_id = $1 AND tap = $2 AND sha256 = ANY($3)",
        model_id,
        tap,
        sha256
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.sha256, r.means)).collect())
}
