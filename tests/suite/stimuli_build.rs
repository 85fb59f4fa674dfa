//! Stimuli from a real network: image sets (folder, zip), resumable activation extraction, a build
//! of neuron / PCA / k-means units into protocol trials, and the jobs queue that runs builds.

use std::collections::HashSet;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use meilab::db;
use meilab::jobs::Worker;
use meilab::progress::{Cancelled, Progress, Silent};
use meilab::states::{JobStatus, StudyStatus};
use meilab::stimuli::activations::{self, Model};
use meilab::stimuli::build::{self, BuildSpec, UnitSampling};
use meilab::stimuli::directions::{Basis, KmeansActivation};
use meilab::stimuli::image_set;
use meilab::stimuli::store::ImageStore;
use meilab::vision::{Arch, Backbone, LpipsNet, Tap};

use crate::common;
use crate::vision_common;

/// Asks the work to stop once `limit` items are done; counts what was done.
struct StopAfter {
    limit: u64,
    done: AtomicU64,
}

impl Progress for StopAfter {
    fn start_phase(&self, _: &str, _: u64) {}
    fn advance(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }
    fn cancelled(&self) -> bool {
        self.done.load(Ordering::Relaxed) >= self.limit
    }
}

#[derive(sqlx::FromRow)]
struct UnitRow {
    id: i64,
    tap: String,
    basis: String,
    unit_index: i32,
    vector: Vec<f32>,
    ii: Option<f64>,
    explained_variance: Option<f64>,
}

#[derive(sqlx::FromRow)]
struct TrialRow {
    kind: String,
    condition: String,
    max_query: String,
    min_query: String,
    max_refs: Vec<String>,
    min_refs: Vec<String>,
}

