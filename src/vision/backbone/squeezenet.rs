//! torchvision SqueezeNet 1.1 `features`: taps `conv1`, `fire2`..`fire9` (ceil-mode max pooling).

use crate::vision::arch::{ConvSpec, Layer, PoolSpec};

const POOL: PoolSpec = PoolSpec {
    k: 3,
    stride: 2,
    pad: 0,
    ceil: true,
};

fn fire(index: usize, cin: usize, squeeze: usize, expand: usize, tap: usize) -> Layer {
    let p = format!("features.{index}");
    Layer::Fire {
        squeeze: ConvSpec::new(format!("{p}.squeeze"), cin, squeeze, 1, 1, 0),
        expand1: ConvSpec::new(format!("{p}.expand1x1"), squeeze, expand, 1, 1, 0),
        expand3: ConvSpec::new(format!("{p}.expand3x3"), squeeze, expand, 3, 1, 1),
        tap: Some(format!("fire{tap}")),
    }
}

pub fn layers() -> Vec<Layer> {
    vec![
        Layer::Conv {
            conv: ConvSpec::new("features.0", 3, 64, 3, 2, 0),
            relu: true,
            tap: Some("conv1".into()),
        },
        Layer::MaxPool(POOL),
        fire(3, 64, 16, 64, 2),
        fire(4, 128, 16, 64, 3),
        Layer::MaxPool(POOL),
        fire(6, 128, 32, 128, 4),
        fire(7, 256, 32, 128, 5),
        Layer::MaxPool(POOL),
        fire(9, 256, 48, 192, 6),
        fire(10, 384, 48, 192, 7),
        fire(11, 384, 64, 256, 8),
        fire(12, 512, 64, 256, 9),
    ]
}
