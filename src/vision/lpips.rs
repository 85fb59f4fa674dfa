//! LPIPS v0.1 exactly as DESIGN 1.8, a direct pair distance, cached features and GEMM distance matrices.
//!
//! Because the lin weights are non-negative, d(a, b) = sum over taps of mean over positions of
//! |sqrt(w) * (fa - fb)|^2. `LpipsFeatures` stores, per image, the unit-normalised tap features
//! multiplied by sqrt(w) / sqrt(H * W) and concatenated, so d(a, b) = |A|^2 + |B|^2 - 2 A.B and a
//! whole matrix of distances is one GEMM.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;

use candle_core::{Device, Tensor};
use image::RgbImage;

use super::arch::{Arch, Layer, Tap};
use super::backbone::candle::CandleNet;
use super::backbone::Backbone;
use super::conv::Fmap;
use super::error::{Result, VisionError};
use super::preprocess::{to_batch, Normalization};
use super::weights::{load_set, locate, TensorMap, WeightSet};

/// The LPIPS scaling layer.
const SHIFT: [f32; 3] = [-0.030, -0.088, -0.188];
const SCALE: [f32; 3] = [0.458, 0.448, 0.450];
/// `normalize_tensor`'s epsilon.
const EPS: f32 = 1e-10;
/// Images per backbone pass when computing features.
pub const FEATURE_BATCH: usize = 16;

/// The LPIPS networks.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum LpipsNet {
    Alex,
    Vgg,
    Squeeze,
}

impl LpipsNet {
    pub const ALL: [LpipsNet; 3] = [LpipsNet::Alex, LpipsNet::Vgg, LpipsNet::Squeeze];

    pub fn name(self) -> &'static str {
        match self {
            LpipsNet::Alex => "alex",
            LpipsNet::Vgg => "vgg",
            LpipsNet::Squeeze => "squeeze",
        }
    }
    pub fn arch(self) -> Arch {
        match self {
            LpipsNet::Alex => Arch::AlexNet,
            LpipsNet::Vgg => Arch::Vgg16,
            LpipsNet::Squeeze => Arch::SqueezeNet1_1,
        }
    }
    /// The backbone taps LPIPS compares (all after their ReLU).
    pub fn taps(self) -> Vec<Tap> {
        let names: &[&str] = match self {
            LpipsNet::Alex => &["conv1", "conv2", "conv3", "conv4", "conv5"],
            LpipsNet::Vgg => &["conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3"],
            LpipsNet::Squeeze => &[
                "conv1", "fire3", "fire5", "fire6", "fire7", "fire8", "fire9",
            ],
        };
        names.iter().map(|n| Tap::post(*n)).collect()
    }
    pub fn channels(self) -> &'static [usize] {
        match self {
            LpipsNet::Alex => &[64, 192, 384, 256, 256],
            LpipsNet::Vgg => &[64, 128, 256, 512, 512],
            LpipsNet::Squeeze => &[64, 128, 256, 384, 384, 512, 512],
        }
    }

    /// Where each tap's values sit in `LpipsFeatures::data` of a `(width, height)` image, in tap
    /// order: the tap's output positions times its channels, from the architecture's geometry.
    pub fn tap_ranges(self, size: (u32, u32)) -> Vec<Range<usize>> {
        let taps = self.taps();
        let (mut h, mut w) = (size.1 as usize, size.0 as usize);
        let mut lens = vec![0; taps.len()];
        for layer in self.arch().layers() {
            let c = match &layer {
                Layer::MaxPool(p) => {
                    (h, w) = (p.out_len(h), p.out_len(w));
                    continue;
                }
                Layer::Conv { conv, .. } => {
                    (h, w) = conv.out_size(h, w);
                    conv.cout
                }
                Layer::Fire {
                    squeeze,
                    expand1,
                    expand3,
                    ..
                } => {
                    (h, w) = squeeze.out_size(h, w);
                    expand1.cout + expand3.cout
                }
                Layer::Block { block, .. } => {
                    for k in &block.convs {
                        (h, w) = k.out_size(h, w);
                    }
                    block.convs.last().map_or(0, |k| k.cout)
                }
            };
            if let Some(i) = layer
                .tap()
                .and_then(|n| taps.iter().position(|t| t.name == n))
            {
                lens[i] = h * w * c;
            }
        }
        let mut start = 0;
        lens.into_iter()
            .map(|len| {
                start += len;
                start - len..start
            })
            .collect()
    }
}

