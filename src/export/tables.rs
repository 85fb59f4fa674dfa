//! The small per-unit and per-layer tables of an analysis: `units.csv`, `agreement.csv`, `roc.csv`.

use super::study::Analysed;
use super::{cell, number, take, writer};
use crate::analysis::agreement::RESAMPLED;
use crate::analysis::report::StudyAnalysis;

pub const UNITS_HEADER: [&str; 16] = [
    "unit_id",
    "model",
    "tap",
    "basis",
    "unit_index",
    "n_responses",
    "human_accuracy",
    "ci_low",
    "ci_high",
    "observer",
    "n_trials_scored",
    "model_accuracy",
    "mean_score",
    "ii",
    "query_overlap_override",
    "kmeans_activation",
];

pub const AGREEMENT_HEADER: [&str; 21] = [
    "observer",
    "model",
    "tap",
    "basis",
    "condition",
    "row",
    "n_units",
    "n_participants",
    "n_responses",
    "auc_correct",
    "auc_correct_ci_low",
    "auc_correct_ci_high",
    "auc_choice",
    "auc_choice_ci_low",
    "auc_choice_ci_high",
    "agreement",
    "kappa",
    "human_accuracy",
    "model_accuracy",
    "resamples",
    "resampled",
];

pub const ROC_HEADER: [&str; 8] = [
    "observer",
    "model",
    "tap",
    "basis",
    "condition",
    "threshold",
    "false_positive_rate",
    "true_positive_rate",
];

/// The `row` cell of a stratum and of a layer's stratified summary.
pub const STRATUM: &str = "stratum";
pub const STRATIFIED_SUMMARY: &str = "stratified summary";

/// Per main unit: human accuracy (Wilson 95 % CI), the observer's accuracy and mean s_t, and II; the
/// conditions built despite overlapping the references (an override recorded on the study) and, for
/// k-means units, how they score an image.
pub fn units_csv(analysed: &Analysed) -> csv::Result<Vec<u8>> {
    let mut w = writer();
    w.write_record(UNITS_HEADER)?;
    let observer = cell(analysed.observer.as_deref().unwrap_or_default()).into_owned();
    let construction = &analysed.construction;
    let overridden = cell(&construction.overlap_override.join(";")).into_owned();
    for u in &analysed.analysis.units {
        w.write_record([
            u.id.to_string(),
            cell(&u.model).into_owned(),
            cell(&u.tap).into_owned(),
            cell(&u.basis).into_owned(),
            u.unit_index.to_string(),
            u.n_responses.to_string(),
            number(u.human_accuracy),
            number(u.ci.map(|c| c.low)),
            number(u.ci.map(|c| c.high)),
            observer.clone(),
            u.n_trials_scored.to_string(),
            number(u.model_accuracy),
            number(u.mean_score),
            number(u.ii),
            overridden.clone(),
            match construction.kmeans_activation {
                Some(a) if u.basis == "kmeans" => a.as_str().to_string(),
                _ => String::new(),
            },
        ])?;
    }
    Ok(take(&mut w)?)
}

/// Per observer, layer and stratum (basis x condition), then per layer the stratified summary (basis
/// and condition `all`): both AUCs with their two-way bootstrap CIs, agreement rate, kappa, accuracies.
pub fn agreement_csv(analysis: &StudyAnalysis, resamples: usize) -> csv::Result<Vec<u8>> {
    let mut w = writer();
    w.write_record(AGREEMENT_HEADER)?;
    for r in &analysis.agreement {
        let a = &r.agreement;
        w.write_record([
            cell(&r.observer).into_owned(),
            cell(&r.model).into_owned(),
            cell(&r.tap).into_owned(),
            cell(&r.basis).into_owned(),
            cell(&r.condition).into_owned(),
            if r.summary {
                STRATIFIED_SUMMARY
            } else {
                STRATUM
            }
            .to_string(),
            a.n_units.to_string(),
            a.n_participants.to_string(),
            a.n_responses.to_string(),
            number(a.auc_correct),
            number(a.ci_correct.map(|c| c.low)),
            number(a.ci_correct.map(|c| c.high)),
            number(a.auc_choice),
            number(a.ci_choice.map(|c| c.low)),
            number(a.ci_choice.map(|c| c.high)),
            number(Some(a.agreement)),
            number(a.kappa),
            number(Some(a.human_accuracy)),
            number(Some(a.model_accuracy)),
            resamples.to_string(),
            RESAMPLED.to_string(),
        ])?;
    }
    Ok(take(&mut w)?)
}

/// The ROC points (of `auc_correct`) of every stratum, from (0, 0) at threshold `inf` to (1, 1).
pub fn roc_csv(analysis: &StudyAnalysis) -> csv::Result<Vec<u8>> {
    let mut w = writer();
    w.write_record(ROC_HEADER)?;
    for r in analysis.agreement.iter().filter(|r| !r.summary) {
        for p in &r.agreement.roc {
            w.write_record([
                cell(&r.observer).into_owned(),
                cell(&r.model).into_owned(),
                cell(&r.tap).into_owned(),
                cell(&r.basis).into_owned(),
                cell(&r.condition).into_owned(),
                p.threshold.to_string(),
                p.false_positive_rate.to_string(),
                p.true_positive_rate.to_string(),
            ])?;
        }
    }
    Ok(take(&mut w)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::report::{analyse, ResponseFact, TrialJudgment, UnitInfo};

    #[test]
    fn tables_have_their_headers_and_neutralised_names() {
        let units = [UnitInfo {
            id: 1,
            model: "@model".into(),
            tap: "-conv1".into(),
            basis: "neuron".into(),
            unit_index: 0,
            ii: None,
        }];
        let observer = "lpips-alex/max-set";
        let facts: Vec<(ResponseFact, TrialJudgment)> = [(true, 0.3), (false, -0.2), (true, 0.1)]
            .into_iter()
            .enumerate()
            .map(|(i, (correct, s))| {
                (
                    ResponseFact {
                        unit_id: 1,
                        session_id: i as i64,
                        trial_id: i as i64,
                        condition: "easy".into(),
                        correct,
                        max_first: true,
                    },
                    TrialJudgment {
                        observer: observer.into(),
                        trial_id: i as i64,
                        unit_id: 1,
                        score: s,
                        correct: 1.0,
                    },
                )
            })
            .collect();
        let (responses, judgments): (Vec<_>, Vec<_>) = facts.into_iter().unzip();
        let analysed = Analysed {
            observer: Some(observer.into()),
            analysis: analyse(&units, &responses, &judgments, Some(observer), 100),
            resamples: 100,
            units_also_practice_or_catch: 0,
            construction: Default::default(),
        };
        let a = &analysed.analysis;
        for (bytes, header) in [
            (units_csv(&analysed).unwrap(), UNITS_HEADER.to_vec()),
            (agreement_csv(a, 100).unwrap(), AGREEMENT_HEADER.to_vec()),
            (roc_csv(a).unwrap(), ROC_HEADER.to_vec()),
        ] {
            let mut r = csv::Reader::from_reader(bytes.as_slice());
            assert_eq!(r.headers().unwrap().iter().collect::<Vec<_>>(), header);
            let first = r.records().next().unwrap().unwrap();
            assert!(first.iter().any(|c| c == "'-conv1"), "{first:?}");
            assert!(!first.iter().any(|c| c == "-conv1" || c == "@model"));
        }
        let rows = agreement_csv(a, 100).unwrap();
        let text = String::from_utf8(rows).unwrap();
        assert!(text.contains(",all,all,stratified summary,"), "{text}");
    }
}
