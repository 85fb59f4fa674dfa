//! `/admin/login` and `/admin/logout`. Failed logins are counted in PostgreSQL per address and per user
//! name, so every web process enforces the same limit; an unknown name and a wrong password get the same
//! page after the same amount of work (an unknown name is checked against a dummy hash).

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::auth::{self, Admin, SESSION_COOKIE, SESSION_HOURS};
use super::{page, see_other, AdminError, PageResult};
use crate::accounts;
use crate::db;
use crate::web::AppState;

const LOGIN_COOKIE: &str = "meilab_login";
const LOGIN_PATH: &str = "/admin/login";
/// Failed logins are counted over this window.
pub const WINDOW_SECS: f64 = 15.0 * 60.0;
/// Failures per user name within the window before further attempts are refused.
pub const MAX_FAILURES_PER_USER: i64 = 5;
/// Failures per client address within the window (several people may share one address).
pub const MAX_FAILURES_PER_IP: i64 = 30;
const MAX_USERNAME_LEN: usize = 200;

pub const WRONG: &str = "Wrong user name or password.";
pub const LIMITED: &str =
    "Too many failed attempts. For your security, logging in is paused for 15 minutes.";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/login", web::get().to(form))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout));
}

#[derive(Template)]
#[template(path = "admin/login.html")]
struct LoginPage<'a> {
    csrf: &'a str,
    next: &'a str,
    username: &'a str,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

/// The login form. Its CSRF token is also set as a cookie scoped to this page (double submit): the
/// visitor has no session yet to hold it.
async fn form(request: HttpRequest, query: web::Query<NextQuery>) -> PageResult {
    let next = auth::safe_next(query.next.as_deref().unwrap_or("/admin")).to_string();
    // The dummy hash is drawn once per process; drawing it now keeps that cost out of a login's timing.
    tokio::task::spawn_blocking(|| {
        accounts::dummy_hash();
    });
    let csrf = request
        .cookie(LOGIN_COOKIE)
        .map(|c| c.value().to_string())
        .filter(|t| auth::is_token(t))
        .unwrap_or_else(auth::new_token);
    render(&request, StatusCode::OK, &csrf, &next, "", None)
}

fn render(
    request: &HttpRequest,
    status: StatusCode,
    csrf: &str,
    next: &str,
    username: &str,
    error: Option<&str>,
) -> PageResult {
    let mut response = page(
        status,
        &LoginPage {
            csrf,
            next,
            username,
            error,
        },
    )?;
    let cookie = auth::private_cookie(
        LOGIN_COOKIE,
        csrf.to_string(),
        LOGIN_PATH,
        CookieDuration::hours(2),
        auth::is_tls(request),
    );
    response
        .add_cookie(&cookie)
        .map_err(|e| AdminError::App(crate::error::AppError::Internal(e.into())))?;
    Ok(response)
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

async fn login(
    state: web::Data<AppState>,
    request: HttpRequest,
    form: web::Form<LoginForm>,
) -> PageResult {
    let form = form.into_inner();
    let cookie = request.cookie(LOGIN_COOKIE).map(|c| c.value().to_string());
    if !cookie.is_some_and(|c| auth::same_secret(&form.csrf, &c)) {
        return Err(AdminError::Csrf);
    }
    let next = auth::safe_next(&form.next).to_string();
    let username: String = form
        .username
        .trim()
        .chars()
        .take(MAX_USERNAME_LEN)
        .collect();
    // Failed logins are counted per client under a keyed hash of its address: no address is stored.
    let ip = state.key.tag(
        "admin-login",
        &request
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|| "unknown".into()),
    );
    let fail = |status, message| {
        render(
            &request,
            status,
            &form.csrf,
            &next,
            &username,
            Some(message),
        )
    };

    let mut conn = state.pool.acquire().await?;
    let failures = db::admins::recent_failures(&mut conn, &ip, &username, WINDOW_SECS).await?;
    if failures.by_username >= MAX_FAILURES_PER_USER || failures.by_ip >= MAX_FAILURES_PER_IP {
        tracing::warn!(client = %&ip[..12], "login refused: too many failures");
        return fail(StatusCode::TOO_MANY_REQUESTS, LIMITED);
    }
    let account = db::admins::by_username(&mut conn, &username).await?;
    let hash = account.as_ref().map(|a| a.password_hash.clone());
    let password = form.password.clone();
    let matches = tokio::task::spawn_blocking(move || match hash {
        Some(hash) => accounts::verify_password(&password, &hash),
        // As much work for an unknown name as for a known one.
        None => {
            std::hint::black_box(accounts::verify_password(&password, accounts::dummy_hash()));
            false
        }
    })
    .await
    .map_err(|e| AdminError::App(crate::error::AppError::Internal(e.into())))?;
    let Some(account) = account.filter(|_| matches) else {
        db::admins::record_failure(&mut conn, &ip, &username).await?;
        return fail(StatusCode::UNAUTHORIZED, WRONG);
    };

    let token = auth::new_token();
    let expires = chrono::Utc::now() + chrono::Duration::hours(SESSION_HOURS);
    db::admins::insert_session(
        &mut conn,
        &auth::hash_token(&token),
        account.id,
        &auth::new_token(),
        expires,
    )
    .await?;
    db::admins::prune_failures(&mut conn).await?;
    tracing::info!(admin = %account.username, "logged in");
    let secure = auth::is_tls(&request);
    let session = auth::private_cookie(
        SESSION_COOKIE,
        token,
        "/admin",
        CookieDuration::hours(SESSION_HOURS),
        secure,
    );
    let mut spent = auth::private_cookie(
        LOGIN_COOKIE,
        String::new(),
        LOGIN_PATH,
        CookieDuration::ZERO,
        secure,
    );
    spent.make_removal();
    Ok(HttpResponse::SeeOther()
        .insert_header(("Location", next))
        .cookie(session)
        .cookie(spent)
        .finish())
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    state: web::Data<AppState>,
    request: HttpRequest,
    admin: Admin,
    form: web::Form<LogoutForm>,
) -> PageResult {
    admin.check_csrf(&form.csrf)?;
    let mut conn = state.pool.acquire().await?;
    db::admins::delete_session(&mut conn, &admin.token_hash).await?;
    let mut gone = auth::private_cookie(
        SESSION_COOKIE,
        String::new(),
        "/admin",
        CookieDuration::ZERO,
        auth::is_tls(&request),
    );
    gone.make_removal();
    let mut response = see_other(LOGIN_PATH);
    response
        .add_cookie(&gone)
        .map_err(|e| AdminError::App(crate::error::AppError::Internal(e.into())))?;
    Ok(response)
}
