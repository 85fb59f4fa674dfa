//! ROC curves and their area: the Mann-Whitney probability that a positive carries a higher score than a
//! negative, ties counting one half.

/// Ranks 1..n with ties given their average rank.
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end share ranks start+1..=end.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// AUC of `scores` predicting `labels`; `None` unless both classes occur.
pub fn auc(scores: &[f64], labels: &[bool]) -> Option<f64> {
    let positives = labels.iter().filter(|&&l| l).count();
    let negatives = labels.len() - positives;
    if positives == 0 || negatives == 0 || scores.len() != labels.len() {
        return None;
    }
    let ranks = average_ranks(scores);
    let rank_sum: f64 = ranks
        .iter()
        .zip(labels)
        .filter(|(_, &l)| l)
        .map(|(r, _)| r)
        .sum();
    let u = rank_sum - (positives * (positives + 1)) as f64 / 2.0;
    Some(u / (positives * negatives) as f64)
}

/// A point of the ROC curve: the rates when every score >= `threshold` is called positive.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RocPoint {
    pub threshold: f64,
    pub false_positive_rate: f64,
    pub true_positive_rate: f64,
}

/// The ROC curve from (0, 0) to (1, 1), one point per distinct score (highest first).
pub fn curve(scores: &[f64], labels: &[bool]) -> Vec<RocPoint> {
    let positives = labels.iter().filter(|&&l| l).count() as f64;
    let negatives = labels.len() as f64 - positives;
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let rate = |count: f64, total: f64| if total > 0.0 { count / total } else { 0.0 };
    let mut points = vec![RocPoint {
        threshold: f64::INFINITY,
        false_positive_rate: 0.0,
        true_positive_rate: 0.0,
    }];
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let threshold = scores[order[i]];
        while i < order.len() && scores[order[i]] == threshold {
            if labels[order[i]] {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        points.push(RocPoint {
            threshold,
            false_positive_rate: rate(fp, negatives),
            true_positive_rate: rate(tp, positives),
        });
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_auc_of_a_crafted_fixture_with_ties_matches_the_hand_count() {
        // Positives 0.9, 0.5, 0.5; negatives 0.5, 0.1.
        // Pairs (p, n): (0.9,0.5)=1 (0.9,0.1)=1 (0.5,0.5)=.5 (0.5,0.1)=1 (0.5,0.5)=.5 (0.5,0.1)=1 -> 5 / 6.
        let scores = [0.9, 0.5, 0.5, 0.5, 0.1];
        let labels = [true, true, true, false, false];
        let auc = auc(&scores, &labels).unwrap();
        assert!((auc - 5.0 / 6.0).abs() < 1e-12, "{auc}");
    }

    #[test]
    fn all_tied_scores_give_one_half_and_one_class_gives_none() {
        assert_eq!(auc(&[1.0, 1.0, 1.0], &[true, false, true]), Some(0.5));
        assert_eq!(auc(&[1.0, 2.0], &[true, true]), None);
    }

    #[test]
    fn perfect_and_reversed_separation_give_one_and_zero() {
        let labels = [false, false, true, true];
        assert_eq!(auc(&[1.0, 2.0, 3.0, 4.0], &labels), Some(1.0));
        assert_eq!(auc(&[4.0, 3.0, 2.0, 1.0], &labels), Some(0.0));
    }

    #[test]
    fn the_curve_runs_from_origin_to_one_one_and_its_trapezoids_give_the_auc() {
        let scores = [0.9, 0.5, 0.5, 0.5, 0.1];
        let labels = [true, true, true, false, false];
        let points = curve(&scores, &labels);
        let first = points[0];
        let last = points[points.len() - 1];
        assert_eq!(
            (first.false_positive_rate, first.true_positive_rate),
            (0.0, 0.0)
        );
        assert_eq!(
            (last.false_positive_rate, last.true_positive_rate),
            (1.0, 1.0)
        );
        let area: f64 = points
            .windows(2)
            .map(|w| {
                (w[1].false_positive_rate - w[0].false_positive_rate)
                    * (w[1].true_positive_rate + w[0].true_positive_rate)
                    / 2.0
            })
            .sum();
        assert!((area - 5.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn average_ranks_share_ties() {
        assert_eq!(
            average_ranks(&[3.0, 1.0, 3.0, 2.0]),
            vec![3.5, 1.0, 3.5, 2.0]
        );
    }
}
