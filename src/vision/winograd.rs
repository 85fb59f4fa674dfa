//! Winograd F(2x2, 3x3) and F(2x2, 5x5) for stride-1 convolutions: 16 (36) multiplications per
//! 2x2 outputs instead of 36 (100), so 2.25x (2.8x) fewer GEMM flops where most of AlexNet's, VGG's
//! and SqueezeNet's work is.
//!
//! Per n x n input tile d (n = r + 1) and r x r kernel g: Y = A^T [ (G g G^T) (.) (B^T d B) ] A.
//! The elementwise product summed over input channels is n*n independent GEMMs
//! (tiles x cin) . (cin x cout). Layouts: V = [tile][n*n][cin], M = [tile][n*n][cout], so each
//! GEMM reads and writes strided rows and both transforms walk contiguous channel vectors.
//! The matrices are Cook-Toom's with points 0, 1, -1 (, 2, -2) and infinity.

use rayon::prelude::*;

use super::conv::Fmap;

/// Channels per vector block in the transforms.
const L: usize = 16;

/// The transform matrices of F(2, r), row-major.
struct Transform {
    n: usize,
    r: usize,
    at: &'static [f32],
    g: &'static [f64],
    bt: &'static [f32],
}

const F23: Transform = Transform {
    n: 4,
    r: 3,
    at: &[1.0, 1.0, 1.0, 0.0, 0.0, 1.0, -1.0, -1.0],
    g: &[1.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0.0, 0.0, 1.0],
    bt: &[
        1.0, 0.0, -1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, -1.0, 1.0, 0.0, 0.0, 1.0, 0.0, -1.0,
    ],
};

const F25: Transform = Transform {
    n: 6,
    r: 5,
    at: &[1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 1.0, -1.0, 2.0, -2.0, 1.0],
    g: &[
        1.0 / 4.0,
        0.0,
        0.0,
        0.0,
        0.0,
        -1.0 / 6.0,
        -1.0 / 6.0,
        -1.0 / 6.0,
        -1.0 / 6.0,
        -1.0 / 6.0,
        -1.0 / 6.0,
        1.0 / 6.0,
        -1.0 / 6.0,
        1.0 / 6.0,
        -1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 12.0,
        1.0 / 6.0,
        1.0 / 3.0,
        2.0 / 3.0,
        1.0 / 24.0,
        -1.0 / 12.0,
        1.0 / 6.0,
        -1.0 / 3.0,
        2.0 / 3.0,
        0.0,
        0.0,
        0.0,
        0.0,
        1.0,
    ],
    bt: &[
        4.0, 0.0, -5.0, 0.0, 1.0, 0.0, 0.0, -4.0, -4.0, 1.0, 1.0, 0.0, 0.0, 4.0, -4.0, -1.0, 1.0,
        0.0, 0.0, -2.0, -1.0, 2.0, 1.0, 0.0, 0.0, 2.0, -1.0, -2.0, 1.0, 0.0, 0.0, 4.0, 0.0, -5.0,
        0.0, 1.0,
    ],
};

fn transform(r: usize) -> Option<&'static Transform> {
    match r {
        3 => Some(&F23),
        5 => Some(&F25),
        _ => None,
    }
}

/// Whether a convolution can take this path: a kernel size with a transform, channel counts in
/// whole vector blocks.
pub fn supports(k: usize, cin: usize, cout: usize) -> bool {
    transform(k).is_some() && cin.is_multiple_of(L) && cout.is_multiple_of(L)
}

