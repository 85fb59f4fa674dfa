//! The test harness: the real server on port 0 against a fresh PostgreSQL database per test.
//! `DATABASE_URL` names the server to create test databases on; without it the private cluster of
//! `meilab demo` runs under the target folder, shared by all test processes, and the tests connect to it
//! as its application role over its Unix socket.

use std::path::PathBuf;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::OnceCell;

use meilab::db::cluster::PrivateCluster;
use meilab::states::StudyStatus;
use meilab::stimuli::store::ImageStore;
use meilab::stimuli::synthetic::{self, SyntheticOptions};
use meilab::study::recruit::ParticipantKey;
use meilab::study::{self, StudyConfig};
use meilab::web::api::limit::{Limits, DEFAULT_PER_MINUTE};

pub struct TestApp {
    pub address: String,
    pub pool: PgPool,
    pub store: ImageStore,
    pub client: reqwest::Client,
    pub key: ParticipantKey,
    _data_dir: tempfile::TempDir,
}

/// The URL of the test server's `postgres` database (for the private cluster: the application role,
/// which may create databases, over the cluster's Unix socket).
static SERVER: OnceCell<String> = OnceCell::const_new();

pub async fn server_url() -> String {
    SERVER
        .get_or_init(|| async {
            match std::env::var("DATABASE_URL") {
                Ok(url) => url,
                Err(_) => {
                    let cluster = tokio::task::spawn_blocking(private_cluster)
                        .await
                        .expect("cluster start panicked");
                    cluster.url("postgres")
                }
            }
        })
        .await
        .clone()
}

/// The private cluster the tests share under the target folder (started, or joined if it runs).
pub fn private_cluster() -> PrivateCluster {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("postgres");
    PrivateCluster::start(&root).expect("the private PostgreSQL cluster starts")
}

async fn server_options() -> PgConnectOptions {
    PgConnectOptions::from_str(&server_url().await).expect("a PostgreSQL URL")
}

/// A new, migrated database on the test server.
pub async fn fresh_database() -> PgPool {
    fresh_database_with_url().await.0
}

/// A new, migrated database on the test server, and its URL (for a server run as its own process).
pub async fn fresh_database_with_url() -> (PgPool, String) {
    let server = server_options().await;
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect_with(&server.clone().database("postgres"))
        .await
        .expect("connect to the test PostgreSQL server");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .expect("create the test database");
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(8)
        .connect_with(server.database(&name))
        .await
        .expect("connect to the test database");
    meilab::db::migrate(&pool).await.expect("migrations apply");
    let mut url = reqwest::Url::parse(&server_url().await).expect("a URL");
    url.set_path(&format!("/{name}"));
    (pool, url.to_string())
}

/// The URL of `pool`'s database (socket and password included), for a meilab command run as its own
/// process.
pub fn database_url(pool: &PgPool) -> String {
    use sqlx::ConnectOptions;
    pool.connect_options().to_url_lossy().to_string()
}

/// The server with the default limits (see [`admin::spawn_app_with`]).
pub async fn spawn_app() -> TestApp {
    admin::spawn_app_with(|_| Limits::per_minute(DEFAULT_PER_MINUTE)).await
}

impl TestApp {
    /// An active study of the synthetic calibration stimuli; returns its id.
    pub async fn create_synthetic_study(&self, slug: &str, config: StudyConfig) -> i64 {
        let store = self.store.clone();
        let set = tokio::task::spawn_blocking(move || {
            synthetic::build(&store, &SyntheticOptions::default())
        })
        .await
        .expect("drawing panicked")
        .expect("synthetic stimuli are drawn");
        let mut tx = self.pool.begin().await.expect("begin");
        let id = study::create(
            &mut tx,
            slug,
            "Test study",
            StudyStatus::Active,
            &config,
            &set,
        )
        .await
        .expect("study is created");
        tx.commit().await.expect("commit");
        id
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request is sent")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request is sent")
    }

    pub async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.pool)
            .await
            .expect("count query")
    }

    /// The kind (main, catch, practice) of the trial at `position` of a session.
    pub async fn kind_at(&self, token: &str, position: i64) -> String {
        sqlx::query_scalar(
            "SELECT t.kind FROM assignments a JOIN sessions s ON s.id = a.session_id
             JOIN trials t ON t.id = a.trial_id WHERE s.token = $1 AND a.position = $2",
        )
        .bind(token)
        .bind(position as i32)
        .fetch_one(&self.pool)
        .await
        .expect("assignment")
    }
}

