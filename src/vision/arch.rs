//! Architectures as data: the layer sequence of each supported network with torchvision parameter
//! names and named taps. Both execution engines (the candle reference in `backbone::candle` and the
//! fast path in `conv`) are built from this one description.

use std::fmt;
use std::str::FromStr;

use super::error::VisionError;

/// A supported backbone architecture.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum Arch {
    #[serde(rename = "alexnet")]
    AlexNet,
    #[serde(rename = "vgg16")]
    Vgg16,
    #[serde(rename = "squeezenet1_1")]
    SqueezeNet1_1,
    #[serde(rename = "resnet18")]
    ResNet18,
    #[serde(rename = "resnet50")]
    ResNet50,
}

impl Arch {
    pub const ALL: [Arch; 5] = [
        Arch::AlexNet,
        Arch::Vgg16,
        Arch::SqueezeNet1_1,
        Arch::ResNet18,
        Arch::ResNet50,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Arch::AlexNet => "alexnet",
            Arch::Vgg16 => "vgg16",
            Arch::SqueezeNet1_1 => "squeezenet1_1",
            Arch::ResNet18 => "resnet18",
            Arch::ResNet50 => "resnet50",
        }
    }

    /// The layer sequence, in execution order.
    pub fn layers(self) -> Vec<Layer> {
        match self {
            Arch::AlexNet => super::backbone::alexnet::layers(),
            Arch::Vgg16 => super::backbone::vgg::layers(),
            Arch::SqueezeNet1_1 => super::backbone::squeezenet::layers(),
            Arch::ResNet18 => super::backbone::resnet::layers(super::backbone::resnet::Depth::D18),
            Arch::ResNet50 => super::backbone::resnet::layers(super::backbone::resnet::Depth::D50),
        }
    }

    /// The tap names in network order.
    pub fn taps(self) -> Vec<String> {
        self.layers()
            .iter()
            .filter_map(|l| l.tap().map(str::to_string))
            .collect()
    }

    /// Every parameter the architecture needs: torchvision name and shape.
    pub fn parameters(self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        for l in self.layers() {
            l.parameters(&mut out);
        }
        out
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = VisionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "alexnet" | "alex" => Ok(Arch::AlexNet),
            "vgg16" | "vgg" => Ok(Arch::Vgg16),
            "squeezenet1_1" | "squeezenet" | "squeeze" => Ok(Arch::SqueezeNet1_1),
            "resnet18" => Ok(Arch::ResNet18),
            "resnet50" => Ok(Arch::ResNet50),
            _ => Err(VisionError::UnknownArch(s.to_string())),
        }
    }
}

/// A convolution with optional inference batch norm (folded into the kernel by the fast engine).
#[derive(Clone, Debug, PartialEq)]
pub struct ConvSpec {
    /// Parameter prefix, e.g. `features.0` (tensors `features.0.weight`, `features.0.bias`).
    pub param: String,
    pub cin: usize,
    pub cout: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    /// With batch norm the convolution has no bias; the norm's parameters live under this prefix.
    pub bn: Option<String>,
}

impl ConvSpec {
    pub fn new(
        param: impl Into<String>,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> Self {
        ConvSpec {
            param: param.into(),
            cin,
            cout,
            k,
            stride,
            pad,
            bn: None,
        }
    }
    pub fn with_bn(mut self, bn: impl Into<String>) -> Self {
        self.bn = Some(bn.into());
        self
    }
    fn parameters(&self, out: &mut Vec<(String, Vec<usize>)>) {
        out.push((
            format!("{}.weight", self.param),
            vec![self.cout, self.cin, self.k, self.k],
        ));
        match &self.bn {
            None => out.push((format!("{}.bias", self.param), vec![self.cout])),
            Some(bn) => {
                for t in ["weight", "bias", "running_mean", "running_var"] {
                    out.push((format!("{bn}.{t}"), vec![self.cout]));
                }
            }
        }
    }
    pub fn out_size(&self, h: usize, w: usize) -> (usize, usize) {
        (
            (h + 2 * self.pad).saturating_sub(self.k) / self.stride + 1,
            (w + 2 * self.pad).saturating_sub(self.k) / self.stride + 1,
        )
    }
}

/// Max pooling, with PyTorch's padding and ceil-mode rules.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PoolSpec {
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub ceil: bool,
}

impl PoolSpec {
    /// Output extent of one axis, as `torch.nn.MaxPool2d` computes it.
    pub fn out_len(&self, n: usize) -> usize {
        let span = (n + 2 * self.pad).saturating_sub(self.k);
        let mut o = if self.ceil {
            span.div_ceil(self.stride) + 1
        } else {
            span / self.stride + 1
        };
        // The last window must start inside the input or the left padding.
        if self.ceil && (o - 1) * self.stride >= n + self.pad {
            o -= 1;
        }
        o
    }
}

