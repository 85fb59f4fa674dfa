//! The fast CPU path: NHWC feature maps, convolution as (parallel im2col + GEMM) on the `gemm`
//! crate (AVX-512 kernels through its `x86-v4` feature) with fused bias and ReLU, Winograd for
//! stride-1 3x3 and 5x5 kernels (`winograd`), max pooling, and batch norm folded into the kernels.
//!
//! NHWC keeps each position's channels contiguous: an im2col row is `k` contiguous runs of
//! `k * cin` floats, a 1x1 convolution needs no im2col at all, and the GEMM output is already the
//! next layer's input. Rows of the output are split into chunks that run in parallel, each with a
//! thread-local im2col buffer, so patches are packed while hot in cache.

use std::cell::RefCell;

use rayon::prelude::*;

use super::arch::{ConvSpec, PoolSpec};
use super::error::{Result, VisionError};
use super::weights::TensorMap;

/// A batch of feature maps, NHWC, float32.
#[derive(Clone, Debug, PartialEq)]
pub struct Fmap {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub data: Vec<f32>,
}

impl Fmap {
    pub fn zeros(n: usize, h: usize, w: usize, c: usize) -> Fmap {
        Fmap {
            n,
            h,
            w,
            c,
            data: vec![0.0; n * h * w * c],
        }
    }
    /// Values per image.
    pub fn image_len(&self) -> usize {
        self.h * self.w * self.c
    }
    /// One image's NHWC values.
    pub fn image(&self, i: usize) -> &[f32] {
        let len = self.image_len();
        &self.data[i * len..(i + 1) * len]
    }
    /// Per image, the spatial mean of each channel.
    pub fn channel_means(&self) -> Vec<Vec<f32>> {
        let hw = (self.h * self.w).max(1);
        (0..self.n)
            .map(|i| {
                let mut acc = vec![0f64; self.c];
                for px in self.image(i).chunks_exact(self.c) {
                    for (a, &v) in acc.iter_mut().zip(px) {
                        *a += v as f64;
                    }
                }
                acc.into_iter().map(|a| (a / hw as f64) as f32).collect()
            })
            .collect()
    }
    /// Converts to NCHW order (PyTorch's layout).
    pub fn to_nchw(&self) -> Vec<f32> {
        let (h, w, c) = (self.h, self.w, self.c);
        let mut out = vec![0.0; self.data.len()];
        for n in 0..self.n {
            for y in 0..h {
                for x in 0..w {
                    let src = &self.data[((n * h + y) * w + x) * c..][..c];
                    for (ci, &v) in src.iter().enumerate() {
                        out[((n * c + ci) * h + y) * w + x] = v;
                    }
                }
            }
        }
        out
    }
    /// Builds from NCHW data.
    pub fn from_nchw(n: usize, c: usize, h: usize, w: usize, data: &[f32]) -> Fmap {
        let mut out = Fmap::zeros(n, h, w, c);
        for ni in 0..n {
            for ci in 0..c {
                for y in 0..h {
                    for x in 0..w {
                        out.data[((ni * h + y) * w + x) * c + ci] =
                            data[((ni * c + ci) * h + y) * w + x];
                    }
                }
            }
        }
        out
    }
}

pub fn relu_inplace(v: &mut [f32]) {
    v.par_chunks_mut(1 << 16).for_each(|c| {
        for x in c {
            *x = x.max(0.0);
        }
    });
}

/// Batch norm epsilon of torchvision's ResNets.
const BN_EPS: f32 = 1e-5;

/// A convolution ready for the GEMM: kernel as a `[k*k*cin, cout]` row-major matrix in
/// (ky, kx, ci) order, bias (with any batch norm folded in).
#[derive(Clone, Debug)]
pub struct ConvKernel {
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub cin: usize,
    pub cout: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
    /// Winograd-transformed kernels, for 3x3 stride-1 convolutions.
    winograd: Option<Vec<f32>>,
}

