//! A study's analysis from its facts: human accuracy per unit and per layer / basis / condition,
//! agreement with the observer per layer, split-half consistency, and the interpretability index.
//!
//! Definitions:
//! - a unit's human accuracy is the proportion correct over its valid main responses, with a Wilson
//!   95 % interval;
//! - a group's accuracy (layer, basis, condition) is the mean over its units of their accuracy (within
//!   the condition, for conditions), with a seeded percentile bootstrap 95 % interval over units;
//! - a unit's model accuracy and mean score are means over its main trials' judgments (ties count 1/2).

use std::collections::BTreeMap;

use serde::Serialize;

use super::agreement::{self, Agreement, Observation};
use super::bootstrap::{self, Interval};
use super::consistency::{self, SplitHalf};
use super::{mean, spearman};

/// The seed of every bootstrap and split of an analysis, so a study always gives the same intervals.
pub const SEED: u64 = 20_231_118;

#[derive(Debug, Clone, PartialEq)]
pub struct UnitInfo {
    pub id: i64,
    pub model: String,
    pub tap: String,
    pub basis: String,
    pub unit_index: i32,
    pub ii: Option<f64>,
}

impl UnitInfo {
    pub fn layer(&self) -> (String, String) {
        (self.model.clone(), self.tap.clone())
    }
}

/// A valid main response.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseFact {
    pub unit_id: i64,
    pub session_id: i64,
    pub trial_id: i64,
    pub condition: String,
    pub correct: bool,
    /// The max query was shown on top.
    pub max_first: bool,
}

/// An observer's judgment of a main trial.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialJudgment {
    pub observer: String,
    pub trial_id: i64,
    pub unit_id: i64,
    pub score: f64,
    /// 1, 0 or 0.5.
    pub correct: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitResult {
    pub id: i64,
    pub model: String,
    pub tap: String,
    pub basis: String,
    pub unit_index: i32,
    pub n_responses: usize,
    pub human_accuracy: Option<f64>,
    pub ci: Option<Interval>,
    pub n_trials_scored: usize,
    pub model_accuracy: Option<f64>,
    pub mean_score: Option<f64>,
    pub ii: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupAccuracy {
    pub group: String,
    pub n_units: usize,
    pub n_responses: usize,
    pub mean: f64,
    pub ci: Option<Interval>,
}

/// The basis and condition of a stratified summary row.
pub const ALL: &str = "all";

/// Agreement of one observer on one stratum (layer x basis x condition), or a layer's stratified
/// summary (basis and condition `all`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgreementRow {
    pub observer: String,
    pub model: String,
    pub tap: String,
    pub basis: String,
    pub condition: String,
    pub summary: bool,
    pub agreement: Agreement,
}

impl AgreementRow {
    pub fn layer(&self) -> String {
        format!("{}/{}", self.model, self.tap)
    }
    /// `alexnet/conv1 · pca · easy`, or `alexnet/conv1 (stratified)` for a summary.
    pub fn name(&self) -> String {
        if self.summary {
            format!("{} (stratified)", self.layer())
        } else {
            format!("{} · {} · {}", self.layer(), self.basis, self.condition)
        }
    }
}

/// Human accuracy of one basis within one layer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayerBasis {
    pub layer: String,
    pub basis: String,
    pub accuracy: GroupAccuracy,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct IiCorrelation {
    pub n_units: usize,
    pub spearman: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StudyAnalysis {
    pub units: Vec<UnitResult>,
    pub by_layer: Vec<GroupAccuracy>,
    pub by_basis: Vec<GroupAccuracy>,
    pub by_condition: Vec<GroupAccuracy>,
    /// The question of the seed studies is basis within layer.
    pub by_layer_and_basis: Vec<LayerBasis>,
    /// The observer whose judgments give the units' model accuracy.
    pub primary_observer: Option<String>,
    /// Every observer that scored the study: per layer its strata, then the stratified summary.
    pub agreement: Vec<AgreementRow>,
    pub split_half: Option<SplitHalf>,
    pub ii: IiCorrelation,
    /// II vs human accuracy within each basis.
    pub ii_by_basis: Vec<(String, IiCorrelation)>,
}

impl StudyAnalysis {
    /// Rows of one observer, strata only or summaries only.
    pub fn agreement_of<'a>(
        &'a self,
        observer: &'a str,
        summary: bool,
    ) -> impl Iterator<Item = &'a AgreementRow> + 'a {
        self.agreement
            .iter()
            .filter(move |r| r.observer == observer && r.summary == summary)
    }
    /// The observers with agreement rows, in order.
    pub fn observers(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for r in &self.agreement {
            if !names.contains(&r.observer) {
                names.push(r.observer.clone());
            }
        }
        names
    }
}

