//! Imports of the IMI dataset's two folder layouts (fixtures in ../shared/assets/imi).

use std::path::PathBuf;

use meilab::stimuli::{imi, TrialKind};
use meilab::study::{self, StudyConfig};

use crate::common::{self, spawn_app};

fn imi_fixtures() -> PathBuf {
    let assets = std::env::var_os("MEILAB_TEST_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/assets"));
    let imi = assets.join("imi");
    assert!(
        imi.is_dir(),
        "the IMI fixtures are missing: set MEILAB_TEST_ASSETS to a folder with imi/ (like ../shared/assets)"
    );
    imi
}

#[tokio::test]
async fn trial_folders_import_with_their_shipped_reference_indices() {
    let app = spawn_app().await;
    let root = imi_fixtures().join("trials/demo_natural_9_references");
    let imported = imi::import(&root, "googlenet", &app.store).unwrap();
    assert_eq!(imported.layout, imi::Layout::TrialFolders);
    let set = &imported.set;
    assert_eq!((set.units.len(), set.count(TrialKind::Main)), (2, 2));
    for trial in &set.trials {
        assert_eq!((trial.max_refs.len(), trial.min_refs.len()), (9, 9));
    }
    // 2 trials x (2 queries + 18 references), all distinct pictures.
    assert_eq!(set.images.len(), 40);

    let mut tx = app.pool.begin().await.unwrap();
    study::create(
        &mut tx,
        "imi-trials",
        "IMI trials",
        meilab::states::StudyStatus::Active,
        &StudyConfig::default(),
        set,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(app.count("SELECT count(*) FROM trials").await, 2);
    assert_eq!(app.count("SELECT count(*) FROM images").await, 40);
}

#[tokio::test]
async fn exemplar_folders_import_one_trial_per_unit_and_batch() {
    let app = spawn_app().await;
    let root = imi_fixtures().join("exemplars");
    let imported = imi::import(&root, "unused", &app.store).unwrap();
    assert_eq!(imported.layout, imi::Layout::ExemplarFolders);
    let set = &imported.set;
    assert_eq!((set.units.len(), set.count(TrialKind::Main)), (7, 7));
    assert!(set.units.iter().all(|u| u.model == "googlenet"));
    let unit = set
        .units
        .iter()
        .find(|u| u.tap == "mixed4e_pool_reduce_pre_relu_conv")
        .expect("the mixed4e unit");
    assert_eq!(unit.index, 105);
    // 7 units x 20 exemplar files; the store keeps one copy of each distinct picture.
    assert_eq!(set.images.len(), distinct_pictures(&root, 140));
    for trial in &set.trials {
        assert_eq!((trial.max_refs.len(), trial.min_refs.len()), (9, 9));
        assert!(
            !trial.max_refs.contains(&trial.max_query)
                && !trial.min_refs.contains(&trial.min_query)
        );
    }
}

#[test]
fn the_cli_imports_a_folder_into_a_new_study() {
    let data_dir = tempfile::tempdir().unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_meilab"));
    command
        .args(["study", "import"])
        .arg(imi_fixtures().join("exemplars"))
        .args(["--slug", "imported", "--activate", "--data-dir"])
        .arg(data_dir.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pool = runtime.block_on(common::fresh_database());
    let url = common::database_url(&pool);
    // The CLI works on the test's database rather than starting a private cluster of its own.
    let output = command.env("DATABASE_URL", url).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let images = distinct_pictures(&imi_fixtures().join("exemplars"), 140);
    // One catch and one practice unit are held out of the 7 (a trial each in this fixture).
    let summary = format!("7 units, 5 main, 1 catch and 1 practice trials, {images} images");
    assert!(stdout.contains(&summary), "{stdout}");
    let status: String = runtime
        .block_on(
            sqlx::query_scalar("SELECT status FROM studies WHERE slug = 'imported'")
                .fetch_one(&pool),
        )
        .unwrap();
    assert_eq!(status, "active");
}

#[test]
fn a_demo_folder_becomes_the_practice_trials_of_units_of_its_own() {
    let data_dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pool = runtime.block_on(common::fresh_database());
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_meilab"))
        .args(["study", "import"])
        .arg(imi_fixtures().join("exemplars"))
        .args(["--slug", "with-demo", "--practice"])
        .arg(imi_fixtures().join("trials/demo_natural_9_references"))
        .arg("--data-dir")
        .arg(data_dir.path())
        .env("DATABASE_URL", common::database_url(&pool))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("9 units, 6 main, 1 catch and 2 practice trials"),
        "{stdout}"
    );
    let mixed: i64 = runtime
        .block_on(
            sqlx::query_scalar(
                "SELECT count(*) FROM units u WHERE
                   EXISTS (SELECT 1 FROM trials t WHERE t.unit_id = u.id AND t.kind <> 'main')
               AND EXISTS (SELECT 1 FROM trials t WHERE t.unit_id = u.id AND t.kind = 'main')",
            )
            .fetch_one(&pool),
        )
        .unwrap();
    assert_eq!(mixed, 0);
}

/// Writes an IMI trial folder of `trials` trials with 2 references a side; every picture differs.
fn write_trial_folder(root: &std::path::Path, index: serde_json::Value, trials: u32) {
    std::fs::write(root.join("index.json"), index.to_string()).unwrap();
    let mut shade = 0u32;
    let mut png = |path: std::path::PathBuf| {
        shade += 1;
        let colour = [
            (shade * 37 % 256) as u8,
            (shade * 11 % 256) as u8,
            shade as u8,
        ];
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(8, 8, image::Rgb(colour))
            .save(path)
            .unwrap();
    };
    for k in 1..=trials {
        let dir = root.join(format!("trials/trial_{k}"));
        png(dir.join("queries/max.png"));
        png(dir.join("queries/min.png"));
        for i in 0..2 {
            png(dir.join(format!("references/max_{i}.png")));
            png(dir.join(format!("references/min_{i}.png")));
        }
    }
}

#[tokio::test]
async fn catch_trial_idxs_make_catch_trials_and_trials_of_a_channel_share_its_unit() {
    let app = spawn_app().await;
    let root = tempfile::tempdir().unwrap();
    let index = |catch: serde_json::Value| {
        serde_json::json!({
            "task_name": "exp/task_1",
            "n_reference_images": 2,
            "n_trials": 4,
            "catch_trial_idxs": catch,
            "trials": [
                {"mode": "natural",
                 "queries": "/stimuli/alexnet/conv2/channel_5/natural_images/batch_3",
                 "references": "/stimuli/alexnet/conv2/channel_5/natural_images/batch_3"},
                {"layer": "conv2", "channel": 5, "model": "alexnet"},
                {"queries": "/catch-stimuli/conv1/channel_0/natural_images"},
                {"layer": "conv3", "channel": "7"}
            ]
        })
    };
    // IMI numbers catch trials like the folders: 3 is trial_3.
    write_trial_folder(root.path(), index(serde_json::json!([3])), 4);
    let imported = imi::import(root.path(), "alexnet", &app.store).unwrap();
    let set = &imported.set;
    let named: Vec<(&str, &str, i32)> = set
        .units
        .iter()
        .map(|u| (u.model.as_str(), u.tap.as_str(), u.index))
        .collect();
    assert_eq!(
        named,
        [
            ("alexnet", "conv2", 5),
            ("catch-stimuli", "conv1", 0),
            ("alexnet", "conv3", 7)
        ]
    );
    let kinds: Vec<(usize, TrialKind, i32)> = set
        .trials
        .iter()
        .map(|t| (t.unit, t.kind, t.batch))
        .collect();
    assert_eq!(
        kinds,
        [
            (0, TrialKind::Main, 3),
            (0, TrialKind::Main, 0),
            (1, TrialKind::Catch, 0),
            (2, TrialKind::Main, 0)
        ]
    );
    let mut tx = app.pool.begin().await.unwrap();
    study::create(
        &mut tx,
        "named",
        "Named",
        meilab::states::StudyStatus::Draft,
        &StudyConfig::default(),
        set,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        app.count("SELECT count(*) FROM trials WHERE kind = 'catch'")
            .await,
        1
    );
    assert_eq!(app.count("SELECT count(*) FROM units").await, 3);

    for (catch, expected) in [
        (serde_json::json!([0]), "count from 1"),
        (serde_json::json!([5]), "trial_1 to trial_4"),
        (serde_json::json!([2]), "has both main and catch trials"),
    ] {
        write_trial_folder(root.path(), index(catch.clone()), 4);
        let error = imi::import(root.path(), "alexnet", &app.store)
            .err()
            .unwrap();
        assert!(
            format!("{error:#}").contains(expected),
            "{catch}: {error:#}"
        );
    }
}

#[test]
fn a_folder_in_neither_layout_is_refused_with_a_clear_message() {
    let empty = tempfile::tempdir().unwrap();
    let store = meilab::stimuli::store::ImageStore::new(empty.path().join("images"));
    let error = imi::import(empty.path(), "m", &store).err().unwrap();
    assert!(
        format!("{error:#}").contains("holds neither IMI layout"),
        "{error:#}"
    );
}

/// The number of distinct pixel contents among the PNG files below `root`, which must number `files`.
fn distinct_pictures(root: &std::path::Path, files: usize) -> usize {
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "png") {
                found.push(image::open(&path).unwrap().to_rgb8().into_raw());
            }
        }
    }
    assert_eq!(found.len(), files);
    found.sort();
    found.dedup();
    found.len()
}