impl fmt::Display for LpipsNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LpipsNet {
    type Err = VisionError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "alex" | "alexnet" => Ok(LpipsNet::Alex),
            "vgg" | "vgg16" => Ok(LpipsNet::Vgg),
            "squeeze" | "squeezenet" | "squeezenet1_1" => Ok(LpipsNet::Squeeze),
            _ => Err(VisionError::UnknownNet(s.to_string())),
        }
    }
}

fn lin_vectors(net: LpipsNet, lin: &TensorMap) -> Result<Vec<Vec<f32>>> {
    (0..net.channels().len())
        .map(|k| {
            let name = format!("lin{k}.model.1.weight");
            let t = lin.get(&name).ok_or_else(|| {
                VisionError::Input(format!("LPIPS lin tensor `{name}` not loaded"))
            })?;
            if let Some(v) = t.data.iter().find(|v| **v < 0.0) {
                return Err(VisionError::Input(format!(
                    "LPIPS lin tensor `{name}` has a negative weight {v}"
                )));
            }
            Ok(t.data.clone())
        })
        .collect()
}

/// Cached LPIPS features of one image: see the module documentation.
#[derive(Clone, Debug, PartialEq)]
pub struct LpipsFeatures {
    pub net: LpipsNet,
    /// Input width and height; only features of equal sizes are comparable.
    pub size: (u32, u32),
    pub data: Vec<f32>,
    /// |data|^2, accumulated in f64.
    pub sq_norm: f64,
    /// |data[r]|^2 for each tap's range r (`tap_ranges`), in tap order; empty when `data` does not
    /// have the length the net's geometry gives this size.
    pub tap_sq_norms: Vec<f64>,
}

impl LpipsFeatures {
    pub fn new(net: LpipsNet, size: (u32, u32), data: Vec<f32>) -> LpipsFeatures {
        let ranges = net.tap_ranges(size);
        let square = |d: &[f32]| d.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>();
        let (sq_norm, tap_sq_norms) = if ranges.last().map(|r| r.end) == Some(data.len()) {
            let taps: Vec<f64> = ranges.into_iter().map(|r| square(&data[r])).collect();
            (taps.iter().sum(), taps)
        } else {
            (square(&data), Vec::new())
        };
        LpipsFeatures {
            net,
            size,
            data,
            sq_norm,
            tap_sq_norms,
        }
    }
    pub fn bytes(&self) -> usize {
        self.data.len() * 4
    }
    /// Each tap's slice of `data`: the tap's own LPIPS term is the squared distance on it alone.
    pub fn tap_ranges(&self) -> Vec<Range<usize>> {
        self.net.tap_ranges(self.size)
    }
}

/// A dense distance matrix, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct DistanceMatrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl DistanceMatrix {
    pub fn get(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.cols + j]
    }
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.cols..(i + 1) * self.cols]
    }
}

/// LPIPS v0.1 on the fast backbone path.
pub struct Lpips {
    net: LpipsNet,
    backbone: Backbone,
    lin: Vec<Vec<f32>>,
    sqrt_lin: Vec<Vec<f32>>,
}

impl Lpips {
    /// From a trunk weight file and a lin weight file (any supported format).
    pub fn load(net: LpipsNet, trunk: &Path, lin: &Path) -> Result<Lpips> {
        let t = load_set(trunk, WeightSet::Trunk(net.arch()))?;
        let l = load_set(lin, WeightSet::Lin(net))?;
        Lpips::from_tensors(net, &t, &l)
    }

    /// From the weight files of a data directory (see `weights::locate`).
    pub fn from_data_dir(net: LpipsNet, data_dir: &Path) -> Result<Lpips> {
        let trunk = locate(data_dir, WeightSet::Trunk(net.arch()))?;
        let lin = locate(data_dir, WeightSet::Lin(net))?;
        Lpips::load(net, &trunk, &lin)
    }

