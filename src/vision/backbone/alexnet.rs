//! torchvision AlexNet `features`: taps `conv1`..`conv5`.

use crate::vision::arch::{ConvSpec, Layer, PoolSpec};

const POOL: PoolSpec = PoolSpec {
    k: 3,
    stride: 2,
    pad: 0,
    ceil: false,
};

pub fn layers() -> Vec<Layer> {
    let conv = |i: usize, cin, cout, k, stride, pad, tap: &str| Layer::Conv {
        conv: ConvSpec::new(format!("features.{i}"), cin, cout, k, stride, pad),
        relu: true,
        tap: Some(tap.to_string()),
    };
    vec![
        conv(0, 3, 64, 11, 4, 2, "conv1"),
        Layer::MaxPool(POOL),
        conv(3, 64, 192, 5, 1, 2, "conv2"),
        Layer::MaxPool(POOL),
        conv(6, 192, 384, 3, 1, 1, "conv3"),
        conv(8, 384, 256, 3, 1, 1, "conv4"),
        conv(10, 256, 256, 3, 1, 1, "conv5"),
        Layer::MaxPool(POOL),
    ]
}
