//! The in-silico observer on a real study: its scores against literal LPIPS distances, idempotent
//! re-scoring, cancellation; single-layer observers on real IMI trials; the colour observer.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use meilab::db::judgments::{self, TrialImages};
use meilab::observer::{self, blocked, load_from_store, Layers, Metric, Rule, ScoreOptions};
use meilab::progress::{Cancelled, Progress, Silent};
use meilab::stimuli::store::ImageStore;
use meilab::stimuli::{imi, StimulusSet, TrialKind};
use meilab::study::{self, StudyConfig};
use meilab::vision::{Lpips, LpipsFeatures, LpipsNet};
use rand::SeedableRng;

use crate::common::spawn_app;
use crate::vision_common;

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

/// The IMI fixtures' real GoogLeNet exemplars (224 px photographs) imported into `store`: the exemplar
/// layout's 7 units, 6 of them held out as catch units (their trial's max query is then on screen, so
/// one distance is zero) and 1 main, then the trial-folder layout's 2 trials.
fn real_trials(store: &ImageStore) -> Vec<StimulusSet> {
    let imi = vision_common::assets().join("imi");
    assert!(
        imi.is_dir(),
        "the IMI fixtures are missing: set MEILAB_TEST_ASSETS to a folder with imi/ (like ../shared/assets)"
    );
    let mut exemplars = imi::import(&imi.join("exemplars"), "googlenet", store)
        .expect("IMI exemplars import")
        .set;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    exemplars.add_obvious_trials(TrialKind::Catch, 7, &mut rng);
    let folders: PathBuf = imi.join("trials/demo_natural_9_references");
    let folders = imi::import(&folders, "googlenet", store)
        .expect("IMI trial folders import")
        .set;
    vec![exemplars, folders]
}

#[test]
fn single_alex_layers_add_up_to_the_full_distance_on_every_real_trial_pair() {
    let root = tempfile::tempdir().unwrap();
    let store = ImageStore::new(root.path().join("images"));
    let trials: Vec<TrialImages> = real_trials(&store)
        .iter()
        .flat_map(|set| &set.trials)
        .enumerate()
        .map(|(i, t)| TrialImages {
            id: i as i64,
            max_query: t.max_query.clone(),
            min_query: t.min_query.clone(),
            max_refs: t.max_refs.clone(),
            min_refs: t.min_refs.clone(),
        })
        .collect();
    assert_eq!(trials.len(), 7 + 2);

    let lpips = Lpips::from_data_dir(LpipsNet::Alex, &vision_common::weights_dir()).unwrap();
    let load = |sha: &str| load_from_store(&store, sha).unwrap();
    let mut shas: Vec<&str> = trials
        .iter()
        .flat_map(|t| {
            [&t.max_query, &t.min_query]
                .into_iter()
                .chain(&t.max_refs)
                .chain(&t.min_refs)
                .map(String::as_str)
        })
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    shas.sort_unstable();
    let images: Vec<image::RgbImage> = shas.iter().map(|s| load(s)).collect();
    assert!(images.iter().all(|i| i.dimensions() == (224, 224)));
    let features: HashMap<String, Arc<LpipsFeatures>> = shas
        .iter()
        .map(|s| s.to_string())
        .zip(lpips.features(&images).unwrap().into_iter().map(Arc::new))
        .collect();

    // The contrast rule compares each query with both reference sets: every pair a trial shows.
    let distances = blocked::trial_distances(Rule::Contrast, &trials, &features, &Silent).unwrap();
    let (mut pairs, mut worst) = (0, 0f64);
    for (t, d) in trials.iter().zip(&distances) {
        assert_eq!(d.taps.len(), 5);
        let refs = t.max_refs.len() + t.min_refs.len();
        for q in 0..2 {
            assert_eq!(d.full.rows[q].len(), refs);
            for j in 0..refs {
                let sum: f64 = d.taps.iter().map(|tap| tap.rows[q][j] as f64).sum();
                let full = d.full.rows[q][j] as f64;
                worst = worst.max((sum - full).abs());
                pairs += 1;
            }
        }
    }
    eprintln!(
        "single alex layers vs full LPIPS: max |sum - full| = {worst:e} over {pairs} image pairs"
    );
    assert_eq!(pairs, 9 * 2 * 18);
    assert!(worst <= 1e-5, "max |sum of layers - full| = {worst}");

    // Each layer's distance is that layer's literal LPIPS term (a trial of each layout, all pairs).
    for (t, d) in [(&trials[0], &distances[0]), (&trials[8], &distances[8])] {
        let refs: Vec<&String> = t.max_refs.iter().chain(&t.min_refs).collect();
        for (q, query) in [&t.max_query, &t.min_query].into_iter().enumerate() {
            let qi = load(query);
            for (j, r) in refs.iter().enumerate() {
                let literal = lpips.layer_distances(&qi, &load(r)).unwrap();
                for (k, term) in literal.iter().enumerate() {
                    let got = d.taps[k].rows[q][j];
                    assert!(
                        (got - term).abs() < 1e-5,
                        "trial {} query {q} ref {j} layer {}: blocked {got} literal {term}",
                        t.id,
                        k + 1
                    );
                }
                let total: f32 = literal.iter().sum();
                assert!((d.full.rows[q][j] - total).abs() < 1e-4);
            }
        }
    }
}

