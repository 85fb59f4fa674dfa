//! A calibration stimulus set drawn by the program itself, so a study runs on a machine with no downloads.
//! Each unit has a planted feature (a colour or a grating orientation) whose strength `a` in [0, 1] plays
//! the unit's activation: max exemplars show the feature, min exemplars its opposite. "Mixed" units
//! respond to either of two features, so their exemplars are less coherent and their trials harder.

use std::f32::consts::PI;

use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::store::{ImageStore, StoredImage};
use super::{obvious_trial, StimulusSet, TrialKind, TrialSpec, UnitSpec};

#[derive(Debug, Clone)]
pub struct SyntheticOptions {
    pub size: u32,
    pub batches: u32,
    pub references: usize,
    pub practice_trials: usize,
    pub seed: u64,
}

impl Default for SyntheticOptions {
    fn default() -> Self {
        Self {
            size: 112,
            batches: 2,
            references: 9,
            practice_trials: 4,
            seed: 7,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Feature {
    Colour { hue: f32 },
    Orientation { angle: f32 },
    Mixed { hue: f32, angle: f32 },
}

/// Query strengths per condition: (max query, min query).
const CONDITIONS: [(&str, f32, f32); 2] = [("easy", 0.8, 0.2), ("hard", 0.62, 0.38)];

fn units() -> Vec<(UnitSpec, Feature)> {
    let spec = |tap: &str, index: usize| UnitSpec {
        model: "synthetic".into(),
        tap: tap.into(),
        basis: "synthetic".into(),
        index: index as i32,
        ..Default::default()
    };
    let colours = (0..6).map(|i| {
        (
            spec("colour", i),
            Feature::Colour {
                hue: i as f32 * 60.0,
            },
        )
    });
    let orientations = (0..6).map(|i| {
        (
            spec("orientation", i),
            Feature::Orientation {
                angle: i as f32 * 30.0,
            },
        )
    });
    let mixed = (0..4).map(|i| {
        let feature = Feature::Mixed {
            hue: 30.0 + i as f32 * 90.0,
            angle: 15.0 + i as f32 * 45.0,
        };
        (spec("mixed", i), feature)
    });
    colours.chain(orientations).chain(mixed).collect()
}

/// Draws every image into `store` and returns the units with their main, catch and practice trials.
pub fn build(store: &ImageStore, options: &SyntheticOptions) -> anyhow::Result<StimulusSet> {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0x5eed);
    let mut canvas = Canvas {
        store,
        rng: ChaCha8Rng::seed_from_u64(options.seed),
        size: options.size,
        images: Vec::new(),
    };
    let mut set = StimulusSet::default();
    let units = units();
    let r = options.references;
    for (unit, (spec, feature)) in units.iter().enumerate() {
        set.units.push(spec.clone());
        for batch in 0..options.batches {
            // References: strongest to weakest within the top and bottom tenth of the feature range.
            let level = |i: usize| 0.1 * i as f32 / (r.max(2) - 1) as f32;
            let max_refs = (0..r)
                .map(|i| canvas.draw(*feature, 1.0 - level(i)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let min_refs = (0..r)
                .map(|i| canvas.draw(*feature, level(i)))
                .collect::<anyhow::Result<Vec<_>>>()?;
            for (condition, max_level, min_level) in CONDITIONS {
                set.trials.push(TrialSpec {
                    unit,
                    kind: TrialKind::Main,
                    condition: condition.into(),
                    batch: batch as i32,
                    max_query: canvas.draw(*feature, max_level)?,
                    min_query: canvas.draw(*feature, min_level)?,
                    max_refs: max_refs.clone(),
                    min_refs: min_refs.clone(),
                });
            }
        }
    }
    let firsts: Vec<TrialSpec> = set
        .trials
        .iter()
        .filter(|t| t.batch == 0 && t.condition == "easy")
        .cloned()
        .collect();
    for trial in &firsts {
        set.trials
            .extend(obvious_trial(trial, TrialKind::Catch, &mut rng));
    }
    // Practice: clear colour units with queries near the ends of the range.
    for trial in firsts.iter().take(options.practice_trials) {
        let feature = units[trial.unit].1;
        set.trials.push(TrialSpec {
            kind: TrialKind::Practice,
            condition: "practice".into(),
            max_query: canvas.draw(feature, 0.95)?,
            min_query: canvas.draw(feature, 0.05)?,
            ..trial.clone()
        });
    }
    set.images = canvas.images;
    Ok(set)
}

struct Canvas<'a> {
    store: &'a ImageStore,
    rng: ChaCha8Rng,
    size: u32,
    images: Vec<StoredImage>,
}

impl Canvas<'_> {
    /// Draws an image of `feature` at `strength` (1 = the planted feature, 0 = its opposite) into the store.
    fn draw(&mut self, feature: Feature, strength: f32) -> anyhow::Result<String> {
        let (size, rng) = (self.size, &mut self.rng);
        let colour_hue = match feature {
            Feature::Colour { hue } => Some(hue),
            Feature::Orientation { .. } => None,
            Feature::Mixed { hue, .. } => rng.random_bool(0.5).then_some(hue),
        };
        let image = match (colour_hue, feature) {
            (Some(hue), _) => colour_texture(hue + (1.0 - strength) * 180.0, size, rng),
            (None, Feature::Orientation { angle } | Feature::Mixed { angle, .. }) => {
                grating(angle + (1.0 - strength) * 90.0, size, rng)
            }
            (None, Feature::Colour { hue }) => colour_texture(hue, size, rng),
        };
        let stored = self.store.put_rgb(&image)?;
        let sha = stored.sha256.clone();
        self.images.push(stored);
        Ok(sha)
    }
}

/// A random blob texture in one hue (jittered a little).
fn colour_texture(hue: f32, size: u32, rng: &mut ChaCha8Rng) -> RgbImage {
    let hue = hue + rng.random_range(-8.0..8.0);
    let waves: Vec<(f32, f32, f32)> = (0..3)
        .map(|_| {
            (
                rng.random_range(0.0..PI),
                rng.random_range(2.0..6.0),
                rng.random_range(0.0..2.0 * PI),
            )
        })
        .collect();
    RgbImage::from_fn(size, size, |x, y| {
        let t = texture(&waves, x, y, size);
        hsv(hue, 0.7, 0.55 + 0.3 * t)
    })
}

/// A sine grating at `angle` degrees in a random pale tint.
fn grating(angle: f32, size: u32, rng: &mut ChaCha8Rng) -> RgbImage {
    let angle = (angle + rng.random_range(-4.0..4.0)).to_radians();
    let cycles = rng.random_range(4.0..7.0);
    let phase = rng.random_range(0.0..2.0 * PI);
    let tint = rng.random_range(0.0..360.0);
    RgbImage::from_fn(size, size, |x, y| {
        let u = (x as f32 * angle.cos() + y as f32 * angle.sin()) / size as f32;
        let t = (2.0 * PI * cycles * u + phase).sin();
        hsv(tint, 0.2, 0.5 + 0.4 * t)
    })
}

fn texture(waves: &[(f32, f32, f32)], x: u32, y: u32, size: u32) -> f32 {
    let (x, y) = (x as f32 / size as f32, y as f32 / size as f32);
    waves
        .iter()
        .map(|(dir, freq, phase)| (2.0 * PI * freq * (x * dir.cos() + y * dir.sin()) + phase).sin())
        .sum::<f32>()
        / waves.len() as f32
}

fn hsv(hue: f32, saturation: f32, value: f32) -> Rgb<u8> {
    let h = hue.rem_euclid(360.0) / 60.0;
    let v = value.clamp(0.0, 1.0);
    let c = v * saturation;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = v - c;
    let byte = |channel: f32| ((channel + m) * 255.0).round() as u8;
    Rgb([byte(r), byte(g), byte(b)])
}
