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

/// The units of a session's main trials.
async fn units_of(app: &common::TestApp, token: &str) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT t.unit_id FROM assignments a JOIN trials t ON t.id = a.trial_id JOIN sessions s ON s.id = a.session_id
         WHERE s.token = $1 AND t.kind = 'main' ORDER BY t.unit_id",
    )
    .bind(token)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn starts_take_the_least_served_units_and_an_exclusion_returns_them_at_once() {
    let app = spawn_app().await;
    // 16 units, 8 per session.
    let eight = StudyConfig {
        trials_per_session: 8,
        catch_per_session: 0,
        ..config(ExclusionThresholds::default())
    };
    app.create_synthetic_study("least", eight).await;
    let a = app.participant("least", json!({"external_id": "a"})).await;
    let b = app.participant("least", json!({"external_id": "b"})).await;
    let (units_a, units_b) = (
        units_of(&app, &a.token).await,
        units_of(&app, &b.token).await,
    );
    assert_eq!(units_a.len(), 8);
    assert!(
        units_b.iter().all(|u| !units_a.contains(u)),
        "the second session takes the 8 units the first did not: {units_a:?} {units_b:?}"
    );

    // The first session finishes too fast and is excluded: its units are the least served again.
    a.consent_and_read_instructions().await;
    a.answer_everything().await;
    assert_eq!(a.finish(json!({})).await.0, 200);
    let excluded: bool = sqlx::query_scalar("SELECT excluded FROM sessions WHERE token = $1")
        .bind(&a.token)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(excluded);
    let c = app.participant("least", json!({"external_id": "c"})).await;
    assert_eq!(units_of(&app, &c.token).await, units_a);
}
