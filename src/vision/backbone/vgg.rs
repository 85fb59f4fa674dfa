//! torchvision VGG16 `features`: taps `conv1_1`..`conv5_3`.

use crate::vision::arch::{ConvSpec, Layer, PoolSpec};

pub fn layers() -> Vec<Layer> {
    let stages: [&[usize]; 5] = [
        &[64, 64],
        &[128, 128],
        &[256, 256, 256],
        &[512, 512, 512],
        &[512, 512, 512],
    ];
    let mut out = Vec::new();
    let (mut index, mut cin) = (0, 3);
    for (s, widths) in stages.iter().enumerate() {
        for (j, &cout) in widths.iter().enumerate() {
            out.push(Layer::Conv {
                conv: ConvSpec::new(format!("features.{index}"), cin, cout, 3, 1, 1),
                relu: true,
                tap: Some(format!("conv{}_{}", s + 1, j + 1)),
            });
            cin = cout;
            index += 2;
        }
        out.push(Layer::MaxPool(PoolSpec {
            k: 2,
            stride: 2,
            pad: 0,
            ceil: false,
        }));
        index += 1;
    }
    out
}
