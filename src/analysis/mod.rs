//! Statistics of human and model responses (DESIGN 1.4, 1.6, 1.7) and their figures. Pure functions:
//! no HTTP, no SQL.

pub mod agreement;
pub mod bootstrap;
pub mod consistency;
pub mod plots;
pub mod report;
pub mod roc;

/// Mean of `values`, or `None` for an empty slice.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// Spearman's rank correlation (average ranks for ties); `None` with fewer than two pairs or no variance.
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 {
        return None;
    }
    pearson(&roc::average_ranks(x), &roc::average_ranks(y))
}

pub fn pearson(x: &[f64], y: &[f64]) -> Option<f64> {
    let (mx, my) = (mean(x)?, mean(y)?);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    (sxx > 0.0 && syy > 0.0).then(|| sxy / (sxx * syy).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_of_a_monotone_relation_is_one_and_of_a_reversed_one_minus_one() {
        let x = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(spearman(&x, &[1.0, 4.0, 9.0, 16.0]), Some(1.0));
        assert_eq!(spearman(&x, &[4.0, 3.0, 2.0, 1.0]), Some(-1.0));
    }

    #[test]
    fn spearman_with_ties_matches_a_hand_computation() {
        // ranks x: 1, 2.5, 2.5, 4; ranks y: 1, 2, 3, 4 -> r = 4.5 / sqrt(4.5 * 5) = 0.948683.
        let r = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert!((r - 0.948_683).abs() < 1e-6, "{r}");
    }
}