impl ConvKernel {
    /// From torchvision tensors (OIHW kernel), folding inference batch norm when the spec has one.
    pub fn from_tensors(spec: &ConvSpec, t: &TensorMap) -> Result<ConvKernel> {
        let get = |name: String| {
            t.get(&name)
                .ok_or_else(|| VisionError::Input(format!("tensor `{name}` not loaded")))
        };
        let w = get(format!("{}.weight", spec.param))?;
        let (co, ci, k) = (spec.cout, spec.cin, spec.k);
        if w.shape != [co, ci, k, k] {
            return Err(VisionError::Input(format!(
                "`{}.weight` has shape {:?}, expected {:?}",
                spec.param,
                w.shape,
                [co, ci, k, k]
            )));
        }
        let (scale, bias) = match &spec.bn {
            None => (
                vec![1.0; co],
                get(format!("{}.bias", spec.param))?.data.clone(),
            ),
            Some(bn) => {
                let g = &get(format!("{bn}.weight"))?.data;
                let b = &get(format!("{bn}.bias"))?.data;
                let m = &get(format!("{bn}.running_mean"))?.data;
                let v = &get(format!("{bn}.running_var"))?.data;
                let scale: Vec<f32> = (0..co).map(|o| g[o] / (v[o] + BN_EPS).sqrt()).collect();
                let bias = (0..co).map(|o| b[o] - m[o] * scale[o]).collect();
                (scale, bias)
            }
        };
        let mut weight = vec![0.0; k * k * ci * co];
        for o in 0..co {
            for i in 0..ci {
                for y in 0..k {
                    for x in 0..k {
                        weight[((y * k + x) * ci + i) * co + o] =
                            w.data[((o * ci + i) * k + y) * k + x] * scale[o];
                    }
                }
            }
        }
        // Winograd pays off once the GEMMs have some depth; the first layers (3 channels) stay on im2col.
        let winograd =
            (super::winograd::supports(k, ci, co) && spec.stride == 1 && 2 * spec.pad < k)
                .then(|| super::winograd::transform_kernel(&w.data, k, ci, co, &scale));
        Ok(ConvKernel {
            k,
            stride: spec.stride,
            pad: spec.pad,
            cin: ci,
            cout: co,
            weight,
            bias,
            winograd,
        })
    }

    /// The same kernel on the im2col path only (the Winograd path is otherwise chosen where it applies).
    pub fn im2col_only(mut self) -> ConvKernel {
        self.winograd = None;
        self
    }

    pub fn uses_winograd(&self) -> bool {
        self.winograd.is_some()
    }

    pub fn out_size(&self, h: usize, w: usize) -> (usize, usize) {
        (
            (h + 2 * self.pad).saturating_sub(self.k) / self.stride + 1,
            (w + 2 * self.pad).saturating_sub(self.k) / self.stride + 1,
        )
    }

    pub fn forward(&self, x: &Fmap, relu: bool) -> Result<Fmap> {
        let (oh, ow) = self.out_size(x.h, x.w);
        let mut out = Fmap {
            n: x.n,
            h: oh,
            w: ow,
            c: self.cout,
            data: Vec::new(),
        };
        out.data = vec![0.0; x.n * oh * ow * self.cout];
        self.forward_into(x, relu, &mut out.data, self.cout, 0)?;
        Ok(out)
    }

