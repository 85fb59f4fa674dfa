//! The admin dashboard under `/admin`: accounts and login, studies, stimuli, monitoring, previews and
//! downloads. Pages are HTML; a failure renders an HTML page (or sends the browser to the login page),
//! never the JSON errors of the participant API.

pub mod auth;
pub mod downloads;
pub mod form;
pub mod lab;
pub mod login;
pub mod monitor;
pub mod participants;
pub mod preview;
pub mod results;
pub mod stimuli;
pub mod studies;
pub mod study_form;
pub mod study_page;

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpResponse, ResponseError};
use askama::Template;

use crate::error::AppError;

pub use auth::Admin;
pub use form::{AdminForm, AdminUpload};

/// Forms carry the study texts (up to 3 x 20,000 characters), percent-encoded.
const MAX_FORM_BYTES: usize = 512 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/admin")
            .app_data(
                web::FormConfig::default()
                    .limit(MAX_FORM_BYTES)
                    .error_handler(|err, _| {
                        AdminError::BadRequest(format!("the form could not be read: {err}")).into()
                    }),
            )
            .app_data(web::PathConfig::default().error_handler(|_, _| AdminError::NotFound.into()))
            .app_data(web::QueryConfig::default().error_handler(|_, _| AdminError::NotFound.into()))
            .configure(login::configure)
            .configure(studies::configure)
            .configure(study_form::configure)
            .configure(study_page::configure)
            .configure(stimuli::configure)
            .configure(monitor::configure)
            .configure(participants::configure)
            .configure(preview::configure)
            .configure(results::configure)
            .configure(downloads::configure)
            .configure(lab::configure),
    );
}

/// What goes wrong on an admin page.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No valid session: pages send the browser to the login page, everything else gets 401.
    #[error("please log in")]
    Login { redirect: Option<String> },
    #[error("your role does not allow this")]
    Forbidden,
    #[error("this form has expired or did not come from this site; reload the page and try again")]
    Csrf,
    #[error("there is nothing at this address")]
    NotFound,
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<sqlx::Error> for AdminError {
    fn from(error: sqlx::Error) -> Self {
        Self::App(error.into())
    }
}

impl From<anyhow::Error> for AdminError {
    fn from(error: anyhow::Error) -> Self {
        Self::App(error.into())
    }
}

#[derive(Template)]
#[template(path = "admin/error.html")]
struct ErrorPage<'a> {
    title: &'a str,
    message: &'a str,
}

impl ResponseError for AdminError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Login { redirect: Some(_) } => StatusCode::SEE_OTHER,
            Self::Login { redirect: None } => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::Csrf => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::App(inner) => inner.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Login {
            redirect: Some(location),
        } = self
        {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, location.as_str()))
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .finish();
        }
        let (title, message) = match self {
            Self::Login { .. } => ("Please log in", self.to_string()),
            Self::Forbidden => ("Not allowed", self.to_string()),
            Self::Csrf => ("Form expired", self.to_string()),
            Self::NotFound => ("Not found", self.to_string()),
            Self::BadRequest(_) => ("Bad request", self.to_string()),
            Self::App(AppError::Internal(cause)) => {
                tracing::error!(error = format!("{cause:#}"), "internal error");
                (
                    "Something went wrong",
                    "The server could not complete this request; it has been logged.".to_string(),
                )
            }
            Self::App(AppError::Unavailable) => (
                "Temporarily unavailable",
                "The database cannot be reached at the moment. Please try again shortly."
                    .to_string(),
            ),
            Self::App(other) => ("Cannot do this", other.to_string()),
        };
        let body = ErrorPage {
            title,
            message: &message,
        }
        .render()
        .unwrap_or_else(|_| message.clone());
        HttpResponse::build(self.status_code())
            .content_type("text/html; charset=utf-8")
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .body(body)
    }
}

pub type PageResult = Result<HttpResponse, AdminError>;

/// Renders an admin page; pages are never cached, since they show live data and carry CSRF tokens.
pub fn page(status: StatusCode, template: &impl Template) -> PageResult {
    let body = template
        .render()
        .map_err(|e| AdminError::App(AppError::Internal(e.into())))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body))
}

/// After a form: back to a page (POST-redirect-GET).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// The frame every signed-in page shares: who is logged in, the logout form's token, the section.
pub struct Chrome {
    pub username: String,
    pub role: &'static str,
    pub is_admin: bool,
    pub csrf: String,
    pub section: &'static str,
}

impl Chrome {
    pub fn new(admin: &Admin, section: &'static str) -> Self {
        Self {
            username: admin.username.clone(),
            role: admin.role.as_str(),
            is_admin: admin.is_admin(),
            csrf: admin.csrf.clone(),
            section,
        }
    }
}

/// A study's tabs, shown above each of its pages.
pub struct StudyNav {
    pub id: i64,
    pub slug: String,
    pub title: String,
    pub status: String,
    pub tab: &'static str,
}

impl StudyNav {
    pub fn new(study: &crate::study::Study, tab: &'static str) -> Self {
        Self {
            id: study.id,
            slug: study.slug.clone(),
            title: study.title.clone(),
            status: study.status.to_string(),
            tab,
        }
    }
}

/// The study of `id`, or the not-found page.
pub async fn load_study(
    conn: &mut sqlx::PgConnection,
    id: i64,
) -> Result<crate::study::Study, AdminError> {
    crate::study::by_id(conn, id)
        .await?
        .ok_or(AdminError::NotFound)
}

/// Thousands separated by a thin space, for counts on the dashboard.
pub fn count(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

/// Whole percent of `part` in `whole`, capped at 100.
pub fn percent(part: i64, whole: i64) -> i64 {
    if whole <= 0 {
        0
    } else {
        (part.saturating_mul(100) / whole).clamp(0, 100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1200), "1\u{2009}200");
        assert_eq!(count(1234567), "1\u{2009}234\u{2009}567");
    }

    #[test]
    fn percentages_are_capped() {
        assert_eq!(percent(5, 0), 0);
        assert_eq!(percent(1, 3), 33);
        assert_eq!(percent(9, 3), 100);
    }
}
