//! Path segments checked before anything else sees them: a session token or a study's URL name that
//! cannot exist is answered at once (404), and never reaches the database or the log in full.

use std::future::{ready, Ready};
use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};

use crate::error::AppError;

/// The `{token}` of a session path: 64 lowercase hex digits, as sessions are given
/// (`Sessions::start_session`). Dereferences to the token.
#[derive(Debug, Clone)]
pub struct SessionToken(String);

impl SessionToken {
    pub const LEN: usize = 64;

    pub fn is_valid(token: &str) -> bool {
        token.len() == Self::LEN
            && token
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    }
}

impl Deref for SessionToken {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl FromRequest for SessionToken {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match request.match_info().get("token") {
            Some(token) if Self::is_valid(token) => Ok(Self(token.to_string())),
            _ => Err(AppError::NotFound("unknown session".into())),
        })
    }
}

/// The `{slug}` of a study path: a valid study URL name (`study::valid_slug`). Dereferences to it.
#[derive(Debug, Clone)]
pub struct StudySlug(String);

impl Deref for StudySlug {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl FromRequest for StudySlug {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match request.match_info().get("slug") {
            Some(slug) if crate::study::valid_slug(slug) => Ok(Self(slug.to_string())),
            _ => Err(AppError::NotFound("no such study".into())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sixty_four_lowercase_hex_digits_are_a_token() {
        assert!(SessionToken::is_valid(&"0a".repeat(32)));
        assert!(!SessionToken::is_valid(&"0A".repeat(32)));
        assert!(!SessionToken::is_valid(&"0a".repeat(31)));
        assert!(!SessionToken::is_valid("\0"));
        assert!(!SessionToken::is_valid(&format!("{}\0", "a".repeat(63))));
    }
}
