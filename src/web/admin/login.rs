//! `/admin/login` and `/admin/logout`. Failed logins are counted in PostgreSQL per (account, client),
//! so every web process enforces the same limit and wrong passwords sent from one place slow down only
//! that place: the account's owner, logging in from elsewhere, is not locked out. A per-address row
//! caps attempts across accounts (password spraying). Each attempt is claimed before its password is
//! checked, in one statement under the row's lock, so concurrent attempts run no more checks than the
//! limit. The client is the connection's peer, or the address a trusted proxy forwarded
//! (`trusted_proxies`). An unknown name and a wrong password get the same page after the same amount
//! of work (an unknown name is checked against a dummy hash).

use actix_web::cookie::time::Duration as CookieDuration;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use askama::Template;
use serde::Deserialize;

use super::auth::{self, SESSION_COOKIE, SESSION_HOURS};
use super::form::AdminFormData;
use super::{page, see_other, AdminError, AdminForm, PageResult};
use crate::accounts;
use crate::db;
use crate::web::api::limit;
use crate::web::AppState;

const LOGIN_COOKIE: &str = "meilab_login";
const LOGIN_PATH: &str = "/admin/login";
/// Attempts one client may make on one account before backing off: 5 in a row, then a wait of 30 s
/// doubling with each further failure up to 15 minutes (5 + 4 per hour from then on). A success clears it.
pub const PER_ACCOUNT: db::admins::Backoff = db::admins::Backoff {
    free: 5,
    base_secs: 30.0,
    cap_secs: 15.0 * 60.0,
};
/// Attempts one client may make across all accounts (several people may share one address).
pub const PER_ADDRESS: db::admins::Backoff = db::admins::Backoff {
    free: 30,
    base_secs: 30.0,
    cap_secs: 15.0 * 60.0,
};
/// Counts idle this long (and not backing off) are forgotten.
pub const FORGET_SECS: f64 = 60.0 * 60.0;
const MAX_USERNAME_LEN: usize = 200;

pub const WRONG: &str = "Wrong user name or password.";
pub const LIMITED: &str = "Too many failed attempts. For your security, logging in from here is \
     paused for a while (at most 15 minutes); please wait before trying again.";

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
    let client_ip = limit::bucket(limit::client_ip(&request)).to_string();
    let client = state.key.tag("admin-login", &client_ip);
    let account_key: String = username
        .to_lowercase()
        .chars()
        .take(MAX_USERNAME_LEN)
        .collect();
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
    // No account has an empty name; nothing to check or count.
    if account_key.is_empty() {
        return fail(StatusCode::UNAUTHORIZED, WRONG);
    }

    let mut tx = state.pool.begin().await?;
    db::admins::prune_attempts(&mut tx, FORGET_SECS).await?;
    let claimed = db::admins::claim_attempt(&mut tx, &account_key, &client, PER_ACCOUNT).await?
        && db::admins::claim_attempt(&mut tx, "", &client, PER_ADDRESS).await?;
    if !claimed {
        tx.rollback().await?;
        tracing::warn!(client = %&client[..12], "login refused: too many failures");
        return fail(StatusCode::TOO_MANY_REQUESTS, LIMITED);
    }
    tx.commit().await?;
    let mut conn = state.pool.acquire().await?;
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
        // The claim already counted this failure.
        return fail(StatusCode::UNAUTHORIZED, WRONG);
    };
    db::admins::release_attempt(&mut conn, &account_key, &client).await?;

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

/// Any signed-in account may log out.
impl AdminFormData for LogoutForm {
    const ADMINS_ONLY: bool = false;

    fn csrf(&self) -> &str {
        &self.csrf
    }
}

async fn logout(
    state: web::Data<AppState>,
    request: HttpRequest,
    AdminForm { admin, .. }: AdminForm<LogoutForm>,
) -> PageResult {
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
