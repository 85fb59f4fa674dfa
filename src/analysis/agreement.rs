//! Human / model agreement (DESIGN 1.6), within strata.
//!
//! Two measures, both ROC AUCs (the Mann-Whitney probability that a positive carries a higher score
//! than a negative, ties one half):
//! - `auc_correct`: the observer's evidence s_t predicting whether the human chose the max query;
//! - `auc_choice`: the position-signed evidence C(bottom) - C(top) (s_t when the max query is on top,
//!   -s_t otherwise) predicting whether the human chose the top query: does the model pick the image
//!   the human picked.
//!
//! Difficulty drives both s_t and human accuracy, so pooling conditions (or bases) manufactures
//! agreement. Every observation carries a stratum (basis x condition within a layer) and only pairs
//! within one stratum are compared: the stratified AUC is sum_s U_s / sum_s P_s N_s. With one stratum
//! it is the plain AUC.
//!
//! Intervals: a 95 % percentile bootstrap that resamples units and participants at once (a two-way
//! cluster bootstrap): each resample draws units and participants with replacement, and a response
//! weighs (draws of its unit) x (draws of its participant).

use std::collections::{BTreeMap, BTreeSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::bootstrap::{self, Interval};
use super::roc::{self, RocPoint};

/// What the intervals resample, as exports and pages say it.
pub const RESAMPLED: &str = "units and participants (two-way)";

/// One valid main response, with the observer's evidence on its trial.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub unit_id: i64,
    /// The session: one participant.
    pub participant_id: i64,
    /// Pairs are compared only within one stratum.
    pub stratum: usize,
    /// The human chose the max query.
    pub human_correct: bool,
    /// The max query was shown on top.
    pub max_first: bool,
    /// s_t = C(q_min) - C(q_max): positive when the observer picks the max query.
    pub score: f64,
}

