//! Building a study's stimuli from a real network and an image set: activations (stored, resumable),
//! directions per tap and basis, exemplars and IMI-protocol trials per unit, catch and practice
//! trials, and each unit's interpretability index. Runs in the foreground (CLI) or as a job.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use rand::seq::IndexedRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use super::activations::{self, Model};
use super::directions::{self, Basis, Direction, KmeansActivation};
use super::protocol::{self, Condition, Protocol};
use super::store::ImageStore;
use super::{obvious_trial, ExemplarSpec, StimulusSet, TrialKind, TrialSpec, UnitSpec};
use crate::db;
use crate::progress::{self, Progress};
use crate::study::config::Construction;
use crate::study::StudyConfig;
use crate::vision::{Arch, FeatureCache, Lpips, LpipsNet, Tap};

/// Exemplars per unit the interpretability index compares (DESIGN 1.7).
pub const II_EXEMPLARS: usize = 5;

/// Which units of each tap and basis a study gets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitSampling {
    All,
    /// This many, drawn at random (seeded) per tap and basis.
    Random(usize),
    /// These unit indices in every tap and basis.
    List(Vec<usize>),
}

impl std::str::FromStr for UnitSampling {
    type Err = anyhow::Error;

    /// `all`, a number (random per tap and basis), or a list like `0,5,7`.
    fn from_str(s: &str) -> anyhow::Result<UnitSampling> {
        if s == "all" {
            return Ok(UnitSampling::All);
        }
        if let Some(list) = s.strip_prefix("list:") {
            return Ok(UnitSampling::List(
                list.split(',')
                    .map(|i| {
                        i.trim()
                            .parse()
                            .with_context(|| format!("`{i}` is not a unit index"))
                    })
                    .collect::<anyhow::Result<_>>()?,
            ));
        }
        let n: usize = s
            .parse()
            .with_context(|| format!("units `{s}`: expected all, a number, or list:I,J,K"))?;
        ensure!(n > 0, "units: the number must be at least 1");
        Ok(UnitSampling::Random(n))
    }
}

/// Everything a build needs; stored as a job's payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildSpec {
    /// The study to create (a draft).
    pub study_slug: String,
    pub study_title: String,
    pub image_set_id: i64,
    pub arch: Arch,
    pub taps: Vec<String>,
    pub bases: Vec<Basis>,
    pub units: UnitSampling,
    /// Centroids per tap for the k-means basis.
    pub kmeans_k: usize,
    pub batches: usize,
    pub references: usize,
    pub conditions: Vec<String>,
    /// Units held out of the main pool for catch trials: each gives one catch trial per batch (queries
    /// from the references on screen). Replaces `catch_per_unit`, which older payloads carry and serde
    /// ignores.
    #[serde(default = "default_catch_units")]
    pub catch_units: usize,
    /// Units with the clearest exemplars (highest II) held out of the main pool; each gives one
    /// practice trial (its first batch of the practice condition).
    pub practice_units: usize,
    /// How k-means units score an image.
    #[serde(default)]
    pub kmeans_activation: KmeansActivation,
    /// Build conditions whose query window overlaps the references or easy queries anyway.
    #[serde(default)]
    pub allow_query_overlap: bool,
    /// The LPIPS net of the interpretability index.
    pub ii_net: LpipsNet,
    pub seed: u64,
}

/// One catch unit at the default 20 batches gives 20 catch trials, past a session's default 5.
pub fn default_catch_units() -> usize {
    1
}

/// B at most: trials per unit and condition.
pub const MAX_BATCHES: usize = 100;
/// R at most: references per side.
pub const MAX_REFERENCES: usize = 36;
/// Catch units, and practice units, held out of the main pool at most.
pub const MAX_HELD_OUT_UNITS: usize = 20;
/// Characters of a study's title at most.
pub const MAX_TITLE_CHARS: usize = 200;

