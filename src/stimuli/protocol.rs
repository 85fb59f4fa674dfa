//! Exemplars and trials exactly per DESIGN 1.2 (the IMI protocol): rank the image set by a unit's
//! activation, cut the B x R most and least activating images into R bins with one image per bin in
//! each batch, and draw each condition's queries. Works on image indices; pure and deterministic.

use std::collections::HashSet;

use anyhow::{bail, ensure, Context};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Ranks B*R+1 .. B*R+B from each end.
    Easy,
    /// The images at the given percentile of the activation distribution (and its mirror for the min query).
    Hard(u8),
    /// Any pair of quantile windows: the max query's and the min query's.
    Custom { max: (f64, f64), min: (f64, f64) },
}

impl Condition {
    pub fn name(&self) -> String {
        match self {
            Condition::Easy => "easy".into(),
            Condition::Hard(p) => format!("hard{p}"),
            Condition::Custom { max, min } => {
                format!("custom:{}-{}:{}-{}", max.0, max.1, min.0, min.1)
            }
        }
    }
}

impl std::str::FromStr for Condition {
    type Err = anyhow::Error;

    /// `easy`, `hard99`, `hard95`, `hard85`, `custom:0.90-0.95` (min window mirrored) or
    /// `custom:0.90-0.95:0.02-0.07`.
    fn from_str(s: &str) -> anyhow::Result<Condition> {
        match s {
            "easy" => return Ok(Condition::Easy),
            "hard99" => return Ok(Condition::Hard(99)),
            "hard95" => return Ok(Condition::Hard(95)),
            "hard85" => return Ok(Condition::Hard(85)),
            _ => {}
        }
        let Some(windows) = s.strip_prefix("custom:") else {
            bail!("unknown condition `{s}` (known: easy, hard99, hard95, hard85, custom:LO-HI[:LO-HI])");
        };
        let window = |w: &str| -> anyhow::Result<(f64, f64)> {
            let (lo, hi) = w
                .split_once('-')
                .with_context(|| format!("quantile window `{w}` is not LO-HI"))?;
            let (lo, hi): (f64, f64) = (
                lo.parse()
                    .with_context(|| format!("`{lo}` is not a number"))?,
                hi.parse()
                    .with_context(|| format!("`{hi}` is not a number"))?,
            );
            ensure!(
                (0.0..=1.0).contains(&lo) && (0.0..=1.0).contains(&hi) && lo < hi,
                "quantile window `{w}` must satisfy 0 <= LO < HI <= 1"
            );
            Ok((lo, hi))
        };
        let mut parts = windows.split(':');
        let max = window(parts.next().unwrap_or(""))?;
        let min = match parts.next() {
            Some(w) => window(w)?,
            None => (1.0 - max.1, 1.0 - max.0),
        };
        ensure!(
            parts.next().is_none(),
            "custom condition `{s}` has more than two windows"
        );
        Ok(Condition::Custom { max, min })
    }
}

#[derive(Debug, Clone)]
pub struct Protocol {
    /// B: trials per unit and condition.
    pub batches: usize,
    /// R: references per side.
    pub references: usize,
    pub conditions: Vec<Condition>,
}

impl Protocol {
    /// Images a unit's ranking needs so that references and easy queries never overlap.
    pub fn images_needed(&self) -> usize {
        2 * (self.batches * self.references + self.batches)
    }

    /// Ranks at each end that references and easy queries take: B x R + B.
    pub fn reserved_ranks(&self) -> usize {
        self.batches * (self.references + 1)
    }

    /// The conditions whose query window reaches into the references or easy queries of `n` images.
    pub fn overlapping(&self, n: usize) -> Vec<&Condition> {
        self.conditions
            .iter()
            .filter(|c| !c.clear_of(self.reserved_ranks(), n))
            .collect()
    }
}

impl Condition {
    /// Whether the queries keep clear of the `reserved` ranks at each end among `n` images (IMI asserts
    /// B x R <= start). Easy queries are the reserved ranks' own last B.
    pub fn clear_of(&self, reserved: usize, n: usize) -> bool {
        if n == 0 {
            return false;
        }
        match self {
            Condition::Easy => true,
            Condition::Hard(p) => hard_start(*p, n) >= reserved,
            Condition::Custom { max, min } => [max, min].iter().all(|&&(lo, hi)| {
                // The window spans ranks (1 - hi)(n - 1) from the top to lo (n - 1) from the bottom.
                let (last, reserved) = ((n - 1) as f64, reserved as f64 - 1e-9);
                (1.0 - hi) * last >= reserved && lo * last >= reserved
            }),
        }
    }

