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

use std::collections::BTreeSet;

use anyhow::{bail, ensure};
use rand::seq::IndexedRandom;
use rand::Rng;

pub use crate::states::TrialKind;

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

    /// The units that have main trials, in order.
    pub fn main_units(&self) -> Vec<usize> {
        let units: BTreeSet<usize> = self
            .trials
            .iter()
            .filter(|t| t.kind == TrialKind::Main)
            .map(|t| t.unit)
            .collect();
        units.into_iter().collect()
    }

    /// Up to `limit` obvious trials of `kind` (catch, or practice), from main units held out of the
    /// pool, the last first, never the last main unit. A held-out unit's main trials leave the pool;
    /// each becomes an obvious trial (its queries drawn from the references on screen) while `limit`
    /// allows. Returns the trials added.
    pub fn add_obvious_trials(
        &mut self,
        kind: TrialKind,
        limit: usize,
        rng: &mut impl Rng,
    ) -> usize {
        let mut added = 0;
        while added < limit {
            let units = self.main_units();
            let [.., _, last] = units[..] else {
                break;
            };
            added += self.hold_out(last, kind, limit - added, rng);
        }
        added
    }

    /// Holds out the last `units` main units: each of their main trials becomes an obvious trial of
    /// `kind`. Refused when no main unit would be left. Returns the trials added.
    pub fn hold_out_units(
        &mut self,
        kind: TrialKind,
        units: usize,
        rng: &mut impl Rng,
    ) -> anyhow::Result<usize> {
        let main = self.main_units();
        if units == 0 {
            return Ok(0);
        }
        ensure!(
            units < main.len(),
            "holding out {units} {} unit(s) would leave no main unit: the stimuli have {} unit(s) \
             with main trials",
            kind.as_str(),
            main.len()
        );
        Ok(main
            .iter()
            .rev()
            .take(units)
            .map(|&u| self.hold_out(u, kind, usize::MAX, rng))
            .sum())
    }

    fn hold_out(
        &mut self,
        unit: usize,
        kind: TrialKind,
        limit: usize,
        rng: &mut impl Rng,
    ) -> usize {
        let (sources, kept): (Vec<TrialSpec>, Vec<TrialSpec>) = std::mem::take(&mut self.trials)
            .into_iter()
            .partition(|t| t.unit == unit && t.kind == TrialKind::Main);
        self.trials = kept;
        let obvious: Vec<TrialSpec> = sources
            .iter()
            .filter_map(|s| obvious_trial(s, kind, rng))
            .take(limit)
            .collect();
        let added = obvious.len();
        self.trials.extend(obvious);
        added
    }

    /// Adds `other`'s units, images and trials, its trials as `kind` (a practice or catch set of its
    /// own, like IMI's demo folders). A unit both sets name is refused: held-out trials never share a
    /// unit with main trials.
    pub fn merge_held_out(&mut self, other: StimulusSet, kind: TrialKind) -> anyhow::Result<()> {
        if let Some(u) = other.units.iter().find(|u| self.units.contains(u)) {
            bail!(
                "the {} stimuli name unit {} {} {} {}, which the main stimuli have too; held-out units \
                 must be other units",
                kind.as_str(),
                u.model,
                u.tap,
                u.basis,
                u.index
            );
        }
        let offset = self.units.len();
        self.units.extend(other.units);
        self.trials
            .extend(other.trials.into_iter().map(|t| TrialSpec {
                unit: t.unit + offset,
                kind,
                ..t
            }));
        self.exemplars
            .extend(other.exemplars.into_iter().map(|e| ExemplarSpec {
                unit: e.unit + offset,
                ..e
            }));
        for image in other.images {
            if !self.images.iter().any(|i| i.sha256 == image.sha256) {
                self.images.push(image);
            }
        }
        Ok(())
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
