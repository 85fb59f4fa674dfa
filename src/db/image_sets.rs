use sqlx::PgConnection;

/// The id of the image set `name`, created if new.
pub async fn ensure(conn: &mut PgConnection, name: &str, source: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        "INSERT INTO image_sets (name, source) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET source = image_sets.source
         RETURNING id",
        name,
        source
    )
    .fetch_one(conn)
    .await
}

pub async fn add_members(
    conn: &mut PgConnection,
    set_id: i64,
    sha256: &[String],
    source_paths: &[String],
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO image_set_members (image_set_id, sha256, source_path)
         SELECT $1, * FROM UNNEST($2::text[], $3::text[])
         ON CONFLICT (image_set_id, sha256) DO NOTHING",
        set_id,
        sha256,
        source_paths
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// The set's images in a stable order.
pub async fn members(conn: &mut PgConnection, set_id: i64) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar!(
        "SELECT sha256 FROM image_set_members WHERE image_set_id = $1 ORDER BY sha256",
        set_id
    )
    .fetch_all(conn)
    .await
}

pub async fn id_by_name(conn: &mut PgConnection, name: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!("SELECT id FROM image_sets WHERE name = $1", name)
        .fetch_optional(conn)
        .await
}

/// Every set: id, name, source and number of images, newest first.
pub async fn list(conn: &mut PgConnection) -> sqlx::Result<Vec<(i64, String, String, i64)>> {
    let rows = sqlx::query!(
        r#"SELECT s.id, s.name, s.source, count(m.sha256) AS "images!"
           FROM image_sets s LEFT JOIN image_set_members m ON m.image_set_id = s.id
           GROUP BY s.id ORDER BY s.id DESC"#
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.id, r.name, r.source, r.images))
        .collect())
}