#[tokio::test]
async fn one_scoring_run_stores_the_full_and_every_single_layer_observer() {
    let app = spawn_app().await;
    let store = app.store.clone();
    let set = tokio::task::spawn_blocking(move || real_trials(&store).remove(0))
        .await
        .unwrap();
    let mut tx = app.pool.begin().await.unwrap();
    let id = study::create(
        &mut tx,
        "layers",
        "Layers",
        meilab::states::StudyStatus::Active,
        &StudyConfig::default(),
        &set,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let mut options = ScoreOptions::new(vision_common::weights_dir());
    options.layers = Layers::All;
    let summary = observer::score_study(&app.pool, &app.store, id, &options, &Silent)
        .await
        .expect("scoring");
    assert_eq!(summary.observer, "lpips-alex/max-set");
    assert_eq!(summary.feature_passes, summary.images, "one feature pass");
    let layer_names: Vec<&str> = summary.layers.iter().map(|l| l.observer.as_str()).collect();
    assert_eq!(
        layer_names,
        [1, 2, 3, 4, 5].map(|k| format!("lpips-alex:conv{k}/max-set"))
    );

    let mut conn = app.pool.acquire().await.unwrap();
    let mut expected: Vec<String> = layer_names.iter().map(|n| n.to_string()).collect();
    expected.push("lpips-alex/max-set".into());
    expected.sort();
    assert_eq!(judgments::observers(&mut conn, id).await.unwrap(), expected);
    let stored = judgments::of_study(&mut conn, id).await.unwrap();
    assert_eq!(
        stored.len(),
        6 * 7,
        "1 main and 6 catch trials per observer"
    );

    // conv3's evidence on a main trial, from literal single-layer distances.
    let t = trials(&app.pool, id)
        .await
        .into_iter()
        .find(|t| t.kind == "main")
        .unwrap();
    let lpips = Lpips::from_data_dir(LpipsNet::Alex, &vision_common::weights_dir()).unwrap();
    let load = |sha: &str| load_from_store(&app.store, sha).unwrap();
    let nearest = |q: &str| {
        let q = load(q);
        t.max_refs
            .iter()
            .map(|r| lpips.layer_distances(&q, &load(r)).unwrap()[2] as f64)
            .fold(f64::INFINITY, f64::min)
    };
    let s = nearest(&t.min_query) - nearest(&t.max_query);
    let j = stored
        .iter()
        .find(|j| j.trial_id == t.id && j.observer == "lpips-alex:conv3/max-set")
        .unwrap();
    assert!((j.score - s).abs() < 1e-5, "stored {} literal {s}", j.score);

    // Layers 1 and 3 of a later run sit beside the others; the colour observer has no layers.
    options.rule = Rule::Contrast;
    options.layers = "1,3".parse().unwrap();
    let summary = observer::score_study(&app.pool, &app.store, id, &options, &Silent)
        .await
        .unwrap();
    assert_eq!(summary.layers.len(), 2);
    assert_eq!(
        judgments::observers(&mut conn, id).await.unwrap().len(),
        6 + 3
    );
    options.metric = Metric::Colour;
    let refused = observer::score_study(&app.pool, &app.store, id, &options, &Silent)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("no layers"), "{refused:#}");
}

