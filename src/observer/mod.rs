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
//!
//! Observers, by the name their judgments are stored under (`RULE` is `max-set` or `contrast`):
//! - `lpips-NET/RULE`: the full LPIPS distance, NET = alex, vgg or squeeze;
//! - `lpips-NET:TAP/RULE`: one LPIPS layer alone (its weighted, spatially averaged term), TAP as in
//!   `LpipsNet::taps()` (alex conv1..conv5; the seed paper's Fig. 2 has one ROC per layer); scored
//!   from the same feature pass as the full distance;
//! - `colour/RULE`: the distance between mean CIELAB colours (`colour`), a low-level baseline.

pub mod blocked;
pub mod colour;

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
use crate::progress::{check, Counters, Progress};
use crate::stimuli::store::ImageStore;
use crate::vision::lpips::FEATURE_BATCH;
use crate::vision::{decode_image, Lpips, LpipsFeatures, LpipsNet};

/// Images between two progress reports and cancellation checks.
pub(crate) const IMAGE_BATCH: usize = 64;
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

/// The name of a single-layer LPIPS observer, e.g. `lpips-alex:conv3/max-set`.
pub fn single_layer_name(net: LpipsNet, tap: &str, rule: Rule) -> String {
    format!("lpips-{}:{tap}/{}", net.name(), rule.name())
}

/// The name of the colour observer, e.g. `colour/max-set`.
pub fn colour_name(rule: Rule) -> String {
    format!("colour/{}", rule.name())
}

/// The distance an observer judges by: an LPIPS network, or the mean-colour baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Metric {
    Lpips(LpipsNet),
    Colour,
}

impl Metric {
    pub fn name(self) -> &'static str {
        match self {
            Metric::Lpips(net) => net.name(),
            Metric::Colour => "colour",
        }
    }

    /// The name of this metric's full observer under `rule`.
    pub fn observer(self, rule: Rule) -> String {
        match self {
            Metric::Lpips(net) => observer_name(rule, net),
            Metric::Colour => colour_name(rule),
        }
    }
}

impl Default for Metric {
    fn default() -> Self {
        Metric::Lpips(LpipsNet::Alex)
    }
}

impl From<LpipsNet> for Metric {
    fn from(net: LpipsNet) -> Self {
        Metric::Lpips(net)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Metric {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "colour" | "color" => Ok(Metric::Colour),
            other => other.parse().map(Metric::Lpips).map_err(|_| {
                anyhow::anyhow!("unknown observer `{s}` (expected alex, vgg, squeeze or colour)")
            }),
        }
    }
}

impl TryFrom<String> for Metric {
    type Error = anyhow::Error;
    fn try_from(s: String) -> anyhow::Result<Self> {
        s.parse()
    }
}

impl From<Metric> for String {
    fn from(m: Metric) -> String {
        m.name().to_string()
    }
}

/// The single LPIPS layers to score beside the full distance, numbered from 1 as the seed paper counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Layers {
    /// Only the full distance.
    #[default]
    None,
    All,
    These(Vec<usize>),
}

impl Layers {
    /// The chosen taps of `metric` as indices into `LpipsNet::taps()`, ascending; an error names the
    /// layers that exist.
    pub fn resolve(&self, metric: Metric) -> anyhow::Result<Vec<usize>> {
        let net = match (self, metric) {
            (Layers::None, _) => return Ok(Vec::new()),
            (_, Metric::Colour) => bail!(
                "the colour observer has no layers: layers apply to the LPIPS nets (alex, vgg, squeeze)"
            ),
            (_, Metric::Lpips(net)) => net,
        };
        let taps = net.taps();
        match self {
            Layers::None => Ok(Vec::new()),
            Layers::All => Ok((0..taps.len()).collect()),
            Layers::These(chosen) => {
                let mut out = Vec::with_capacity(chosen.len());
                for &k in chosen {
                    if k == 0 || k > taps.len() {
                        let names: Vec<&str> = taps.iter().map(|t| t.name.as_str()).collect();
                        bail!(
                            "{net} has layers 1 to {} ({}); there is no layer {k}",
                            taps.len(),
                            names.join(", ")
                        );
                    }
                    out.push(k - 1);
                }
                out.sort_unstable();
                out.dedup();
                Ok(out)
            }
        }
    }
}

impl fmt::Display for Layers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layers::None => Ok(()),
            Layers::All => f.write_str("all"),
            Layers::These(v) => {
                let v: Vec<String> = v.iter().map(usize::to_string).collect();
                f.write_str(&v.join(","))
            }
        }
    }
}

