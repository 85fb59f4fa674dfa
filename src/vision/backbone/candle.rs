//! The reference implementation on candle's own ops (NCHW, `candle_nn::Conv2d`, inference
//! `BatchNorm`), loaded through `VarBuilder` with torchvision names. It is the yardstick the fast
//! path is tested against, and a `Module` for code that wants a plain candle model.

use std::collections::HashMap;

use candle_core::{DType, Device, Module, ModuleT, Tensor, D};
use candle_nn::{BatchNorm, Conv2d, Conv2dConfig, VarBuilder};

use crate::vision::arch::{Arch, ConvSpec, Layer, PoolSpec, Tap};
use crate::vision::error::{Result, VisionError};
use crate::vision::weights::TensorMap;

struct CConv {
    conv: Conv2d,
    bn: Option<BatchNorm>,
}

impl CConv {
    fn new(spec: &ConvSpec, vb: &VarBuilder) -> candle_core::Result<CConv> {
        let cfg = Conv2dConfig {
            padding: spec.pad,
            stride: spec.stride,
            ..Default::default()
        };
        let vbc = vb.pp(&spec.param);
        let conv = if spec.bn.is_some() {
            candle_nn::conv2d_no_bias(spec.cin, spec.cout, spec.k, cfg, vbc)?
        } else {
            candle_nn::conv2d(spec.cin, spec.cout, spec.k, cfg, vbc)?
        };
        let bn = match &spec.bn {
            Some(p) => Some(candle_nn::batch_norm(spec.cout, 1e-5, vb.pp(p))?),
            None => None,
        };
        Ok(CConv { conv, bn })
    }
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = self.conv.forward(x)?;
        match &self.bn {
            Some(bn) => bn.forward_t(&y, false),
            None => Ok(y),
        }
    }
}

enum CLayer {
    Conv {
        conv: CConv,
        relu: bool,
        tap: Option<String>,
    },
    Pool(PoolSpec),
    Fire {
        squeeze: CConv,
        expand1: CConv,
        expand3: CConv,
        tap: Option<String>,
    },
    Block {
        convs: Vec<CConv>,
        downsample: Option<CConv>,
        tap: Option<String>,
    },
}

/// Max pooling with PyTorch padding and ceil mode, by padding with -inf.
fn max_pool(x: &Tensor, p: &PoolSpec) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let (oh, ow) = (p.out_len(h), p.out_len(w));
    let pad =
        |x: &Tensor, dim: usize, before: usize, after: usize| -> candle_core::Result<Tensor> {
            if before == 0 && after == 0 {
                return Ok(x.clone());
            }
            let mut parts = Vec::new();
            let mut shape = x.dims().to_vec();
            if before > 0 {
                shape[dim] = before;
                parts.push(Tensor::full(f32::NEG_INFINITY, shape.clone(), x.device())?);
            }
            parts.push(x.clone());
            if after > 0 {
                shape[dim] = after;
                parts.push(Tensor::full(f32::NEG_INFINITY, shape.clone(), x.device())?);
            }
            Tensor::cat(&parts, dim)
        };
    let need_h = (oh - 1) * p.stride + p.k;
    let need_w = (ow - 1) * p.stride + p.k;
    let x = pad(x, 2, p.pad, need_h.saturating_sub(h + p.pad))?;
    let x = pad(&x, 3, p.pad, need_w.saturating_sub(w + p.pad))?;
    x.max_pool2d_with_stride(p.k, p.stride)
}

/// A backbone as a plain candle model.
pub struct CandleNet {
    arch: Arch,
    layers: Vec<CLayer>,
}