#[test]
fn the_colour_observer_gives_the_hand_computed_evidence_on_solid_colours() {
    // Published CIELAB (D65) of sRGB red (53.24, 80.09, 67.20), blue (32.30, 79.19, -107.86),
    // green (87.73, -86.18, 83.18) and grey 128 (53.59, 0, 0). Max query red, min query blue;
    // max references red and grey, min references blue and green.
    let trial = TrialImages {
        id: 1,
        max_query: "red".into(),
        min_query: "blue".into(),
        max_refs: vec!["red".into(), "grey".into()],
        min_refs: vec!["blue".into(), "green".into()],
    };
    let load = |name: &str| -> anyhow::Result<image::RgbImage> {
        let rgb = match name {
            "red" => [255, 0, 0],
            "blue" => [0, 0, 255],
            "green" => [0, 255, 0],
            "grey" => [128, 128, 128],
            other => anyhow::bail!("no image {other}"),
        };
        Ok(image::RgbImage::from_pixel(8, 6, image::Rgb(rgb)))
    };
    // max-set: C(red) = d(red, red) = 0; C(blue) = min(d(blue, red) 176.314, d(blue, grey) 135.490).
    // contrast: C(red) = 0 - min(d(red, blue) 176.314, d(red, green) 170.565) = -170.565;
    // C(blue) = 135.490 - d(blue, blue) 0; s = 135.490 + 170.565.
    for (rule, expected) in [(Rule::MaxSet, 135.490), (Rule::Contrast, 306.056)] {
        let scored =
            observer::colour::score_trials(rule, std::slice::from_ref(&trial), &load, &Silent)
                .unwrap();
        let j = &scored.judgments[0];
        assert!(
            (j.score - expected).abs() < 0.01,
            "{rule}: {} vs {expected}",
            j.score
        );
        assert_eq!((j.choice, j.correct), ("max", 1.0));
        assert_eq!(scored.images, 4);
    }
}

#[tokio::test]
async fn the_colour_observer_stores_its_judgments_under_its_name() {
    let app = spawn_app().await;
    let study = app
        .create_synthetic_study("coloured", StudyConfig::default())
        .await;
    let mut options = ScoreOptions::new("/nonexistent-no-weights-needed");
    options.metric = Metric::Colour;
    let summary = observer::score_study(&app.pool, &app.store, study, &options, &Silent)
        .await
        .expect("colour scoring needs no weights");
    assert_eq!(summary.observer, "colour/max-set");
    let mut conn = app.pool.acquire().await.unwrap();
    assert_eq!(
        judgments::observers(&mut conn, study).await.unwrap(),
        ["colour/max-set"]
    );

    // Every single-layer name fits the table's check, underscores of vgg taps included.
    let trial: i64 = sqlx::query_scalar("SELECT min(trial_id) FROM judgments")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    for net in LpipsNet::ALL {
        for tap in net.taps() {
            let name = observer::single_layer_name(net, &tap.name, Rule::Contrast);
            judgments::upsert(&mut conn, &name, &[observer::judge(trial, 0.5)])
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

#[test]
fn the_cli_refuses_a_layer_the_net_does_not_have() {
    let data_dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_meilab"))
        .args([
            "observer",
            "score",
            "any-study",
            "--net",
            "alex",
            "--layers",
            "9",
        ])
        .arg("--data-dir")
        .arg(data_dir.path())
        .env("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "alex has layers 1 to 5 (conv1, conv2, conv3, conv4, conv5); there is no layer 9"
        ),
        "{stderr}"
    );
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_meilab"))
        .args(["observer", "score", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for word in ["--layers", "colour", "lpips-alex:conv3/max-set"] {
        assert!(help.contains(word), "--help lacks {word}: {help}");
    }
}
