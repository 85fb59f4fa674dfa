//! Exclusion is evaluated when a session finishes; excluded sessions are kept and free their units.

use meilab::study::config::ExclusionThresholds;
use meilab::study::StudyConfig;
use serde_json::json;

use crate::common::studies::{lenient, no_practice_study};
use crate::common::{self, spawn_app};

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
    app.create_synthetic_study("fast", no_practice_study(ExclusionThresholds::default()))
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
    app.create_synthetic_study("calm", no_practice_study(lenient()))
        .await;
    let (excluded, checks) = complete_one(&app, "calm", "ok").await;
    assert!(!excluded, "{checks}");
    assert_eq!(checks.as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn units_of_excluded_sessions_return_to_the_pool() {
    let app = spawn_app().await;
    // 16 units, 16 per session: a valid session would leave every unit served once, an excluded one none.
    app.create_synthetic_study("pool", no_practice_study(ExclusionThresholds::default()))
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
        ..no_practice_study(ExclusionThresholds::default())
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

/// The session's `answer_timing` check.
async fn timing_check(app: &common::TestApp, token: &str) -> (bool, serde_json::Value) {
    let row: (bool, serde_json::Value) =
        sqlx::query_as("SELECT excluded, exclusion_reasons FROM sessions WHERE token = $1")
            .bind(token)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let check = row
        .1
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["rule"] == "answer_timing")
        .cloned()
        .expect("an answer_timing check");
    (row.0, check)
}

#[tokio::test]
async fn answers_sooner_than_the_lock_exclude_a_session_whether_reported_or_timed_on_the_server() {
    let app = spawn_app().await;
    let lock_ms = 300;
    let mut config = no_practice_study(lenient());
    config.trials_per_session = 4;
    config.catch_per_session = 1;
    config.lock_ms = lock_ms;
    app.create_synthetic_study("timed", config).await;
    let wait = std::time::Duration::from_millis(lock_ms as u64 + 20);

    // Answers after the lock, with the reaction time measured from the lock: valid.
    let honest = app.participant("timed", json!({})).await;
    // The same waits, but reaction times below the lock, as no page sends them.
    let scripted = app.participant("timed", json!({})).await;
    for (p, rt_ms) in [(&honest, lock_ms + 50), (&scripted, 100)] {
        p.consent_and_read_instructions().await;
        while let Some(trial) = p.next_trial().await {
            tokio::time::sleep(wait).await;
            let position = trial["position"].as_i64().unwrap();
            let mut body = common::Participant::answer_body(position, p.max_index(position).await);
            body["rt_ms"] = json!(rt_ms);
            assert_eq!(p.answer(body).await.0, 200);
        }
        assert_eq!(p.finish(json!({})).await.0, 200);
    }
    let (excluded, check) = timing_check(&app, &honest.token).await;
    assert!(!excluded && check["passed"] == true, "{check}");
    let (excluded, check) = timing_check(&app, &scripted.token).await;
    assert!(excluded && check["passed"] == false, "{check}");
    assert!(
        check["detail"].as_str().unwrap().starts_with("5 answers"),
        "{check}"
    );

    // Answers stored closer together than the lock (as when a script answers through a server process
    // that never served the trial, so could not refuse it): the server's own timestamps give it away.
    let hurried = app.participant("timed", json!({})).await;
    hurried.consent_and_read_instructions().await;
    while let Some(trial) = hurried.next_trial().await {
        tokio::time::sleep(wait).await;
        let position = trial["position"].as_i64().unwrap();
        let mut body =
            common::Participant::answer_body(position, hurried.max_index(position).await);
        body["rt_ms"] = json!(lock_ms + 50);
        assert_eq!(hurried.answer(body).await.0, 200);
    }
    sqlx::query(
        "UPDATE responses r SET server_at = s.instructions_done_at + r.position * interval '100 ms'
         FROM sessions s WHERE s.id = r.session_id AND s.token = $1",
    )
    .bind(&hurried.token)
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(hurried.finish(json!({})).await.0, 200);
    let (excluded, check) = timing_check(&app, &hurried.token).await;
    assert!(excluded && check["passed"] == false, "{check}");
}

/// The answers-per-position rule counts catch answers with the main ones (as IMI's
/// verify_row_variability does): a participant who picks the upper query on every main trial and
/// the lower one on the two catch trials has chosen the lower query exactly twice.
#[tokio::test]
async fn answers_per_position_counts_catch_answers_just_passing_and_just_failing() {
    let app = spawn_app().await;
    let mut failing = 0;
    for (slug, needed) in [("rows-two", 2), ("rows-three", 3)] {
        let thresholds = ExclusionThresholds {
            min_answers_per_position: needed,
            min_catch_accuracy: 0.0,
            min_instructions_secs: 0.0,
            min_total_secs: 0.0,
            ..ExclusionThresholds::default()
        };
        app.create_synthetic_study(slug, no_practice_study(thresholds))
            .await;
        let p = app.participant(slug, json!({})).await;
        p.consent_and_read_instructions().await;
        let mut catch_positions = 0;
        while let Some(trial) = p.next_trial().await {
            let position = trial["position"].as_i64().unwrap();
            let kind = app.kind_at(&p.token, position).await;
            // The rule counts positions, not correctness (catch accuracy is not checked here).
            let chosen = if kind == "catch" {
                catch_positions += 1;
                1
            } else {
                0
            };
            assert_eq!(
                p.answer(common::Participant::answer_body(position, chosen))
                    .await
                    .0,
                200
            );
        }
        assert_eq!(catch_positions, 2);
        assert_eq!(p.finish(json!({})).await.0, 200);
        let (excluded, checks): (bool, serde_json::Value) =
            sqlx::query_as("SELECT excluded, exclusion_reasons FROM sessions WHERE token = $1")
                .bind(&p.token)
                .fetch_one(&app.pool)
                .await
                .unwrap();
        let rule = checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["rule"] == "answers_per_position")
            .cloned()
            .unwrap();
        assert!(
            rule["detail"]
                .as_str()
                .unwrap()
                .contains("the upper query 16 and the lower 2 times"),
            "{rule}"
        );
        if rule["passed"] == false {
            failing += 1;
            assert!(excluded && needed == 3, "{rule}");
        } else {
            assert!(!excluded && needed == 2, "{checks}");
        }
    }
    assert_eq!(failing, 1);
}
