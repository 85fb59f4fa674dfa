//! Split-half consistency of human accuracy per unit: how reproducible the unit ranking is.
//!
//! Definition: take the units with at least two valid responses. For one split, shuffle each unit's
//! responses (seeded) and deal them alternately into halves A and B; compute per-unit accuracy in each
//! half and the Pearson correlation r of A against B across units. r is averaged over `splits` random
//! splits, and the Spearman-Brown formula 2r / (1 + r) projects it to the full number of responses.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use super::pearson;

/// Random splits averaged by default.
pub const SPLITS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SplitHalf {
    /// Units with two or more valid responses.
    pub units: usize,
    /// Mean half-versus-half correlation over the splits on which it was defined.
    pub r_half: f64,
    /// 2 r / (1 + r).
    pub spearman_brown: f64,
    pub splits: usize,
}

/// `units[i]` holds unit i's valid responses (true = correct). `None` when fewer than three units have
/// two responses or no split gives both halves some variance.
pub fn split_half(units: &[Vec<bool>], splits: usize, seed: u64) -> Option<SplitHalf> {
    let usable: Vec<&Vec<bool>> = units.iter().filter(|u| u.len() >= 2).collect();
    if usable.len() < 3 {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut total, mut defined) = (0.0, 0);
    let mut shuffled: Vec<bool> = Vec::new();
    for _ in 0..splits {
        let mut a = Vec::with_capacity(usable.len());
        let mut b = Vec::with_capacity(usable.len());
        for unit in &usable {
            shuffled.clear();
            shuffled.extend(unit.iter().copied());
            shuffled.shuffle(&mut rng);
            let share = |parity: usize| {
                let half: Vec<bool> = shuffled.iter().copied().skip(parity).step_by(2).collect();
                half.iter().filter(|&&c| c).count() as f64 / half.len() as f64
            };
            a.push(share(0));
            b.push(share(1));
        }
        if let Some(r) = pearson(&a, &b) {
            total += r;
            defined += 1;
        }
    }
    if defined == 0 {
        return None;
    }
    let r = total / defined as f64;
    Some(SplitHalf {
        units: usable.len(),
        r_half: r,
        spearman_brown: 2.0 * r / (1.0 + r),
        splits: defined,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_responses_per_unit_give_the_hand_computed_correlation() {
        // Halves (1,1) (0,0) (1,1) (0,0) (1,0): r = 0.8 / 1.2 = 2/3 whichever way the mixed unit falls;
        // Spearman-Brown: (4/3) / (5/3) = 0.8. The single-response unit is left out.
        let units = vec![
            vec![true, true],
            vec![false, false],
            vec![true, true],
            vec![false, false],
            vec![true, false],
            vec![true],
        ];
        let s = split_half(&units, 20, 3).unwrap();
        assert_eq!(s.units, 5);
        assert!((s.r_half - 2.0 / 3.0).abs() < 1e-12, "{s:?}");
        assert!((s.spearman_brown - 0.8).abs() < 1e-12, "{s:?}");
    }

    #[test]
    fn too_few_units_give_none() {
        assert_eq!(
            split_half(&[vec![true, false], vec![true, true]], 10, 1),
            None
        );
    }
}