    /// The smallest image set whose ranks leave this condition's queries clear of the `reserved`
    /// ranks; `None` when none does (a window that touches 0 or 1).
    pub fn images_to_clear(&self, reserved: usize) -> Option<usize> {
        // Clearing is monotone in n, so a binary search finds the first n.
        let (mut lo, mut hi) = (1usize, 1usize << 40);
        if !self.clear_of(reserved, hi) {
            return None;
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.clear_of(reserved, mid) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Some(lo)
    }
}

/// The rank from the extreme at which a hard-p condition's queries start among `n` images:
/// (n - 1) - floor(p n / 100).
pub fn hard_start(p: u8, n: usize) -> usize {
    (n - 1).saturating_sub(p as usize * n / 100)
}

/// One trial in image indices.
#[derive(Debug, Clone, PartialEq)]
pub struct ProtoTrial {
    pub condition: String,
    pub batch: usize,
    pub max_query: usize,
    pub min_query: usize,
    pub max_refs: Vec<usize>,
    pub min_refs: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct UnitStimuli {
    /// Image indices by descending activation.
    pub ranking: Vec<usize>,
    /// The B x R most activating images, most first (the references' pool), and the least, least first.
    pub max_exemplars: Vec<usize>,
    pub min_exemplars: Vec<usize>,
    pub trials: Vec<ProtoTrial>,
}

/// The percentile of the image at descending rank `rank` among `n` images.
pub fn percentile_of_rank(rank: usize, n: usize) -> f64 {
    1.0 - rank as f64 / (n - 1) as f64
}

/// Ranks the images by activation and builds the unit's references and every condition's trials.
pub fn build(activations: &[f32], protocol: &Protocol, seed: u64) -> anyhow::Result<UnitStimuli> {
    let (b, r) = (protocol.batches, protocol.references);
    ensure!(
        b >= 1 && r >= 1,
        "batches and references must be at least 1"
    );
    let n = activations.len();
    ensure!(
        n >= protocol.images_needed(),
        "{b} batches x {r} references need at least {} images; the set has {n}",
        protocol.images_needed()
    );
    ensure!(
        activations.iter().all(|a| a.is_finite()),
        "activations contain NaN or infinity"
    );
    let mut ranking: Vec<usize> = (0..n).collect();
    // Ties keep image order, so the ranking is a pure function of the activations.
    ranking.sort_by(|&x, &y| activations[y].total_cmp(&activations[x]).then(x.cmp(&y)));
    let ascending: Vec<usize> = ranking.iter().rev().copied().collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);

