//! The query-to-reference distances of many trials at once, blocked along the feature dimension.
//!
//! One trial's distances are 2 x 2R dot products of long feature vectors (alex at 224 px: 485k floats,
//! 1.9 MB), so scoring trial by trial streams 20 feature vectors from memory per trial: 77 GB for 2,000
//! trials, memory-bound. Here the feature dimension is cut into blocks small enough that one block of
//! every image of the study fits in a core's L2 cache; each block of every image is packed into one
//! buffer and every trial's dot products over it are accumulated, so each image's features come from
//! memory once and the trials read them from cache.
//! Blocks never straddle two LPIPS taps, so the dot products are kept per tap: each tap's own term
//! (a single-layer observer) comes from the same pass, and the full distance is their sum.
//! Blocks are shared among threads, each accumulating its own partial sums (f32 within a block, f64
//! across blocks); d(q, r) = |q|^2 + |r|^2 - 2 q.r per tap, as in `vision::distances`.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use rayon::prelude::*;

use crate::db::judgments::TrialImages;
use crate::progress::{Cancelled, Progress};
use crate::vision::LpipsFeatures;

use super::Rule;

/// Bytes of one block of every image: leaves room in a 2 MB L2 for the partial sums.
const BLOCK_BYTES: usize = 1024 * 1024;

/// One trial's rows: indices into the image list of its max query, min query and references
/// (max references first, then min references when the rule uses them).
struct Rows {
    queries: [usize; 2],
    refs: Vec<usize>,
    max_refs: usize,
    /// Index of the trial's tap layout (its images' size).
    layout: usize,
}

/// Distances of one trial's queries to its references: `[query][reference]`, references in the
/// order max then min.
pub struct Table {
    pub rows: [Vec<f32>; 2],
    pub max_refs: usize,
}

impl Table {
    pub fn to_max(&self, q: usize) -> &[f32] {
        &self.rows[q][..self.max_refs]
    }
    pub fn to_min(&self, q: usize) -> &[f32] {
        &self.rows[q][self.max_refs..]
    }
}

/// One trial's distances: the full LPIPS distance and each tap's own term.
pub struct TrialDistances {
    /// The sum over taps.
    pub full: Table,
    /// Per tap, in `LpipsNet::taps()` order.
    pub taps: Vec<Table>,
}

/// A stretch of the feature dimension within one tap of one layout.
struct Block {
    layout: usize,
    tap: usize,
    span: Range<usize>,
}

