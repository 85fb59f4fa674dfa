use sqlx::PgConnection;

use crate::stimuli::store::StoredImage;

/// Records images already written to the store; known images are left as they are.
pub async fn insert_many(conn: &mut PgConnection, images: &[StoredImage]) -> sqlx::Result<()> {
    let sha: Vec<String> = images.iter().map(|i| i.sha256.clone()).collect();
    let width: Vec<i32> = images.iter().map(|i| i.width as i32).collect();
    let height: Vec<i32> = images.iter().map(|i| i.height as i32).collect();
    let size: Vec<i64> = images.iter().map(|i| i.byte_size as i64).collect();
    let mime: Vec<String> = images.iter().map(|i| i.mime.to_string()).collect();
    sqlx::query!(
        "INSERT INTO images (sha256, width, height, byte_size, mime)
         SELECT * FROM UNNEST($1::text[], $2::int[], $3::int[], $4::bigint[], $5::text[])
         ON CONFLICT (sha256) DO NOTHING",
        &sha,
        &width,
        &height,
        &size,
        &mime
    )
    .execute(conn)
    .await
    .map(|_| ())
}