fn spec(set_id: i64, slug: &str) -> BuildSpec {
    BuildSpec {
        study_slug: slug.into(),
        study_title: "Built study".into(),
        image_set_id: set_id,
        arch: Arch::AlexNet,
        taps: vec!["conv1".into(), "conv3".into(), "conv5".into()],
        bases: vec![Basis::Neuron, Basis::Pca, Basis::Kmeans],
        units: UnitSampling::Random(2),
        kmeans_k: 4,
        batches: 2,
        references: 3,
        conditions: vec!["easy".into(), "hard95".into()],
        catch_units: 1,
        practice_units: 2,
        kmeans_activation: KmeansActivation::Distance,
        // hard95 over a few dozen images reaches into the references.
        allow_query_overlap: true,
        ii_net: LpipsNet::Alex,
        seed: 11,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn extraction_resumes_without_recomputing_and_matches_the_network() {
    let pool = common::fresh_database().await;
    let photos = vision_common::photo_subset(40);
    let data = vision_common::data_dir_with_weights();
    let store = ImageStore::new(data.path().join("images"));
    let set = image_set::register_folder(&pool, &store, "forty", photos.path(), 224, &Silent)
        .await
        .unwrap();
    assert_eq!(set.members.len(), 40);
    let images: Vec<String> = set.members.iter().map(|m| m.image.sha256.clone()).collect();
    let model = Model::load(&pool, Arch::AlexNet, data.path())
        .await
        .unwrap();
    let taps = [Tap::pre("conv2"), Tap::pre("conv4")];

    // Stopped after two batches of 16: those stay stored.
    let stop = StopAfter {
        limit: 32,
        done: AtomicU64::new(0),
    };
    let err = activations::extract(&pool, &store, &model, &taps, &images, &stop)
        .await
        .unwrap_err();
    assert!(err.downcast_ref::<Cancelled>().is_some(), "{err:#}");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM activations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 32 * 2);

    let counter = StopAfter {
        limit: u64::MAX,
        done: AtomicU64::new(0),
    };
    let resumed = activations::extract(&pool, &store, &model, &taps, &images, &counter)
        .await
        .unwrap();
    assert_eq!((resumed.computed, resumed.reused), (8, 32));
    assert_eq!(
        counter.done.load(Ordering::Relaxed),
        8,
        "only the missing images ran"
    );
    let again = activations::extract(&pool, &store, &model, &taps, &images, &Silent)
        .await
        .unwrap();
    assert_eq!((again.computed, again.reused), (0, 40));

    // Stored means equal a direct pass over the stored picture.
    let backbone = Backbone::from_data_dir(Arch::AlexNet, data.path()).unwrap();
    let picture = activations::load(&store, &images[3]).unwrap();
    let direct = backbone.image_activations(&[picture], &taps).unwrap();
    let stored = activations::tap_matrix(&pool, model.id, "conv4", &images)
        .await
        .unwrap();
    assert_eq!(stored[3].len(), 256);
    for (a, b) in stored[3].iter().zip(&direct[0][1]) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_build_makes_protocol_trials_from_real_units() {
    let app = common::spawn_app().await;
    let photos = vision_common::photo_subset(40);
    let data = vision_common::data_dir_with_weights();
    let set =
        image_set::register_folder(&app.pool, &app.store, "forty", photos.path(), 224, &Silent)
            .await
            .unwrap();
    let members: HashSet<String> = set.members.iter().map(|m| m.image.sha256.clone()).collect();
    let summary = build::run(
        &app.pool,
        data.path(),
        &app.store,
        &spec(set.set_id, "built"),
        &Silent,
    )
    .await
    .unwrap();
    // 3 taps x 3 bases x 2 units; 2 practice units (a trial each) and a catch unit (a trial per
    // batch) held out; the other 15 have 2 conditions x 2 batches.
    assert_eq!(summary.units, 18);
    assert_eq!(summary.main_trials, 15 * 4);
    assert_eq!(summary.practice_trials, 2);
    assert_eq!(summary.catch_trials, 2);
    assert_eq!(
        summary.construction.kmeans_activation,
        Some(KmeansActivation::Distance)
    );
    let stored: serde_json::Value =
        sqlx::query_scalar("SELECT config->'construction' FROM studies WHERE id = $1")
            .bind(summary.study_id)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        stored,
        serde_json::json!({"overlap_override": ["hard95"], "kmeans_activation": "distance"})
    );

    let units: Vec<UnitRow> = sqlx::query_as(
        "SELECT id, tap, basis, unit_index, vector, ii, explained_variance FROM units ORDER BY id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let model_id: i64 = sqlx::query_scalar("SELECT id FROM models")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    for UnitRow {
        id,
        tap,
        basis,
        unit_index: index,
        vector,
        ii,
        explained_variance: ev,
    } in &units
    {
        let ii = ii.expect("every built unit has an II");
        assert!(
            ii.is_finite() && ii < 0.0,
            "II is minus a sum of LPIPS distances: {ii}"
        );
        assert_eq!(ev.is_some(), basis == "pca");
        let norm: f32 = vector.iter().map(|v| v * v).sum();
        assert!((norm - 1.0).abs() < 1e-4, "{basis} vectors are unit length");
        // Exemplars: B x R per side, activations ranked, equal to the projection of stored means.
        let exemplars: Vec<(String, i32, String, f32)> = sqlx::query_as(
            "SELECT side, rank, sha256, activation FROM exemplars WHERE unit_id = $1 ORDER BY side, rank",
        )
        .bind(id)
        .fetch_all(&app.pool)
        .await
        .unwrap();
        assert_eq!(exemplars.len(), 2 * 2 * 3);
        for pair in exemplars.windows(2).filter(|w| w[0].0 == w[1].0) {
            let ordered = if pair[0].0 == "max" {
                pair[0].3 >= pair[1].3
            } else {
                pair[0].3 <= pair[1].3
            };
            assert!(ordered, "{tap} {basis} {index}: exemplars out of order");
        }
        let (_, _, sha, activation) = &exemplars[0];
        let means: Vec<f32> = sqlx::query_scalar(
            "SELECT means FROM activations WHERE model_id = $1 AND tap = $2 AND sha256 = $3",
        )
        .bind(model_id)
        .bind(tap)
        .bind(sha)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        if basis == "neuron" {
            assert_eq!(
                *activation, means[*index as usize],
                "neuron units are channels, exactly"
            );
        }
        if basis == "kmeans" {
            // Minus the distance of two unit vectors (the directions module checks the values).
            assert!((-2.0..=0.0).contains(activation), "{activation}");
            continue;
        }
        let projected: f64 = vector
            .iter()
            .zip(&means)
            .map(|(v, m)| *v as f64 * *m as f64)
            .sum();
        assert!((projected as f32 - activation).abs() <= 1e-4 * activation.abs().max(1.0));
    }

    let trials: Vec<TrialRow> = sqlx::query_as(
        "SELECT kind, condition, max_query, min_query, max_refs, min_refs FROM trials",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    for TrialRow {
        kind,
        condition,
        max_query: max_q,
        min_query: min_q,
        max_refs,
        min_refs,
    } in &trials
    {
        assert_eq!((max_refs.len(), min_refs.len()), (3, 3));
        let refs: HashSet<&String> = max_refs.iter().chain(min_refs).collect();
        for image in refs.iter().copied().chain([max_q, min_q]) {
            assert!(members.contains(image), "trial images come from the set");
        }
        if kind == "catch" {
            assert!(
                max_refs.contains(max_q) && min_refs.contains(min_q),
                "catch queries are shown references"
            );
        } else {
            assert!(
                !refs.contains(max_q) && !refs.contains(min_q),
                "{condition}: query among references"
            );
        }
    }

    // Practice and catch units are held out: none of them has a main trial, each keeps its
    // exemplars, and every tap and basis keeps main units.
    let mixed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM units u
          WHERE u.study_id = $1
            AND EXISTS (SELECT 1 FROM trials t WHERE t.unit_id = u.id AND t.kind IN ('practice', 'catch'))
            AND EXISTS (SELECT 1 FROM trials t WHERE t.unit_id = u.id AND t.kind = 'main')",
    )
    .bind(summary.study_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        mixed, 0,
        "a unit with practice or catch trials has main trials"
    );
    let (held_out, with_exemplars, groups_without_main): (i64, i64, i64) = sqlx::query_as(
        "WITH held AS (
            SELECT u.id FROM units u WHERE u.study_id = $1
               AND NOT EXISTS (SELECT 1 FROM trials t WHERE t.unit_id = u.id AND t.kind = 'main'))
         SELECT (SELECT count(*) FROM held),
                (SELECT count(DISTINCT e.unit_id) FROM exemplars e JOIN held h ON h.id = e.unit_id),
                (SELECT count(*) FROM (SELECT tap, basis FROM units WHERE study_id = $1 GROUP BY tap, basis
                   HAVING NOT bool_or(EXISTS (SELECT 1 FROM trials t WHERE t.unit_id = units.id AND t.kind = 'main'))) g)",
    )
    .bind(summary.study_id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((held_out, with_exemplars, groups_without_main), (3, 3, 0));

    // The draft goes live and a participant completes it.
    let study_id = summary.study_id;
    let mut conn = app.pool.acquire().await.unwrap();
    db::studies::set_status(&mut conn, study_id, StudyStatus::Active)
        .await
        .unwrap();
    // No button lock, so the scripted participant need not wait before each answer.
    sqlx::query("UPDATE studies SET config = jsonb_set(config, '{lock_ms}', '0') WHERE id = $1")
        .bind(study_id)
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    let participant = app.participant("built", serde_json::json!({})).await;
    participant.consent_and_read_instructions().await;
    assert!(participant.answer_everything().await > 0);
    let (status, _) = participant.finish(serde_json::json!({})).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn holding_out_more_units_than_a_tap_and_basis_can_spare_is_refused() {
    let pool = common::fresh_database().await;
    let photos = vision_common::photo_subset(20);
    let data = vision_common::data_dir_with_weights();
    let store = ImageStore::new(data.path().join("images"));
    let set = image_set::register_folder(&pool, &store, "twenty", photos.path(), 224, &Silent)
        .await
        .unwrap();
    let mut s = spec(set.set_id, "drained");
    s.taps = vec!["conv2".into()];
    s.bases = vec![Basis::Neuron];
    s.conditions = vec!["easy".into()];
    // 2 units, 2 practice + 1 catch wanted: the tap would keep no main unit.
    let error = build::run(&pool, data.path(), &store, &s, &Silent)
        .await
        .unwrap_err();
    let message = format!("{error:#}");
    assert!(
        message.contains("2 practice and 1 catch units")
            && message.contains("at most 1 can be held out"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hard99_build_over_the_imagenet_sample_is_refused_unless_overridden() {
    let images = vision_common::photo_dir();
    let data = vision_common::data_dir_with_weights();
    let app = common::spawn_app().await;
    let pool = app.pool.clone();
    let url = common::database_url(&pool);
    let build = |extra: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_meilab"));
        command
            .args(["stimuli", "build", "--images"])
            .arg(&images)
            .args([
                "--taps",
                "conv1",
                "--units",
                "3",
                "--conditions",
                "hard99",
                "--practice-units",
                "1",
                "--study",
                "hard",
                "--data-dir",
            ])
            .arg(data.path())
            .args(extra)
            .env("DATABASE_URL", &url);
        command.output().unwrap()
    };
    let refused = tokio::task::block_in_place(|| build(&[]));
    let stdout = String::from_utf8_lossy(&refused.stdout);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stdout.contains("1000 images"),
        "the shared ImageNet sample (MEILAB_TEST_ASSETS) is needed: {stdout}"
    );
    assert!(!refused.status.success(), "{stdout}");
    for part in [
        "condition hard99 overlaps the references or easy queries with the 1000 images there are",
        "the smallest image set that allows it has 20001 images",
        "--allow-query-overlap",
    ] {
        assert!(stderr.contains(part), "`{part}` not in: {stderr}");
    }
    println!("refusal: {stderr}");
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM studies")
            .fetch_one(&pool)
            .await
            .unwrap(),
        0
    );

    let built = tokio::task::block_in_place(|| build(&["--allow-query-overlap"]));
    let stdout = String::from_utf8_lossy(&built.stdout);
    assert!(
        built.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&built.stderr)
    );
    assert!(stdout.contains("built despite query overlap"), "{stdout}");
    let construction: serde_json::Value =
        sqlx::query_scalar("SELECT config->'construction' FROM studies WHERE slug = 'hard'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        construction,
        serde_json::json!({"overlap_override": ["hard99"], "kmeans_activation": null})
    );

    // The override shows with the results: on the page and in units.csv.
    let id: i64 = sqlx::query_scalar("SELECT id FROM studies WHERE slug = 'hard'")
        .fetch_one(&pool)
        .await
        .unwrap();
    app.create_account("rita", meilab::accounts::Role::Researcher)
        .await;
    let rita = app.login("rita").await;
    let (status, html) = rita.text(&format!("/admin/studies/{id}/results")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("data-testid=\"overlap-override\"") && html.contains("the queries of hard99"),
        "{html}"
    );
    let (status, csv) = rita.text(&format!("/admin/studies/{id}/units.csv")).await;
    assert_eq!(status, 200);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let column = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "query_overlap_override")
        .expect("units.csv names the override");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| &r[column] == "hard99"), "{csv}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupt_file_is_reported_and_skipped_and_the_build_completes() {
    let pool = common::fresh_database().await;
    let photos = vision_common::photo_subset(24);
    let good = std::fs::read_dir(photos.path())
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(photos.path().join("broken.jpg"), &bytes[..bytes.len() / 3]).unwrap();
    std::fs::write(photos.path().join("notes.txt"), "not a picture").unwrap();
    std::fs::create_dir(photos.path().join("nested")).unwrap();
    std::fs::write(
        photos.path().join("nested/garbage.png"),
        b"\x89PNG\r\n\x1a\nnonsense",
    )
    .unwrap();
    let data = vision_common::data_dir_with_weights();
    let store = ImageStore::new(data.path().join("images"));
    let set = image_set::register_folder(&pool, &store, "with-junk", photos.path(), 224, &Silent)
        .await
        .unwrap();
    assert_eq!(set.members.len(), 24);
    let skipped: Vec<(&str, &str)> = set
        .skipped
        .iter()
        .map(|s| (s.path.rsplit('/').next().unwrap(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    for name in ["broken.jpg", "notes.txt", "garbage.png"] {
        let (_, reason) = skipped.iter().find(|(p, _)| *p == name).expect(name);
        assert!(!reason.is_empty());
    }
    let mut s = spec(set.set_id, "junk");
    s.taps = vec!["conv2".into()];
    s.bases = vec![Basis::Neuron];
    s.conditions = vec!["easy".into()];
    // Two units: one may be held out.
    s.practice_units = 1;
    s.catch_units = 0;
    let summary = build::run(&pool, data.path(), &store, &s, &Silent)
        .await
        .unwrap();
    assert_eq!(summary.units, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn zip_uploads_refuse_traversal_and_bombs() {
    let pool = common::fresh_database().await;
    let photos = vision_common::photo_subset(5);
    let mut archive = Vec::new();
    {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(&mut archive));
        let options = zip::write::SimpleFileOptions::default();
        for entry in std::fs::read_dir(photos.path()).unwrap() {
            let path = entry.unwrap().path();
            zip.start_file(
                format!("pics/{}", path.file_name().unwrap().to_str().unwrap()),
                options,
            )
            .unwrap();
            zip.write_all(&std::fs::read(&path).unwrap()).unwrap();
        }
        zip.start_file("../../escape.png", options).unwrap();
        zip.write_all(b"whatever").unwrap();
        zip.start_file("bomb.png", options).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..80 {
            zip.write_all(&zeros).unwrap();
        }
        zip.finish().unwrap();
    }
    assert!(archive.len() < 2 << 20, "the bomb compresses well");
    let data = tempfile::tempdir().unwrap();
    let store = ImageStore::new(data.path().join("images"));
    let set = image_set::register_zip(&pool, &store, "zipped", archive, 224, &Silent)
        .await
        .unwrap();
    assert_eq!(set.members.len(), 5);
    let reasons: Vec<String> = set
        .skipped
        .iter()
        .map(|s| format!("{}: {}", s.path, s.reason))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons
        .iter()
        .any(|r| r.starts_with("../../escape.png") && r.contains("leaves the archive")));
    assert!(reasons
        .iter()
        .any(|r| r.starts_with("bomb.png") && r.contains("refused")));
    assert!(
        !data.path().join("escape.png").exists()
            && !data.path().parent().unwrap().join("escape.png").exists()
    );
    let bad =
        image_set::register_zip(&pool, &store, "junk", b"not a zip".to_vec(), 224, &Silent).await;
    assert!(bad.unwrap_err().to_string().contains("not a readable zip"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_job_queue_runs_cancels_and_takes_over_builds() {
    let pool = common::fresh_database().await;
    let photos = vision_common::photo_subset(20);
    let data = vision_common::data_dir_with_weights();
    let worker = Worker::new(pool.clone(), data.path().to_path_buf());
    let set =
        image_set::register_folder(&pool, &worker.store, "twenty", photos.path(), 224, &Silent)
            .await
            .unwrap();
    let mut s = spec(set.set_id, "queued");
    s.taps = vec!["conv1".into()];
    s.bases = vec![Basis::Pca];
    // Two units: the catch unit is held out, no practice.
    s.practice_units = 0;

    // Queued, then cancelled before any worker takes it: never runs.
    let cancelled = meilab::jobs::worker::submit_build(&pool, &s).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    assert!(db::jobs::cancel(&mut conn, cancelled).await.unwrap());
    assert!(!worker.run_one().await.unwrap(), "nothing left to run");
    assert_eq!(
        db::jobs::get(&mut conn, cancelled)
            .await
            .unwrap()
            .unwrap()
            .status,
        JobStatus::Cancelled
    );

    // Queued and run.
    let id = meilab::jobs::worker::submit_build(&pool, &s).await.unwrap();
    assert!(worker.run_one().await.unwrap());
    let job = db::jobs::get(&mut conn, id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Done, "{:?}", job.error);
    assert!(
        job.total > 0 && job.progress == job.total,
        "progress recorded: {}/{}",
        job.progress,
        job.total
    );
    let study_id = job.result.unwrap()["study_id"].as_i64().unwrap();
    assert!(db::studies::by_study_id(&mut conn, study_id)
        .await
        .unwrap()
        .is_some());

    // The observer scores the built study as a job: one judgment per main and catch trial.
    let score = meilab::jobs::worker::submit_score(
        &pool,
        &meilab::jobs::worker::ScoreJob {
            study_id,
            rule: "max-set".into(),
            net: LpipsNet::Alex.into(),
            layers: Default::default(),
        },
    )
    .await
    .unwrap();
    assert!(worker.run_one().await.unwrap());
    let job = db::jobs::get(&mut conn, score).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Done, "{:?}", job.error);
    let (judged, scorable): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM judgments j JOIN trials t ON t.id = j.trial_id WHERE t.study_id = $1),
                (SELECT count(*) FROM trials WHERE study_id = $1 AND kind IN ('main', 'catch'))",
    )
    .bind(study_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(scorable > 0);
    assert_eq!(judged, scorable);

    // A failing build records its error (the study name is now taken).
    let failing = meilab::jobs::worker::submit_build(&pool, &s).await.unwrap();
    assert!(worker.run_one().await.unwrap());
    let job = db::jobs::get(&mut conn, failing).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.error.unwrap().contains("queued"));

    // A running job whose worker stopped sending heartbeats is taken over.
    s.study_slug = "taken-over".into();
    let orphan = meilab::jobs::worker::submit_build(&pool, &s).await.unwrap();
    sqlx::query("UPDATE jobs SET status = 'running', attempts = 1, heartbeat_at = now() - interval '5 minutes' WHERE id = $1")
        .bind(orphan)
        .execute(&pool)
        .await
        .unwrap();
    assert!(worker.run_one().await.unwrap());
    let job = db::jobs::get(&mut conn, orphan).await.unwrap().unwrap();
    assert_eq!((job.status, job.attempts), (JobStatus::Done, 2));
}