/// A participant driven through the JSON API.
pub struct Participant<'a> {
    pub app: &'a TestApp,
    pub token: String,
}

impl TestApp {
    /// Starts (or resumes) a session; returns the status and the JSON reply.
    pub async fn join(&self, slug: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response = self
            .post(&format!("/api/v1/studies/{slug}/sessions"), body)
            .await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON reply"))
    }

    pub async fn participant(&self, slug: &str, body: serde_json::Value) -> Participant<'_> {
        let (status, reply) = self.join(slug, body).await;
        assert!(
            status == 201 || status == 200,
            "session start failed: {status} {reply}"
        );
        Participant {
            app: self,
            token: reply["token"].as_str().expect("token").to_string(),
        }
    }
}

impl Participant<'_> {
    fn path(&self, tail: &str) -> String {
        format!("/api/v1/sessions/{}{tail}", self.token)
    }

    pub async fn stage(&self) -> String {
        let state: serde_json::Value = self
            .app
            .get(&self.path(""))
            .await
            .json()
            .await
            .expect("JSON");
        state["stage"].as_str().expect("stage").to_string()
    }

    pub async fn consent_and_read_instructions(&self) {
        assert_eq!(
            self.app
                .post(&self.path("/consent"), serde_json::json!({}))
                .await
                .status(),
            200
        );
        assert_eq!(
            self.app
                .post(&self.path("/instructions"), serde_json::json!({}))
                .await
                .status(),
            200
        );
    }

    pub async fn next_trial(&self) -> Option<serde_json::Value> {
        let response = self.app.get(&self.path("/trials/next")).await;
        match response.status().as_u16() {
            204 => None,
            200 => Some(response.json().await.expect("trial JSON")),
            other => panic!("next trial: unexpected status {other}"),
        }
    }

    pub async fn answer(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response = self.app.post(&self.path("/responses"), body).await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON reply"))
    }

    pub fn answer_body(position: i64, chosen: i64) -> serde_json::Value {
        serde_json::json!({
            "response_id": uuid::Uuid::new_v4(),
            "position": position,
            "chosen": chosen,
            "confidence": 2,
            "rt_ms": 900,
        })
    }

    /// The index of the max query at `position`, read from the database (a participant cannot know it).
    pub async fn max_index(&self, position: i64) -> i64 {
        let max_first: bool = sqlx::query_scalar(
            "SELECT a.max_first FROM assignments a JOIN sessions s ON s.id = a.session_id
             WHERE s.token = $1 AND a.position = $2",
        )
        .bind(&self.token)
        .bind(position as i32)
        .fetch_one(&self.app.pool)
        .await
        .expect("assignment");
        if max_first {
            0
        } else {
            1
        }
    }

    /// Waits out a trial's button lock, as the page does: the server refuses answers sooner than it.
    pub async fn wait_out_lock(trial: &serde_json::Value) {
        let lock_ms = trial["lock_ms"].as_u64().unwrap_or(0);
        tokio::time::sleep(std::time::Duration::from_millis(lock_ms)).await;
    }

    /// Answers every trial until the session leaves practice and trials; practice is answered correctly.
    pub async fn answer_everything(&self) -> usize {
        let mut answered = 0;
        while let Some(trial) = self.next_trial().await {
            Self::wait_out_lock(&trial).await;
            let position = trial["position"].as_i64().expect("position");
            let chosen = self.max_index(position).await;
            let (status, reply) = self.answer(Self::answer_body(position, chosen)).await;
            assert_eq!(status, 200, "answer rejected: {reply}");
            answered += 1;
        }
        answered
    }

    pub async fn finish(&self, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response = self.app.post(&self.path("/finish"), body).await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON reply"))
    }
}
pub mod admin;
pub mod browser;
pub mod studies;
