//! Dashboard sessions for tests: accounts, login through the real form, and forms with their CSRF token.

use std::net::{IpAddr, TcpListener};
use std::path::{Path, PathBuf};

use meilab::accounts::{self, Role};
use meilab::stimuli::store::ImageStore;
use meilab::study::recruit::ParticipantKey;
use meilab::web::api::limit::Limits;
use meilab::web::{self, AppState};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;

use super::TestApp;

/// The server as `spawn_app` starts it, with the limits `limits` makes for its data directory
/// (trusted proxies, import roots, upload cap, session starts per address).
pub async fn spawn_app_with(limits: impl FnOnce(&Path) -> Limits) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        meilab::telemetry::init(false);
    }
    let pool = super::fresh_database().await;
    let data_dir = tempfile::tempdir().expect("temporary data folder");
    let store = ImageStore::new(data_dir.path().join("images"));
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("local address").port();
    let key = ParticipantKey::new(&rand::random::<[u8; 32]>());
    let state = AppState::new(pool.clone(), store.clone(), key.clone());
    let server = web::serve_with(listener, state, limits(data_dir.path())).expect("server starts");
    tokio::spawn(server);
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        pool,
        store,
        client: reqwest::Client::new(),
        key,
        _data_dir: data_dir,
    }
}

/// A client whose connections come from `ip` (any of 127.0.0.0/8 reaches a server on 127.0.0.1).
pub fn client_from(ip: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .local_address(ip)
        .build()
        .expect("HTTP client")
}

pub const PASSWORD: &str = "correct horse battery";

/// A client that shows redirects instead of following them.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("HTTP client")
}

/// The `name=value` of cookie `name` among the response's Set-Cookie headers.
pub fn cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(|v| v.split(';').next().unwrap_or_default().to_string())
}

pub fn set_cookie_header<'r>(response: &'r reqwest::Response, name: &str) -> Option<&'r str> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
}

/// The value of the first hidden `csrf` field of a page.
pub fn csrf_of(html: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = html.find(marker).expect("the page has a CSRF field") + marker.len();
    html[start..start + 64].to_string()
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// A logged-in browser, as far as the server can tell.
pub struct AdminClient<'a> {
    pub app: &'a TestApp,
    pub http: reqwest::Client,
    pub cookie: String,
    pub csrf: String,
}

impl TestApp {
    pub async fn create_account(&self, username: &str, role: Role) {
        let mut conn = self.pool.acquire().await.expect("connection");
        accounts::create_or_reset(&mut conn, username, PASSWORD, role)
            .await
            .expect("account is created");
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.store
            .root()
            .parent()
            .expect("the image store is in the data directory")
            .to_path_buf()
    }

    /// Submits the login form as a browser would (its CSRF cookie and field included).
    pub async fn try_login(&self, username: &str, password: &str) -> reqwest::Response {
        self.try_login_with(&client(), username, password, None)
            .await
    }

    /// As `try_login`, through `http`, with an `X-Forwarded-For` header if given.
    pub async fn try_login_with(
        &self,
        http: &reqwest::Client,
        username: &str,
        password: &str,
        forwarded_for: Option<&str>,
    ) -> reqwest::Response {
        let form = http
            .get(self.url("/admin/login"))
            .send()
            .await
            .expect("login page");
        let login_cookie = cookie(&form, "meilab_login").expect("the login page sets its cookie");
        let csrf = csrf_of(&form.text().await.expect("login page text"));
        let mut post = http
            .post(self.url("/admin/login"))
            .header(COOKIE, login_cookie);
        if let Some(forwarded) = forwarded_for {
            post = post.header("X-Forwarded-For", forwarded);
        }
        post.form(&[
            ("csrf", csrf.as_str()),
            ("username", username),
            ("password", password),
            ("next", "/admin"),
        ])
        .send()
        .await
        .expect("login request")
    }

    pub async fn login(&self, username: &str) -> AdminClient<'_> {
        let response = self.try_login(username, PASSWORD).await;
        assert_eq!(response.status(), 303, "login succeeds");
        let session = cookie(&response, "meilab_admin").expect("a session cookie");
        let http = client();
        let page = http
            .get(self.url("/admin"))
            .header(COOKIE, &session)
            .send()
            .await
            .expect("dashboard");
        assert_eq!(page.status(), 200);
        let csrf = csrf_of(&page.text().await.expect("dashboard text"));
        AdminClient {
            app: self,
            http,
            cookie: session,
            csrf,
        }
    }
}

impl AdminClient<'_> {
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.app.url(path))
            .header(COOKIE, &self.cookie)
            .send()
            .await
            .expect("request is sent")
    }

    pub async fn text(&self, path: &str) -> (u16, String) {
        let response = self.get(path).await;
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    /// Posts a form with the session's CSRF token added.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let mut all = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// A request of any kind with the session cookie, to finish and send.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.app.url(path))
            .header(COOKIE, &self.cookie)
    }

    /// Posts exactly these fields.
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(self.app.url(path))
            .header(COOKIE, &self.cookie)
            .form(fields)
            .send()
            .await
            .expect("request is sent")
    }
}

/// The study form's fields with IMI defaults, under `slug`.
pub fn study_fields(slug: &str) -> Vec<(String, String)> {
    let pairs = [
        ("slug", slug),
        ("title", "A test study"),
        ("trials_per_session", "40"),
        ("catch_per_session", "5"),
        ("lock_ms", "1500"),
        ("max_side", "right"),
        ("practice.trials", "3"),
        ("practice.max_attempts", "3"),
        ("texts.consent", "Consent text."),
        ("texts.instructions", "Instructions."),
        ("texts.debrief", "Thanks."),
        ("completion.code", "DONE-1"),
        ("completion.redirect_url", ""),
        ("exclusion.min_catch_accuracy", "0.8"),
        ("exclusion.min_answers_per_position", "5"),
        ("exclusion.min_instructions_secs", "15"),
        ("exclusion.min_total_secs", "135"),
        ("exclusion.max_total_secs", "2500"),
        ("exclusion.max_practice_attempts", "3"),
        ("responses_per_unit", "30"),
        ("seed", "7"),
    ];
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `fields` with `name` set to `value`.
pub fn with(mut fields: Vec<(String, String)>, name: &str, value: &str) -> Vec<(String, String)> {
    for field in &mut fields {
        if field.0 == name {
            field.1 = value.to_string();
        }
    }
    fields
}

pub fn as_refs(fields: &[(String, String)]) -> Vec<(&str, &str)> {
    fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

impl super::Participant<'_> {
    /// Answers every trial with the wrong query (catch trials included); returns how many.
    pub async fn answer_everything_wrong(&self) -> usize {
        let mut answered = 0;
        while let Some(trial) = self.next_trial().await {
            Self::wait_out_lock(&trial).await;
            let position = trial["position"].as_i64().expect("position");
            let chosen = 1 - self.max_index(position).await;
            let (status, reply) = self.answer(Self::answer_body(position, chosen)).await;
            assert_eq!(status, 200, "answer rejected: {reply}");
            answered += 1;
        }
        answered
    }
}
