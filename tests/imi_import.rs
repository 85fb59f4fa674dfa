//! Imports of the IMI dataset's two folder layouts (fixtures in ../shared/assets/imi).

mod common;

use std::path::PathBuf;

use common::spawn_app;
use meilab::stimuli::{imi, TrialKind};
use meilab::study::{self, StudyConfig};

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
        "active",
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
    let summary = format!("7 units, 7 main, 7 catch and 3 practice trials, {images} images");
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