impl Observation {
    fn chose_top(&self) -> bool {
        self.human_correct == self.max_first
    }
    /// C(bottom) - C(top): positive when the observer picks the top query.
    fn signed_score(&self) -> f64 {
        if self.max_first {
            self.score
        } else {
            -self.score
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// s_t predicts whether the human chose the max query.
    Correct,
    /// C(bottom) - C(top) predicts whether the human chose the top query.
    Choice,
}

impl Measure {
    fn point(self, o: &Observation) -> (f64, bool) {
        match self {
            Measure::Correct => (o.score, o.human_correct),
            Measure::Choice => (o.signed_score(), o.chose_top()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agreement {
    pub n_units: usize,
    pub n_participants: usize,
    pub n_responses: usize,
    pub auc_correct: Option<f64>,
    pub ci_correct: Option<Interval>,
    pub auc_choice: Option<f64>,
    pub ci_choice: Option<Interval>,
    /// Share of responses where the observer chose as the human did (a tie counts one half).
    pub agreement: f64,
    pub kappa: Option<f64>,
    pub human_accuracy: f64,
    pub model_accuracy: f64,
    /// The ROC curve of `auc_correct` (meaningful for a single stratum).
    pub roc: Vec<RocPoint>,
}

/// The observer's probability of choosing the max query: 1, 0, or one half on a tie.
fn model_chooses_max(score: f64) -> f64 {
    if score > 0.0 {
        1.0
    } else if score < 0.0 {
        0.0
    } else {
        0.5
    }
}

/// Agreement over `observations`, AUCs stratified by their `stratum`.
pub fn measure(observations: &[Observation], resamples: usize, seed: u64) -> Agreement {
    let n = observations.len();
    let share = |total: f64| if n > 0 { total / n as f64 } else { 0.0 };
    let human_accuracy = share(observations.iter().filter(|o| o.human_correct).count() as f64);
    let model_accuracy = share(
        observations
            .iter()
            .map(|o| model_chooses_max(o.score))
            .sum(),
    );
    let agreement = share(
        observations
            .iter()
            .map(|o| {
                let m = model_chooses_max(o.score);
                if o.human_correct {
                    m
                } else {
                    1.0 - m
                }
            })
            .sum(),
    );
    let chance = human_accuracy * model_accuracy + (1.0 - human_accuracy) * (1.0 - model_accuracy);
    let kappa = (n > 0 && chance < 1.0).then(|| (agreement - chance) / (1.0 - chance));
    let plan = Plan::new(observations);
    let [ci_correct, ci_choice] = plan.intervals(resamples, seed);
    let scores: Vec<f64> = observations.iter().map(|o| o.score).collect();
    let labels: Vec<bool> = observations.iter().map(|o| o.human_correct).collect();
    Agreement {
        n_units: plan.units,
        n_participants: plan.participants,
        n_responses: n,
        auc_correct: stratified_auc(observations, Measure::Correct),
        ci_correct,
        auc_choice: stratified_auc(observations, Measure::Choice),
        ci_choice,
        agreement,
        kappa,
        human_accuracy,
        model_accuracy,
        roc: roc::curve(&scores, &labels),
    }
}

/// sum_s U_s / sum_s P_s N_s over the strata; `None` unless some stratum has both classes.
pub fn stratified_auc(observations: &[Observation], m: Measure) -> Option<f64> {
    let mut strata: BTreeMap<usize, (Vec<f64>, Vec<bool>)> = BTreeMap::new();
    for o in observations {
        let (s, l) = m.point(o);
        let entry = strata.entry(o.stratum).or_default();
        entry.0.push(s);
        entry.1.push(l);
    }
    let (mut u, mut pairs) = (0.0, 0.0);
    for (scores, labels) in strata.values() {
        let positives = labels.iter().filter(|&&l| l).count() as f64;
        let negatives = labels.len() as f64 - positives;
        if let Some(auc) = roc::auc(scores, labels) {
            u += auc * positives * negatives;
            pairs += positives * negatives;
        }
    }
    (pairs > 0.0).then(|| u / pairs)
}

/// One measure's observations, sorted by score within each stratum, as runs of tied scores:
/// (unit index, participant index, label) per observation.
struct Sorted {
    strata: Vec<Vec<Vec<(usize, usize, bool)>>>,
}

/// The observations indexed for resampling.
struct Plan {
    units: usize,
    participants: usize,
    sorted: [Sorted; 2],
}

impl Plan {
    fn new(observations: &[Observation]) -> Plan {
        let unit_ids: BTreeSet<i64> = observations.iter().map(|o| o.unit_id).collect();
        let participant_ids: BTreeSet<i64> =
            observations.iter().map(|o| o.participant_id).collect();
        let unit_of: BTreeMap<i64, usize> = unit_ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (id, i))
            .collect();
        let participant_of: BTreeMap<i64, usize> = participant_ids
            .iter()
            .enumerate()
            .map(|(i, &id)| (id, i))
            .collect();
        let sorted = [Measure::Correct, Measure::Choice].map(|m| {
            let mut by_stratum: BTreeMap<usize, Vec<(f64, usize, usize, bool)>> = BTreeMap::new();
            for o in observations {
                let (score, label) = m.point(o);
                by_stratum.entry(o.stratum).or_default().push((
                    score,
                    unit_of[&o.unit_id],
                    participant_of[&o.participant_id],
                    label,
                ));
            }
            Sorted {
                strata: by_stratum
                    .into_values()
                    .map(|mut list| {
                        list.sort_by(|a, b| a.0.total_cmp(&b.0));
                        list.chunk_by(|a, b| a.0 == b.0)
                            .map(|run| run.iter().map(|&(_, u, p, l)| (u, p, l)).collect())
                            .collect()
                    })
                    .collect(),
            }
        });
        Plan {
            units: unit_ids.len(),
            participants: participant_ids.len(),
            sorted,
        }
    }

    /// The intervals of `auc_correct` and `auc_choice` from the same resamples.
    fn intervals(&self, resamples: usize, seed: u64) -> [Option<Interval>; 2] {
        if self.units == 0 {
            return [None, None];
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut unit_weight = vec![0f64; self.units];
        let mut participant_weight = vec![0f64; self.participants];
        let mut values = [Vec::with_capacity(resamples), Vec::with_capacity(resamples)];
        for _ in 0..resamples {
            draw(&mut rng, &mut unit_weight);
            draw(&mut rng, &mut participant_weight);
            for (sorted, out) in self.sorted.iter().zip(values.iter_mut()) {
                out.extend(weighted_auc(sorted, &unit_weight, &participant_weight));
            }
        }
        values.map(|mut v| {
            if v.is_empty() {
                return None;
            }
            v.sort_by(f64::total_cmp);
            Some(Interval {
                low: bootstrap::quantile(&v, 0.025),
                high: bootstrap::quantile(&v, 0.975),
            })
        })
    }
}

/// Draws `weight.len()` groups with replacement: each group's weight is how often it was drawn.
fn draw(rng: &mut ChaCha8Rng, weight: &mut [f64]) {
    weight.iter_mut().for_each(|w| *w = 0.0);
    for _ in 0..weight.len() {
        let i = rng.random_range(0..weight.len());
        weight[i] += 1.0;
    }
}

/// The stratified AUC with every observation weighted: one pass over the sorted runs.
fn weighted_auc(sorted: &Sorted, units: &[f64], participants: &[f64]) -> Option<f64> {
    let (mut u, mut pairs) = (0.0, 0.0);
    for runs in &sorted.strata {
        let (mut stratum_u, mut positives, mut below) = (0.0, 0.0, 0.0);
        for run in runs {
            let (mut pos, mut neg) = (0.0, 0.0);
            for &(unit, participant, label) in run {
                let w = units[unit] * participants[participant];
                if label {
                    pos += w;
                } else {
                    neg += w;
                }
            }
            stratum_u += pos * (below + 0.5 * neg);
            positives += pos;
            below += neg;
        }
        u += stratum_u;
        pairs += positives * below;
    }
    (pairs > 0.0).then(|| u / pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(unit_id: i64, human_correct: bool, score: f64) -> Observation {
        Observation {
            unit_id,
            participant_id: unit_id % 2,
            stratum: 0,
            human_correct,
            max_first: true,
            score,
        }
    }

    #[test]
    fn a_crafted_layer_matches_hand_computed_agreement_and_kappa() {
        // Human right on units with positive evidence, wrong once where the model ties.
        let o = [
            obs(1, true, 0.3),
            obs(1, true, 0.1),
            obs(2, false, -0.2),
            obs(2, true, 0.0),
            obs(3, false, 0.2),
        ];
        let a = measure(&o, 200, 1);
        // AUC: positives {0.3, 0.1, 0.0} against negatives {-0.2, 0.2}:
        // 0.3 beats both (2), 0.1 beats -0.2 (1), 0.0 beats -0.2 (1): 4 of 6 pairs.
        assert!((a.auc_correct.unwrap() - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!((a.n_units, a.n_participants, a.n_responses), (3, 2, 5));
        assert!((a.human_accuracy - 0.6).abs() < 1e-12);
        // Model picks max on 0.3, 0.1, 0.2, none on -0.2, half on the tie: 3.5 / 5.
        assert!((a.model_accuracy - 0.7).abs() < 1e-12);
        // Agreement: 1 + 1 + 1 + 0.5 + 0 = 3.5 / 5; chance = .6*.7 + .4*.3 = 0.54; kappa = 0.16 / 0.46.
        assert!((a.agreement - 0.7).abs() < 1e-12);
        assert!((a.kappa.unwrap() - 0.16 / 0.46).abs() < 1e-12);
    }

    #[test]
    fn the_choice_measure_signs_evidence_and_label_by_position() {
        // Max on top, human right: chose top, signed score s. Max at the bottom, human right: chose
        // the bottom, signed score -s. Max at the bottom, human wrong: chose top, signed -s.
        let mut o = [obs(1, true, 0.4), obs(2, true, 0.3), obs(3, false, 0.1)];
        o[1].max_first = false;
        o[2].max_first = false;
        // Chose top: {0.4, -0.1}; chose bottom: {-0.3}. Pairs: 0.4 > -0.3, -0.1 > -0.3: AUC 1.
        assert_eq!(stratified_auc(&o, Measure::Choice), Some(1.0));
        // Correct: positives {0.4, 0.3} against {0.1}: 1 as well; flip the wrong one's evidence.
        o[2].score = 0.35;
        // Correct: 0.4 > 0.35, 0.3 < 0.35: 1/2. Choice: top {0.4, -0.35}, bottom {-0.3}: 1/2.
        assert_eq!(stratified_auc(&o, Measure::Correct), Some(0.5));
        assert_eq!(stratified_auc(&o, Measure::Choice), Some(0.5));
    }

    #[test]
    fn strata_are_never_compared_with_each_other() {
        // Within each stratum the evidence separates nothing (AUC 1/2), but the easy stratum has higher
        // evidence and more right answers: pooled, the AUC would be far above 1/2.
        let mut o = Vec::new();
        for (stratum, base, right) in [(0, 1.0, 3), (1, 0.0, 1)] {
            for k in 0..4 {
                let mut x = obs(k, k < right, base + 0.1);
                x.stratum = stratum;
                o.push(x);
            }
        }
        assert_eq!(stratified_auc(&o, Measure::Correct), Some(0.5));
        let scores: Vec<f64> = o.iter().map(|x| x.score).collect();
        let labels: Vec<bool> = o.iter().map(|x| x.human_correct).collect();
        // Pooled: positives 3 at 1.1 and 1 at 0.1, negatives 1 at 1.1 and 3 at 0.1: 9 wins and
        // 6 ties of 16 pairs = 0.75.
        assert_eq!(roc::auc(&scores, &labels), Some(0.75));
    }

    /// A resample materialised: every observation repeated (unit draws x participant draws) times.
    fn brute_force_auc(
        o: &[Observation],
        m: Measure,
        units: &BTreeMap<i64, f64>,
        participants: &BTreeMap<i64, f64>,
    ) -> Option<f64> {
        let expanded: Vec<Observation> = o
            .iter()
            .flat_map(|x| {
                let times = units[&x.unit_id] * participants[&x.participant_id];
                std::iter::repeat_n(*x, times as usize)
            })
            .collect();
        stratified_auc(&expanded, m)
    }

    #[test]
    fn weighted_resamples_equal_materialised_resamples() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let o: Vec<Observation> = (0..120)
            .map(|i| Observation {
                unit_id: i % 9,
                participant_id: i % 7,
                stratum: (i % 3) as usize,
                human_correct: rng.random_bool(0.6),
                max_first: rng.random_bool(0.5),
                // Rounded so that many scores tie.
                score: (rng.random_range(-1.0..1.0f64) * 5.0).round() / 5.0,
            })
            .collect();
        let plan = Plan::new(&o);
        let mut draws = ChaCha8Rng::seed_from_u64(17);
        let (mut uw, mut pw) = (vec![0.0; plan.units], vec![0.0; plan.participants]);
        for _ in 0..20 {
            draw(&mut draws, &mut uw);
            draw(&mut draws, &mut pw);
            let units: BTreeMap<i64, f64> = (0..9).map(|u| (u, uw[u as usize])).collect();
            let participants: BTreeMap<i64, f64> = (0..7).map(|p| (p, pw[p as usize])).collect();
            for (k, m) in [Measure::Correct, Measure::Choice].into_iter().enumerate() {
                let fast = weighted_auc(&plan.sorted[k], &uw, &pw);
                let slow = brute_force_auc(&o, m, &units, &participants);
                match (fast, slow) {
                    (Some(f), Some(s)) => assert!((f - s).abs() < 1e-12, "{f} vs {s}"),
                    (f, s) => assert_eq!(f, s),
                }
            }
        }
    }

    #[test]
    fn the_bootstrap_interval_is_identical_for_the_same_seed() {
        let o: Vec<Observation> = (0..60)
            .map(|i| obs(i % 10, i % 3 != 0, (i as f64 * 0.37).sin()))
            .collect();
        assert_eq!(measure(&o, 500, 9), measure(&o, 500, 9));
        assert_ne!(
            measure(&o, 500, 9).ci_correct,
            measure(&o, 500, 10).ci_correct
        );
    }
}
