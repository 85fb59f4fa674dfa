//! The vision engine: CNN backbones with named taps, weights as they ship, image preprocessing,
//! exact LPIPS v0.1 and fast batched distances. Knows nothing of HTTP or SQL.
//!
//! # Using it
//!
//! Backbones and activations (stimuli extraction, DESIGN 1.1):
//! ```no_run
//! # fn main() -> Result<(), meilab::vision::VisionError> {
//! use meilab::vision::{Arch, Backbone, Normalization, Resize, Tap};
//! let net = Backbone::from_data_dir(Arch::AlexNet, std::path::Path::new("meilab-data"))?;
//! let img = Resize::IMAGENET.apply(&meilab::vision::load_image("cat.jpg".as_ref())?);
//! let batch = meilab::vision::to_batch(&[img], Normalization::ImageNet)?;
//! // [image][tap][channel]: spatial means, pre-ReLU for `conv3`, post-ReLU for `conv5:relu`.
//! let acts = net.activations(&batch, &[Tap::pre("conv3"), "conv5:relu".parse()?])?;
//! # Ok(()) }
//! ```
//! LPIPS (the in-silico observer, DESIGN 1.8):
//! ```no_run
//! # fn main() -> Result<(), meilab::vision::VisionError> {
//! use meilab::vision::{Lpips, LpipsNet};
//! # let (a, b, c) = (image::RgbImage::new(64, 64), image::RgbImage::new(64, 64), image::RgbImage::new(64, 64));
//! let lpips = Lpips::from_data_dir(LpipsNet::Alex, std::path::Path::new("meilab-data"))?;
//! let d = lpips.distance(&a, &b)?;              // one pair, computed literally
//! let fa = lpips.features(&[&a, &b])?;           // each image through the backbone once
//! let fb = lpips.features(&[&c])?;
//! let m = lpips.distances(&fa, &fb)?;            // 2 x 1 matrix, one GEMM
//! # Ok(()) }
//! ```
//! `FeatureCache` keeps features by image SHA-256 (memory-bounded, optionally on disk).
//!
//! # Modules
//! - `arch`: architectures as data (layers, torchvision names, taps); `backbone/*` one file per net,
//!   the fast engine (`Backbone`) and the candle reference (`backbone::candle::CandleNet`).
//! - `conv`, `winograd`: NHWC convolution (parallel im2col + AVX-512 GEMM, fused bias + ReLU;
//!   Winograd F(2x2, 3x3) and F(2x2, 5x5) for stride-1 kernels) and pooling.
//! - `weights`, `pickle`, `known`, `fetch`: weight formats, checks, data-directory layout, `weights fetch`.
//! - `preprocess`: decoding, RGB conversion, resize policy, normalisation.
//! - `lpips`, `cache`: LPIPS, cached features, distance matrices.
//!
//! # Weights in a data directory
//! `<data_dir>/weights/<set>.safetensors` with sets `alexnet_features`, `vgg16_features`,
//! `squeezenet1_1_features`, `resnet18`, `resnet50`, `lpips_v0.1_{alex,vgg,squeeze}_lin`;
//! `$MEILAB_ASSETS/weights/` is the fallback (see `weights::locate`).

pub mod arch;
pub mod backbone;
pub mod cache;
pub mod conv;
pub mod error;
pub mod fetch;
pub mod known;
pub mod lpips;
pub mod pickle;
pub mod preprocess;
pub mod weights;
pub mod winograd;

pub use arch::{Arch, Tap};
pub use backbone::Backbone;
pub use cache::{image_sha256, FeatureCache};
pub use conv::Fmap;
pub use error::VisionError;
pub use lpips::{distances, DistanceMatrix, Lpips, LpipsFeatures, LpipsNet};
pub use preprocess::{decode_image, load_image, to_batch, Normalization, Resize};
pub use weights::{locate, read_weights, WeightSet};
