//! Exclusion is evaluated when a session finishes; excluded sessions are kept and free their units.

mod common;

use common::spawn_app;
use meilab::study::config::{ExclusionThresholds, PracticeConfig};
use meilab::study::StudyConfig;
use serde_json::json;

fn config(exclusion: ExclusionThresholds) -> StudyConfig {
    StudyConfig {
        trials_per_session: 16,
        catch_per_session: 2,
        lock_ms: 0,
        practice: PracticeConfig {
            trials: 0,
            max_attempts: 1,
        },
        exclusion,
        ..StudyConfig::default()
    }
}

async fn complete_one(app: &common::TestApp, slug: &str, who: &str) -> (bool, serde_json::Value) {
    let p = app.participant(slug, json!({"external_id": who})).await;
    p.consent_and_read_instructions().await;
    p.answer_everything().await;
    assert_eq!(p.finish(json!({})).await.0, 200);
    let row: (bool, serde_json::Value) =
        sqlx::query_as("SELECT excluded, exclusion_reasons FROM sessions WHERE token = $1")
            .bind(&p.token)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    row
}

#[tokio::test]
async fn a_hurried_session_is_excluded_with_its_reasons_and_kept() {
    let app = spawn_app().await;
    app.create_synthetic_study("fast", config(ExclusionThresholds::default()))
        .await;
    let (excluded, checks) = complete_one(&app, "fast", "quick").await;
    assert!(excluded);
    let failed: Vec<&str> = checks
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .map(|c| c["rule"].as_str().unwrap())
        .collect();
    // The test participant reads no instructions, takes seconds, and always picks the max query,
    // which is on top about half the time: the position rule may or may not fire.
    assert!(
        failed.contains(&"instructions_time") && failed.contains(&"total_time"),
        "{checks}"
    );
    assert!(!failed.contains(&"catch_accuracy"));
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 1);
    assert_eq!(app.count("SELECT count(*) FROM responses").await, 18);
}

#[tokio::test]
async fn a_session_within_every_threshold_is_kept_valid() {
    let app = spawn_app().await;
    let lenient = ExclusionThresholds {
        min_answers_per_position: 0,
        min_instructions_secs: 0.0,
        min_total_secs: 0.0,
        ..ExclusionThresholds::default()
    };
    app.create_synthetic_study("calm", config(lenient)).await;
    let (excluded, checks) = complete_one(&app, "calm", "ok").await;
    assert!(!excluded, "{checks}");
    assert_eq!(checks.as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn units_of_excluded_sessions_return_to_the_pool() {
    let app = spawn_app().await;
    // 16 units, 16 per session: a valid session would leave every unit served once, an excluded one none.
    app.create_synthetic_study("pool", config(ExclusionThresholds::default()))
        .await;
    assert!(complete_one(&app, "pool", "first").await.0);
    let second = app
        .participant("pool", json!({"external_id": "second"}))
        .await;
    let per_unit: Vec<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM assignments a JOIN trials t ON t.id = a.trial_id JOIN sessions s ON s.id = a.session_id
         WHERE t.kind = 'main' AND s.token = $1 GROUP BY t.unit_id",
    )
    .bind(&second.token)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        per_unit,
        vec![1; 16],
        "the second session gets every unit again"
    );
}

/// The served count per trial that scheduling reads, recounted from the assignments of valid sessions.
async fn loads_match_assignments(app: &common::TestApp) {
    let mismatched: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT id, kept, recount FROM (
           SELECT t.id,
                  coalesce((SELECT sum(l.served) FROM trial_loads l WHERE l.trial_id = t.id), 0)::bigint AS kept,
                  (SELECT count(*) FROM assignments a JOIN sessions s ON s.id = a.session_id
                   WHERE a.trial_id = t.id AND a.attempt = 0 AND NOT s.excluded) AS recount
           FROM trials t) c
         WHERE kept <> recount",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert!(
        mismatched.is_empty(),
        "trial, kept count, recount: {mismatched:?}"
    );
}

fn lenient() -> ExclusionThresholds {
    ExclusionThresholds {
        min_answers_per_position: 0,
        min_instructions_secs: 0.0,
        min_total_secs: 0.0,
        ..ExclusionThresholds::default()
    }
}

async fn served_total(app: &common::TestApp) -> i64 {
    app.count("SELECT coalesce(sum(served), 0)::bigint FROM trial_loads")
        .await
}

#[tokio::test]
async fn served_counts_follow_starts_exclusions_and_withdrawals() {
    let app = spawn_app().await;
    app.create_synthetic_study("loads", config(lenient())).await;
    // Starts at once: none waits for another, and every assignment (16 main + 2 catch) is counted.
    let starts = (0..12).map(|i| app.participant("loads", json!({"external_id": format!("p{i}")})));
    futures_util::future::join_all(starts).await;
    loads_match_assignments(&app).await;
    assert_eq!(served_total(&app).await, 12 * 18);

    assert!(!complete_one(&app, "loads", "valid").await.0);
    loads_match_assignments(&app).await;
    assert_eq!(served_total(&app).await, 13 * 18);
    let study_id: i64 = app
        .count("SELECT id FROM studies WHERE slug = 'loads'")
        .await;
    let mut conn = app.pool.acquire().await.unwrap();
    // The IMI defaults exclude the hurried completed session: its trials go back to the pool, and
    // come back out of it when the thresholds are relaxed again.
    let reevaluate = meilab::study::exclusion::reevaluate_study;
    let strict = ExclusionThresholds::default();
    assert_eq!(reevaluate(&mut conn, study_id, &strict).await.unwrap(), 1);
    loads_match_assignments(&app).await;
    assert_eq!(served_total(&app).await, 12 * 18);
    assert_eq!(
        reevaluate(&mut conn, study_id, &lenient()).await.unwrap(),
        0
    );
    loads_match_assignments(&app).await;
    assert_eq!(served_total(&app).await, 13 * 18);

    // A withdrawn participant's trials go back to the pool.
    let session: i64 = app
        .count("SELECT id FROM sessions WHERE stage = 'consent' ORDER BY id LIMIT 1")
        .await;
    meilab::db::sessions::delete(&mut conn, session)
        .await
        .unwrap();
    loads_match_assignments(&app).await;
    assert_eq!(served_total(&app).await, 12 * 18);
}