    pub fn from_tensors(net: LpipsNet, trunk: &TensorMap, lin: &TensorMap) -> Result<Lpips> {
        let lin = lin_vectors(net, lin)?;
        let sqrt_lin = lin
            .iter()
            .map(|w| w.iter().map(|v| v.sqrt()).collect())
            .collect();
        Ok(Lpips {
            net,
            backbone: Backbone::from_tensors(net.arch(), trunk)?,
            lin,
            sqrt_lin,
        })
    }

    pub fn net(&self) -> LpipsNet {
        self.net
    }

    pub fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    /// Images -> [-1, 1] -> scaling layer -> tap maps (NHWC).
    fn tap_maps<I: Borrow<RgbImage>>(&self, images: &[I]) -> Result<Vec<Fmap>> {
        let mut x = to_batch(images, Normalization::MinusOneToOne)?;
        for px in x.data.chunks_exact_mut(3) {
            for c in 0..3 {
                px[c] = (px[c] - SHIFT[c]) / SCALE[c];
            }
        }
        self.backbone.forward_taps(&x, &self.net.taps())
    }

    /// d(a, b) computed literally: normalise, subtract, square, weight, average, sum.
    /// Both images must have the same size.
    pub fn distance(&self, a: &RgbImage, b: &RgbImage) -> Result<f32> {
        Ok(self.tap_terms(a, b)?.iter().sum::<f64>() as f32)
    }

    /// Each tap's term of d(a, b) (weighted, spatially averaged), computed literally, in tap order.
    pub fn layer_distances(&self, a: &RgbImage, b: &RgbImage) -> Result<Vec<f32>> {
        Ok(self
            .tap_terms(a, b)?
            .into_iter()
            .map(|t| t as f32)
            .collect())
    }

    fn tap_terms(&self, a: &RgbImage, b: &RgbImage) -> Result<Vec<f64>> {
        if a.dimensions() != b.dimensions() {
            return Err(VisionError::Input(format!(
                "LPIPS needs images of the same size, got {:?} and {:?}",
                a.dimensions(),
                b.dimensions()
            )));
        }
        // One pass per image: identical images then give bitwise identical features, so d(x, x) = 0.
        let (ma, mb) = (self.tap_maps(&[a])?, self.tap_maps(&[b])?);
        let mut terms = Vec::with_capacity(ma.len());
        for ((m, m2), w) in ma.iter().zip(&mb).zip(&self.lin) {
            let (fa, fb) = (m.image(0), m2.image(0));
            let mut sum = 0f64;
            for (pa, pb) in fa.chunks_exact(m.c).zip(fb.chunks_exact(m.c)) {
                let na = pa.iter().map(|v| v * v).sum::<f32>().sqrt() + EPS;
                let nb = pb.iter().map(|v| v * v).sum::<f32>().sqrt() + EPS;
                let mut s = 0f32;
                for c in 0..m.c {
                    let d = pa[c] / na - pb[c] / nb;
                    s += w[c] * d * d;
                }
                sum += s as f64;
            }
            terms.push(sum / (m.h * m.w) as f64);
        }
        Ok(terms)
    }

    /// Cached features of images (batched through the backbone). All images must share a size.
    pub fn features<I: Borrow<RgbImage> + Sync>(&self, images: &[I]) -> Result<Vec<LpipsFeatures>> {
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(FEATURE_BATCH) {
            let size = chunk[0].borrow().dimensions();
            let maps = self.tap_maps(chunk)?;
            let len: usize = maps.iter().map(Fmap::image_len).sum();
            let ranges = self.net.tap_ranges(size);
            if maps
                .iter()
                .zip(&ranges)
                .any(|(m, r)| m.image_len() != r.len())
            {
                return Err(VisionError::Input(format!(
                    "{} LPIPS taps of a {}x{} image differ from the net's geometry",
                    self.net, size.0, size.1
                )));
            }
            for i in 0..chunk.len() {
                let mut data = Vec::with_capacity(len);
                for (m, sw) in maps.iter().zip(&self.sqrt_lin) {
                    let inv_hw = 1.0 / ((m.h * m.w) as f32).sqrt();
                    for p in m.image(i).chunks_exact(m.c) {
                        let n = p.iter().map(|v| v * v).sum::<f32>().sqrt() + EPS;
                        data.extend(p.iter().zip(sw).map(|(v, s)| v / n * s * inv_hw));
                    }
                }
                out.push(LpipsFeatures::new(self.net, size, data));
            }
        }
        Ok(out)
    }

