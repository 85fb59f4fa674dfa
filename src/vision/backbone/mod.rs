//! Backbones: the architectures (one file each) and the fast engine that runs them.
//! `candle` holds the reference implementation on candle's own ops.

pub mod alexnet;
pub mod candle;
pub mod resnet;
pub mod squeezenet;
pub mod vgg;

use std::path::Path;

use super::arch::{Arch, Layer, PoolSpec, Tap};
use super::conv::{max_pool, relu_inplace, ConvKernel, Fmap};
use super::error::{Result, VisionError};
use super::weights::{load_set, TensorMap, WeightSet};

enum Step {
    Conv {
        kernel: ConvKernel,
        relu: bool,
        tap: Option<String>,
    },
    Pool(PoolSpec),
    Fire {
        squeeze: ConvKernel,
        expand1: ConvKernel,
        expand3: ConvKernel,
        tap: Option<String>,
    },
    Block {
        convs: Vec<ConvKernel>,
        downsample: Option<ConvKernel>,
        tap: Option<String>,
    },
}

impl Step {
    fn tap(&self) -> Option<&str> {
        match self {
            Step::Conv { tap, .. } | Step::Fire { tap, .. } | Step::Block { tap, .. } => {
                tap.as_deref()
            }
            Step::Pool(_) => None,
        }
    }
}

/// Target size of the largest feature map of a batch slice (see `forward_taps`).
const SLICE_BYTES: usize = 2 << 20;

/// A backbone with real weights on the fast path (NHWC, GEMM convolutions, fused bias + ReLU).
pub struct Backbone {
    arch: Arch,
    steps: Vec<Step>,
}