/// The distances of every trial's two queries to its references (min references only for `contrast`),
/// per tap and in full.
pub fn trial_distances(
    rule: Rule,
    trials: &[TrialImages],
    features: &HashMap<String, Arc<LpipsFeatures>>,
    progress: &dyn Progress,
) -> anyhow::Result<Vec<TrialDistances>> {
    // Images as a list, trials as indices into it.
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut images: Vec<&LpipsFeatures> = Vec::new();
    let mut row = |sha: &str| -> anyhow::Result<usize> {
        if let Some(&i) = index.get(sha) {
            return Ok(i);
        }
        let f = features
            .get(sha)
            .with_context(|| format!("features of image {sha} are missing"))?;
        if f.tap_sq_norms.is_empty() {
            bail!(
                "features of image {sha} do not split into the {} taps",
                f.net
            );
        }
        images.push(f);
        index.insert(sha.to_string(), images.len() - 1);
        Ok(images.len() - 1)
    };
    let mut plan = Vec::with_capacity(trials.len());
    for t in trials {
        let queries = [row(&t.max_query)?, row(&t.min_query)?];
        let mut refs = t
            .max_refs
            .iter()
            .map(|s| row(s))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let max_refs = refs.len();
        if rule == Rule::Contrast {
            for s in &t.min_refs {
                refs.push(row(s)?);
            }
        }
        plan.push(Rows {
            queries,
            refs,
            max_refs,
            layout: 0,
        });
    }

    // Images of one size share one layout of taps; a study normally has one.
    let mut layouts: Vec<Vec<Range<usize>>> = Vec::new();
    let mut layout_of = Vec::with_capacity(images.len());
    for f in &images {
        let ranges = f.tap_ranges();
        let l = match layouts.iter().position(|r| *r == ranges) {
            Some(l) => l,
            None => {
                layouts.push(ranges);
                layouts.len() - 1
            }
        };
        layout_of.push(l);
    }
    for (p, t) in plan.iter_mut().zip(trials) {
        let first = images[p.queries[0]];
        let same = p.queries.iter().chain(&p.refs).all(|&i| {
            images[i].net == first.net
                && images[i].size == first.size
                && images[i].data.len() == first.data.len()
        });
        if !same {
            bail!(
                "trial {}: its images must share one size to be compared",
                t.id
            );
        }
        p.layout = layout_of[p.queries[0]];
    }
    let taps = layouts.iter().map(Vec::len).max().unwrap_or(0);

    // Each trial's dot products sit at `offset + query * refs + reference` within its tap's stretch of
    // the accumulator, so a block touches one contiguous stretch.
    let mut offsets = Vec::with_capacity(plan.len() + 1);
    let mut pairs = 0;
    for p in &plan {
        offsets.push(pairs);
        pairs += 2 * p.refs.len();
    }
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); layouts.len()];
    for (i, p) in plan.iter().enumerate() {
        members[p.layout].push(i);
    }
    let mut blocks = Vec::new();
    for (l, ranges) in layouts.iter().enumerate() {
        let n = layout_of.iter().filter(|&&x| x == l).count();
        let block = (BLOCK_BYTES / (4 * n.max(1))).clamp(64, 16_384) / 16 * 16;
        for (tap, r) in ranges.iter().enumerate() {
            for lo in r.clone().step_by(block) {
                blocks.push(Block {
                    layout: l,
                    tap,
                    span: lo..(lo + block).min(r.end),
                });
            }
        }
    }
    progress.start_phase("trial distances", blocks.len() as u64);
    let stop = AtomicBool::new(false);
    let dots = blocks
        .par_iter()
        .fold(
            || {
                (
                    vec![0f64; taps * pairs],
                    Vec::<f32>::new(),
                    Vec::<usize>::new(),
                )
            },
            |(mut acc, mut packed, mut at), b| {
                if stop.load(Ordering::Relaxed) || progress.cancelled() {
                    stop.store(true, Ordering::Relaxed);
                    return (acc, packed, at);
                }
                // This block of every image of the layout, packed contiguously: feature vectors are
                // separate allocations whose equal offsets would compete for the same cache sets.
                packed.clear();
                at.clear();
                for (f, &l) in images.iter().zip(&layout_of) {
                    at.push(packed.len());
                    if l == b.layout {
                        packed.extend_from_slice(&f.data[b.span.clone()]);
                    }
                }
                let w = b.span.len();
                let acc_tap = &mut acc[b.tap * pairs..(b.tap + 1) * pairs];
                let mut partial = vec![0f32; 64];
                let mut refs: Vec<&[f32]> = Vec::with_capacity(64);
                for &t in &members[b.layout] {
                    let (p, offset) = (&plan[t], offsets[t]);
                    refs.clear();
                    refs.extend(p.refs.iter().map(|&i| &packed[at[i]..at[i] + w]));
                    partial.clear();
                    partial.resize(refs.len(), 0.0);
                    let n = refs.len();
                    for (qi, &q) in p.queries.iter().enumerate() {
                        partial.iter_mut().for_each(|v| *v = 0.0);
                        dots(&packed[at[q]..at[q] + w], &refs, &mut partial);
                        let out = &mut acc_tap[offset + qi * n..offset + (qi + 1) * n];
                        for (o, &v) in out.iter_mut().zip(&partial) {
                            *o += v as f64;
                        }
                    }
                }
                progress.advance(1);
                (acc, packed, at)
            },
        )
        .map(|(acc, _, _)| acc)
        .reduce(
            || vec![0f64; taps * pairs],
            |mut x, y| {
                for (u, v) in x.iter_mut().zip(y) {
                    *u += v;
                }
                x
            },
        );
    if stop.load(Ordering::Relaxed) {
        return Err(Cancelled.into());
    }
    Ok(plan
        .iter()
        .zip(&offsets)
        .map(|(p, &offset)| {
            let n = p.refs.len();
            // d per tap before clamping, as f64: the full distance sums these.
            let term = |k: usize, qi: usize, j: usize| -> f64 {
                let (q, r) = (images[p.queries[qi]], images[p.refs[j]]);
                q.tap_sq_norms[k] + r.tap_sq_norms[k] - 2.0 * dots[k * pairs + offset + qi * n + j]
            };
            let ntaps = layouts[p.layout].len();
            let table = |d: &dyn Fn(usize, usize) -> f64| Table {
                rows: [0, 1].map(|qi| (0..n).map(|j| d(qi, j).max(0.0) as f32).collect()),
                max_refs: p.max_refs,
            };
            TrialDistances {
                full: table(&|qi, j| (0..ntaps).map(|k| term(k, qi, j)).sum()),
                taps: (0..ntaps).map(|k| table(&|qi, j| term(k, qi, j))).collect(),
            }
        })
        .collect())
}

/// `out[k] += q . refs[k]`, on the widest vector unit this CPU has.
fn dots(q: &[f32], refs: &[&[f32]], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { dots_avx512(q, refs, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { dots_avx2(q, refs, out) };
        }
    }
    dots_portable(q, refs, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dots_avx512(q: &[f32], refs: &[&[f32]], out: &mut [f32]) {
    dots_portable(q, refs, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dots_avx2(q: &[f32], refs: &[&[f32]], out: &mut [f32]) {
    dots_portable(q, refs, out)
}

/// Sixteen independent lanes, so the compiler vectorises the sums (floating-point addition is not
/// reassociated otherwise); inlined into the feature-specific copies above.
#[inline(always)]
fn dots_portable(q: &[f32], refs: &[&[f32]], out: &mut [f32]) {
    const LANES: usize = 16;
    for (r, o) in refs.iter().zip(out.iter_mut()) {
        let mut acc = [0f32; LANES];
        let (qc, rc) = (q.chunks_exact(LANES), r.chunks_exact(LANES));
        let tail: f32 = qc
            .remainder()
            .iter()
            .zip(rc.remainder())
            .map(|(a, b)| a * b)
            .sum();
        for (a, b) in qc.zip(rc) {
            let (a, b): (&[f32; LANES], &[f32; LANES]) = match (a.try_into(), b.try_into()) {
                (Ok(a), Ok(b)) => (a, b),
                _ => unreachable!("chunks_exact yields chunks of LANES"),
            };
            for l in 0..LANES {
                acc[l] += a[l] * b[l];
            }
        }
        *o += acc.iter().sum::<f32>() + tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_products_match_a_plain_sum_on_odd_lengths() {
        let q: Vec<f32> = (0..37).map(|i| (i as f32 * 0.3).sin()).collect();
        let r: Vec<f32> = (0..37).map(|i| (i as f32 * 0.7).cos()).collect();
        let mut out = [1.0f32];
        dots(&q, &[&r], &mut out);
        let plain: f32 = q.iter().zip(&r).map(|(a, b)| a * b).sum();
        assert!(
            (out[0] - 1.0 - plain).abs() < 1e-5,
            "{} vs {plain}",
            out[0] - 1.0
        );
    }
}
