//! Observer throughput (issue 5, must-show 5): a study of 2,000 trials built from the ImageNet sample
//! (R = 9 references per side, a seeded random choice of 20 distinct images per trial), stored
//! content-addressed as the server stores stimuli, then scored with `lpips-alex/max-set` from a cold
//! feature cache. Prints wall time and trials/s.
//!
//! `cargo bench --bench observer` (env: `MEILAB_ASSETS`, default `../shared/assets`; `OBSERVER_TRIALS`,
//! `OBSERVER_RULE` = max-set | contrast; `OBSERVER_LAYERS` = all | 1,3 also scores single alex layers).

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::seq::index::sample;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use meilab::db::judgments::TrialImages;
use meilab::observer::{load_from_store, score_trials, Layers, Rule, DEFAULT_CACHE_BYTES};
use meilab::progress::Silent;
use meilab::stimuli::store::ImageStore;
use meilab::vision::{Lpips, LpipsNet};

const REFERENCES: usize = 9;

fn assets() -> PathBuf {
    std::env::var_os("MEILAB_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/assets"))
}

fn main() -> anyhow::Result<()> {
    let trials_wanted: usize = std::env::var("OBSERVER_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let rule: Rule = std::env::var("OBSERVER_RULE")
        .unwrap_or_else(|_| "max-set".into())
        .parse()?;
    let layers = std::env::var("OBSERVER_LAYERS")
        .unwrap_or_default()
        .parse::<Layers>()?
        .resolve(LpipsNet::Alex.into())?;
    let dir = assets().join("images/imagenet-sample-224");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "JPEG" || e == "jpg" || e == "jpeg" || e == "png")
        })
        .collect();
    files.sort();
    anyhow::ensure!(
        files.len() >= 2 + 2 * REFERENCES,
        "too few images in {}",
        dir.display()
    );

    // The study's images, stored as the server stores stimuli (re-encoded PNG, content-addressed).
    let began = Instant::now();
    let root = tempfile::tempdir()?;
    let store = ImageStore::new(root.path().join("images"));
    let mut keys = Vec::with_capacity(files.len());
    for f in &files {
        keys.push(
            store
                .put_stimulus(&std::fs::read(f)?, &f.display().to_string())?
                .sha256,
        );
    }
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let trials: Vec<TrialImages> = (0..trials_wanted)
        .map(|i| {
            let pick: Vec<String> = sample(&mut rng, keys.len(), 2 + 2 * REFERENCES)
                .into_iter()
                .map(|k| keys[k].clone())
                .collect();
            TrialImages {
                id: i as i64,
                max_query: pick[0].clone(),
                min_query: pick[1].clone(),
                max_refs: pick[2..2 + REFERENCES].to_vec(),
                min_refs: pick[2 + REFERENCES..].to_vec(),
            }
        })
        .collect();
    println!(
        "observer benchmark: {} trials over {} images (224 px, R = {REFERENCES}), rule {rule}, {} single layers, {} threads; study built in {:.1} s",
        trials.len(),
        keys.len(),
        layers.len(),
        rayon::current_num_threads(),
        began.elapsed().as_secs_f64()
    );

    let lpips = Lpips::from_data_dir(LpipsNet::Alex, &assets())?;
    let began = Instant::now();
    let scored = score_trials(
        &lpips,
        rule,
        &layers,
        &trials,
        &|sha| load_from_store(&store, sha),
        DEFAULT_CACHE_BYTES,
        &Silent,
    )?;
    let wall = began.elapsed().as_secs_f64();
    let accuracy =
        scored.judgments.iter().map(|j| j.correct).sum::<f64>() / scored.judgments.len() as f64;
    println!(
        "peak memory {:.0} MiB",
        meilab::cli::bench::peak_rss_mib().unwrap_or(f64::NAN)
    );
    println!(
        "cold cache: {} trials in {wall:.2} s = {:.0} trials/s (features of {} distinct images {:.2} s = {:.0} img/s, decoding included; distances {:.2} s = {:.0} trials/s); random-trial accuracy {accuracy:.3}",
        scored.judgments.len(),
        scored.judgments.len() as f64 / wall,
        scored.images,
        scored.feature_time.as_secs_f64(),
        scored.feature_passes as f64 / scored.feature_time.as_secs_f64(),
        scored.distance_time.as_secs_f64(),
        scored.judgments.len() as f64 / scored.distance_time.as_secs_f64(),
    );
    Ok(())
}