impl CandleNet {
    /// Builds from tensors already checked with `WeightSet::canonical`.
    pub fn from_tensors(arch: Arch, t: &TensorMap) -> Result<CandleNet> {
        let dev = Device::Cpu;
        let mut map = HashMap::new();
        for (k, v) in t {
            map.insert(
                k.clone(),
                Tensor::from_slice(&v.data, v.shape.as_slice(), &dev)?,
            );
        }
        let vb = VarBuilder::from_tensors(map, DType::F32, &dev);
        let layers = arch
            .layers()
            .into_iter()
            .map(|l| {
                Ok(match l {
                    Layer::Conv { conv, relu, tap } => CLayer::Conv {
                        conv: CConv::new(&conv, &vb)?,
                        relu,
                        tap,
                    },
                    Layer::MaxPool(p) => CLayer::Pool(p),
                    Layer::Fire {
                        squeeze,
                        expand1,
                        expand3,
                        tap,
                    } => CLayer::Fire {
                        squeeze: CConv::new(&squeeze, &vb)?,
                        expand1: CConv::new(&expand1, &vb)?,
                        expand3: CConv::new(&expand3, &vb)?,
                        tap,
                    },
                    Layer::Block { block, tap } => CLayer::Block {
                        convs: block
                            .convs
                            .iter()
                            .map(|c| CConv::new(c, &vb))
                            .collect::<candle_core::Result<_>>()?,
                        downsample: block
                            .downsample
                            .as_ref()
                            .map(|c| CConv::new(c, &vb))
                            .transpose()?,
                        tap,
                    },
                })
            })
            .collect::<candle_core::Result<_>>()?;
        Ok(CandleNet { arch, layers })
    }

    pub fn arch(&self) -> Arch {
        self.arch
    }

    /// Runs an NCHW batch; returns one NCHW tensor per tap, in request order.
    pub fn forward_taps(&self, x: &Tensor, taps: &[Tap]) -> Result<Vec<Tensor>> {
        let known = self.arch.taps();
        if let Some(t) = taps.iter().find(|t| !known.contains(&t.name)) {
            return Err(VisionError::UnknownTap {
                arch: self.arch.name().to_string(),
                tap: t.name.clone(),
                known: known.join(", "),
            });
        }
        let mut out: Vec<Option<Tensor>> = vec![None; taps.len()];
        let mut cur = x.clone();
        for layer in &self.layers {
            let (pre, post, tap) = self.step(layer, &cur)?;
            if let Some(name) = tap {
                for (i, t) in taps.iter().enumerate() {
                    if t.name == name {
                        out[i] = Some(if t.post_relu {
                            post.clone()
                        } else {
                            pre.clone()
                        });
                    }
                }
            }
            cur = post;
            if out.iter().all(Option::is_some) {
                break;
            }
        }
        out.into_iter()
            .zip(taps)
            .map(|(o, t)| {
                o.ok_or_else(|| VisionError::Input(format!("tap `{t}` was not produced")))
            })
            .collect()
    }

    /// One layer: (pre-ReLU output, output, tap name).
    fn step<'a>(
        &self,
        layer: &'a CLayer,
        x: &Tensor,
    ) -> candle_core::Result<(Tensor, Tensor, Option<&'a str>)> {
        Ok(match layer {
            CLayer::Pool(p) => {
                let y = max_pool(x, p)?;
                (y.clone(), y, None)
            }
            CLayer::Conv { conv, relu, tap } => {
                let y = conv.forward(x)?;
                let post = if *relu { y.relu()? } else { y.clone() };
                (y, post, tap.as_deref())
            }
            CLayer::Fire {
                squeeze,
                expand1,
                expand3,
                tap,
            } => {
                let s = squeeze.forward(x)?.relu()?;
                let y = Tensor::cat(&[expand1.forward(&s)?, expand3.forward(&s)?], 1)?;
                let post = y.relu()?;
                (y, post, tap.as_deref())
            }
            CLayer::Block {
                convs,
                downsample,
                tap,
            } => {
                let mut h = x.clone();
                for (i, c) in convs.iter().enumerate() {
                    h = c.forward(&h)?;
                    if i + 1 < convs.len() {
                        h = h.relu()?;
                    }
                }
                let id = match downsample {
                    Some(d) => d.forward(x)?,
                    None => x.clone(),
                };
                let y = (h + id)?;
                let post = y.relu()?;
                (y, post, tap.as_deref())
            }
        })
    }
}

impl Module for CandleNet {
    /// The whole trunk (no classifier).
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut cur = x.clone();
        for layer in &self.layers {
            cur = self.step(layer, &cur)?.1;
        }
        Ok(cur)
    }
}

/// Spatial mean per channel of an NCHW tensor: `[N, C]`.
pub fn spatial_mean(t: &Tensor) -> candle_core::Result<Tensor> {
    t.flatten_from(2)?.mean(D::Minus1)
}
