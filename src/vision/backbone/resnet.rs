//! torchvision ResNet-18 / ResNet-50 without the classifier: taps `conv1` (after `bn1`) and
//! `layer1`..`layer4` (each stage's output), and the stages' earlier blocks as `layerS.B`.

use crate::vision::arch::{BlockSpec, ConvSpec, Layer, PoolSpec};

#[derive(Clone, Copy, Debug)]
pub enum Depth {
    D18,
    D50,
}

pub fn layers(depth: Depth) -> Vec<Layer> {
    let (blocks, bottleneck) = match depth {
        Depth::D18 => ([2, 2, 2, 2], false),
        Depth::D50 => ([3, 4, 6, 3], true),
    };
    let expansion = if bottleneck { 4 } else { 1 };
    let mut out = vec![
        Layer::Conv {
            conv: ConvSpec::new("conv1", 3, 64, 7, 2, 3).with_bn("bn1"),
            relu: true,
            tap: Some("conv1".into()),
        },
        Layer::MaxPool(PoolSpec {
            k: 3,
            stride: 2,
            pad: 1,
            ceil: false,
        }),
    ];
    let mut cin = 64;
    for (s, &n) in blocks.iter().enumerate() {
        let planes = 64 << s;
        for b in 0..n {
            let p = format!("layer{}.{b}", s + 1);
            let stride = if s > 0 && b == 0 { 2 } else { 1 };
            let cv = |i: usize, cin, cout, k, stride, pad| {
                ConvSpec::new(format!("{p}.conv{i}"), cin, cout, k, stride, pad)
                    .with_bn(format!("{p}.bn{i}"))
            };
            let convs = if bottleneck {
                vec![
                    cv(1, cin, planes, 1, 1, 0),
                    cv(2, planes, planes, 3, stride, 1),
                    cv(3, planes, planes * expansion, 1, 1, 0),
                ]
            } else {
                vec![
                    cv(1, cin, planes, 3, stride, 1),
                    cv(2, planes, planes, 3, 1, 1),
                ]
            };
            let cout = planes * expansion;
            let downsample = (stride != 1 || cin != cout).then(|| {
                ConvSpec::new(format!("{p}.downsample.0"), cin, cout, 1, stride, 0)
                    .with_bn(format!("{p}.downsample.1"))
            });
            let tap = if b + 1 == n {
                format!("layer{}", s + 1)
            } else {
                p.clone()
            };
            out.push(Layer::Block {
                block: BlockSpec { convs, downsample },
                tap: Some(tap),
            });
            cin = cout;
        }
    }
    out
}