/// Wilson score interval (95 %) of `k` successes in `n` trials.
pub fn wilson(k: usize, n: usize) -> Option<Interval> {
    if n == 0 {
        return None;
    }
    let z = 1.959_963_984_540_054_f64;
    let (n, p) = (n as f64, k as f64 / n as f64);
    let denominator = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denominator;
    let half = z / denominator * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    Some(Interval {
        low: (centre - half).max(0.0),
        high: (centre + half).min(1.0),
    })
}

fn share(values: &[bool]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().filter(|&&c| c).count() as f64 / values.len() as f64)
}

/// Mean over groups' units with the bootstrap interval; `per_unit` holds (accuracy, responses).
fn group(name: String, per_unit: &[(f64, usize)], resamples: usize) -> GroupAccuracy {
    let accuracies: Vec<f64> = per_unit.iter().map(|u| u.0).collect();
    GroupAccuracy {
        group: name,
        n_units: per_unit.len(),
        n_responses: per_unit.iter().map(|u| u.1).sum(),
        mean: mean(&accuracies).unwrap_or(f64::NAN),
        ci: bootstrap::mean_interval(&accuracies, resamples, SEED),
    }
}

/// The analysis of a study's main units; `primary` names the observer whose judgments give the units'
/// model accuracy (`judgments` may hold several observers).
pub fn analyse(
    units: &[UnitInfo],
    responses: &[ResponseFact],
    judgments: &[TrialJudgment],
    primary: Option<&str>,
    resamples: usize,
) -> StudyAnalysis {
    let mut answers: BTreeMap<i64, Vec<bool>> = BTreeMap::new();
    let mut by_condition: BTreeMap<(String, i64), Vec<bool>> = BTreeMap::new();
    for r in responses {
        answers.entry(r.unit_id).or_default().push(r.correct);
        by_condition
            .entry((r.condition.clone(), r.unit_id))
            .or_default()
            .push(r.correct);
    }
    let mut judged: BTreeMap<i64, Vec<&TrialJudgment>> = BTreeMap::new();
    for j in judgments
        .iter()
        .filter(|j| Some(j.observer.as_str()) == primary)
    {
        judged.entry(j.unit_id).or_default().push(j);
    }

    let unit_results: Vec<UnitResult> = units
        .iter()
        .map(|u| {
            let a = answers.get(&u.id).map(Vec::as_slice).unwrap_or_default();
            let j = judged.get(&u.id).map(Vec::as_slice).unwrap_or_default();
            let correct: Vec<f64> = j.iter().map(|j| j.correct).collect();
            let scores: Vec<f64> = j.iter().map(|j| j.score).collect();
            UnitResult {
                id: u.id,
                model: u.model.clone(),
                tap: u.tap.clone(),
                basis: u.basis.clone(),
                unit_index: u.unit_index,
                n_responses: a.len(),
                human_accuracy: share(a),
                ci: wilson(a.iter().filter(|&&c| c).count(), a.len()),
                n_trials_scored: j.len(),
                model_accuracy: mean(&correct),
                mean_score: mean(&scores),
                ii: u.ii,
            }
        })
        .collect();

    // Groups over units that have responses.
    let mut layers: BTreeMap<String, Vec<(f64, usize)>> = BTreeMap::new();
    let mut bases: BTreeMap<String, Vec<(f64, usize)>> = BTreeMap::new();
    let mut layer_bases: BTreeMap<(String, String), Vec<(f64, usize)>> = BTreeMap::new();
    for u in &unit_results {
        if let Some(acc) = u.human_accuracy {
            let entry = (acc, u.n_responses);
            let layer = format!("{}/{}", u.model, u.tap);
            layers.entry(layer.clone()).or_default().push(entry);
            bases.entry(u.basis.clone()).or_default().push(entry);
            layer_bases
                .entry((layer, u.basis.clone()))
                .or_default()
                .push(entry);
        }
    }
    let mut conditions: BTreeMap<String, Vec<(f64, usize)>> = BTreeMap::new();
    for ((condition, _), a) in &by_condition {
        if let Some(acc) = share(a) {
            conditions
                .entry(condition.clone())
                .or_default()
                .push((acc, a.len()));
        }
    }
    let groups = |m: BTreeMap<String, Vec<(f64, usize)>>| -> Vec<GroupAccuracy> {
        m.into_iter()
            .map(|(name, v)| group(name, &v, resamples))
            .collect()
    };
    let by_layer_and_basis = layer_bases
        .into_iter()
        .map(|((layer, basis), v)| LayerBasis {
            accuracy: group(format!("{layer} · {basis}"), &v, resamples),
            layer,
            basis,
        })
        .collect();

    let per_unit: Vec<Vec<bool>> = answers.values().cloned().collect();
    let ii_of = |basis: Option<&str>| {
        let (ii, human): (Vec<f64>, Vec<f64>) = unit_results
            .iter()
            .filter(|u| basis.is_none_or(|b| u.basis == b))
            .filter_map(|u| Some((u.ii?, u.human_accuracy?)))
            .unzip();
        IiCorrelation {
            n_units: ii.len(),
            spearman: spearman(&ii, &human),
        }
    };
    let basis_names: Vec<String> = bases.keys().cloned().collect();

    StudyAnalysis {
        agreement: agreement_rows(units, responses, judgments, resamples),
        primary_observer: primary.map(str::to_string),
        by_layer: groups(layers),
        by_basis: groups(bases),
        by_condition: groups(conditions),
        by_layer_and_basis,
        split_half: consistency::split_half(&per_unit, consistency::SPLITS, SEED),
        ii: ii_of(None),
        ii_by_basis: basis_names
            .into_iter()
            .map(|b| {
                let c = ii_of(Some(&b));
                (b, c)
            })
            .collect(),
        units: unit_results,
    }
}

