//! Seeded percentile bootstrap over groups (units): resample groups with replacement, recompute.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// The resamples DESIGN 1.4 asks for.
pub const RESAMPLES: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

/// The central 95 % percentile interval of `statistic` over `resamples` resamples of `groups`.
/// Resamples on which the statistic is undefined are left out; `None` if all are.
pub fn interval<T>(
    groups: &[T],
    resamples: usize,
    seed: u64,
    statistic: impl Fn(&[&T]) -> Option<f64>,
) -> Option<Interval> {
    if groups.is_empty() {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sample: Vec<&T> = Vec::with_capacity(groups.len());
    let mut values: Vec<f64> = Vec::with_capacity(resamples);
    for _ in 0..resamples {
        sample.clear();
        sample.extend((0..groups.len()).map(|_| &groups[rng.random_range(0..groups.len())]));
        values.extend(statistic(&sample));
    }
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    Some(Interval {
        low: quantile(&values, 0.025),
        high: quantile(&values, 0.975),
    })
}

/// Linear interpolation between order statistics (numpy's default) of sorted `values`.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let (below, above) = (position.floor() as usize, position.ceil() as usize);
    sorted[below] + (sorted[above] - sorted[below]) * (position - below as f64)
}

/// Mean over units with its bootstrap interval.
pub fn mean_interval(values: &[f64], resamples: usize, seed: u64) -> Option<Interval> {
    interval(values, resamples, seed, |sample| {
        Some(sample.iter().copied().sum::<f64>() / sample.len() as f64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_interval_and_another_seed_may_not() {
        let values: Vec<f64> = (0..30).map(|i| (i as f64 * 0.37).sin()).collect();
        let a = mean_interval(&values, RESAMPLES, 7).unwrap();
        assert_eq!(a, mean_interval(&values, RESAMPLES, 7).unwrap());
        assert_ne!(a, mean_interval(&values, RESAMPLES, 8).unwrap());
    }

    #[test]
    fn the_interval_of_a_mean_brackets_it_and_shrinks_with_more_units() {
        let small: Vec<f64> = (0..10).map(|i| (i % 2) as f64).collect();
        let large: Vec<f64> = (0..1000).map(|i| (i % 2) as f64).collect();
        let (s, l) = (
            mean_interval(&small, 2000, 1).unwrap(),
            mean_interval(&large, 2000, 1).unwrap(),
        );
        assert!(s.low < 0.5 && 0.5 < s.high);
        assert!(l.high - l.low < s.high - s.low);
        // Standard error of a mean of 1000 fair coins: 0.0158; the 95 % interval is about +-0.031.
        assert!(((l.high - l.low) / 2.0 - 0.031).abs() < 0.006, "{l:?}");
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let sorted = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile(&sorted, 0.5), 2.5);
        assert!((quantile(&sorted, 0.025) - 1.075).abs() < 1e-12);
    }
}
