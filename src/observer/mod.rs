//! The in-silico observer (DESIGN 1.5): LPIPS judges the identical trials humans see.
//!
//! Every distinct image of a study goes through the LPIPS backbone once, in batches; the trials'
//! query-to-reference distances are then computed together, blocked along the feature dimension so
//! that each image's features are read from memory once (`blocked`). Features are kept
//! in memory by image SHA-256 up to a byte budget; when a study's images do not fit (VGG features of
//! 224 px images are 24 MB each), trials are scored in consecutive groups whose images fit, and an image
//! shared by two groups is computed twice. Images are decoded only when their features are missing.
//!
//! Rules, for queries q_max and q_min and references R_max, R_min:
//! - `max-set` (the seed paper's Eq. 2): C(q) = min over r in R_max of d(q, r);
//! - `contrast`: C(q) = min over R_max of d(q, r) - min over R_min of d(q, r).
//!
//! The observer picks the query with the smaller C; its evidence is s_t = C(q_min) - C(q_max), it is
//! correct when s_t > 0 and half correct on a tie (s_t = 0, stored as `choice = 'tie'`, `correct = 0.5`).

pub mod blocked;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use image::RgbImage;
use rayon::prelude::*;
use sqlx::PgPool;

use crate::db::judgments::{self, Judgment, TrialImages};
use crate::jobs::progress::{check, Counters};
use crate::jobs::Progress;
use crate::stimuli::store::ImageStore;
use crate::vision::lpips::FEATURE_BATCH;
use crate::vision::{decode_image, Lpips, LpipsFeatures, LpipsNet};

/// Images between two progress reports and cancellation checks.
const IMAGE_BATCH: usize = 64;
/// Default memory for cached features (alex features of a 224 px image take 1.9 MB).
pub const DEFAULT_CACHE_BYTES: usize = 4 << 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rule {
    MaxSet,
    Contrast,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::MaxSet => "max-set",
            Rule::Contrast => "contrast",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Rule {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "max-set" => Ok(Rule::MaxSet),
            "contrast" => Ok(Rule::Contrast),
            other => bail!("unknown observer rule `{other}` (expected max-set or contrast)"),
        }
    }
}

/// The name judgments are stored under, e.g. `lpips-alex/max-set`.
pub fn observer_name(rule: Rule, net: LpipsNet) -> String {
    format!("lpips-{}/{}", net.name(), rule.name())
}

/// The default observer of analyses and exports: the seed paper's.
pub fn default_observer() -> String {
    observer_name(Rule::MaxSet, LpipsNet::Alex)
}

#[derive(Debug, Clone)]
pub struct ScoreOptions {
    pub rule: Rule,
    pub net: LpipsNet,
    /// Also score practice trials (they are never analysed).
    pub include_practice: bool,
    /// Where the LPIPS weights are found (`<data_dir>/weights`, then `$MEILAB_ASSETS/weights`).
    pub data_dir: PathBuf,
    /// Memory for cached features.
    pub cache_bytes: usize,
}