/// Per observer and layer: one row per basis x condition stratum, then the stratified summary, over
/// the responses whose trial the observer scored.
fn agreement_rows(
    units: &[UnitInfo],
    responses: &[ResponseFact],
    judgments: &[TrialJudgment],
    resamples: usize,
) -> Vec<AgreementRow> {
    let unit_of: BTreeMap<i64, &UnitInfo> = units.iter().map(|u| (u.id, u)).collect();
    // observer -> trial -> score
    let mut scores: BTreeMap<&str, BTreeMap<i64, f64>> = BTreeMap::new();
    for j in judgments {
        scores
            .entry(j.observer.as_str())
            .or_default()
            .insert(j.trial_id, j.score);
    }
    let mut rows = Vec::new();
    for (observer, scored) in scores {
        // (model, tap) -> (basis, condition) -> observations
        type Strata = BTreeMap<(String, String), Vec<Observation>>;
        let mut layers: BTreeMap<(String, String), Strata> = BTreeMap::new();
        for r in responses {
            let (Some(&score), Some(unit)) = (scored.get(&r.trial_id), unit_of.get(&r.unit_id))
            else {
                continue;
            };
            layers
                .entry(unit.layer())
                .or_default()
                .entry((unit.basis.clone(), r.condition.clone()))
                .or_default()
                .push(Observation {
                    unit_id: r.unit_id,
                    participant_id: r.session_id,
                    stratum: 0,
                    human_correct: r.correct,
                    max_first: r.max_first,
                    score,
                });
        }
        for ((model, tap), strata) in layers {
            let row =
                |basis: &str, condition: &str, summary: bool, o: &[Observation]| AgreementRow {
                    observer: observer.to_string(),
                    model: model.clone(),
                    tap: tap.clone(),
                    basis: basis.to_string(),
                    condition: condition.to_string(),
                    summary,
                    agreement: agreement::measure(o, resamples, SEED),
                };
            let mut all = Vec::new();
            for (k, ((basis, condition), o)) in strata.iter().enumerate() {
                rows.push(row(basis, condition, false, o));
                all.extend(o.iter().map(|x| Observation { stratum: k, ..*x }));
            }
            rows.push(row(ALL, ALL, true, &all));
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(id: i64, tap: &str, basis: &str, ii: Option<f64>) -> UnitInfo {
        UnitInfo {
            id,
            model: "alexnet".into(),
            tap: tap.into(),
            basis: basis.into(),
            unit_index: id as i32,
            ii,
        }
    }

    fn response(unit_id: i64, condition: &str, correct: bool) -> ResponseFact {
        ResponseFact {
            unit_id,
            session_id: 1,
            trial_id: unit_id * 10,
            condition: condition.into(),
            correct,
            max_first: true,
        }
    }

    fn judgment(trial_id: i64, unit_id: i64, score: f64, correct: f64) -> TrialJudgment {
        TrialJudgment {
            observer: "lpips-alex/max-set".into(),
            trial_id,
            unit_id,
            score,
            correct,
        }
    }

    #[test]
    fn wilson_matches_a_reference_value() {
        // 8 of 10: Wilson 95 % interval (0.4902, 0.9433) (e.g. statsmodels proportion_confint method="wilson").
        let i = wilson(8, 10).unwrap();
        assert!(
            (i.low - 0.490_18).abs() < 1e-4 && (i.high - 0.943_32).abs() < 1e-4,
            "{i:?}"
        );
    }

    #[test]
    fn group_means_are_over_units_not_responses() {
        let units = [
            unit(1, "conv1", "neuron", Some(-1.0)),
            unit(2, "conv1", "pca", Some(-2.0)),
            unit(3, "conv2", "pca", Some(-3.0)),
        ];
        // Unit 1: 4 of 4 correct; unit 2: 0 of 1; unit 3: 1 of 2 (easy right, hard wrong).
        let mut responses: Vec<ResponseFact> = (0..4).map(|_| response(1, "easy", true)).collect();
        responses.push(response(2, "easy", false));
        responses.push(response(3, "easy", true));
        responses.push(ResponseFact {
            trial_id: 31,
            ..response(3, "hard", false)
        });
        let judgments = [
            judgment(10, 1, 0.2, 1.0),
            judgment(11, 1, 0.0, 0.5),
            judgment(20, 2, -0.1, 0.0),
            judgment(30, 3, 0.3, 1.0),
            judgment(31, 3, 0.1, 1.0),
        ];
        let a = analyse(
            &units,
            &responses,
            &judgments,
            Some("lpips-alex/max-set"),
            500,
        );
        let conv1 = &a.by_layer[0];
        assert_eq!(
            (conv1.group.as_str(), conv1.n_units, conv1.n_responses),
            ("alexnet/conv1", 2, 5)
        );
        assert!(
            (conv1.mean - 0.5).abs() < 1e-12,
            "mean of 1.0 and 0.0, not 4/5"
        );
        let pca = a.by_basis.iter().find(|g| g.group == "pca").unwrap();
        assert!((pca.mean - 0.25).abs() < 1e-12);
        let easy = a.by_condition.iter().find(|g| g.group == "easy").unwrap();
        assert!((easy.mean - (1.0 + 0.0 + 1.0) / 3.0).abs() < 1e-12);
        let hard = a.by_condition.iter().find(|g| g.group == "hard").unwrap();
        assert_eq!((hard.n_units, hard.mean), (1, 0.0));
        assert_eq!(a.units[0].model_accuracy, Some(0.75));
        assert_eq!(a.units[0].mean_score, Some(0.1));
        assert_eq!(a.units[1].model_accuracy, Some(0.0));
        // II ranks units 1 > 2 > 3, human accuracy 1.0, 0.0, 0.5: rho = 0.5.
        assert_eq!(a.ii.n_units, 3);
        assert!((a.ii.spearman.unwrap() - 0.5).abs() < 1e-12);
        // conv1: strata neuron/easy and pca/easy, then the summary; conv2: pca/easy, pca/hard, summary.
        let names: Vec<String> = a.agreement.iter().map(AgreementRow::name).collect();
        assert_eq!(
            names,
            [
                "alexnet/conv1 · neuron · easy",
                "alexnet/conv1 · pca · easy",
                "alexnet/conv1 (stratified)",
                "alexnet/conv2 · pca · easy",
                "alexnet/conv2 · pca · hard",
                "alexnet/conv2 (stratified)",
            ]
        );
        assert_eq!(a.agreement[2].agreement.n_responses, 5);
        assert_eq!(
            a.by_layer_and_basis
                .iter()
                .map(|g| (g.layer.as_str(), g.basis.as_str(), g.accuracy.mean))
                .collect::<Vec<_>>(),
            [
                ("alexnet/conv1", "neuron", 1.0),
                ("alexnet/conv1", "pca", 0.0),
                ("alexnet/conv2", "pca", 0.5)
            ]
        );
        let pca_ii = &a.ii_by_basis.iter().find(|(b, _)| b == "pca").unwrap().1;
        // pca units 2 and 3: II -2 > -3, accuracy 0.0 < 0.5: rho = -1.
        assert_eq!((pca_ii.n_units, pca_ii.spearman), (2, Some(-1.0)));
    }
}
