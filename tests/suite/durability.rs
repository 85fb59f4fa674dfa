//! Nothing acknowledged is lost: participants keep working while the server is SIGKILLed and restarted,
//! and while PostgreSQL restarts; every acknowledged response is stored exactly once.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use meilab::db::cluster::PrivateCluster;
use meilab::loadtest::{self, LoadOptions, LoadReport};
use meilab::states::StudyStatus;
use meilab::stimuli::store::ImageStore;
use meilab::stimuli::synthetic::{self, SyntheticOptions};
use meilab::study::config::ExclusionThresholds;
use meilab::study::{self, StudyConfig};
use sqlx::PgPool;

use crate::common;

const PARTICIPANTS: usize = 40;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `meilab serve` as a separate process, so it can be killed outright.
fn start_server(database_url: &str, data_dir: &Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_meilab"))
        .args([
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir)
        .env("DATABASE_URL", database_url)
        .env("MEILAB_SECRET", "durability-test")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("meilab serve starts")
}

async fn wait_ready(port: u16) {
    for _ in 0..200 {
        if let Ok(reply) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
            if reply.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not become ready");
}

async fn create_study(pool: &PgPool, data_dir: &Path) {
    let store = ImageStore::new(data_dir.join("images"));
    let set =
        tokio::task::spawn_blocking(move || synthetic::build(&store, &SyntheticOptions::default()))
            .await
            .unwrap()
            .unwrap();
    let config = StudyConfig {
        trials_per_session: 12,
        catch_per_session: 2,
        lock_ms: 0,
        exclusion: ExclusionThresholds::default(),
        ..StudyConfig::default()
    };
    let mut tx = pool.begin().await.unwrap();
    study::create(
        &mut tx,
        "durable",
        "Durability",
        StudyStatus::Active,
        &config,
        &set,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

fn load(port: u16) -> LoadOptions {
    LoadOptions {
        url: format!("http://127.0.0.1:{port}"),
        study: "durable".into(),
        participants: PARTICIPANTS,
        concurrency: 8,
        run_id: "d".into(),
        patience: Duration::from_secs(90),
    }
}

/// Every acknowledged response is stored, none twice, and every participant finished.
async fn check_nothing_lost(pool: &PgPool, report: &LoadReport) {
    assert_eq!(report.participants_finished, PARTICIPANTS);
    let stored: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT response_id FROM responses")
        .fetch_all(pool)
        .await
        .unwrap();
    let stored: std::collections::HashSet<_> = stored.into_iter().collect();
    let missing = report
        .acknowledged
        .iter()
        .filter(|id| !stored.contains(id))
        .count();
    assert_eq!(missing, 0, "acknowledged responses are missing");
    let complete: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sessions WHERE stage = 'complete'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(complete, PARTICIPANTS as i64);
    // One row per assigned position answered; (session, position) is unique by the schema.
    let unanswered: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM assignments a JOIN sessions s ON s.id = a.session_id
         WHERE a.position < s.main_total
           AND NOT EXISTS (SELECT 1 FROM responses r WHERE r.session_id = a.session_id AND r.position = a.position)",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(unanswered, 0);
}

/// Waits until the run has stored `n` responses, so the disruption lands mid-run.
async fn wait_for_responses(pool: &PgPool, n: i64) {
    loop {
        let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM responses")
            .fetch_one(pool)
            .await
            .unwrap();
        if stored >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn participants_finish_and_nothing_acknowledged_is_lost_when_the_server_is_killed_twice() {
    let (pool, url) = common::fresh_database_with_url().await;
    let data_dir = tempfile::tempdir().unwrap();
    create_study(&pool, data_dir.path()).await;
    let port = free_port();
    let mut server = start_server(&url, data_dir.path(), port);
    wait_ready(port).await;

    let run = tokio::spawn(loadtest::run(load(port)));
    for stored in [100, 300] {
        wait_for_responses(&pool, stored).await;
        server.kill().unwrap(); // SIGKILL
        server.wait().unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        server = start_server(&url, data_dir.path(), port);
    }
    let report = run.await.unwrap().expect("the load run completes");
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(
        report.retries.get(&0).copied().unwrap_or(0) > 0,
        "the kills went unnoticed: {:?}",
        report.retries
    );
    check_nothing_lost(&pool, &report).await;
}

#[tokio::test]
async fn participants_finish_and_the_server_answers_503_while_postgres_restarts() {
    let cluster_dir = tempfile::tempdir().unwrap();
    let root = cluster_dir.path().join("postgres");
    let cluster = tokio::task::spawn_blocking(move || PrivateCluster::start(&root))
        .await
        .unwrap()
        .unwrap();
    meilab::db::create_database(&cluster.url("postgres"), "durable")
        .await
        .unwrap();
    let url = cluster.url("durable");
    let pool = meilab::db::connect(&url, 4).await.unwrap();
    meilab::db::migrate(&pool).await.unwrap();
    let data_dir = tempfile::tempdir().unwrap();
    create_study(&pool, data_dir.path()).await;
    let port = free_port();
    let mut server = start_server(&url, data_dir.path(), port);
    wait_ready(port).await;

    let run = tokio::spawn(loadtest::run(load(port)));
    wait_for_responses(&pool, 150).await;
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.restart().expect("PostgreSQL restarts");
        cluster
    })
    .await
    .unwrap();
    let report = run.await.unwrap().expect("the load run completes");
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(
        report.retries.get(&503).copied().unwrap_or(0) > 0,
        "no 503 while the database restarted: {:?}",
        report.retries
    );
    let pool = meilab::db::connect(&url, 2).await.unwrap();
    check_nothing_lost(&pool, &report).await;
    pool.close().await;
    tokio::task::spawn_blocking(move || cluster.stop())
        .await
        .unwrap();
}