/// A residual block of ResNet (`Basic` for 18/34, `Bottleneck` for 50+).
#[derive(Clone, Debug, PartialEq)]
pub struct BlockSpec {
    pub convs: Vec<ConvSpec>,
    pub downsample: Option<ConvSpec>,
}

/// One step of a network. Taps name a step's output; pre-ReLU means before the step's final ReLU.
#[derive(Clone, Debug, PartialEq)]
pub enum Layer {
    Conv {
        conv: ConvSpec,
        relu: bool,
        tap: Option<String>,
    },
    MaxPool(PoolSpec),
    /// SqueezeNet fire module: squeeze 1x1 + ReLU, then concat(expand1x1, expand3x3) + ReLU.
    Fire {
        squeeze: ConvSpec,
        expand1: ConvSpec,
        expand3: ConvSpec,
        tap: Option<String>,
    },
    /// Residual block: ReLU between its convolutions, ReLU after the sum.
    Block {
        block: BlockSpec,
        tap: Option<String>,
    },
}

impl Layer {
    pub fn tap(&self) -> Option<&str> {
        match self {
            Layer::Conv { tap, .. } | Layer::Fire { tap, .. } | Layer::Block { tap, .. } => {
                tap.as_deref()
            }
            Layer::MaxPool(_) => None,
        }
    }
    fn parameters(&self, out: &mut Vec<(String, Vec<usize>)>) {
        match self {
            Layer::Conv { conv, .. } => conv.parameters(out),
            Layer::MaxPool(_) => {}
            Layer::Fire {
                squeeze,
                expand1,
                expand3,
                ..
            } => {
                for c in [squeeze, expand1, expand3] {
                    c.parameters(out);
                }
            }
            Layer::Block { block, .. } => {
                for c in block.convs.iter().chain(&block.downsample) {
                    c.parameters(out);
                }
            }
        }
    }
}

/// A tap request: a named layer output, before (default) or after its ReLU.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Tap {
    pub name: String,
    pub post_relu: bool,
}

impl Tap {
    pub fn pre(name: impl Into<String>) -> Self {
        Tap {
            name: name.into(),
            post_relu: false,
        }
    }
    pub fn post(name: impl Into<String>) -> Self {
        Tap {
            name: name.into(),
            post_relu: true,
        }
    }
}

impl FromStr for Tap {
    type Err = VisionError;
    /// `conv3` is pre-ReLU, `conv3:relu` post-ReLU.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once(':') {
            None => Ok(Tap::pre(s)),
            Some((name, "relu")) => Ok(Tap::post(name)),
            Some(_) => Err(VisionError::Input(format!(
                "tap `{s}`: expected NAME or NAME:relu"
            ))),
        }
    }
}

impl fmt::Display for Tap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.post_relu {
            write!(f, "{}:relu", self.name)
        } else {
            f.write_str(&self.name)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_mode_pooling_matches_torch_output_sizes() {
        let p = PoolSpec {
            k: 3,
            stride: 2,
            pad: 0,
            ceil: true,
        };
        // squeezenet1_1 at 224: 111 -> 55 -> 27 -> 13
        assert_eq!(p.out_len(111), 55);
        assert_eq!(p.out_len(55), 27);
        assert_eq!(p.out_len(27), 13);
        assert_eq!(p.out_len(14), 7);
        let floor = PoolSpec { ceil: false, ..p };
        assert_eq!(floor.out_len(14), 6);
    }

    #[test]
    fn taps_parse_with_an_optional_relu_suffix() {
        assert_eq!("conv3".parse::<Tap>().ok(), Some(Tap::pre("conv3")));
        assert_eq!("conv3:relu".parse::<Tap>().ok(), Some(Tap::post("conv3")));
        assert!("conv3:x".parse::<Tap>().is_err());
    }

    #[test]
    fn every_architecture_names_distinct_taps_and_parameters() {
        for a in Arch::ALL {
            let taps = a.taps();
            let mut t = taps.clone();
            t.sort();
            t.dedup();
            assert_eq!(t.len(), taps.len(), "{a}");
            let p = a.parameters();
            let mut names: Vec<_> = p.iter().map(|x| &x.0).collect();
            names.sort();
            names.dedup();
            assert_eq!(names.len(), p.len(), "{a}");
        }
        assert_eq!(
            Arch::AlexNet.taps(),
            ["conv1", "conv2", "conv3", "conv4", "conv5"]
        );
    }
}
