//! Dashboard accounts: argon2id password hashes, roles, and the checks on names and passwords.
//! Hashing is slow on purpose; async callers run it with `spawn_blocking`.

use std::sync::OnceLock;

use anyhow::{bail, Context};
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use rand::distr::{Alphanumeric, SampleString};
use sqlx::PgConnection;

use crate::db;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything: studies, stimuli, lifecycle.
    Admin,
    /// Reads and exports.
    Researcher,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Researcher => "researcher",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(Self::Admin),
            "researcher" => Some(Self::Researcher),
            _ => None,
        }
    }
}

pub const MIN_PASSWORD_LEN: usize = 10;
const MAX_PASSWORD_LEN: usize = 1024;

/// An argon2id PHC string with a fresh random salt (argon2's defaults: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let hash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))?;
    Ok(hash.to_string())
}

/// Whether `password` matches `hash`; an unreadable hash never matches.
pub fn verify_password(password: &str, hash: &str) -> bool {
    password.len() <= MAX_PASSWORD_LEN
        && Argon2::default()
            .verify_password(password.as_bytes(), hash)
            .is_ok()
}

/// A hash of no one's password, checked when the user name is unknown so that the answer takes as long
/// as for a known name with a wrong password.
pub fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let password = Alphanumeric.sample_string(&mut rand::rng(), 32);
        hash_password(&password).unwrap_or_default()
    })
}

pub fn random_password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 20)
}

pub fn check_username(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
    if !(first_ok && rest_ok && name.len() <= 64) {
        bail!("a user name is 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit");
    }
    Ok(())
}

pub fn check_password(password: &str) -> anyhow::Result<()> {
    if password.chars().count() < MIN_PASSWORD_LEN || password.len() > MAX_PASSWORD_LEN {
        bail!("a password has at least {MIN_PASSWORD_LEN} characters (and at most {MAX_PASSWORD_LEN} bytes)");
    }
    Ok(())
}

/// Creates an account, or sets the password of an existing one of the same name (and keeps its role).
/// Returns whether the account is new.
pub async fn create_or_reset(
    conn: &mut PgConnection,
    username: &str,
    password: &str,
    role: Role,
) -> anyhow::Result<bool> {
    check_username(username)?;
    check_password(password)?;
    let owned = password.to_string();
    let hash = tokio::task::spawn_blocking(move || hash_password(&owned))
        .await
        .context("password hashing stopped")??;
    match db::admins::by_username(conn, username).await? {
        Some(account) => {
            db::admins::set_password(conn, account.id, &hash).await?;
            Ok(false)
        }
        None => {
            db::admins::insert(conn, username, &hash, role.as_str()).await?;
            Ok(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_argon2id_and_verifies_only_its_password() {
        let hash = hash_password("correct horse battery").expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password("anything", "not a hash"));
        assert!(!verify_password("anything", dummy_hash()));
    }

    #[test]
    fn names_and_passwords_are_checked() {
        assert!(check_username("data.manager@lab").is_ok());
        assert!(check_username("").is_err());
        assert!(check_username("-x").is_err());
        assert!(check_username("a b").is_err());
        assert!(check_password("short").is_err());
        assert!(check_password("long enough!").is_ok());
    }
}