    let max_refs = batch_references(&ranking, b, r, &mut rng);
    let min_refs = batch_references(&ascending, b, r, &mut rng);
    let mut trials = Vec::new();
    for condition in &protocol.conditions {
        let excluded: Vec<HashSet<usize>> = (0..b)
            .map(|k| max_refs[k].iter().chain(&min_refs[k]).copied().collect())
            .collect();
        let (max_q, min_q) = match condition {
            Condition::Easy => {
                let mut order: Vec<usize> = (0..b).collect();
                order.shuffle(&mut rng);
                let max_q = order.iter().map(|&k| ranking[b * r + k]).collect();
                order.shuffle(&mut rng);
                let min_q = order.iter().map(|&k| ascending[b * r + k]).collect();
                (max_q, min_q)
            }
            Condition::Hard(p) => {
                let target = (1.0 - *p as f64 / 100.0) * (n - 1) as f64;
                (
                    nearest_queries(&ranking, target, &excluded, &HashSet::new())?,
                    nearest_queries(&ascending, target, &excluded, &HashSet::new())?,
                )
            }
            Condition::Custom { max, min } => {
                let max_q = window_queries(&ranking, *max, &excluded, &HashSet::new(), &mut rng)?;
                let taken: HashSet<usize> = max_q.iter().copied().collect();
                let min_q = window_queries(&ranking, *min, &excluded, &taken, &mut rng)?;
                (max_q, min_q)
            }
        };
        for k in 0..b {
            ensure!(
                max_q[k] != min_q[k],
                "condition {} draws the same image as both queries; widen its windows",
                condition.name()
            );
            trials.push(ProtoTrial {
                condition: condition.name(),
                batch: k,
                max_query: max_q[k],
                min_query: min_q[k],
                max_refs: max_refs[k].clone(),
                min_refs: min_refs[k].clone(),
            });
        }
    }
    Ok(UnitStimuli {
        max_exemplars: ranking[..b * r].to_vec(),
        min_exemplars: ascending[..b * r].to_vec(),
        ranking,
        trials,
    })
}

/// `order` from the extreme inwards; bin j holds ranks j*B .. (j+1)*B - 1; each batch gets one image
/// per bin, the extreme bin first.
fn batch_references(order: &[usize], b: usize, r: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<usize>> {
    let mut batches = vec![Vec::with_capacity(r); b];
    for bin in order[..b * r].chunks(b) {
        let mut bin = bin.to_vec();
        bin.shuffle(rng);
        for (batch, image) in batches.iter_mut().zip(bin) {
            batch.push(image);
        }
    }
    batches
}

/// For each batch, the distinct image whose rank in `order` is nearest `target`, skipping the
/// batch's own references.
fn nearest_queries(
    order: &[usize],
    target: f64,
    excluded: &[HashSet<usize>],
    taken: &HashSet<usize>,
) -> anyhow::Result<Vec<usize>> {
    let mut by_distance: Vec<usize> = (0..order.len()).collect();
    by_distance.sort_by(|&x, &y| {
        (x as f64 - target)
            .abs()
            .total_cmp(&(y as f64 - target).abs())
            .then(x.cmp(&y))
    });
    let mut used = taken.clone();
    excluded
        .iter()
        .map(|refs| {
            let rank = by_distance
                .iter()
                .copied()
                .find(|&rank| !used.contains(&order[rank]) && !refs.contains(&order[rank]))
                .context("not enough images for the condition's queries")?;
            used.insert(order[rank]);
            Ok(order[rank])
        })
        .collect()
}

/// For each batch, a distinct random image whose percentile lies in `window`.
fn window_queries(
    ranking: &[usize],
    window: (f64, f64),
    excluded: &[HashSet<usize>],
    taken: &HashSet<usize>,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<Vec<usize>> {
    let n = ranking.len();
    let mut candidates: Vec<usize> = (0..n)
        .filter(|&rank| {
            let p = percentile_of_rank(rank, n);
            p >= window.0 && p <= window.1
        })
        .map(|rank| ranking[rank])
        .filter(|image| !taken.contains(image))
        .collect();
    candidates.shuffle(rng);
    let mut used = HashSet::new();
    excluded
        .iter()
        .map(|refs| {
            let image = candidates
                .iter()
                .copied()
                .find(|i| !used.contains(i) && !refs.contains(i))
                .with_context(|| {
                    format!(
                        "the quantile window {}-{} holds too few images for {} batches",
                        window.0,
                        window.1,
                        excluded.len()
                    )
                })?;
            used.insert(image);
            Ok(image)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// Image i has activation shuffled but known: rank_of[i] is its descending rank.
    fn known(n: usize) -> (Vec<f32>, Vec<usize>) {
        let mut ranks: Vec<usize> = (0..n).collect();
        ranks.shuffle(&mut ChaCha8Rng::seed_from_u64(9));
        let activations = ranks.iter().map(|&r| (n - r) as f32 * 0.5).collect();
        (activations, ranks)
    }

    fn protocol(conditions: &[&str]) -> Protocol {
        Protocol {
            batches: 20,
            references: 9,
            conditions: conditions.iter().map(|c| c.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn easy_queries_are_the_next_ranks_from_each_end() {
        let n = 1000;
        let (acts, rank_of) = known(n);
        let stimuli = build(&acts, &protocol(&["easy"]), 1).unwrap();
        let (b, r) = (20, 9);
        let max_ranks: HashSet<usize> = stimuli
            .trials
            .iter()
            .map(|t| rank_of[t.max_query])
            .collect();
        let min_ranks: HashSet<usize> = stimuli
            .trials
            .iter()
            .map(|t| n - 1 - rank_of[t.min_query])
            .collect();
        // 1-based ranks B*R+1 .. B*R+B are 0-based B*R .. B*R+B-1.
        let expected: HashSet<usize> = (b * r..b * r + b).collect();
        assert_eq!(max_ranks, expected);
        assert_eq!(min_ranks, expected);
        assert_eq!(stimuli.trials.len(), b);
    }

    #[test]
    fn each_batch_holds_one_reference_from_each_bin() {
        let n = 700;
        let (acts, rank_of) = known(n);
        let stimuli = build(&acts, &protocol(&["easy"]), 2).unwrap();
        let mut seen = HashSet::new();
        for t in &stimuli.trials {
            let max_bins: Vec<usize> = t.max_refs.iter().map(|&i| rank_of[i] / 20).collect();
            let min_bins: Vec<usize> = t
                .min_refs
                .iter()
                .map(|&i| (n - 1 - rank_of[i]) / 20)
                .collect();
            assert_eq!(max_bins, (0..9).collect::<Vec<_>>());
            assert_eq!(min_bins, (0..9).collect::<Vec<_>>());
            for &i in t.max_refs.iter().chain(&t.min_refs) {
                assert!(seen.insert(i), "reference {i} used by two batches");
            }
        }
        assert_eq!(seen.len(), 2 * 20 * 9);
    }

    #[test]
    fn hard_queries_lie_at_their_percentiles() {
        // Tolerance: B + 2R ranks, the most the greedy nearest-first choice can drift when every
        // batch skips its own 2R references.
        let n = 2000;
        let (acts, rank_of) = known(n);
        let stimuli = build(&acts, &protocol(&["hard99", "hard95", "hard85"]), 3).unwrap();
        let tolerance = (20.0 + 18.0) / (n - 1) as f64;
        for t in &stimuli.trials {
            let p: f64 = t
                .condition
                .trim_start_matches("hard")
                .parse::<f64>()
                .unwrap()
                / 100.0;
            let max_p = percentile_of_rank(rank_of[t.max_query], n);
            let min_p = percentile_of_rank(rank_of[t.min_query], n);
            assert!(
                (max_p - p).abs() <= tolerance,
                "{} max at {max_p}",
                t.condition
            );
            assert!(
                (min_p - (1.0 - p)).abs() <= tolerance,
                "{} min at {min_p}",
                t.condition
            );
        }
    }

    #[test]
    fn custom_windows_hold_their_queries() {
        let n = 1000;
        let (acts, rank_of) = known(n);
        let stimuli = build(&acts, &protocol(&["custom:0.7-0.8:0.1-0.3"]), 4).unwrap();
        for t in &stimuli.trials {
            let max_p = percentile_of_rank(rank_of[t.max_query], n);
            let min_p = percentile_of_rank(rank_of[t.min_query], n);
            assert!((0.7..=0.8).contains(&max_p) && (0.1..=0.3).contains(&min_p));
        }
    }

    #[test]
    fn no_image_is_both_query_and_reference_of_a_trial() {
        // A small set, where percentile windows overlap the reference ranks.
        let n = 440;
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let acts: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let stimuli = build(
            &acts,
            &protocol(&["easy", "hard99", "hard95", "hard85", "custom:0.9-1"]),
            6,
        )
        .unwrap();
        for t in &stimuli.trials {
            let refs: HashSet<usize> = t.max_refs.iter().chain(&t.min_refs).copied().collect();
            assert!(
                !refs.contains(&t.max_query) && !refs.contains(&t.min_query),
                "{t:?}"
            );
            assert_ne!(t.max_query, t.min_query);
        }
        for condition in ["easy", "hard99", "hard95", "hard85"] {
            let queries: HashSet<usize> = stimuli
                .trials
                .iter()
                .filter(|t| t.condition == condition)
                .map(|t| t.max_query)
                .collect();
            assert_eq!(
                queries.len(),
                20,
                "{condition}: queries distinct across batches"
            );
        }
    }

    #[test]
    fn deterministic_for_a_seed() {
        let (acts, _) = known(600);
        let p = protocol(&["easy", "hard95"]);
        assert_eq!(
            build(&acts, &p, 7).unwrap().trials,
            build(&acts, &p, 7).unwrap().trials
        );
        assert_ne!(
            build(&acts, &p, 7).unwrap().trials,
            build(&acts, &p, 8).unwrap().trials
        );
    }

    #[test]
    fn hard_conditions_need_their_images_at_twenty_batches_of_nine() {
        let p = protocol(&["hard99", "hard95", "hard85"]);
        assert_eq!(p.reserved_ranks(), 200);
        let needed: Vec<Option<usize>> = p
            .conditions
            .iter()
            .map(|c| c.images_to_clear(p.reserved_ranks()))
            .collect();
        assert_eq!(needed, [Some(20_001), Some(4_001), Some(1_334)]);
        // Exactly at the bound and one image short of it.
        assert_eq!(hard_start(99, 20_001), 200);
        assert_eq!(hard_start(99, 20_000), 199);
        assert_eq!(hard_start(85, 1_333), 199);
        let names = |n| {
            p.overlapping(n)
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(1_000), ["hard99", "hard95", "hard85"]);
        assert_eq!(names(4_001), ["hard99"]);
        assert!(names(20_001).is_empty());
    }

    #[test]
    fn custom_windows_are_checked_at_both_ends() {
        let reserved = protocol(&["easy"]).reserved_ranks();
        let c: Condition = "custom:0.9-0.95".parse().unwrap();
        // Rank (1 - 0.95)(n - 1) >= 200 from n = 4001.
        assert_eq!(c.images_to_clear(reserved), Some(4_001));
        assert!(!c.clear_of(reserved, 1_000));
        let touching: Condition = "custom:0.9-1".parse().unwrap();
        assert_eq!(touching.images_to_clear(reserved), None);
        assert!(Condition::Easy.clear_of(reserved, 400));
    }

    #[test]
    fn clear_errors() {
        let (acts, _) = known(100);
        let e = build(&acts, &protocol(&["easy"]), 0)
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least 400 images"), "{e}");
        assert!("hard50".parse::<Condition>().is_err());
        assert!("custom:0.9-0.8".parse::<Condition>().is_err());
        assert_eq!(
            "custom:0.9-0.95".parse::<Condition>().unwrap(),
            Condition::Custom {
                max: (0.9, 0.95),
                min: (1.0 - 0.95, 1.0 - 0.9)
            }
        );
    }
}
