//! Human / model agreement per layer (DESIGN 1.6): how well the observer's evidence s_t predicts
//! whether a human chose the max query.

use std::collections::BTreeMap;

use serde::Serialize;

use super::bootstrap::{self, Interval};
use super::roc::{self, RocPoint};

/// One valid main response, with the observer's evidence on its trial.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub unit_id: i64,
    /// The human chose the max query.
    pub human_correct: bool,
    /// s_t = C(q_min) - C(q_max): positive when the observer picks the max query.
    pub score: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerAgreement {
    pub n_units: usize,
    pub n_responses: usize,
    pub auc: Option<f64>,
    pub ci: Option<Interval>,
    /// Share of responses where the observer chose as the human did (a tie counts one half).
    pub agreement: f64,
    pub kappa: Option<f64>,
    pub human_accuracy: f64,
    pub model_accuracy: f64,
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

pub fn layer(observations: &[Observation], resamples: usize, seed: u64) -> LayerAgreement {
    let n = observations.len();
    let scores: Vec<f64> = observations.iter().map(|o| o.score).collect();
    let labels: Vec<bool> = observations.iter().map(|o| o.human_correct).collect();
    let share = |total: f64| if n > 0 { total / n as f64 } else { 0.0 };
    let human_accuracy = share(labels.iter().filter(|&&l| l).count() as f64);
    let model_accuracy = share(scores.iter().map(|&s| model_chooses_max(s)).sum());
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

    let mut units: BTreeMap<i64, Vec<Observation>> = BTreeMap::new();
    for o in observations {
        units.entry(o.unit_id).or_default().push(*o);
    }
    let units: Vec<Vec<Observation>> = units.into_values().collect();
    let ci = auc_interval(&units, resamples, seed);
    LayerAgreement {
        n_units: units.len(),
        n_responses: n,
        auc: roc::auc(&scores, &labels),
        ci,
        agreement,
        kappa,
        human_accuracy,
        model_accuracy,
        roc: roc::curve(&scores, &labels),
    }
}

/// The bootstrap interval of the pooled AUC, resampling units: the same draws as
/// [`bootstrap::interval`] over `units`, but each resample's AUC is one pass over the observations
/// sorted once, weighted by how often their unit was drawn (O(n) per resample instead of a sort).
fn auc_interval(units: &[Vec<Observation>], resamples: usize, seed: u64) -> Option<Interval> {
    use rand::{Rng, SeedableRng};
    if units.is_empty() {
        return None;
    }
    let mut flat: Vec<(f64, bool, usize)> = units
        .iter()
        .enumerate()
        .flat_map(|(u, obs)| obs.iter().map(move |o| (o.score, o.human_correct, u)))
        .collect();
    flat.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Runs of tied scores, as index ranges into `flat`.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut start = 0;
    for i in 1..=flat.len() {
        if i == flat.len() || flat[i].0 != flat[start].0 {
            runs.push((start, i));
            start = i;
        }
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut weight = vec![0f64; units.len()];
    let mut values = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        weight.iter_mut().for_each(|w| *w = 0.0);
        for _ in 0..units.len() {
            weight[rng.random_range(0..units.len())] += 1.0;
        }
        let (mut u, mut positives, mut below) = (0.0, 0.0, 0.0);
        for &(lo, hi) in &runs {
            let (mut pos, mut neg) = (0.0, 0.0);
            for &(_, correct, unit) in &flat[lo..hi] {
                if correct {
                    pos += weight[unit];
                } else {
                    neg += weight[unit];
                }
            }
            u += pos * (below + 0.5 * neg);
            positives += pos;
            below += neg;
        }
        if positives > 0.0 && below > 0.0 {
            values.push(u / (positives * below));
        }
    }
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(Interval {
        low: bootstrap::quantile(&values, 0.025),
        high: bootstrap::quantile(&values, 0.975),
    })
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    fn obs(unit_id: i64, human_correct: bool, score: f64) -> Observation {
        Observation {
            unit_id,
            human_correct,
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
        let layer = layer(&o, 200, 1);
        // AUC: positives {0.3, 0.1, 0.0} against negatives {-0.2, 0.2}:
        // 0.3 beats both (2), 0.1 beats -0.2 (1), 0.0 beats -0.2 (1): 4 of 6 pairs.
        assert!((layer.auc.unwrap() - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!((layer.n_units, layer.n_responses), (3, 5));
        assert!((layer.human_accuracy - 0.6).abs() < 1e-12);
        // Model picks max on 0.3, 0.1, 0.2, none on -0.2, half on the tie: 3.5 / 5.
        assert!((layer.model_accuracy - 0.7).abs() < 1e-12);
        // Agreement: 1 + 1 + 1 + 0.5 + 0 = 3.5 / 5; chance = .6*.7 + .4*.3 = 0.54; kappa = 0.16 / 0.46.
        assert!((layer.agreement - 0.7).abs() < 1e-12);
        assert!((layer.kappa.unwrap() - 0.16 / 0.46).abs() < 1e-12);
    }

    /// Synthetic participants answer correctly with probability sigmoid(k * s).
    fn simulate(k: f64, seed: u64) -> Vec<Observation> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::new();
        for unit in 0..60 {
            let unit_evidence: f64 = rng.random_range(-1.0..1.5);
            for _ in 0..30 {
                let score = unit_evidence + rng.random_range(-0.5..0.5);
                let p = 1.0 / (1.0 + (-k * score).exp());
                out.push(obs(unit, rng.random_bool(p), score));
            }
        }
        out
    }

    #[test]
    fn participants_who_follow_the_evidence_give_an_auc_whose_interval_excludes_one_half() {
        let layer = layer(&simulate(3.0, 5), 2000, 11);
        let ci = layer.ci.unwrap();
        assert!(layer.auc.unwrap() > 0.7, "{:?}", layer.auc);
        assert!(ci.low > 0.5, "{ci:?}");
    }

    #[test]
    fn participants_independent_of_the_evidence_give_an_interval_covering_one_half() {
        let layer = layer(&simulate(0.0, 5), 2000, 11);
        let ci = layer.ci.unwrap();
        assert!(ci.low < 0.5 && 0.5 < ci.high, "{ci:?}");
    }

    #[test]
    fn the_weighted_interval_equals_resampling_and_sorting_each_time() {
        // Scores rounded to one decimal, so many responses tie.
        let o: Vec<Observation> = simulate(1.5, 8)
            .into_iter()
            .map(|mut x| {
                x.score = (x.score * 10.0).round() / 10.0;
                x
            })
            .collect();
        let mut units: BTreeMap<i64, Vec<Observation>> = BTreeMap::new();
        for x in &o {
            units.entry(x.unit_id).or_default().push(*x);
        }
        let units: Vec<Vec<Observation>> = units.into_values().collect();
        let slow = bootstrap::interval(&units, 300, 4, |sample| {
            let pooled: Vec<&Observation> = sample.iter().flat_map(|u| u.iter()).collect();
            let s: Vec<f64> = pooled.iter().map(|o| o.score).collect();
            let l: Vec<bool> = pooled.iter().map(|o| o.human_correct).collect();
            roc::auc(&s, &l)
        })
        .unwrap();
        let fast = auc_interval(&units, 300, 4).unwrap();
        assert!((slow.low - fast.low).abs() < 1e-12 && (slow.high - fast.high).abs() < 1e-12);
    }

    #[test]
    fn the_bootstrap_interval_is_identical_for_the_same_seed() {
        let o = simulate(1.0, 3);
        assert_eq!(layer(&o, 500, 9).ci, layer(&o, 500, 9).ci);
    }
}
