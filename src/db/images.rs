use sqlx::PgConnection;

/// An image written to the store, as recorded.
pub struct NewImage<'a> {
    pub sha256: &'a str,
    pub width: i32,
    pub height: i32,
    pub byte_size: i64,
    pub mime: &'a str,
}

/// Records images already written to the store; known images are left as they are.
pub async fn insert_many(conn: &mut PgConnection, images: &[NewImage<'_>]) -> sqlx::Result<()> {
    let sha: Vec<&str> = images.iter().map(|i| i.sha256).collect();
    let width: Vec<i32> = images.iter().map(|i| i.width).collect();
    let height: Vec<i32> = images.iter().map(|i| i.height).collect();
    let size: Vec<i64> = images.iter().map(|i| i.byte_size).collect();
    let mime: Vec<&str> = images.iter().map(|i| i.mime).collect();
    sqlx::query!(
        "INSERT INTO images (sha256, width, height, byte_size, mime)
         SELECT * FROM UNNEST($1::text[], $2::int[], $3::int[], $4::bigint[], $5::text[])
         ON CONFLICT (sha256) DO NOTHING",
        &sha as &[&str],
        &width,
        &height,
        &size,
        &mime as &[&str]
    )
    .execute(conn)
    .await
    .map(|_| ())
}