impl Backbone {
    /// Loads weights from one or more files (any supported format), checking names and shapes.
    pub fn load(arch: Arch, paths: &[&Path]) -> Result<Backbone> {
        let set = WeightSet::Trunk(arch);
        let mut all = TensorMap::new();
        for p in paths {
            all.extend(super::weights::read_weights(p)?);
        }
        let named = paths
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" + ");
        let checked = set.canonical(&all, Path::new(&named))?;
        Backbone::from_tensors(arch, &checked)
    }

    /// Loads the architecture's weight set from a data directory (see `weights::locate`).
    pub fn from_data_dir(arch: Arch, data_dir: &Path) -> Result<Backbone> {
        let path = super::weights::locate(data_dir, WeightSet::Trunk(arch))?;
        Backbone::from_tensors(arch, &load_set(&path, WeightSet::Trunk(arch))?)
    }

    /// Builds from tensors already checked with `WeightSet::canonical`.
    pub fn from_tensors(arch: Arch, t: &TensorMap) -> Result<Backbone> {
        let steps = arch
            .layers()
            .into_iter()
            .map(|l| {
                Ok(match l {
                    Layer::Conv { conv, relu, tap } => Step::Conv {
                        kernel: ConvKernel::from_tensors(&conv, t)?,
                        relu,
                        tap,
                    },
                    Layer::MaxPool(p) => Step::Pool(p),
                    Layer::Fire {
                        squeeze,
                        expand1,
                        expand3,
                        tap,
                    } => Step::Fire {
                        squeeze: ConvKernel::from_tensors(&squeeze, t)?,
                        expand1: ConvKernel::from_tensors(&expand1, t)?,
                        expand3: ConvKernel::from_tensors(&expand3, t)?,
                        tap,
                    },
                    Layer::Block { block, tap } => Step::Block {
                        convs: block
                            .convs
                            .iter()
                            .map(|c| ConvKernel::from_tensors(c, t))
                            .collect::<Result<_>>()?,
                        downsample: block
                            .downsample
                            .as_ref()
                            .map(|c| ConvKernel::from_tensors(c, t))
                            .transpose()?,
                        tap,
                    },
                })
            })
            .collect::<Result<_>>()?;
        Ok(Backbone { arch, steps })
    }

    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// Checks tap names against the architecture.
    pub fn check_taps(&self, taps: &[Tap]) -> Result<()> {
        let known = self.arch.taps();
        for t in taps {
            if !known.contains(&t.name) {
                return Err(VisionError::UnknownTap {
                    arch: self.arch.name().to_string(),
                    tap: t.name.clone(),
                    known: known.join(", "),
                });
            }
        }
        Ok(())
    }

    /// Bytes of the largest feature map one image produces at this input size.
    fn peak_image_bytes(&self, h: usize, w: usize) -> usize {
        let (mut h, mut w, mut peak) = (h, w, h * w * 3);
        for s in &self.steps {
            let c = match s {
                Step::Pool(p) => {
                    (h, w) = (p.out_len(h), p.out_len(w));
                    0
                }
                Step::Conv { kernel, .. } => {
                    (h, w) = kernel.out_size(h, w);
                    kernel.cout
                }
                Step::Fire {
                    squeeze,
                    expand1,
                    expand3,
                    ..
                } => {
                    (h, w) = squeeze.out_size(h, w);
                    expand1.cout + expand3.cout
                }
                Step::Block { convs, .. } => {
                    for k in convs {
                        (h, w) = k.out_size(h, w);
                    }
                    convs.iter().map(|k| k.cout).max().unwrap_or(0)
                }
            };
            peak = peak.max(h * w * c);
        }
        peak * 4
    }

    /// Runs a batch (NHWC, already normalised) up to the last requested tap and returns one feature
    /// map per tap, in request order.
    pub fn forward_taps(&self, x: &Fmap, taps: &[Tap]) -> Result<Vec<Fmap>> {
        self.check_taps(taps)?;
        if x.c != 3 {
            return Err(VisionError::Input(format!(
                "expected 3 input channels, got {}",
                x.c
            )));
        }
        if x.data.len() != x.n * x.image_len() {
            return Err(VisionError::Input(
                "batch data does not match its shape".into(),
            ));
        }
        // Large batches go through in slices whose biggest feature maps stay within a few MB:
        // the cheap layers are memory-bound, and cache-sized slices run them much faster.
        let sub = (SLICE_BYTES / self.peak_image_bytes(x.h, x.w).max(1)).max(1);
        let sub = x.n.div_ceil(x.n.div_ceil(sub));
        if x.n <= sub {
            return self.forward_slice(x, taps);
        }
        let mut out: Vec<Fmap> = Vec::new();
        for start in (0..x.n).step_by(sub) {
            let n = sub.min(x.n - start);
            let slice = Fmap {
                n,
                h: x.h,
                w: x.w,
                c: x.c,
                data: x.data[start * x.image_len()..(start + n) * x.image_len()].to_vec(),
            };
            let maps = self.forward_slice(&slice, taps)?;
            if out.is_empty() {
                out = maps;
            } else {
                for (o, m) in out.iter_mut().zip(maps) {
                    o.n += m.n;
                    o.data.extend_from_slice(&m.data);
                }
            }
        }
        Ok(out)
    }

    fn forward_slice(&self, x: &Fmap, taps: &[Tap]) -> Result<Vec<Fmap>> {
        let mut out: Vec<Option<Fmap>> = vec![None; taps.len()];
        let last = self
            .steps
            .iter()
            .rposition(|s| s.tap().is_some_and(|n| taps.iter().any(|t| t.name == n)))
            .unwrap_or(0);
        let mut cur: Option<Fmap> = None;
        for step in &self.steps[..=last] {
            let input = cur.as_ref().unwrap_or(x);
            let wanted: Vec<usize> = match step.tap() {
                Some(name) => (0..taps.len()).filter(|&i| taps[i].name == name).collect(),
                None => Vec::new(),
            };
            let needs_pre = wanted.iter().any(|&i| !taps[i].post_relu);
            let mut pre: Option<Fmap> = None;
            let next = match step {
                Step::Pool(p) => max_pool(input, p)?,
                Step::Conv { kernel, relu, .. } => {
                    if needs_pre || !relu {
                        let mut y = kernel.forward(input, false)?;
                        if needs_pre {
                            pre = Some(y.clone());
                        }
                        if *relu {
                            relu_inplace(&mut y.data);
                        }
                        y
                    } else {
                        kernel.forward(input, true)?
                    }
                }
                Step::Fire {
                    squeeze,
                    expand1,
                    expand3,
                    ..
                } => {
                    let s = squeeze.forward(input, true)?;
                    let c = expand1.cout + expand3.cout;
                    let mut y = Fmap::zeros(s.n, s.h, s.w, c);
                    let fuse = !needs_pre;
                    expand1.forward_into(&s, fuse, &mut y.data, c, 0)?;
                    expand3.forward_into(&s, fuse, &mut y.data, c, expand1.cout)?;
                    if needs_pre {
                        pre = Some(y.clone());
                        relu_inplace(&mut y.data);
                    }
                    y
                }
                Step::Block {
                    convs, downsample, ..
                } => {
                    let mut h: Option<Fmap> = None;
                    for (i, k) in convs.iter().enumerate() {
                        let src = h.as_ref().unwrap_or(input);
                        h = Some(k.forward(src, i + 1 < convs.len())?);
                    }
                    let mut y =
                        h.ok_or_else(|| VisionError::Input("empty residual block".into()))?;
                    let identity;
                    let id = match downsample {
                        Some(d) => {
                            identity = d.forward(input, false)?;
                            &identity
                        }
                        None => input,
                    };
                    for (a, b) in y.data.iter_mut().zip(&id.data) {
                        *a += b;
                    }
                    if needs_pre {
                        pre = Some(y.clone());
                    }
                    relu_inplace(&mut y.data);
                    y
                }
            };
            for &i in &wanted {
                out[i] = Some(if taps[i].post_relu {
                    next.clone()
                } else {
                    pre.clone().unwrap_or_else(|| next.clone())
                });
            }
            cur = Some(next);
        }
        out.into_iter()
            .zip(taps)
            .map(|(o, t)| {
                o.ok_or_else(|| VisionError::Input(format!("tap `{t}` was not produced")))
            })
            .collect()
    }

    /// Activations of same-sized RGB images (ImageNet normalisation; resize them first, e.g. with
    /// `Resize::IMAGENET`), in batches of 16: per image, per tap, per channel.
    pub fn image_activations<I: std::borrow::Borrow<image::RgbImage>>(
        &self,
        images: &[I],
        taps: &[Tap],
    ) -> Result<Vec<Vec<Vec<f32>>>> {
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(16) {
            let x = super::preprocess::to_batch(chunk, super::preprocess::Normalization::ImageNet)?;
            out.extend(self.activations(&x, taps)?);
        }
        Ok(out)
    }

    /// Per image, per tap, the spatial mean of each channel (the activation of DESIGN 1.1).
    pub fn activations(&self, x: &Fmap, taps: &[Tap]) -> Result<Vec<Vec<Vec<f32>>>> {
        let maps = self.forward_taps(x, taps)?;
        let means: Vec<Vec<Vec<f32>>> = maps.iter().map(Fmap::channel_means).collect();
        Ok((0..x.n)
            .map(|i| means.iter().map(|m| m[i].clone()).collect())
            .collect())
    }
}
