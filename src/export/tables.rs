//! The small per-unit and per-layer tables of an analysis: `units.csv`, `agreement.csv`, `roc.csv`.

use super::{cell, number, take, writer};
use crate::analysis::report::StudyAnalysis;

pub const UNITS_HEADER: [&str; 14] = [
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
];

pub const AGREEMENT_HEADER: [&str; 13] = [
    "model",
    "tap",
    "observer",
    "n_units",
    "n_responses",
    "auc",
    "ci_low",
    "ci_high",
    "agreement",
    "kappa",
    "human_accuracy",
    "model_accuracy",
    "resamples",
];

pub const ROC_HEADER: [&str; 6] = [
    "model",
    "tap",
    "observer",
    "threshold",
    "false_positive_rate",
    "true_positive_rate",
];

/// Per unit: human accuracy (Wilson 95 % CI), the observer's accuracy and mean s_t, and II.
pub fn units_csv(analysis: &StudyAnalysis, observer: Option<&str>) -> csv::Result<Vec<u8>> {
    let mut w = writer();
    w.write_record(UNITS_HEADER)?;
    let observer = cell(observer.unwrap_or_default()).into_owned();
    for u in &analysis.units {
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
        ])?;
    }
    Ok(take(&mut w)?)
}

/// Per layer: agreement AUC with its bootstrap CI over units, agreement rate, kappa, accuracies.
pub fn agreement_csv(
    analysis: &StudyAnalysis,
    observer: Option<&str>,
    resamples: usize,
) -> csv::Result<Vec<u8>> {
    let mut w = writer();
    w.write_record(AGREEMENT_HEADER)?;
    let observer = cell(observer.unwrap_or_default()).into_owned();
    for l in &analysis.agreement {
        let a = &l.agreement;
        w.write_record([
            cell(&l.model).into_owned(),
            cell(&l.tap).into_owned(),
            observer.clone(),
            a.n_units.to_string(),
            a.n_responses.to_string(),
            number(a.auc),
            number(a.ci.map(|c| c.low)),
            number(a.ci.map(|c| c.high)),
            number(Some(a.agreement)),
            number(a.kappa),
            number(Some(a.human_accuracy)),
            number(Some(a.model_accuracy)),
            resamples.to_string(),
        ])?;
    }
    Ok(take(&mut w)?)
}

/// The ROC points of every layer, from (0, 0) at threshold `inf` to (1, 1).
pub fn roc_csv(analysis: &StudyAnalysis, observer: Option<&str>) -> csv::Result<Vec<u8>> {
    let mut w = writer();
    w.write_record(ROC_HEADER)?;
    let observer = cell(observer.unwrap_or_default()).into_owned();
    for l in &analysis.agreement {
        for p in &l.agreement.roc {
            w.write_record([
                cell(&l.model).into_owned(),
                cell(&l.tap).into_owned(),
                observer.clone(),
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
    use crate::analysis::report::{analyse, ResponseFact, UnitInfo};

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
        let responses: Vec<ResponseFact> = [(true, 0.3), (false, -0.2), (true, 0.1)]
            .into_iter()
            .map(|(correct, s)| ResponseFact {
                unit_id: 1,
                condition: "easy".into(),
                correct,
                score: Some(s),
            })
            .collect();
        let a = analyse(&units, &responses, &[], 100);
        for (bytes, header) in [
            (
                units_csv(&a, Some("lpips-alex/max-set")).unwrap(),
                UNITS_HEADER.to_vec(),
            ),
            (
                agreement_csv(&a, Some("lpips-alex/max-set"), 100).unwrap(),
                AGREEMENT_HEADER.to_vec(),
            ),
            (
                roc_csv(&a, Some("lpips-alex/max-set")).unwrap(),
                ROC_HEADER.to_vec(),
            ),
        ] {
            let mut r = csv::Reader::from_reader(bytes.as_slice());
            assert_eq!(r.headers().unwrap().iter().collect::<Vec<_>>(), header);
            let first = r.records().next().unwrap().unwrap();
            assert!(first.iter().any(|c| c == "'-conv1"), "{first:?}");
            assert!(!first.iter().any(|c| c == "-conv1" || c == "@model"));
        }
    }
}