impl BuildSpec {
    /// Whether the build may be queued or run: the one check of the lab's form, `meilab stimuli build`
    /// and the worker. A valid study name and title, B, R and the held-out units within their bounds,
    /// a basis, conditions and taps that parse, and taps the network has. What depends on the image
    /// set is [`BuildSpec::check_images`].
    pub fn check(&self) -> anyhow::Result<()> {
        ensure!(
            crate::study::valid_slug(&self.study_slug),
            "The study's URL name uses lowercase letters, digits and '-' (up to 63); `{}` does not.",
            self.study_slug
        );
        ensure!(
            !self.study_title.trim().is_empty()
                && self.study_title.chars().count() <= MAX_TITLE_CHARS,
            "The study's title has 1 to {MAX_TITLE_CHARS} characters."
        );
        let within = |value: usize, min: usize, max: usize, what: &str| {
            ensure!(
                (min..=max).contains(&value),
                "{what} is from {min} to {max}; {value} is outside."
            );
            Ok(())
        };
        within(self.batches, 1, MAX_BATCHES, "Batches (B)")?;
        within(self.references, 1, MAX_REFERENCES, "References (R)")?;
        within(self.catch_units, 0, MAX_HELD_OUT_UNITS, "Catch units")?;
        within(self.practice_units, 0, MAX_HELD_OUT_UNITS, "Practice units")?;
        ensure!(!self.bases.is_empty(), "Choose at least one basis.");
        self.protocol().context("Conditions")?;
        let taps = self.parsed_taps().context("Taps")?;
        let known = self.arch.taps();
        if let Some(t) = taps.iter().find(|t| !known.contains(&t.name)) {
            bail!(
                "{} has no tap `{}`; its taps are {}.",
                self.arch.name(),
                t.name,
                known.join(", ")
            );
        }
        Ok(())
    }

    /// Whether an image set of `images` images is enough for the build: each unit's ranking needs
    /// 2 (B x R + B) images, and query windows overlapping the references or easy queries are refused
    /// unless overridden. Returns the overridden conditions.
    pub fn check_images(&self, images: usize) -> anyhow::Result<Vec<String>> {
        let needed = self.protocol()?.images_needed();
        ensure!(
            images >= needed,
            "{} batches x {} references need at least {needed} images; the set has {images}.",
            self.batches,
            self.references
        );
        self.query_overlap(images)
    }

    pub fn protocol(&self) -> anyhow::Result<Protocol> {
        ensure!(!self.conditions.is_empty(), "give at least one condition");
        Ok(Protocol {
            batches: self.batches,
            references: self.references,
            conditions: self
                .conditions
                .iter()
                .map(|c| c.parse())
                .collect::<anyhow::Result<Vec<Condition>>>()?,
        })
    }

    /// The conditions built despite overlapping the references or easy queries of `images` images,
    /// or, without the override, the refusal naming each one and the images it needs.
    pub fn query_overlap(&self, images: usize) -> anyhow::Result<Vec<String>> {
        let protocol = self.protocol()?;
        let overlapping = protocol.overlapping(images);
        if overlapping.is_empty() || self.allow_query_overlap {
            return Ok(overlapping.iter().map(|c| c.name()).collect());
        }
        let reserved = protocol.reserved_ranks();
        let lines: Vec<String> = overlapping
            .iter()
            .map(|c| {
                let needed = match c.images_to_clear(reserved) {
                    Some(n) => format!("the smallest image set that allows it has {n} images"),
                    None => "no image set allows it (its window reaches an end)".into(),
                };
                format!(
                    "condition {} overlaps the references or easy queries with the {images} images \
                     there are: at {} batches x {} references its queries must start at least {reserved} \
                     ranks from each end (IMI: B x R <= start); {needed}",
                    c.name(),
                    self.batches,
                    self.references
                )
            })
            .collect();
        bail!(
            "{}. Use more images or fewer batches or references, or build anyway with \
             --allow-query-overlap (in the lab: \"build despite query overlap\"); the study records the override.",
            lines.join("; ")
        )
    }