impl ScoreOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            rule: Rule::MaxSet,
            net: LpipsNet::Alex,
            include_practice: false,
            data_dir: data_dir.into(),
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }

    pub fn observer(&self) -> String {
        observer_name(self.rule, self.net)
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ScoreSummary {
    pub observer: String,
    pub trials: usize,
    /// Distinct images of the scored trials.
    pub images: usize,
    /// Backbone passes (images); more than `images` only when features did not fit in memory.
    pub feature_passes: usize,
    /// Mean correctness over the scored trials (ties count one half).
    pub accuracy: f64,
    pub feature_seconds: f64,
    pub distance_seconds: f64,
}

/// The result of scoring trials without a database.
#[derive(Debug, Clone)]
pub struct Scored {
    pub judgments: Vec<Judgment>,
    pub images: usize,
    pub feature_passes: usize,
    pub feature_time: Duration,
    pub distance_time: Duration,
}

/// A judgment from the evidence s_t.
pub fn judge(trial_id: i64, score: f64) -> Judgment {
    let (choice, correct) = if score > 0.0 {
        ("max", 1.0)
    } else if score < 0.0 {
        ("min", 0.0)
    } else {
        ("tie", 0.5)
    };
    Judgment {
        trial_id,
        score,
        choice,
        correct,
    }
}

/// s_t of one trial from its distance rows: `to_max[q]` and `to_min[q]` are the distances of query q
/// (0 = max query, 1 = min query) to the max and min references.
pub fn evidence(rule: Rule, to_max: [&[f32]; 2], to_min: [&[f32]; 2]) -> f64 {
    let min_of = |d: &[f32]| d.iter().fold(f64::INFINITY, |m, &v| m.min(v as f64));
    let cost = |q: usize| match rule {
        Rule::MaxSet => min_of(to_max[q]),
        Rule::Contrast => min_of(to_max[q]) - min_of(to_min[q]),
    };
    cost(1) - cost(0)
}

fn trial_images(t: &TrialImages) -> impl Iterator<Item = &str> {
    [t.max_query.as_str(), t.min_query.as_str()]
        .into_iter()
        .chain(t.max_refs.iter().map(String::as_str))
        .chain(t.min_refs.iter().map(String::as_str))
}

/// Scores `trials` with `lpips`; `load` decodes an image given its SHA-256. Pure compute: no database.
pub fn score_trials(
    lpips: &Lpips,
    rule: Rule,
    trials: &[TrialImages],
    load: &(dyn Fn(&str) -> anyhow::Result<RgbImage> + Sync),
    cache_bytes: usize,
    progress: &dyn Progress,
) -> anyhow::Result<Scored> {
    let distinct: HashSet<&str> = trials.iter().flat_map(trial_images).collect();
    let mut features: HashMap<String, Arc<LpipsFeatures>> = HashMap::new();
    let mut judgments = Vec::with_capacity(trials.len());
    let (mut feature_time, mut distance_time) = (Duration::ZERO, Duration::ZERO);
    let mut passes = 0;
    // Bytes per image, from one backbone pass on the first image (kept: the first trial needs it).
    let Some(first) = trials.first() else {
        return Ok(Scored {
            judgments,
            images: 0,
            feature_passes: 0,
            feature_time,
            distance_time,
        });
    };
    let began = Instant::now();
    let probe = load(&first.max_query)?;
    let f = lpips
        .features(&[&probe])
        .with_context(|| format!("LPIPS features of image {}", first.max_query))?
        .remove(0);
    let image_bytes = f.bytes().max(1);
    features.insert(first.max_query.clone(), Arc::new(f));
    passes += 1;
    feature_time += began.elapsed();
    let grouped = distinct.len().saturating_mul(image_bytes) > cache_bytes;
    let mut start = 0;
    let mut group = 0;
    while start < trials.len() {
        // The longest run of trials from `start` whose images fit in the budget (at least one trial).
        let mut needed: HashSet<&str> = HashSet::new();
        let mut end = start;
        while end < trials.len() {
            let before = needed.len();
            let new: Vec<&str> = trial_images(&trials[end])
                .filter(|sha| !needed.contains(sha))
                .collect();
            let grown = before + new.iter().collect::<HashSet<_>>().len();
            if end > start && grown.saturating_mul(image_bytes) > cache_bytes {
                break;
            }
            needed.extend(new);
            end += 1;
        }
        features.retain(|sha, _| needed.contains(sha.as_str()));
        let mut missing: Vec<&str> = needed
            .iter()
            .copied()
            .filter(|sha| !features.contains_key(*sha))
            .collect();
        missing.sort_unstable();

        let began = Instant::now();
        group += 1;
        let label = if grouped {
            format!(" (group {group})")
        } else {
            String::new()
        };
        progress.start_phase(&format!("image features{label}"), missing.len() as u64);
        for batch in missing.chunks(IMAGE_BATCH) {
            check(progress)?;
            // Backbone batches run side by side: one's serial steps (decoding, normalising features)
            // overlap the others' parallel convolutions.
            let computed: Vec<Vec<(&str, LpipsFeatures)>> = batch
                .par_chunks(FEATURE_BATCH)
                .map(|part| features_of(lpips, part, load))
                .collect::<anyhow::Result<_>>()?;
            for (sha, f) in computed.into_iter().flatten() {
                features.insert(sha.to_string(), Arc::new(f));
            }
            passes += batch.len();
            progress.advance(batch.len() as u64);
        }
        feature_time += began.elapsed();

        let began = Instant::now();
        let group = &trials[start..end];
        let distances = blocked::trial_distances(rule, group, &features, progress)?;
        judgments.extend(group.iter().zip(&distances).map(|(t, d)| {
            let s = evidence(rule, [d.to_max(0), d.to_max(1)], [d.to_min(0), d.to_min(1)]);
            judge(t.id, s)
        }));
        distance_time += began.elapsed();
        start = end;
    }
    Ok(Scored {
        judgments,
        images: distinct.len(),
        feature_passes: passes,
        feature_time,
        distance_time,
    })
}

/// Decodes `shas` and computes their features, one backbone pass per image size.
fn features_of<'a>(
    lpips: &Lpips,
    shas: &[&'a str],
    load: &(dyn Fn(&str) -> anyhow::Result<RgbImage> + Sync),
) -> anyhow::Result<Vec<(&'a str, LpipsFeatures)>> {
    let images: Vec<RgbImage> = shas
        .iter()
        .map(|sha| load(sha))
        .collect::<anyhow::Result<_>>()?;
    // The backbone needs one size per pass; a study normally has one size for all images.
    let mut order: Vec<usize> = (0..shas.len()).collect();
    order.sort_by_key(|&i| images[i].dimensions());
    let mut out = Vec::with_capacity(shas.len());
    for same in order.chunk_by(|&a, &b| images[a].dimensions() == images[b].dimensions()) {
        let imgs: Vec<&RgbImage> = same.iter().map(|&i| &images[i]).collect();
        let computed = lpips
            .features(&imgs)
            .with_context(|| format!("LPIPS features of image {}", shas[same[0]]))?;
        out.extend(same.iter().map(|&i| shas[i]).zip(computed));
    }
    Ok(out)
}

/// Reads and decodes an image of the store.
pub fn load_from_store(store: &ImageStore, sha: &str) -> anyhow::Result<RgbImage> {
    let path = store
        .path(sha)
        .with_context(|| format!("`{sha}` is not an image key"))?;
    let bytes = std::fs::read(&path)
        .with_context(|| format!("image {sha} is missing from {}", store.root().display()))?;
    Ok(decode_image(&bytes, sha)?)
}

/// Scores every main and catch trial of a study (practice too when asked) and stores the judgments
/// under the observer's name, overwriting earlier ones. The compute runs on the blocking pool; progress
/// and cancellation are relayed to `progress` about ten times a second.
pub async fn score_study(
    pool: &PgPool,
    store: &ImageStore,
    study_id: i64,
    options: &ScoreOptions,
    progress: &dyn Progress,
) -> anyhow::Result<ScoreSummary> {
    check(progress)?;
    let mut conn = pool.acquire().await?;
    let exists = sqlx::query_scalar!("SELECT id FROM studies WHERE id = $1", study_id)
        .fetch_optional(&mut *conn)
        .await?;
    if exists.is_none() {
        bail!("there is no study {study_id}");
    }
    let trials = judgments::trials_to_score(&mut conn, study_id, options.include_practice).await?;
    drop(conn);
    let observer = options.observer();
    if trials.is_empty() {
        bail!("study {study_id} has no trials to score");
    }

    let relay = Arc::new(Counters::default());
    let work = {
        let (relay, store, options) = (relay.clone(), store.clone(), options.clone());
        tokio::task::spawn_blocking(move || {
            let lpips = Lpips::from_data_dir(options.net, &options.data_dir)
                .context("loading the LPIPS weights")?;
            score_trials(
                &lpips,
                options.rule,
                &trials,
                &|sha| load_from_store(&store, sha),
                options.cache_bytes,
                &*relay,
            )
        })
    };
    let scored = relay_progress(work, &relay, progress).await??;

    let mut tx = pool.begin().await?;
    judgments::upsert(&mut tx, &observer, &scored.judgments).await?;
    tx.commit().await?;
    let n = scored.judgments.len();
    Ok(ScoreSummary {
        observer,
        trials: n,
        images: scored.images,
        feature_passes: scored.feature_passes,
        accuracy: scored.judgments.iter().map(|j| j.correct).sum::<f64>() / n as f64,
        feature_seconds: scored.feature_time.as_secs_f64(),
        distance_seconds: scored.distance_time.as_secs_f64(),
    })
}

/// Waits for `work`, forwarding the blocking side's counters to `progress` and its cancellation back.
async fn relay_progress<T>(
    mut work: tokio::task::JoinHandle<T>,
    relay: &Counters,
    progress: &dyn Progress,
) -> anyhow::Result<T> {
    let mut phase = String::new();
    let mut reported = 0u64;
    let forward = |phase: &mut String, reported: &mut u64| {
        let current = relay
            .phase
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let done = relay.done.load(Ordering::Relaxed);
        if current != *phase || done < *reported {
            progress.start_phase(&current, relay.total.load(Ordering::Relaxed));
            *phase = current;
            *reported = 0;
        }
        if done > *reported {
            progress.advance(done - *reported);
            *reported = done;
        }
        if progress.cancelled() {
            relay.cancel.store(true, Ordering::Relaxed);
        }
    };
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            result = &mut work => {
                forward(&mut phase, &mut reported);
                return Ok(result?);
            }
            _ = tick.tick() => forward(&mut phase, &mut reported),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_set_compares_nearest_max_references_only() {
        // q_max is 0.2 from its nearest max reference, q_min 0.5: s = 0.5 - 0.2.
        let s = evidence(
            Rule::MaxSet,
            [&[0.4, 0.2], &[0.5, 0.9]],
            [&[0.0, 0.0], &[0.0, 0.0]],
        );
        assert!((s - 0.3).abs() < 1e-6, "{s}");
    }

    #[test]
    fn contrast_subtracts_the_nearest_min_reference() {
        // C(q_max) = 0.2 - 0.6 = -0.4; C(q_min) = 0.5 - 0.1 = 0.4; s = 0.8.
        let s = evidence(
            Rule::Contrast,
            [&[0.4, 0.2], &[0.5, 0.9]],
            [&[0.6, 0.7], &[0.1, 0.3]],
        );
        assert!((s - 0.8).abs() < 1e-6, "{s}");
    }

    #[test]
    fn a_tie_is_half_correct_and_signs_give_the_choice() {
        assert_eq!((judge(1, 0.0).choice, judge(1, 0.0).correct), ("tie", 0.5));
        assert_eq!((judge(1, 0.1).choice, judge(1, 0.1).correct), ("max", 1.0));
        assert_eq!(
            (judge(1, -0.1).choice, judge(1, -0.1).correct),
            ("min", 0.0)
        );
    }

    #[test]
    fn rules_and_observer_names_round_trip() {
        assert_eq!("contrast".parse::<Rule>().unwrap(), Rule::Contrast);
        assert_eq!(serde_json::to_string(&Rule::MaxSet).unwrap(), "\"max-set\"");
        assert!("nearest".parse::<Rule>().is_err());
        assert_eq!(
            observer_name(Rule::MaxSet, LpipsNet::Alex),
            "lpips-alex/max-set"
        );
    }
}