/// Transformed kernels U = G g G^T, as `[n*n][cin][cout]`. `w` is OIHW with `k x k` kernels;
/// `scale` multiplies each output channel. Empty when `k` has no transform.
pub fn transform_kernel(w: &[f32], k: usize, cin: usize, cout: usize, scale: &[f32]) -> Vec<f32> {
    let Some(tf) = transform(k) else {
        return Vec::new();
    };
    let (n, r) = (tf.n, tf.r);
    let mut u = vec![0.0f32; n * n * cin * cout];
    let mut t = vec![0f64; n * r];
    for o in 0..cout {
        for i in 0..cin {
            let g = &w[(o * cin + i) * r * r..][..r * r];
            for a in 0..n {
                for c in 0..r {
                    t[a * r + c] = (0..r).map(|q| tf.g[a * r + q] * g[q * r + c] as f64).sum();
                }
            }
            for a in 0..n {
                for b in 0..n {
                    let v: f64 = (0..r).map(|q| t[a * r + q] * tf.g[b * r + q]).sum();
                    u[((a * n + b) * cin + i) * cout + o] = (v * scale[o] as f64) as f32;
                }
            }
        }
    }
    u
}

/// A raw pointer the GEMMs of different Winograd positions share; they write disjoint columns.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: used only for writes to disjoint elements, see `forward_into`.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

/// Convolves (k x k with k = 3 or 5, stride 1, padding `pad`) into channels `c_off..c_off+cout`
/// of `dst`. `u` comes from `transform_kernel`.
#[allow(clippy::too_many_arguments)]
pub fn forward_into(
    x: &Fmap,
    k: usize,
    u: &[f32],
    bias: &[f32],
    pad: usize,
    cout: usize,
    relu: bool,
    dst: &mut [f32],
    dst_c: usize,
    c_off: usize,
) {
    let Some(tf) = transform(k) else {
        return;
    };
    let (h, w) = (x.h, x.w);
    let (oh, ow) = (h + 2 * pad + 1 - k, w + 2 * pad + 1 - k);
    let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
    let p = Plan {
        tf,
        nn: tf.n * tf.n,
        x,
        u,
        bias,
        pad,
        cout,
        relu,
        dst_c,
        c_off,
        oh,
        ow,
        th,
        tw,
    };
    let tile_rows = x.n * th;
    // Tiles whose V and M fit in about 8 MB; a larger layer is cut into blocks of tile rows that run
    // in parallel, each sequentially, so the transforms stay bounded in memory and warm in cache.
    let cap = ((8usize << 20) / (4 * p.nn * (x.c + cout))).max(tw);
    if tile_rows * tw <= 4 * cap {
        p.block(0, tile_rows, dst, true);
        return;
    }
    let rows_per_block = (cap / tw).max(1);
    // Output row where tile row `tr` starts; tile rows map to consecutive output rows.
    let out_row = |tr: usize| (tr / th) * oh + (2 * (tr % th)).min(oh);
    let mut parts = Vec::new();
    let mut rest = dst;
    let mut tr = 0;
    while tr < tile_rows {
        let end = (tr + rows_per_block).min(tile_rows);
        let len = (out_row(end) - out_row(tr)) * ow * dst_c;
        let (part, r) = rest.split_at_mut(len);
        parts.push((tr, end, part));
        rest = r;
        tr = end;
    }
    parts
        .into_par_iter()
        .for_each(|(a, b, part)| p.block(a, b, part, false));
}

struct Plan<'a> {
    tf: &'static Transform,
    nn: usize,
    x: &'a Fmap,
    u: &'a [f32],
    bias: &'a [f32],
    pad: usize,
    cout: usize,
    relu: bool,
    dst_c: usize,
    c_off: usize,
    oh: usize,
    ow: usize,
    th: usize,
    tw: usize,
}