    pub fn parsed_taps(&self) -> anyhow::Result<Vec<Tap>> {
        ensure!(!self.taps.is_empty(), "give at least one tap");
        self.taps
            .iter()
            .map(|t| t.parse::<Tap>().map_err(anyhow::Error::from))
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildSummary {
    pub study_id: i64,
    pub images: usize,
    pub images_computed: usize,
    pub images_reused: usize,
    pub units: usize,
    pub main_trials: usize,
    pub catch_trials: usize,
    pub practice_trials: usize,
    pub extraction_secs: f64,
    pub total_secs: f64,
    /// What the study records of the build.
    #[serde(default)]
    pub construction: Construction,
}

/// One unit on its way to the study.
struct Built {
    spec: UnitSpec,
    stimuli: protocol::UnitStimuli,
    activations: Vec<f32>,
}

pub async fn run(
    pool: &PgPool,
    data_dir: &Path,
    store: &ImageStore,
    spec: &BuildSpec,
    progress: &dyn Progress,
) -> anyhow::Result<BuildSummary> {
    let started = Instant::now();
    spec.check()?;
    let protocol = spec.protocol()?;
    let taps = spec.parsed_taps()?;
    let images = {
        let mut conn = pool.acquire().await?;
        db::image_sets::members(&mut conn, spec.image_set_id).await?
    };
    let overlap_override = spec.check_images(images.len())?;
    let model = Model::load(pool, spec.arch, data_dir).await?;
    let extracted = activations::extract(pool, store, &model, &taps, &images, progress).await?;
    let extraction_secs = started.elapsed().as_secs_f64();

    let mut built = Vec::new();
    progress.start_phase("units and trials", (taps.len() * spec.bases.len()) as u64);
    for tap in &taps {
        let rows = activations::tap_matrix(pool, model.id, &tap.to_string(), &images).await?;
        for &basis in &spec.bases {
            progress::check(progress)?;
            let rows = rows.clone();
            let (spec_c, tap_name) = (spec.clone(), tap.to_string());
            let protocol = protocol.clone();
            let arch = model.arch;
            let units = tokio::task::spawn_blocking(move || {
                units_of(&rows, &spec_c, arch, &tap_name, basis, &protocol)
            })
            .await??;
            built.extend(units);
            progress.advance(1);
        }
    }
    ensure!(!built.is_empty(), "the sampling selected no units");
    // How many units can be held out does not depend on which: refuse before the II's work.
    held_out_units(spec, &built)?;

    interpretability(data_dir, store, spec.ii_net, &images, &mut built, progress).await?;
    let set = assemble(spec, &images, built)?;
    progress::check(progress)?;

    let mut config = StudyConfig::default();
    let main_units = set.main_units().len();
    config.construction = Construction {
        overlap_override,
        kmeans_activation: set
            .units
            .iter()
            .any(|u| u.basis == Basis::Kmeans.as_str())
            .then_some(spec.kmeans_activation),
    };
    config.trials_per_session = config.trials_per_session.min(main_units as i64);
    // A session never has more catch than main trials (the configuration's own rule).
    config.catch_per_session = config
        .catch_per_session
        .min(set.count(TrialKind::Catch) as i64)
        .min(config.trials_per_session);
    config.practice.trials = config
        .practice
        .trials
        .min(set.count(TrialKind::Practice) as i64);
    config.seed = spec.seed;
    let construction = config.construction.clone();
    let mut tx = pool.begin().await?;
    let study_id = crate::study::create(
        &mut tx,
        &spec.study_slug,
        &spec.study_title,
        crate::states::StudyStatus::Draft,
        &config,
        &set,
    )
    .await?;
    tx.commit().await?;
    Ok(BuildSummary {
        study_id,
        images: images.len(),
        images_computed: extracted.computed,
        images_reused: extracted.reused,
        units: set.units.len(),
        main_trials: set.count(TrialKind::Main),
        catch_trials: set.count(TrialKind::Catch),
        practice_trials: set.count(TrialKind::Practice),
        extraction_secs,
        total_secs: started.elapsed().as_secs_f64(),
        construction,
    })
}

fn units_of(
    rows: &[Vec<f32>],
    spec: &BuildSpec,
    arch: Arch,
    tap: &str,
    basis: Basis,
    protocol: &Protocol,
) -> anyhow::Result<Vec<Built>> {
    let all: Vec<Direction> = match basis {
        Basis::Neuron => directions::neurons(rows)?,
        Basis::Pca => directions::principal_axes(rows)?,
        Basis::Kmeans => {
            let k = spec.kmeans_k.min(directions::channels(rows)?);
            directions::spherical_kmeans(rows, k, seed_for(spec.seed, &[tap, "kmeans"]))?
        }
    };
    let chosen: Vec<&Direction> = match &spec.units {
        UnitSampling::All => all.iter().collect(),
        UnitSampling::Random(n) => {
            let mut rng =
                ChaCha8Rng::seed_from_u64(seed_for(spec.seed, &[tap, basis.as_str(), "units"]));
            let mut picked: Vec<&Direction> =
                all.choose_multiple(&mut rng, (*n).min(all.len())).collect();
            picked.sort_by_key(|d| d.index);
            picked
        }
        UnitSampling::List(indices) => indices
            .iter()
            .map(|&i| {
                all.get(i).with_context(|| {
                    format!(
                        "{tap} has no {} unit {i} (it has {})",
                        basis.as_str(),
                        all.len()
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?,
    };
    let clustered = (basis == Basis::Kmeans
        && spec.kmeans_activation == KmeansActivation::Distance)
        .then(|| directions::spherical_points(rows))
        .transpose()?;
    chosen
        .into_iter()
        .map(|d| {
            let activations: Vec<f32> = match &clustered {
                Some(points) => directions::centroid_closeness(points, &d.vector),
                None => rows.iter().map(|r| d.project(r)).collect(),
            };
            let index = d.index.to_string();
            let stimuli = protocol::build(
                &activations,
                protocol,
                seed_for(spec.seed, &[tap, basis.as_str(), &index]),
            )
            .with_context(|| format!("{tap} {} unit {}", basis.as_str(), d.index))?;
            Ok(Built {
                spec: UnitSpec {
                    model: arch.name().to_string(),
                    tap: tap.to_string(),
                    basis: basis.as_str().to_string(),
                    index: d.index as i32,
                    vector: Some(d.vector.clone()),
                    ii: None,
                    explained_variance: d.explained_variance,
                },
                stimuli,
                activations,
            })
        })
        .collect()
}

/// II(u) = (1/M) sum_j sum_k -LPIPS(x_j, x_k) over the unit's top M exemplars, from cached features.
async fn interpretability(
    data_dir: &Path,
    store: &ImageStore,
    net: LpipsNet,
    images: &[String],
    built: &mut [Built],
    progress: &dyn Progress,
) -> anyhow::Result<()> {
    progress.start_phase("interpretability index", built.len() as u64);
    let tops: Vec<Vec<String>> = built
        .iter()
        .map(|b| {
            b.stimuli.ranking[..II_EXEMPLARS.min(b.stimuli.ranking.len())]
                .iter()
                .map(|&i| images[i].clone())
                .collect()
        })
        .collect();
    let (data_dir, store) = (data_dir.to_path_buf(), store.clone());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let work = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<f64>> {
        let lpips = Lpips::from_data_dir(net, &data_dir)?;
        let mut cache = FeatureCache::new(1 << 30, None);
        let mut out = Vec::with_capacity(tops.len());
        for top in &tops {
            let pictures = top
                .iter()
                .map(|sha| activations::load(&store, sha))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let items: Vec<(&str, &image::RgbImage)> =
                top.iter().map(String::as_str).zip(&pictures).collect();
            let features = cache.get_or_compute(&lpips, &items)?;
            let d = crate::vision::distances(&features, &features)?;
            let m = features.len() as f64;
            let sum: f64 = (0..features.len())
                .flat_map(|j| (0..features.len()).map(move |k| (j, k)))
                .map(|(j, k)| -(d.get(j, k) as f64))
                .sum();
            out.push(sum / m);
            // The receiver is gone only when the build was dropped; stop quietly then.
            if tx.send(()).is_err() {
                bail!(progress::Cancelled);
            }
        }
        Ok(out)
    });
    while rx.recv().await.is_some() {
        progress.advance(1);
    }
    let values = work.await??;
    for (b, ii) in built.iter_mut().zip(values) {
        b.spec.ii = Some(ii);
    }
    Ok(())
}

/// Units, trials (main, catch, practice) and exemplars as one stimulus set. Practice and catch
/// units are held out: stored with their exemplars, but without main trials.
fn assemble(
    spec: &BuildSpec,
    images: &[String],
    mut built: Vec<Built>,
) -> anyhow::Result<StimulusSet> {
    let held_out = held_out_units(spec, &built)?;
    let mut set = StimulusSet::default();
    let practice_condition = if spec.conditions.iter().any(|c| c == "easy") {
        "easy".to_string()
    } else {
        spec.protocol()?.conditions[0].name()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed_for(spec.seed, &["catch"]));
    for (u, b) in built.iter_mut().enumerate() {
        set.units.push(std::mem::take(&mut b.spec));
        for (side, list) in [
            ("max", &b.stimuli.max_exemplars),
            ("min", &b.stimuli.min_exemplars),
        ] {
            for (rank, &i) in list.iter().enumerate() {
                set.exemplars.push(ExemplarSpec {
                    unit: u,
                    side,
                    rank: rank as i32,
                    sha256: images[i].clone(),
                    activation: b.activations[i],
                });
            }
        }
        let role = held_out.get(&u).copied().unwrap_or(TrialKind::Main);
        // Batches share their references across conditions: one catch trial per batch.
        let mut batches_done = BTreeSet::new();
        for t in &b.stimuli.trials {
            let trial = TrialSpec {
                unit: u,
                kind: role,
                condition: t.condition.clone(),
                batch: t.batch as i32,
                max_query: images[t.max_query].clone(),
                min_query: images[t.min_query].clone(),
                max_refs: t.max_refs.iter().map(|&i| images[i].clone()).collect(),
                min_refs: t.min_refs.iter().map(|&i| images[i].clone()).collect(),
            };
            match role {
                TrialKind::Main => set.trials.push(trial),
                TrialKind::Practice => {
                    if t.batch == 0 && t.condition == practice_condition {
                        set.trials.push(trial);
                    }
                }
                TrialKind::Catch => {
                    if batches_done.insert(t.batch) {
                        set.trials
                            .extend(obvious_trial(&trial, TrialKind::Catch, &mut rng));
                    }
                }
            }
        }
    }
    Ok(set)
}

/// The practice units (clearest first, by II) and then the catch units (the next clearest), never
/// the last unit of a tap and basis.
fn held_out_units(spec: &BuildSpec, built: &[Built]) -> anyhow::Result<BTreeMap<usize, TrialKind>> {
    let wanted = spec.practice_units.saturating_add(spec.catch_units);
    let group = |b: &Built| (b.spec.tap.clone(), b.spec.basis.clone());
    let mut left: BTreeMap<(String, String), usize> = BTreeMap::new();
    for b in built {
        *left.entry(group(b)).or_default() += 1;
    }
    let mut by_clarity: Vec<usize> = (0..built.len()).collect();
    by_clarity.sort_by(|&a, &b| {
        let (x, y) = (
            built[a].spec.ii.unwrap_or(f64::MIN),
            built[b].spec.ii.unwrap_or(f64::MIN),
        );
        y.total_cmp(&x).then(a.cmp(&b))
    });
    let mut held = Vec::new();
    for u in by_clarity {
        if held.len() == wanted {
            break;
        }
        let count = left.entry(group(&built[u])).or_default();
        if *count > 1 {
            *count -= 1;
            held.push(u);
        }
    }
    ensure!(
        held.len() == wanted,
        "{} practice and {} catch units are to be held out of the main pool, but the build has {} units \
         in {} tap x basis groups and each group keeps at least one main unit, so at most {} can be held \
         out; sample more units per tap and basis, or hold out fewer (practice units, catch units)",
        spec.practice_units,
        spec.catch_units,
        built.len(),
        left.len(),
        built.len() - left.len()
    );
    Ok(held
        .into_iter()
        .enumerate()
        .map(|(i, u)| {
            let kind = if i < spec.practice_units {
                TrialKind::Practice
            } else {
                TrialKind::Catch
            };
            (u, kind)
        })
        .collect())
}

/// A seed per purpose, so adding a tap or basis never changes the others' draws.
fn seed_for(seed: u64, parts: &[&str]) -> u64 {
    let mut h = Sha256::new();
    h.update(seed.to_le_bytes());
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    u64::from_le_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_payload_from_before_held_out_catch_units_still_loads() {
        let old = serde_json::json!({
            "study_slug": "s", "study_title": "S", "image_set_id": 1, "arch": "alexnet",
            "taps": ["conv1"], "bases": ["neuron"], "units": {"random": 2}, "kmeans_k": 4,
            "batches": 2, "references": 3, "conditions": ["easy"], "catch_per_unit": 1,
            "practice_units": 2, "ii_net": "alex", "seed": 0
        });
        let spec: BuildSpec = serde_json::from_value(old).unwrap();
        assert_eq!(spec.catch_units, default_catch_units());
        assert_eq!(spec.kmeans_activation, KmeansActivation::Distance);
        assert!(!spec.allow_query_overlap);
    }

    #[test]
    fn the_overlap_refusal_names_the_condition_the_images_and_the_override() {
        let old = serde_json::json!({
            "study_slug": "s", "study_title": "S", "image_set_id": 1, "arch": "alexnet",
            "taps": ["conv1"], "bases": ["neuron"], "units": "all", "kmeans_k": 4,
            "batches": 20, "references": 9, "conditions": ["easy", "hard99", "hard85"],
            "practice_units": 2, "ii_net": "alex", "seed": 0
        });
        let mut spec: BuildSpec = serde_json::from_value(old).unwrap();
        let refusal = spec.query_overlap(1_000).unwrap_err().to_string();
        for part in [
            "condition hard99 overlaps the references or easy queries with the 1000 images there are",
            "the smallest image set that allows it has 20001 images",
            "condition hard85",
            "has 1334 images",
            "--allow-query-overlap",
        ] {
            assert!(refusal.contains(part), "{part}: {refusal}");
        }
        assert!(!refusal.contains("condition easy"));
        spec.allow_query_overlap = true;
        assert_eq!(spec.query_overlap(1_000).unwrap(), ["hard99", "hard85"]);
        assert!(spec.query_overlap(20_001).unwrap().is_empty());
    }
}