    /// Distances between two sets of cached features: one GEMM.
    pub fn distances<A, B>(&self, a: &[A], b: &[B]) -> Result<DistanceMatrix>
    where
        A: Borrow<LpipsFeatures> + Sync,
        B: Borrow<LpipsFeatures> + Sync,
    {
        distances(a, b)
    }
}

/// Distances between two sets of cached features (same net and image size): one GEMM.
pub fn distances<A, B>(a: &[A], b: &[B]) -> Result<DistanceMatrix>
where
    A: Borrow<LpipsFeatures> + Sync,
    B: Borrow<LpipsFeatures> + Sync,
{
    let (na, nb) = (a.len(), b.len());
    let mut out = DistanceMatrix {
        rows: na,
        cols: nb,
        data: vec![0.0; na * nb],
    };
    let Some(first) = a
        .first()
        .map(Borrow::borrow)
        .or_else(|| b.first().map(Borrow::borrow))
    else {
        return Ok(out);
    };
    let dim = first.data.len();
    for f in a
        .iter()
        .map(Borrow::borrow)
        .chain(b.iter().map(Borrow::borrow))
    {
        if f.net != first.net || f.size != first.size || f.data.len() != dim {
            return Err(VisionError::Input(format!(
                "features differ: {} {:?} vs {} {:?}",
                f.net, f.size, first.net, first.size
            )));
        }
    }
    if na == 0 || nb == 0 {
        return Ok(out);
    }
    let gram = gram(
        &a.iter()
            .map(|f| f.borrow().data.as_slice())
            .collect::<Vec<_>>(),
        &b.iter()
            .map(|f| f.borrow().data.as_slice())
            .collect::<Vec<_>>(),
        dim,
    );
    out.data = gram;
    for (i, fa) in a.iter().enumerate() {
        let sa = fa.borrow().sq_norm;
        for (j, fb) in b.iter().enumerate() {
            let g = out.data[i * nb + j] as f64;
            out.data[i * nb + j] = (sa + fb.borrow().sq_norm - 2.0 * g).max(0.0) as f32;
        }
    }
    Ok(out)
}

