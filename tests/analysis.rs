//! The analysis of a study read back from PostgreSQL: crafted answers give known accuracies, a perfectly
//! consistent split-half, and excluded sessions stay out.

mod common;

use common::{spawn_app, Participant, TestApp};
use meilab::analysis::bootstrap::RESAMPLES;
use meilab::export::study::analyse_study;
use meilab::study::config::{ExclusionThresholds, PracticeConfig};
use meilab::study::StudyConfig;
use serde_json::json;

fn config() -> StudyConfig {
    StudyConfig {
        trials_per_session: 16,
        catch_per_session: 2,
        lock_ms: 0,
        practice: PracticeConfig {
            trials: 0,
            max_attempts: 1,
        },
        exclusion: ExclusionThresholds {
            min_answers_per_position: 0,
            min_instructions_secs: 0.0,
            min_total_secs: 0.0,
            ..ExclusionThresholds::default()
        },
        ..StudyConfig::default()
    }
}

/// The tap and kind of the trial at `position` of a session.
async fn trial_at(app: &TestApp, token: &str, position: i64) -> (String, String) {
    sqlx::query_as(
        "SELECT u.tap, t.kind FROM assignments a JOIN sessions s ON s.id = a.session_id
         JOIN trials t ON t.id = a.trial_id JOIN units u ON u.id = t.unit_id
         WHERE s.token = $1 AND a.position = $2",
    )
    .bind(token)
    .bind(position as i32)
    .fetch_one(&app.pool)
    .await
    .expect("assignment")
}

#[tokio::test]
async fn crafted_answers_give_known_accuracies_and_a_perfect_split_half() {
    let app = spawn_app().await;
    let id = app.create_synthetic_study("crafted", config()).await;
    // Two valid participants: right on colour and mixed units, wrong on orientation units, right on
    // catch trials. Every unit then has two identical responses.
    for who in ["a", "b"] {
        let p = app
            .participant("crafted", json!({"external_id": who}))
            .await;
        p.consent_and_read_instructions().await;
        while let Some(trial) = p.next_trial().await {
            let position = trial["position"].as_i64().unwrap();
            let (tap, kind) = trial_at(&app, &p.token, position).await;
            let right = kind == "catch" || tap != "orientation";
            let max = p.max_index(position).await;
            let chosen = if right { max } else { 1 - max };
            assert_eq!(
                p.answer(Participant::answer_body(position, chosen)).await.0,
                200
            );
        }
        assert_eq!(p.finish(json!({})).await.0, 200);
    }
    // An excluded participant who gets everything wrong must not count anywhere.
    let careless = app
        .participant("crafted", json!({"external_id": "careless"}))
        .await;
    careless.consent_and_read_instructions().await;
    careless.answer_everything_wrong().await;
    careless.finish(json!({})).await;
    assert_eq!(
        app.count("SELECT count(*) FROM sessions WHERE excluded")
            .await,
        1
    );

    let analysed = analyse_study(&app.pool, id, None, RESAMPLES).await.unwrap();
    let a = &analysed.analysis;
    assert_eq!(analysed.observer, None, "nothing scored yet");
    assert!(a.agreement.is_empty());
    assert_eq!(a.units.len(), 16);
    assert!(
        a.units.iter().all(|u| u.n_responses == 2),
        "two valid responses per unit"
    );

    let layer = |name: &str| {
        a.by_layer
            .iter()
            .find(|g| g.group == format!("synthetic/{name}"))
            .unwrap_or_else(|| panic!("layer {name}"))
    };
    for (name, units, accuracy) in [
        ("colour", 6, 1.0),
        ("orientation", 6, 0.0),
        ("mixed", 4, 1.0),
    ] {
        let g = layer(name);
        assert_eq!(
            (g.n_units, g.n_responses, g.mean),
            (units, 2 * units, accuracy)
        );
        let ci = g.ci.unwrap();
        assert_eq!(
            (ci.low, ci.high),
            (accuracy, accuracy),
            "no spread, no interval"
        );
    }
    let basis = &a.by_basis[0];
    assert_eq!(basis.group, "synthetic");
    assert!((basis.mean - 10.0 / 16.0).abs() < 1e-12);
    let ci = basis.ci.unwrap();
    assert!(ci.low < 10.0 / 16.0 && 10.0 / 16.0 < ci.high, "{ci:?}");

    // Both halves of every unit agree: r = 1, and so does its Spearman-Brown projection.
    let split = a.split_half.unwrap();
    assert_eq!(split.units, 16);
    assert!((split.r_half - 1.0).abs() < 1e-12 && (split.spearman_brown - 1.0).abs() < 1e-12);

    // Per unit: proportion correct with a Wilson interval (2 of 2: [0.3424, 1]).
    let colour = a.units.iter().find(|u| u.tap == "colour").unwrap();
    let wilson = colour.ci.unwrap();
    assert!(
        (wilson.low - 0.342_37).abs() < 1e-4 && (wilson.high - 1.0).abs() < 1e-12,
        "{wilson:?}"
    );
}
