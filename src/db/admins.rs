//! Dashboard accounts, their login sessions and failed login attempts.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub role: String,
}

/// The account behind a live session cookie.
#[derive(Debug, Clone)]
pub struct SessionAccount {
    pub admin_id: i64,
    pub username: String,
    pub role: String,
    pub csrf_token: String,
}

pub async fn insert(
    conn: &mut PgConnection,
    username: &str,
    password_hash: &str,
    role: &str,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        "INSERT INTO admins (username, password_hash, role) VALUES ($1, $2, $3) RETURNING id",
        username,
        password_hash,
        role
    )
    .fetch_one(conn)
    .await
}

pub async fn set_password(
    conn: &mut PgConnection,
    admin_id: i64,
    password_hash: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE admins SET password_hash = $2 WHERE id = $1",
        admin_id,
        password_hash
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// User names are matched without regard to case.
pub async fn by_username(conn: &mut PgConnection, username: &str) -> sqlx::Result<Option<Account>> {
    sqlx::query_as!(
        Account,
        "SELECT id, username, password_hash, role FROM admins WHERE lower(username) = lower($1)",
        username
    )
    .fetch_optional(conn)
    .await
}

pub async fn insert_session(
    conn: &mut PgConnection,
    token_hash: &str,
    admin_id: i64,
    csrf_token: &str,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO admin_sessions (token_hash, admin_id, csrf_token, expires_at) VALUES ($1, $2, $3, $4)",
        token_hash,
        admin_id,
        csrf_token,
        expires_at
    )
    .execute(conn)
    .await
    .map(|_| ())
}

pub async fn session(
    conn: &mut PgConnection,
    token_hash: &str,
) -> sqlx::Result<Option<SessionAccount>> {
    sqlx::query_as!(
        SessionAccount,
        "SELECT s.admin_id, a.username, a.role, s.csrf_token
         FROM admin_sessions s JOIN admins a ON a.id = s.admin_id
         WHERE s.token_hash = $1 AND s.expires_at > now()",
        token_hash
    )
    .fetch_optional(conn)
    .await
}

pub async fn delete_session(conn: &mut PgConnection, token_hash: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM admin_sessions WHERE token_hash = $1 OR expires_at < now()",
        token_hash
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Failed logins within the last `window_secs` from `ip` and for `username`.
pub struct Failures {
    pub by_ip: i64,
    pub by_username: i64,
}

pub async fn recent_failures(
    conn: &mut PgConnection,
    ip: &str,
    username: &str,
    window_secs: f64,
) -> sqlx::Result<Failures> {
    sqlx::query_as!(
        Failures,
        r#"SELECT count(*) FILTER (WHERE ip = $1) AS "by_ip!",
                  count(*) FILTER (WHERE lower(username) = lower($2)) AS "by_username!"
           FROM login_failures
           WHERE at > now() - make_interval(secs => $3) AND (ip = $1 OR lower(username) = lower($2))"#,
        ip,
        username,
        window_secs
    )
    .fetch_one(conn)
    .await
}

pub async fn record_failure(conn: &mut PgConnection, ip: &str, username: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO login_failures (ip, username) VALUES ($1, $2)",
        ip,
        username
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Forgets failures older than a day, so the table stays small.
pub async fn prune_failures(conn: &mut PgConnection) -> sqlx::Result<()> {
    sqlx::query!("DELETE FROM login_failures WHERE at < now() - interval '1 day'")
        .execute(conn)
        .await
        .map(|_| ())
}