impl FromStr for Layers {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let s = s.trim();
        match s.to_ascii_lowercase().as_str() {
            "" | "none" => return Ok(Layers::None),
            "all" => return Ok(Layers::All),
            _ => {}
        }
        s.split(',')
            .map(|k| k.trim().parse::<usize>().ok().filter(|&k| k > 0))
            .collect::<Option<Vec<_>>>()
            .map(Layers::These)
            .with_context(|| {
                format!("layers `{s}`: expected `all` or layer numbers from 1, e.g. `1,3`")
            })
    }
}

impl TryFrom<String> for Layers {
    type Error = anyhow::Error;
    fn try_from(s: String) -> anyhow::Result<Self> {
        s.parse()
    }
}

impl From<Layers> for String {
    fn from(l: Layers) -> String {
        l.to_string()
    }
}

/// The default observer of analyses and exports: the seed paper's.
pub fn default_observer() -> String {
    observer_name(Rule::MaxSet, LpipsNet::Alex)
}

#[derive(Debug, Clone)]
pub struct ScoreOptions {
    pub rule: Rule,
    /// An LPIPS net, or the colour baseline.
    pub metric: Metric,
    /// Single LPIPS layers scored beside the full distance, from the same features.
    pub layers: Layers,
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
            metric: Metric::default(),
            layers: Layers::None,
            include_practice: false,
            data_dir: data_dir.into(),
            cache_bytes: DEFAULT_CACHE_BYTES,
        }
    }

    /// The full observer's name.
    pub fn observer(&self) -> String {
        self.metric.observer(self.rule)
    }
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ScoreSummary {
    pub observer: String,
    pub trials: usize,
    /// Distinct images of the scored trials.
    pub images: usize,
    /// Backbone passes (images); more than `images` only when features did not fit in memory.
    pub feature_passes: usize,
    /// Mean correctness over the scored trials (ties count one half).
    pub accuracy: f64,
    /// The single-layer observers scored in the same run.
    pub layers: Vec<ObserverAccuracy>,
    pub feature_seconds: f64,
    pub distance_seconds: f64,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ObserverAccuracy {
    pub observer: String,
    pub accuracy: f64,
}

/// The result of scoring trials without a database.
#[derive(Debug, Clone)]
pub struct Scored {
    /// The full distance's judgments.
    pub judgments: Vec<Judgment>,
    /// Per requested tap (an index into `LpipsNet::taps()`), that layer's judgments alone.
    pub layers: Vec<(usize, Vec<Judgment>)>,
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

/// Mean correctness (ties count one half).
pub fn accuracy(judgments: &[Judgment]) -> f64 {
    judgments.iter().map(|j| j.correct).sum::<f64>() / judgments.len().max(1) as f64
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

/// Scores `trials` with `lpips`, in full and, from the same features, with each tap of `layers`
/// alone (indices into `LpipsNet::taps()`); `load` decodes an image given its SHA-256. Pure compute:
/// no database.
pub fn score_trials(
    lpips: &Lpips,
    rule: Rule,
    layers: &[usize],
    trials: &[TrialImages],
    load: &(dyn Fn(&str) -> anyhow::Result<RgbImage> + Sync),
    cache_bytes: usize,
    progress: &dyn Progress,
) -> anyhow::Result<Scored> {
    let distinct: HashSet<&str> = trials.iter().flat_map(trial_images).collect();
    let mut features: HashMap<String, Arc<LpipsFeatures>> = HashMap::new();
    let taps = lpips.net().taps().len();
    if let Some(k) = layers.iter().find(|&&k| k >= taps) {
        bail!("{} has no tap {k}", lpips.net());
    }
    let mut judgments = Vec::with_capacity(trials.len());
    let mut single: Vec<(usize, Vec<Judgment>)> = layers
        .iter()
        .map(|&k| (k, Vec::with_capacity(trials.len())))
        .collect();
    let (mut feature_time, mut distance_time) = (Duration::ZERO, Duration::ZERO);
    let mut passes = 0;
    // Bytes per image, from one backbone pass on the first image (kept: the first trial needs it).
    let Some(first) = trials.first() else {
        return Ok(Scored {
            judgments,
            layers: single,
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
        let judged = |t: &TrialImages, d: &blocked::Table| {
            let s = evidence(rule, [d.to_max(0), d.to_max(1)], [d.to_min(0), d.to_min(1)]);
            judge(t.id, s)
        };
        for (t, d) in group.iter().zip(&distances) {
            judgments.push(judged(t, &d.full));
            for (k, out) in &mut single {
                out.push(judged(t, &d.taps[*k]));
            }
        }
        distance_time += began.elapsed();
        start = end;
    }
    Ok(Scored {
        judgments,
        layers: single,
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
/// under the observer's name (and each requested single layer's under its own), overwriting earlier
/// ones, in one transaction. The compute runs on the blocking pool; progress and cancellation are
/// relayed to `progress` about ten times a second.
pub async fn score_study(
    pool: &PgPool,
    store: &ImageStore,
    study_id: i64,
    options: &ScoreOptions,
    progress: &dyn Progress,
) -> anyhow::Result<ScoreSummary> {
    check(progress)?;
    let layers = options.layers.resolve(options.metric)?;
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
            let load = |sha: &str| load_from_store(&store, sha);
            match options.metric {
                Metric::Lpips(net) => {
                    let lpips = Lpips::from_data_dir(net, &options.data_dir)
                        .context("loading the LPIPS weights")?;
                    score_trials(
                        &lpips,
                        options.rule,
                        &layers,
                        &trials,
                        &load,
                        options.cache_bytes,
                        &*relay,
                    )
                }
                Metric::Colour => colour::score_trials(options.rule, &trials, &load, &*relay),
            }
        })
    };
    let scored = relay_progress(work, &relay, progress).await??;

    let single: Vec<(String, &[Judgment])> = match options.metric {
        Metric::Lpips(net) => {
            let taps = net.taps();
            scored
                .layers
                .iter()
                .map(|(k, js)| {
                    (
                        single_layer_name(net, &taps[*k].name, options.rule),
                        js.as_slice(),
                    )
                })
                .collect()
        }
        Metric::Colour => Vec::new(),
    };
    let mut tx = pool.begin().await?;
    judgments::upsert(&mut tx, &observer, &scored.judgments).await?;
    for (name, js) in &single {
        judgments::upsert(&mut tx, name, js).await?;
    }
    tx.commit().await?;
    Ok(ScoreSummary {
        observer,
        trials: scored.judgments.len(),
        images: scored.images,
        feature_passes: scored.feature_passes,
        accuracy: accuracy(&scored.judgments),
        layers: single
            .iter()
            .map(|(name, js)| ObserverAccuracy {
                observer: name.clone(),
                accuracy: accuracy(js),
            })
            .collect(),
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
        assert_eq!(
            single_layer_name(LpipsNet::Alex, "conv3", Rule::MaxSet),
            "lpips-alex:conv3/max-set"
        );
        assert_eq!(colour_name(Rule::Contrast), "colour/contrast");
        assert_eq!(Metric::Colour.observer(Rule::MaxSet), "colour/max-set");
        assert_eq!(
            "vgg".parse::<Metric>().unwrap(),
            Metric::Lpips(LpipsNet::Vgg)
        );
        assert_eq!("colour".parse::<Metric>().unwrap(), Metric::Colour);
        assert!("resnet".parse::<Metric>().is_err());
        // Queued jobs from before the colour observer name their net the same way.
        assert_eq!(
            serde_json::from_str::<Metric>("\"alex\"").unwrap(),
            Metric::Lpips(LpipsNet::Alex)
        );
    }

    #[test]
    fn layers_count_from_one_and_name_the_range_when_out_of_it() {
        let alex = Metric::Lpips(LpipsNet::Alex);
        assert_eq!("".parse::<Layers>().unwrap(), Layers::None);
        assert_eq!(
            "all".parse::<Layers>().unwrap().resolve(alex).unwrap(),
            [0, 1, 2, 3, 4]
        );
        assert_eq!(
            "3, 1,3".parse::<Layers>().unwrap().resolve(alex).unwrap(),
            [0, 2]
        );
        let squeeze = Metric::Lpips(LpipsNet::Squeeze);
        assert_eq!(
            "all"
                .parse::<Layers>()
                .unwrap()
                .resolve(squeeze)
                .unwrap()
                .len(),
            7
        );
        let nine = "9".parse::<Layers>().unwrap().resolve(alex).unwrap_err();
        assert_eq!(
            nine.to_string(),
            "alex has layers 1 to 5 (conv1, conv2, conv3, conv4, conv5); there is no layer 9"
        );
        assert!("0".parse::<Layers>().is_err());
        assert!("1;3".parse::<Layers>().is_err());
        assert!("all"
            .parse::<Layers>()
            .unwrap()
            .resolve(Metric::Colour)
            .is_err());
        assert_eq!(
            Layers::None.resolve(Metric::Colour).unwrap(),
            Vec::<usize>::new()
        );
        assert_eq!(Layers::These(vec![1, 3]).to_string(), "1,3");
    }
}
