//! Who is logged in. The session cookie holds a random token; the database keeps only its SHA-256, with
//! the account and the session's CSRF token, so any web process can check a request.

use actix_web::cookie::{time::Duration as CookieDuration, Cookie, SameSite};
use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::LocalBoxFuture;
use rand::Rng;
use sha2::{Digest, Sha256};

use super::AdminError;
use crate::accounts::Role;
use crate::db;
use crate::web::AppState;

pub const SESSION_COOKIE: &str = "meilab_admin";
pub const SESSION_HOURS: i64 = 12;

/// A signed-in account, taken from the session cookie of the request.
#[derive(Debug, Clone)]
pub struct Admin {
    pub id: i64,
    pub username: String,
    pub role: Role,
    pub csrf: String,
    pub token_hash: String,
}

impl Admin {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// For actions that change studies: admins only.
    pub fn require_admin(&self) -> Result<(), AdminError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(AdminError::Forbidden)
        }
    }

    /// Every form carries the session's CSRF token; one without it (or with another) is refused.
    pub fn check_csrf(&self, sent: &str) -> Result<(), AdminError> {
        if same_secret(sent, &self.csrf) {
            Ok(())
        } else {
            Err(AdminError::Csrf)
        }
    }
}

impl FromRequest for Admin {
    type Error = AdminError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = request.app_data::<web::Data<AppState>>().cloned();
        let token = request
            .cookie(SESSION_COOKIE)
            .map(|c| c.value().to_string());
        let redirect = login_redirect(request);
        Box::pin(async move {
            let refuse = || AdminError::Login {
                redirect: redirect.clone(),
            };
            let token = token.filter(|t| is_token(t)).ok_or_else(refuse)?;
            let state = state.ok_or_else(refuse)?;
            let token_hash = hash_token(&token);
            let mut conn = state.pool.acquire().await?;
            let account = db::admins::session(&mut conn, &token_hash)
                .await?
                .ok_or_else(refuse)?;
            let role = Role::parse(&account.role).ok_or(AdminError::Forbidden)?;
            Ok(Admin {
                id: account.admin_id,
                username: account.username,
                role,
                csrf: account.csrf_token,
                token_hash,
            })
        })
    }
}

/// Where a request without a session goes: pages (GET) to the login page, coming back afterwards;
/// forms, JSON and downloads get a plain 401.
fn login_redirect(request: &HttpRequest) -> Option<String> {
    let path = request.path();
    let is_page =
        request.method() == Method::GET && !path.ends_with(".json") && !path.ends_with(".csv");
    is_page.then(|| {
        let back = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/admin");
        format!("/admin/login?next={}", percent_encode(back))
    })
}

/// A new random token: 32 bytes as lowercase hex.
pub fn new_token() -> String {
    hex::encode(rand::rng().random::<[u8; 32]>())
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub fn is_token(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Compares two secrets in time independent of where they differ.
pub fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    !a.is_empty()
        && a.len() == b.len()
        && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A cookie only the server reads (HttpOnly), never sent by other sites' requests (SameSite=Strict),
/// and only over TLS when the site is served over TLS.
pub fn private_cookie<'c>(
    name: &'c str,
    value: String,
    path: &'c str,
    max_age: CookieDuration,
    secure: bool,
) -> Cookie<'c> {
    Cookie::build(name, value)
        .path(path)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(max_age)
        .finish()
}

/// Whether the browser reached us over TLS (directly or, as the proxy says, in front of us).
pub fn is_tls(request: &HttpRequest) -> bool {
    request.connection_info().scheme() == "https"
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A `next` target is followed only within the dashboard, so the login page cannot send anyone elsewhere.
pub fn safe_next(next: &str) -> &str {
    let inside = next == "/admin" || next.starts_with("/admin/") || next.starts_with("/admin?");
    if inside && !next.contains("//") && !next.contains('\\') {
        next
    } else {
        "/admin"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_equal_only_when_equal_and_not_empty() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", ""));
    }

    #[test]
    fn only_dashboard_targets_are_followed_after_login() {
        assert_eq!(safe_next("/admin/studies/3"), "/admin/studies/3");
        assert_eq!(safe_next("https://evil.example/admin"), "/admin");
        assert_eq!(safe_next("//evil.example/admin/"), "/admin");
        assert_eq!(safe_next("/admin//evil.example"), "/admin");
        assert_eq!(safe_next("/adminx"), "/admin");
    }

    #[test]
    fn tokens_are_64_hex_digits() {
        let token = new_token();
        assert!(is_token(&token));
        assert_eq!(hash_token(&token).len(), 64);
        assert!(!is_token("../etc"));
    }
}
