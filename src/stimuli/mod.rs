//! Stimuli: the content-addressed image store, stimulus sets (units and their trials) built here or
//! imported from the IMI dataset's folder layouts.

pub mod activations;
pub mod build;
pub mod directions;
pub mod image_set;
pub mod imi;
pub mod protocol;
pub mod sample_photos;
pub mod store;
pub mod synthetic;

use rand::seq::IndexedRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialKind {
    Main,
    Catch,
    Practice,
}

impl TrialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Main => "main",
            Self::Catch => "catch",
            Self::Practice => "practice",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct UnitSpec {
    pub model: String,
    pub tap: String,
    pub basis: String,
    pub index: i32,
    /// The direction in channel space (built units; imports have none).
    pub vector: Option<Vec<f32>>,
    /// Interpretability index (DESIGN 1.7).
    pub ii: Option<f64>,
    /// Share of variance of a principal axis.
    pub explained_variance: Option<f64>,
}

/// One of a unit's most (`max`) or least (`min`) activating images, ranked from its end.
#[derive(Debug, Clone, PartialEq)]
pub struct ExemplarSpec {
    /// Index into `StimulusSet::units`.
    pub unit: usize,
    pub side: &'static str,
    pub rank: i32,
    pub sha256: String,
    pub activation: f32,
}

/// One 2AFC trial; images are SHA-256 keys of the store.
#[derive(Debug, Clone)]
pub struct TrialSpec {
    /// Index into `StimulusSet::units`.
    pub unit: usize,
    pub kind: TrialKind,
    pub condition: String,
    pub batch: i32,
    pub max_query: String,
    pub min_query: String,
    pub max_refs: Vec<String>,
    pub min_refs: Vec<String>,
}

/// Units, their trials, and the stored images the trials show.
#[derive(Debug, Clone, Default)]
pub struct StimulusSet {
    pub units: Vec<UnitSpec>,
    pub trials: Vec<TrialSpec>,
    pub exemplars: Vec<ExemplarSpec>,
    pub images: Vec<store::StoredImage>,
}

impl StimulusSet {
    pub fn count(&self, kind: TrialKind) -> usize {
        self.trials.iter().filter(|t| t.kind == kind).count()
    }

    /// Adds a catch trial (or an obvious practice trial) for each of the first `limit` main trials:
    /// the queries are drawn from the references on screen, so the answer is plain to see.
    pub fn add_obvious_trials(&mut self, kind: TrialKind, limit: usize, rng: &mut impl Rng) {
        let sources: Vec<TrialSpec> = self
            .trials
            .iter()
            .filter(|t| t.kind == TrialKind::Main)
            .take(limit)
            .cloned()
            .collect();
        for source in sources {
            if let Some(trial) = obvious_trial(&source, kind, rng) {
                self.trials.push(trial);
            }
        }
    }
}

/// A trial with the same references whose queries are taken from those references.
pub fn obvious_trial(source: &TrialSpec, kind: TrialKind, rng: &mut impl Rng) -> Option<TrialSpec> {
    let max_query = source.max_refs.choose(rng)?.clone();
    let min_query = source.min_refs.choose(rng)?.clone();
    (max_query != min_query).then(|| TrialSpec {
        kind,
        condition: kind.as_str().to_string(),
        max_query,
        min_query,
        ..source.clone()
    })
}