/// A . B^T for rows given as slices, blocked along the feature dimension: each block of columns
/// is packed (cache-sized), multiplied with one GEMM, and the blocks run in parallel, each thread
/// accumulating its own partial product. Features are long (alex at 224 px: 485k values) and sets
/// are often small, so splitting the long dimension is what keeps both cores busy.
fn gram(a: &[&[f32]], b: &[&[f32]], dim: usize) -> Vec<f32> {
    use rayon::prelude::*;
    let (na, nb) = (a.len(), b.len());
    let block = ((1usize << 20) / (4 * (na + nb))).clamp(256, 16_384) / 16 * 16;
    let blocks = dim.div_ceil(block);
    let pack = |rows: &[&[f32]], lo: usize, hi: usize, buf: &mut Vec<f32>| {
        buf.clear();
        for r in rows {
            buf.extend_from_slice(&r[lo..hi]);
        }
    };
    let partial = |(mut acc, mut pa, mut pb): (Vec<f32>, Vec<f32>, Vec<f32>), k: usize| {
        let (lo, hi) = (k * block, ((k + 1) * block).min(dim));
        let w = hi - lo;
        pack(a, lo, hi, &mut pa);
        pack(b, lo, hi, &mut pb);
        // SAFETY: pa is na x w, pb is nb x w (row-major, read transposed), acc is na x nb.
        unsafe {
            gemm::gemm(
                na,
                nb,
                w,
                acc.as_mut_ptr(),
                1,
                nb as isize,
                true,
                pa.as_ptr(),
                1,
                w as isize,
                pb.as_ptr(),
                w as isize,
                1,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        (acc, pa, pb)
    };
    (0..blocks)
        .into_par_iter()
        .fold(|| (vec![0f32; na * nb], Vec::new(), Vec::new()), partial)
        .map(|(acc, _, _)| acc)
        .reduce(
            || vec![0f32; na * nb],
            |mut x, y| {
                for (u, v) in x.iter_mut().zip(y) {
                    *u += v;
                }
                x
            },
        )
}

/// LPIPS on the candle reference backbone with candle ops, as the PyTorch code computes it.
/// Slow; it is the yardstick for `Lpips`.
pub struct LpipsReference {
    net: LpipsNet,
    model: CandleNet,
    lin: Vec<Tensor>,
}

impl LpipsReference {
    pub fn from_tensors(
        net: LpipsNet,
        trunk: &TensorMap,
        lin: &TensorMap,
    ) -> Result<LpipsReference> {
        let lin = lin_vectors(net, lin)?
            .into_iter()
            .map(|w| Tensor::from_slice(&w, (1, w.len(), 1, 1), &Device::Cpu))
            .collect::<candle_core::Result<_>>()?;
        Ok(LpipsReference {
            net,
            model: CandleNet::from_tensors(net.arch(), trunk)?,
            lin,
        })
    }

    pub fn distance(&self, a: &RgbImage, b: &RgbImage) -> Result<f32> {
        let prep = |img: &RgbImage| -> Result<Tensor> {
            let x = to_batch(&[img], Normalization::MinusOneToOne)?;
            let t = Tensor::from_vec(x.to_nchw(), (1, 3, x.h, x.w), &Device::Cpu)?;
            let shift = Tensor::from_slice(&SHIFT, (1, 3, 1, 1), &Device::Cpu)?;
            let scale = Tensor::from_slice(&SCALE, (1, 3, 1, 1), &Device::Cpu)?;
            Ok(t.broadcast_sub(&shift)?.broadcast_div(&scale)?)
        };
        let taps = self.net.taps();
        let fa = self.model.forward_taps(&prep(a)?, &taps)?;
        let fb = self.model.forward_taps(&prep(b)?, &taps)?;
        let mut total = 0f32;
        for ((x, y), w) in fa.iter().zip(&fb).zip(&self.lin) {
            let norm = |t: &Tensor| -> candle_core::Result<Tensor> {
                let n = (t.sqr()?.sum_keepdim(1)?.sqrt()? + EPS as f64)?;
                t.broadcast_div(&n)
            };
            let d = (norm(x)? - norm(y)?)?.sqr()?;
            let v = d.broadcast_mul(w)?.sum_keepdim(1)?.mean_all()?;
            total += v.to_scalar::<f32>()?;
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_ranges_follow_the_nets_geometry_at_224_px() {
        let lens = |net: LpipsNet| -> Vec<usize> {
            let ranges = net.tap_ranges((224, 224));
            assert_eq!(ranges[0].start, 0);
            assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
            ranges.iter().map(|r| r.len()).collect()
        };
        // Positions x channels: alex 55², 27², 13², 13², 13²; vgg 224² halving; squeeze 111², 55², 27², 13²...
        assert_eq!(
            lens(LpipsNet::Alex),
            [
                55 * 55 * 64,
                27 * 27 * 192,
                13 * 13 * 384,
                13 * 13 * 256,
                13 * 13 * 256
            ]
        );
        assert_eq!(
            lens(LpipsNet::Vgg),
            [
                224 * 224 * 64,
                112 * 112 * 128,
                56 * 56 * 256,
                28 * 28 * 512,
                14 * 14 * 512
            ]
        );
        assert_eq!(
            lens(LpipsNet::Squeeze),
            [
                111 * 111 * 64,
                55 * 55 * 128,
                27 * 27 * 256,
                13 * 13 * 384,
                13 * 13 * 384,
                13 * 13 * 512,
                13 * 13 * 512
            ]
        );
    }

    #[test]
    fn per_tap_squared_norms_add_up_to_the_whole() {
        let len = LpipsNet::Alex.tap_ranges((64, 48)).last().unwrap().end;
        let data: Vec<f32> = (0..len).map(|i| (i as f32 * 0.01).sin()).collect();
        let f = LpipsFeatures::new(LpipsNet::Alex, (64, 48), data);
        assert_eq!(f.tap_sq_norms.len(), 5);
        let sum: f64 = f.tap_sq_norms.iter().sum();
        assert!(
            (sum - f.sq_norm).abs() < 1e-9 * f.sq_norm,
            "{sum} vs {}",
            f.sq_norm
        );
        let odd = LpipsFeatures::new(LpipsNet::Alex, (64, 48), vec![1.0; 7]);
        assert!(odd.tap_sq_norms.is_empty());
        assert_eq!(odd.sq_norm, 7.0);
    }
}
