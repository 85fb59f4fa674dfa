//! The in-silico observer on a real study: its scores against literal LPIPS distances, idempotent
//! re-scoring, cancellation.

mod common;
#[path = "vision_common/mod.rs"]
mod vision_common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use common::spawn_app;
use meilab::db::judgments;
use meilab::jobs::progress::Silent;
use meilab::jobs::{Cancelled, Progress};
use meilab::observer::{self, load_from_store, Rule, ScoreOptions};
use meilab::study::StudyConfig;
use meilab::vision::{Lpips, LpipsNet};

fn options(rule: Rule) -> ScoreOptions {
    let mut o = ScoreOptions::new(vision_common::weights_dir());
    o.rule = rule;
    o
}

#[derive(sqlx::FromRow)]
struct Trial {
    id: i64,
    kind: String,
    max_query: String,
    min_query: String,
    max_refs: Vec<String>,
    min_refs: Vec<String>,
}

async fn trials(pool: &sqlx::PgPool, study: i64) -> Vec<Trial> {
    sqlx::query_as(
        "SELECT id, kind, max_query, min_query, max_refs, min_refs FROM trials
         WHERE study_id = $1 ORDER BY id",
    )
    .bind(study)
    .fetch_all(pool)
    .await
    .expect("trials")
}

#[tokio::test]
async fn max_set_and_contrast_scores_equal_literal_lpips_distances() {
    let app = spawn_app().await;
    let study = app
        .create_synthetic_study("observed", StudyConfig::default())
        .await;
    let max_set = observer::score_study(
        &app.pool,
        &app.store,
        study,
        &options(Rule::MaxSet),
        &Silent,
    )
    .await
    .expect("max-set scoring");
    let contrast = observer::score_study(
        &app.pool,
        &app.store,
        study,
        &options(Rule::Contrast),
        &Silent,
    )
    .await
    .expect("contrast scoring");
    assert_eq!(max_set.observer, "lpips-alex/max-set");
    assert_eq!(contrast.observer, "lpips-alex/contrast");

    let all = trials(&app.pool, study).await;
    let scored = all.iter().filter(|t| t.kind != "practice").count();
    assert_eq!(
        max_set.trials, scored,
        "main and catch trials, not practice"
    );

    let mut conn = app.pool.acquire().await.unwrap();
    let stored: HashMap<(i64, String), judgments::StoredJudgment> =
        judgments::of_study(&mut conn, study)
            .await
            .unwrap()
            .into_iter()
            .map(|j| ((j.trial_id, j.observer.clone()), j))
            .collect();

    // Two main trials and a catch trial, recomputed pair by pair with the literal LPIPS.
    let lpips = Lpips::from_data_dir(LpipsNet::Alex, &vision_common::weights_dir()).unwrap();
    let load = |sha: &str| load_from_store(&app.store, sha).unwrap();
    let picks: Vec<&Trial> = all
        .iter()
        .filter(|t| t.kind == "main")
        .take(2)
        .chain(all.iter().filter(|t| t.kind == "catch").take(1))
        .collect();
    assert_eq!(picks.len(), 3);
    for t in picks {
        let nearest = |q: &str, refs: &[String]| {
            let q = load(q);
            refs.iter()
                .map(|r| lpips.distance(&q, &load(r)).unwrap() as f64)
                .fold(f64::INFINITY, f64::min)
        };
        let (qmax, qmin) = (t.max_query.as_str(), t.min_query.as_str());
        let s_max_set = nearest(qmin, &t.max_refs) - nearest(qmax, &t.max_refs);
        let s_contrast = (nearest(qmin, &t.max_refs) - nearest(qmin, &t.min_refs))
            - (nearest(qmax, &t.max_refs) - nearest(qmax, &t.min_refs));
        for (name, expected) in [
            ("lpips-alex/max-set", s_max_set),
            ("lpips-alex/contrast", s_contrast),
        ] {
            let j = &stored[&(t.id, name.to_string())];
            assert!(
                (j.score - expected).abs() < 1e-4,
                "trial {} {name}: stored {} literal {expected}",
                t.id,
                j.score
            );
            let (choice, correct) = if j.score > 0.0 {
                ("max", 1.0)
            } else if j.score < 0.0 {
                ("min", 0.0)
            } else {
                ("tie", 0.5)
            };
            assert_eq!((j.choice.as_str(), j.correct), (choice, correct));
        }
        if t.kind == "catch" {
            // The max query is one of the max references on screen: its nearest distance is zero.
            assert!(t.max_refs.contains(&t.max_query));
            assert!(s_max_set > 0.0);
        }
    }
}

#[tokio::test]
async fn scoring_again_overwrites_the_same_rows_without_duplicates() {
    let app = spawn_app().await;
    let study = app
        .create_synthetic_study("rescored", StudyConfig::default())
        .await;
    let read = || async {
        let mut conn = app.pool.acquire().await.unwrap();
        judgments::of_study(&mut conn, study).await.unwrap()
    };
    let first_summary = observer::score_study(
        &app.pool,
        &app.store,
        study,
        &options(Rule::MaxSet),
        &Silent,
    )
    .await
    .unwrap();
    let first = read().await;
    assert_eq!(first.len(), first_summary.trials);
    let stamp: Vec<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT scored_at FROM judgments ORDER BY trial_id")
            .fetch_all(&app.pool)
            .await
            .unwrap();

    observer::score_study(
        &app.pool,
        &app.store,
        study,
        &options(Rule::MaxSet),
        &Silent,
    )
    .await
    .unwrap();
    let second = read().await;
    assert_eq!(
        first, second,
        "same trials, scores, choices and correctness"
    );
    let restamped: Vec<chrono::DateTime<chrono::Utc>> =
        sqlx::query_scalar("SELECT scored_at FROM judgments ORDER BY trial_id")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert!(
        restamped.iter().zip(&stamp).all(|(b, a)| b >= a),
        "rows were rewritten in place"
    );
    let distinct = app
        .count("SELECT count(DISTINCT (trial_id, observer)) FROM judgments")
        .await;
    assert_eq!(distinct as usize, second.len());

    // Another observer's judgments sit beside the first's.
    observer::score_study(
        &app.pool,
        &app.store,
        study,
        &options(Rule::Contrast),
        &Silent,
    )
    .await
    .unwrap();
    assert_eq!(read().await.len(), 2 * first.len());
}

/// Asks the work to stop once it reports its first phase.
struct StopAtOnce(AtomicBool);

impl Progress for StopAtOnce {
    fn start_phase(&self, _: &str, _: u64) {
        self.0.store(true, Ordering::Relaxed);
    }
    fn advance(&self, _: u64) {}
    fn cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[tokio::test]
async fn a_cancelled_scoring_stops_and_stores_nothing() {
    let app = spawn_app().await;
    let study = app
        .create_synthetic_study("cancelled", StudyConfig::default())
        .await;
    let stop = StopAtOnce(AtomicBool::new(false));
    let error = observer::score_study(&app.pool, &app.store, study, &options(Rule::MaxSet), &stop)
        .await
        .expect_err("cancelled");
    assert!(error.downcast_ref::<Cancelled>().is_some(), "{error:#}");
    assert_eq!(app.count("SELECT count(*) FROM judgments").await, 0);

    let missing = observer::score_study(
        &app.pool,
        &app.store,
        999_999,
        &options(Rule::MaxSet),
        &Silent,
    )
    .await
    .expect_err("no such study");
    assert!(
        missing.to_string().contains("no study 999999"),
        "{missing:#}"
    );
}
