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

/// How many attempts a throttle row allows and how it backs off.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Attempts allowed one after the other.
    pub free: i32,
    /// The wait after the last free attempt; it doubles with each further attempt ...
    pub base_secs: f64,
    /// ... up to this.
    pub cap_secs: f64,
}

/// Claims one login attempt of `client` on `account` ('' for the per-address row): its counter goes
/// up and the next attempt's earliest time is set, in one statement on one row, so concurrent claims
/// take their turns on the row lock and at most `free` of them pass before the back-off. False if
/// the row is still backing off (nothing changes then).
pub async fn claim_attempt(
    conn: &mut PgConnection,
    account: &str,
    client: &str,
    backoff: Backoff,
) -> sqlx::Result<bool> {
    let claimed = sqlx::query_scalar!(
        r#"INSERT INTO login_throttle AS t (account, client, failures, blocked_until)
           VALUES ($1, $2, 1,
                   now() + make_interval(secs => CASE WHEN 1 < $3::int4 THEN 0.0::float8 ELSE $4::float8 END))
           ON CONFLICT (account, client) DO UPDATE
           SET failures = t.failures + 1,
               blocked_until = now() + make_interval(secs =>
                   CASE WHEN t.failures + 1 < $3::int4 THEN 0.0::float8
                        ELSE least($5::float8,
                                   $4::float8 * power(2.0::float8, least(t.failures + 1 - $3::int4, 40)))
                   END),
               updated_at = now()
           WHERE t.blocked_until <= now()
           RETURNING failures"#,
        account,
        client,
        backoff.free,
        backoff.base_secs,
        backoff.cap_secs
    )
    .fetch_optional(conn)
    .await?;
    Ok(claimed.is_some())
}

/// After a successful login: the account's row for this client is cleared, and the per-address
/// row ('') gives back the attempt it counted.
pub async fn release_attempt(
    conn: &mut PgConnection,
    account: &str,
    client: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM login_throttle WHERE account = $1 AND client = $2",
        account,
        client
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "UPDATE login_throttle SET failures = greatest(failures - 1, 0)
         WHERE account = '' AND client = $1",
        client
    )
    .execute(conn)
    .await
    .map(|_| ())
}

/// Forgets rows untouched for `idle_secs` whose back-off is over, so the table stays small and
/// an old run of mistakes does not count against a later one.
pub async fn prune_attempts(conn: &mut PgConnection, idle_secs: f64) -> sqlx::Result<()> {
    sqlx::query!(
        "DELETE FROM login_throttle
         WHERE updated_at < now() - make_interval(secs => $1) AND blocked_until < now()",
        idle_secs
    )
    .execute(conn)
    .await
    .map(|_| ())
}
