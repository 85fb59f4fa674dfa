//! The colour observer: the seed paper's low-level baseline. d(a, b) is the Euclidean distance
//! between the two images' mean CIELAB colours (the mean over pixels of each pixel's L*, a*, b*).
//!
//! Pixels are 8-bit sRGB, converted with the standard formulas (IEC 61966-2-1 and CIE 15):
//! sRGB -> linear RGB (c / 12.92 up to 0.04045, else ((c + 0.055) / 1.055)^2.4) -> XYZ (the sRGB
//! primaries' D65 matrix) -> L*a*b* relative to the D65 white (0.95047, 1, 1.08883), with
//! f(t) = t^(1/3) above (6/29)^3 and t / (3 (6/29)^2) + 4/29 below.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use image::RgbImage;
use rayon::prelude::*;

use crate::db::judgments::TrialImages;
use crate::progress::{check, Progress};

use super::{evidence, judge, trial_images, Rule, Scored, IMAGE_BATCH};

/// Linear RGB -> XYZ for the sRGB primaries and D65 white.
const RGB_TO_XYZ: [[f64; 3]; 3] = [
    [0.412_456_4, 0.357_576_1, 0.180_437_5],
    [0.212_672_9, 0.715_152_2, 0.072_175_0],
    [0.019_333_9, 0.119_192_0, 0.950_304_1],
];
/// The D65 reference white (2° observer).
const WHITE: [f64; 3] = [0.950_47, 1.0, 1.088_83];

/// sRGB transfer function inverted: an 8-bit channel as linear light in [0, 1].
fn linear(c: u8) -> f64 {
    let c = c as f64 / 255.0;
    if c <= 0.040_45 {
        c / 12.92
    } else {
        ((c + 0.055) / 1.055).powf(2.4)
    }
}

fn lab_f(t: f64) -> f64 {
    const D: f64 = 6.0 / 29.0;
    if t > D * D * D {
        t.cbrt()
    } else {
        t / (3.0 * D * D) + 4.0 / 29.0
    }
}

/// CIELAB (D65) of linear RGB.
fn lab_of_linear(rgb: [f64; 3]) -> [f64; 3] {
    let xyz = RGB_TO_XYZ.map(|row| row.iter().zip(&rgb).map(|(m, c)| m * c).sum::<f64>());
    let [fx, fy, fz] = [0, 1, 2].map(|i| lab_f(xyz[i] / WHITE[i]));
    [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
}

/// CIELAB (D65) of one 8-bit sRGB colour.
pub fn srgb_to_lab(rgb: [u8; 3]) -> [f64; 3] {
    lab_of_linear(rgb.map(linear))
}

/// The mean CIELAB colour of an image's pixels.
pub fn mean_lab(image: &RgbImage) -> [f64; 3] {
    let table: Vec<f64> = (0..=255u8).map(linear).collect();
    let mut sum = [0f64; 3];
    for p in image.pixels() {
        let lab = lab_of_linear(p.0.map(|c| table[c as usize]));
        for (s, v) in sum.iter_mut().zip(lab) {
            *s += v;
        }
    }
    let n = (image.width() as f64 * image.height() as f64).max(1.0);
    sum.map(|s| s / n)
}

/// The colour distance: Euclidean between mean CIELAB colours.
pub fn distance(a: [f64; 3], b: [f64; 3]) -> f64 {
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y) * (x - y))
        .sum::<f64>()
        .sqrt()
}

/// Scores `trials` with the colour distance; `load` decodes an image given its SHA-256.
pub fn score_trials(
    rule: Rule,
    trials: &[TrialImages],
    load: &(dyn Fn(&str) -> anyhow::Result<RgbImage> + Sync),
    progress: &dyn Progress,
) -> anyhow::Result<Scored> {
    let began = Instant::now();
    let mut distinct: Vec<&str> = trials
        .iter()
        .flat_map(trial_images)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    distinct.sort_unstable();
    progress.start_phase("image colours", distinct.len() as u64);
    let mut colours: HashMap<&str, [f64; 3]> = HashMap::with_capacity(distinct.len());
    for batch in distinct.chunks(IMAGE_BATCH) {
        check(progress)?;
        let computed: Vec<[f64; 3]> = batch
            .par_iter()
            .map(|sha| load(sha).map(|img| mean_lab(&img)))
            .collect::<anyhow::Result<_>>()?;
        colours.extend(batch.iter().copied().zip(computed));
        progress.advance(batch.len() as u64);
    }
    let feature_time = began.elapsed();

    let began = Instant::now();
    let judgments = trials
        .iter()
        .map(|t| {
            let row = |q: &str, refs: &[String]| -> Vec<f32> {
                refs.iter()
                    .map(|r| distance(colours[q], colours[r.as_str()]) as f32)
                    .collect()
            };
            let (qmax, qmin) = (t.max_query.as_str(), t.min_query.as_str());
            let to_max = [row(qmax, &t.max_refs), row(qmin, &t.max_refs)];
            let to_min = [row(qmax, &t.min_refs), row(qmin, &t.min_refs)];
            let s = evidence(rule, [&to_max[0], &to_max[1]], [&to_min[0], &to_min[1]]);
            judge(t.id, s)
        })
        .collect();
    Ok(Scored {
        judgments,
        layers: Vec::new(),
        images: distinct.len(),
        feature_passes: distinct.len(),
        feature_time,
        distance_time: began.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(lab: [f64; 3], expected: [f64; 3]) -> bool {
        lab.iter().zip(&expected).all(|(a, b)| (a - b).abs() < 0.01)
    }

    #[test]
    fn primaries_white_and_grey_have_their_published_lab_values() {
        // Published sRGB (D65) -> CIELAB values, e.g. the tables of Bruce Lindbloom's calculator.
        for (rgb, lab) in [
            ([255, 0, 0], [53.2408, 80.0925, 67.2032]),
            ([0, 255, 0], [87.7347, -86.1827, 83.1793]),
            ([0, 0, 255], [32.2970, 79.1875, -107.8602]),
            ([255, 255, 255], [100.0, 0.0, 0.0]),
            ([0, 0, 0], [0.0, 0.0, 0.0]),
            ([128, 128, 128], [53.5850, 0.0, 0.0]),
        ] {
            let got = srgb_to_lab(rgb);
            assert!(close(got, lab), "{rgb:?}: {got:?}, expected {lab:?}");
        }
    }

    #[test]
    fn the_mean_is_over_pixels_of_lab_not_of_rgb() {
        // Half red, half blue: the mean of the two Lab colours, not Lab of purple.
        let img = RgbImage::from_fn(4, 2, |x, _| {
            image::Rgb(if x < 2 { [255, 0, 0] } else { [0, 0, 255] })
        });
        let (r, b) = (srgb_to_lab([255, 0, 0]), srgb_to_lab([0, 0, 255]));
        let expected = [0, 1, 2].map(|i| (r[i] + b[i]) / 2.0);
        assert!(close(mean_lab(&img), expected));
        // Red to blue: sqrt(20.944^2 + 0.905^2 + 175.063^2).
        assert!(
            (distance(r, b) - 176.314).abs() < 0.01,
            "{}",
            distance(r, b)
        );
    }
}