    /// Writes the output into channels `c_off..c_off+cout` of an NHWC buffer with `dst_c` channels.
    pub fn forward_into(
        &self,
        x: &Fmap,
        relu: bool,
        dst: &mut [f32],
        dst_c: usize,
        c_off: usize,
    ) -> Result<()> {
        if x.c != self.cin {
            return Err(VisionError::Input(format!(
                "convolution expects {} input channels, got {}",
                self.cin, x.c
            )));
        }
        if x.h + 2 * self.pad < self.k || x.w + 2 * self.pad < self.k {
            return Err(VisionError::Input(format!(
                "input {}x{} is smaller than a {}x{} kernel",
                x.h, x.w, self.k, self.k
            )));
        }
        let (oh, ow) = self.out_size(x.h, x.w);
        let rows = x.n * oh * ow;
        if dst.len() != rows * dst_c || c_off + self.cout > dst_c {
            return Err(VisionError::Input(
                "convolution output buffer has the wrong size".into(),
            ));
        }
        if let Some(u) = &self.winograd {
            super::winograd::forward_into(
                x, self.k, u, &self.bias, self.pad, self.cout, relu, dst, dst_c, c_off,
            );
            return Ok(());
        }
        let direct = self.k == 1 && self.stride == 1 && self.pad == 0;
        let chunk = chunk_rows(rows);
        dst.par_chunks_mut(chunk * dst_c)
            .enumerate()
            .for_each(|(ci, d)| {
                self.run_chunk(x, oh, ow, ci * chunk, d, dst_c, c_off, relu, direct)
            });
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn run_chunk(
        &self,
        x: &Fmap,
        oh: usize,
        ow: usize,
        r0: usize,
        d: &mut [f32],
        dst_c: usize,
        c_off: usize,
        relu: bool,
        direct: bool,
    ) {
        let kk = self.k * self.k * self.cin;
        let m = d.len() / dst_c;
        for r in 0..m {
            d[r * dst_c + c_off..][..self.cout].copy_from_slice(&self.bias);
        }
        let run = |lhs: &[f32], d: &mut [f32]| {
            // SAFETY: lhs is m x kk (row stride kk), weight kk x cout, d holds m rows of dst_c
            // channels with the written block at column c_off; all within their slices.
            unsafe {
                gemm::gemm(
                    m,
                    self.cout,
                    kk,
                    d.as_mut_ptr().add(c_off),
                    1,
                    dst_c as isize,
                    true,
                    lhs.as_ptr(),
                    1,
                    kk as isize,
                    self.weight.as_ptr(),
                    1,
                    self.cout as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                )
            }
        };
        if direct {
            run(&x.data[r0 * kk..(r0 + m) * kk], d);
        } else {
            IM2COL.with(|buf| {
                let mut buf = buf.borrow_mut();
                if buf.len() < m * kk {
                    buf.resize(m * kk, 0.0);
                }
                self.im2col(x, oh, ow, r0, m, &mut buf[..m * kk]);
                run(&buf[..m * kk], d);
            });
        }
        if relu {
            for r in 0..m {
                for v in &mut d[r * dst_c + c_off..][..self.cout] {
                    *v = v.max(0.0);
                }
            }
        }
    }

    /// Packs output rows `r0..r0+m` into patch rows of `k * k * cin` values.
    fn im2col(&self, x: &Fmap, oh: usize, ow: usize, r0: usize, m: usize, buf: &mut [f32]) {
        let (k, s, p, c) = (self.k, self.stride as isize, self.pad as isize, self.cin);
        let kk = k * k * c;
        let (h, w) = (x.h as isize, x.w as isize);
        for (r, row) in buf.chunks_exact_mut(kk).take(m).enumerate() {
            let g = r0 + r;
            let (n, rem) = (g / (oh * ow), g % (oh * ow));
            let (oy, ox) = ((rem / ow) as isize, (rem % ow) as isize);
            let x0 = ox * s - p;
            // Columns of the window that fall inside the image.
            let (lo, hi) = ((-x0).clamp(0, k as isize), (w - x0).clamp(0, k as isize));
            for ky in 0..k {
                let seg = &mut row[ky * k * c..(ky + 1) * k * c];
                let iy = oy * s - p + ky as isize;
                if iy < 0 || iy >= h || lo >= hi {
                    seg.fill(0.0);
                    continue;
                }
                let (lo, hi) = (lo as usize, hi as usize);
                seg[..lo * c].fill(0.0);
                seg[hi * c..].fill(0.0);
                let src = ((n as isize * h + iy) * w + x0 + lo as isize) as usize * c;
                seg[lo * c..hi * c].copy_from_slice(&x.data[src..src + (hi - lo) * c]);
            }
        }
    }
}

thread_local! {
    static IM2COL: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Rows per parallel task: enough tasks to balance the threads, few enough to keep GEMMs efficient.
fn chunk_rows(rows: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    // Measured on AlexNet: 4 tasks per thread of at most 1024 rows beat fewer, larger GEMMs.
    rows.div_ceil(threads * 4).clamp(64, 1024).min(rows.max(1))
}

/// Max pooling over NHWC with PyTorch semantics (padding counts as -inf, ceil mode).
pub fn max_pool(x: &Fmap, p: &PoolSpec) -> Result<Fmap> {
    if x.h + 2 * p.pad < p.k || x.w + 2 * p.pad < p.k {
        return Err(VisionError::Input(format!(
            "input {}x{} is smaller than a {}x{} pooling window",
            x.h, x.w, p.k, p.k
        )));
    }
    let (oh, ow) = (p.out_len(x.h), p.out_len(x.w));
    let c = x.c;
    let mut out = Fmap {
        n: x.n,
        h: oh,
        w: ow,
        c,
        data: vec![f32::NEG_INFINITY; x.n * oh * ow * c],
    };
    let range = |o: usize, len: usize| {
        let start = (o * p.stride) as isize - p.pad as isize;
        let lo = start.max(0) as usize;
        let hi = ((start + p.k as isize).max(0) as usize).min(len);
        lo..hi
    };
    out.data
        .par_chunks_mut(ow * c)
        .enumerate()
        .for_each(|(row, o)| {
            let (n, oy) = (row / oh, row % oh);
            for ox in 0..ow {
                let dst = &mut o[ox * c..(ox + 1) * c];
                for y in range(oy, x.h) {
                    for xx in range(ox, x.w) {
                        let src = &x.data[((n * x.h + y) * x.w + xx) * c..][..c];
                        for (d, &v) in dst.iter_mut().zip(src) {
                            *d = d.max(v);
                        }
                    }
                }
            }
        });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vision::weights::HostTensor;

    fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    fn naive_conv(x: &Fmap, w: &HostTensor, b: &[f32], s: usize, p: usize) -> Fmap {
        let (co, ci, k) = (w.shape[0], w.shape[1], w.shape[2]);
        let oh = (x.h + 2 * p - k) / s + 1;
        let ow = (x.w + 2 * p - k) / s + 1;
        let mut out = Fmap::zeros(x.n, oh, ow, co);
        for n in 0..x.n {
            for oy in 0..oh {
                for ox in 0..ow {
                    for (o, &bo) in b.iter().enumerate().take(co) {
                        let mut acc = bo as f64;
                        for i in 0..ci {
                            for ky in 0..k {
                                for kx in 0..k {
                                    let iy = (oy * s + ky) as isize - p as isize;
                                    let ix = (ox * s + kx) as isize - p as isize;
                                    if iy < 0 || ix < 0 || iy >= x.h as isize || ix >= x.w as isize
                                    {
                                        continue;
                                    }
                                    let xv = x.data
                                        [((n * x.h + iy as usize) * x.w + ix as usize) * ci + i];
                                    acc +=
                                        xv as f64 * w.data[((o * ci + i) * k + ky) * k + kx] as f64;
                                }
                            }
                        }
                        out.data[((n * oh + oy) * ow + ox) * co + o] = acc as f32;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_gemm_convolution_matches_a_direct_loop() {
        for &(ci, co, k, s, p, h) in &[
            (3, 8, 11, 4, 2, 31),
            (5, 7, 3, 1, 1, 9),
            (16, 20, 3, 1, 1, 9),
            (16, 32, 3, 1, 0, 8),
            (17, 33, 3, 1, 0, 8),
            (16, 48, 5, 1, 2, 11),
            (32, 16, 5, 1, 0, 12),
            (4, 6, 1, 1, 0, 5),
            (3, 5, 3, 2, 0, 10),
        ] {
            let spec = ConvSpec::new("c", ci, co, k, s, p);
            let mut t = TensorMap::new();
            t.insert(
                "c.weight".into(),
                HostTensor {
                    shape: vec![co, ci, k, k],
                    data: pseudo_random(co * ci * k * k, 1),
                },
            );
            let bias = pseudo_random(co, 2);
            t.insert(
                "c.bias".into(),
                HostTensor {
                    shape: vec![co],
                    data: bias.clone(),
                },
            );
            let x = Fmap {
                n: 2,
                h,
                w: h + 1,
                c: ci,
                data: pseudo_random(2 * h * (h + 1) * ci, 3),
            };
            let kern = ConvKernel::from_tensors(&spec, &t).expect("kernel");
            let got = kern.forward(&x, false).expect("forward");
            let want = naive_conv(&x, &t["c.weight"], &bias, s, p);
            assert_eq!((got.h, got.w, got.c), (want.h, want.w, want.c));
            for (a, b) in got.data.iter().zip(&want.data) {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
            }
            let relu = kern.forward(&x, true).expect("forward");
            for (a, b) in relu.data.iter().zip(&want.data) {
                assert!((a - b.max(0.0)).abs() <= 1e-4 * (1.0 + b.abs()));
            }
        }
    }

    #[test]
    fn winograd_agrees_with_im2col_also_when_cut_into_blocks() {
        let (ci, co) = (16, 32);
        let spec = ConvSpec::new("c", ci, co, 3, 1, 1);
        let mut t = TensorMap::new();
        t.insert(
            "c.weight".into(),
            HostTensor {
                shape: vec![co, ci, 3, 3],
                data: pseudo_random(co * ci * 9, 4),
            },
        );
        t.insert(
            "c.bias".into(),
            HostTensor {
                shape: vec![co],
                data: pseudo_random(co, 5),
            },
        );
        let kern = ConvKernel::from_tensors(&spec, &t).expect("kernel");
        assert!(kern.uses_winograd());
        let plain = kern.clone().im2col_only();
        // 3 x 255 x 257: odd sizes, and enough tiles to take the blocked path.
        let x = Fmap {
            n: 3,
            h: 255,
            w: 257,
            c: ci,
            data: pseudo_random(3 * 255 * 257 * ci, 6),
        };
        for relu in [false, true] {
            let a = kern.forward(&x, relu).expect("winograd");
            let b = plain.forward(&x, relu).expect("im2col");
            let scale = b.data.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = a
                .data
                .iter()
                .zip(&b.data)
                .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
            assert!(err <= 1e-5 * scale, "{err} vs scale {scale}");
        }
    }

    #[test]
    fn max_pooling_pads_with_minus_infinity_and_honours_ceil_mode() {
        let x = Fmap {
            n: 1,
            h: 3,
            w: 3,
            c: 1,
            data: vec![-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0, -9.0],
        };
        let p = PoolSpec {
            k: 2,
            stride: 2,
            pad: 0,
            ceil: true,
        };
        let o = max_pool(&x, &p).expect("pool");
        assert_eq!((o.h, o.w), (2, 2));
        assert_eq!(o.data, vec![-1.0, -3.0, -7.0, -9.0]);
        let p = PoolSpec {
            k: 3,
            stride: 2,
            pad: 1,
            ceil: false,
        };
        let o = max_pool(&x, &p).expect("pool");
        assert_eq!(o.data, vec![-1.0, -2.0, -4.0, -5.0]);
    }
}
