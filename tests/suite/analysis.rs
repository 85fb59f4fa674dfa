//! The analysis of a study read back from PostgreSQL: crafted answers give known accuracies, a perfectly
//! consistent split-half, and excluded sessions stay out.

use meilab::analysis::bootstrap::RESAMPLES;
use meilab::export::study::analyse_study;
use serde_json::json;

use crate::common::studies::{lenient, no_practice_study};
use crate::common::{spawn_app, Participant, TestApp};

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
    let id = app
        .create_synthetic_study("crafted", no_practice_study(lenient()))
        .await;
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

/// A simulated study, the generator of the stratification tests. 40 units of one layer and basis, 60
/// participants, three conditions; every response is its own trial, whose observer evidence s is
/// drawn around its condition's mean (easy 0.8, hard85 0.4, hard95 0.1; standard deviation 0.3), as
/// easy trials carry more evidence. `p_correct(condition, s)` decides the human's answer; the max
/// query is on top at random.
mod simulated {
    use meilab::analysis::report::{ResponseFact, TrialJudgment, UnitInfo};
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    pub const OBSERVER: &str = "lpips-alex/max-set";
    pub const CONDITIONS: [(&str, f64); 3] = [("easy", 0.8), ("hard85", 0.4), ("hard95", 0.1)];

    pub fn study(
        seed: u64,
        p_correct: impl Fn(usize, f64) -> f64,
    ) -> (Vec<UnitInfo>, Vec<ResponseFact>, Vec<TrialJudgment>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let units: Vec<UnitInfo> = (0..40)
            .map(|id| UnitInfo {
                id,
                model: "alexnet".into(),
                tap: "conv2".into(),
                basis: "neuron".into(),
                unit_index: id as i32,
                ii: None,
            })
            .collect();
        let (mut responses, mut judgments) = (Vec::new(), Vec::new());
        for participant in 0..60 {
            for unit in 0..40 {
                let condition = rng.random_range(0..CONDITIONS.len());
                // Box-Muller: a normal deviate from two uniforms.
                let (a, b): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
                let normal = (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos();
                let score = CONDITIONS[condition].1 + 0.3 * normal;
                let trial_id = participant * 40 + unit;
                responses.push(ResponseFact {
                    unit_id: unit,
                    session_id: participant,
                    trial_id,
                    condition: CONDITIONS[condition].0.into(),
                    correct: rng.random_bool(p_correct(condition, score)),
                    max_first: rng.random_bool(0.5),
                });
                judgments.push(TrialJudgment {
                    observer: OBSERVER.into(),
                    trial_id,
                    unit_id: unit,
                    score,
                    correct: if score > 0.0 { 1.0 } else { 0.0 },
                });
            }
        }
        (units, responses, judgments)
    }
}

#[test]
fn when_only_the_condition_drives_human_accuracy_no_stratum_shows_agreement_though_a_pool_would() {
    use meilab::analysis::agreement::{self, Observation};
    use meilab::analysis::report::analyse;

    let accuracy = [0.9, 0.75, 0.6];
    let (units, responses, judgments) = simulated::study(41, |c, _| accuracy[c]);
    let a = analyse(
        &units,
        &responses,
        &judgments,
        Some(simulated::OBSERVER),
        RESAMPLES,
    );
    assert_eq!(a.agreement.len(), 4, "three strata and the summary");
    // auc_choice is not tested here: where human and model are both above chance, they pick the
    // same image more often than not whatever the human's accuracy depends on.
    for row in &a.agreement {
        let ci = row.agreement.ci_correct.unwrap();
        assert!(
            ci.low < 0.5 && 0.5 < ci.high,
            "{} auc_correct: {ci:?}",
            row.name()
        );
    }
    // The same responses pooled across conditions, as one stratum.
    let pooled: Vec<Observation> = responses
        .iter()
        .zip(&judgments)
        .map(|(r, j)| Observation {
            unit_id: r.unit_id,
            participant_id: r.session_id,
            stratum: 0,
            human_correct: r.correct,
            max_first: r.max_first,
            score: j.score,
        })
        .collect();
    let pool = agreement::measure(&pooled, RESAMPLES, 7);
    let (auc, ci) = (pool.auc_correct.unwrap(), pool.ci_correct.unwrap());
    let summary = a.agreement.iter().find(|r| r.summary).unwrap();
    eprintln!(
        "pooled auc_correct {auc:.3} [{:.3}, {:.3}]; stratified {:.3} {:?}",
        ci.low,
        ci.high,
        summary.agreement.auc_correct.unwrap(),
        summary.agreement.ci_correct
    );
    assert!(
        ci.low > 0.5,
        "a pooled AUC manufactures agreement: {auc:.3} [{:.3}, {:.3}]",
        ci.low,
        ci.high
    );
}

#[test]
fn when_humans_follow_the_evidence_within_conditions_every_interval_excludes_one_half() {
    use meilab::analysis::report::analyse;

    // Within a condition, P(correct) = sigmoid(3 s).
    let (units, responses, judgments) = simulated::study(43, |_, s| 1.0 / (1.0 + (-3.0 * s).exp()));
    let a = analyse(
        &units,
        &responses,
        &judgments,
        Some(simulated::OBSERVER),
        RESAMPLES,
    );
    assert_eq!(a.agreement.len(), 4);
    for row in &a.agreement {
        let ci = row.agreement.ci_correct.unwrap();
        assert!(ci.low > 0.5, "{} auc_correct: {ci:?}", row.name());
    }
}