thread_local! {
    static BUFFERS: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

impl Plan<'_> {
    /// Tile rows `a..b` (over the batch), writing their output rows, which start at `dst[0]`.
    fn block(&self, a: usize, b: usize, dst: &mut [f32], parallel: bool) {
        let tiles = (b - a) * self.tw;
        let nn = self.nn;
        let (nv, nm) = (tiles * nn * self.x.c, tiles * nn * self.cout);
        let run = |v: &mut [f32], m: &mut [f32], dst: &mut [f32]| {
            let row_v = self.tw * nn * self.x.c;
            let row_m = self.tw * nn * self.cout;
            if parallel {
                v.par_chunks_mut(row_v)
                    .enumerate()
                    .for_each(|(i, r)| self.input_row(a + i, r));
            } else {
                v.chunks_mut(row_v)
                    .enumerate()
                    .for_each(|(i, r)| self.input_row(a + i, r));
            }
            let mp = SharedMut(m.as_mut_ptr());
            let gemm_at = |xi: usize| self.gemm(xi, tiles, v, mp);
            if parallel {
                (0..nn).into_par_iter().for_each(gemm_at);
            } else {
                (0..nn).for_each(gemm_at);
            }
            // Output rows of each tile row, in order; the last row of an odd-height image is single.
            let mut parts = Vec::with_capacity(b - a);
            let mut rest = dst;
            for tr in a..b {
                let rows = (self.oh - 2 * (tr % self.th)).min(2);
                let (part, r) = rest.split_at_mut(rows * self.ow * self.dst_c);
                parts.push(part);
                rest = r;
            }
            let out = |(i, part): (usize, &mut [f32])| {
                self.output_row(&m[i * row_m..(i + 1) * row_m], part)
            };
            if parallel {
                parts.into_par_iter().enumerate().for_each(out);
            } else {
                parts.into_iter().enumerate().for_each(out);
            }
        };
        // Reuse this thread's buffers; a nested call on the same thread allocates its own.
        BUFFERS.with(|cell| match cell.try_borrow_mut() {
            Ok(mut bufs) => {
                let (v, m) = &mut *bufs;
                if v.len() < nv {
                    v.resize(nv, 0.0);
                }
                if m.len() < nm {
                    m.resize(nm, 0.0);
                }
                run(&mut v[..nv], &mut m[..nm], dst);
            }
            Err(_) => run(&mut vec![0.0; nv], &mut vec![0.0; nm], dst),
        });
    }

    /// M[t][xi][:] = V[t][xi][:] . U[xi] for the block's tiles.
    fn gemm(&self, xi: usize, tiles: usize, v: &[f32], m: SharedMut) {
        let (cin, cout, nn) = (self.x.c, self.cout, self.nn);
        // SAFETY: position xi writes only elements t*nn*cout + xi*cout + (0..cout) of M, disjoint
        // from every other position; V and U are read within their bounds.
        unsafe {
            gemm::gemm(
                tiles,
                cout,
                cin,
                m.0.add(xi * cout),
                1,
                (nn * cout) as isize,
                false,
                v.as_ptr().add(xi * cin),
                1,
                (nn * cin) as isize,
                self.u.as_ptr().add(xi * cin * cout),
                1,
                cout as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }

    /// V = B^T d B for every tile of tile row `tr`.
    fn input_row(&self, tr: usize, vr: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            unsafe { self.input_row_avx512(tr, vr) };
            return;
        }
        self.input_row_any(tr, vr)
    }

    /// The same body compiled with AVX-512 enabled (the default target only has SSE2).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn input_row_avx512(&self, tr: usize, vr: &mut [f32]) {
        self.input_row_any(tr, vr)
    }

    #[inline(always)]
    fn input_row_any(&self, tr: usize, vr: &mut [f32]) {
        let x = self.x;
        let (cin, h, w, pad) = (x.c, x.h, x.w, self.pad);
        let (n, nn, bt) = (self.tf.n, self.nn, self.tf.bt);
        let (img, ty) = (tr / self.th, tr % self.th);
        let zeros = [0f32; L];
        let mut d: Vec<Option<&[f32]>> = vec![None; nn];
        let mut t = vec![[0f32; L]; nn];
        for tx in 0..self.tw {
            for a in 0..n {
                let iy = (2 * ty + a) as isize - pad as isize;
                for b in 0..n {
                    let ix = (2 * tx + b) as isize - pad as isize;
                    d[a * n + b] = (iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w)
                        .then(|| {
                            let at = ((img * h + iy as usize) * w + ix as usize) * cin;
                            &x.data[at..at + cin]
                        });
                }
            }
            let out = &mut vr[tx * nn * cin..(tx + 1) * nn * cin];
            // Blocks of L channels as fixed-size arrays, which the compiler turns into vector code.
            for c in (0..cin).step_by(L) {
                let block = |i: usize| -> &[f32; L] {
                    match d[i] {
                        Some(s) => s[c..c + L].try_into().unwrap_or(&zeros),
                        None => &zeros,
                    }
                };
                // rows: t = B^T d
                for a in 0..n {
                    for col in 0..n {
                        let mut acc = [0f32; L];
                        for q in 0..n {
                            let coef = bt[a * n + q];
                            if coef != 0.0 {
                                axpy(&mut acc, coef, block(q * n + col));
                            }
                        }
                        t[a * n + col] = acc;
                    }
                }
                // columns: V = t B
                for a in 0..n {
                    for b in 0..n {
                        let mut acc = [0f32; L];
                        for q in 0..n {
                            let coef = bt[b * n + q];
                            if coef != 0.0 {
                                axpy(&mut acc, coef, &t[a * n + q]);
                            }
                        }
                        let at = (a * n + b) * cin + c;
                        if let Some(o) = out.get_mut(at..at + L) {
                            o.copy_from_slice(&acc);
                        }
                    }
                }
            }
        }
    }

    /// Y = A^T M A + bias (and ReLU) for every tile of a tile row, into its output rows.
    fn output_row(&self, mrow: &[f32], drows: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            unsafe { self.output_row_avx512(mrow, drows) };
            return;
        }
        self.output_row_any(mrow, drows)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    fn output_row_avx512(&self, mrow: &[f32], drows: &mut [f32]) {
        self.output_row_any(mrow, drows)
    }

    #[inline(always)]
    fn output_row_any(&self, mrow: &[f32], drows: &mut [f32]) {
        let (cout, ow, dst_c, c_off) = (self.cout, self.ow, self.dst_c, self.c_off);
        let (n, nn, at) = (self.tf.n, self.nn, self.tf.at);
        let rows_here = drows.len() / (ow * dst_c);
        let zeros = [0f32; L];
        let mut s = vec![[0f32; L]; 2 * n];
        for tx in 0..self.tw {
            let mt = &mrow[tx * nn * cout..(tx + 1) * nn * cout];
            let cols_here = (ow - 2 * tx).min(2);
            for co in (0..cout).step_by(L) {
                let bias: &[f32; L] = self.bias[co..co + L].try_into().unwrap_or(&zeros);
                // rows: s = A^T M
                for a in 0..2 {
                    for col in 0..n {
                        let mut acc = [0f32; L];
                        for q in 0..n {
                            let coef = at[a * n + q];
                            if coef != 0.0 {
                                let i = (q * n + col) * cout + co;
                                axpy(&mut acc, coef, mt[i..i + L].try_into().unwrap_or(&zeros));
                            }
                        }
                        s[a * n + col] = acc;
                    }
                }
                // columns: Y = s A, plus bias and ReLU
                for a in 0..rows_here {
                    for b in 0..cols_here {
                        let mut y = *bias;
                        for q in 0..n {
                            let coef = at[b * n + q];
                            if coef != 0.0 {
                                axpy(&mut y, coef, &s[a * n + q]);
                            }
                        }
                        if self.relu {
                            for v in &mut y {
                                *v = v.max(0.0);
                            }
                        }
                        let pos = (a * ow + 2 * tx + b) * dst_c + c_off + co;
                        if let Some(o) = drows.get_mut(pos..pos + L) {
                            o.copy_from_slice(&y);
                        }
                    }
                }
            }
        }
    }
}

#[inline(always)]
fn axpy(acc: &mut [f32; L], a: f32, x: &[f32; L]) {
    for j in 0..L {
        acc[j] += a * x[j];
    }
}
