use candle_core::{Device, Tensor};
use meilab::vision::backbone::candle::CandleNet;
use meilab::vision::weights::{HostTensor, TensorMap, WeightSet};
use meilab::vision::{to_batch, Arch, Backbone, Fmap, Normalization, Resize, Tap};

use crate::vision_common::{noise_image, sample_images, weights};

fn synthetic_weights(arch: Arch) -> TensorMap {
    let mut s: u64 = 42;
    let mut next = move || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 40) as f32 / (1u64 << 24) as f32
    };
    arch.parameters()
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let fan_in = if shape.len() == 4 {
                shape[1] * shape[2] * shape[3]
            } else {
                1
            };
            let data = (0..n)
                .map(|_| {
                    let u = next();
                    if name.ends_with("running_var") {
                        0.5 + u
                    } else if name.ends_with("weight") && shape.len() == 4 {
                        (u * 2.0 - 1.0) * (3.0 / fan_in as f32).sqrt()
                    } else {
                        u * 0.2 - 0.1
                            + if name.contains("bn") && name.ends_with("weight") {
                                1.0
                            } else {
                                0.0
                            }
                    }
                })
                .collect();
            (name, HostTensor { shape, data })
        })
        .collect()
}

fn input(size: u32, n: usize) -> Fmap {
    let imgs: Vec<image::RgbImage> = match sample_images(n) {
        Some(v) => v
            .into_iter()
            .map(|(_, i)| {
                Resize::Exact {
                    width: size,
                    height: size,
                }
                .apply(&i)
            })
            .collect(),
        None => (0..n).map(|i| noise_image(size, size, i as u64)).collect(),
    };
    to_batch(&imgs, Normalization::ImageNet).expect("batch")
}

/// Largest absolute difference relative to the largest absolute reference value of the tap.
fn relative_error(fast: &Fmap, reference: &Tensor) -> f32 {
    let r = reference
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .expect("reference values");
    let f = fast.to_nchw();
    assert_eq!(f.len(), r.len());
    let scale = r.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    f.iter()
        .zip(&r)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

#[test]
fn the_fast_path_agrees_with_candle_conv2d_on_every_tap_of_every_architecture() {
    for arch in [
        Arch::AlexNet,
        Arch::Vgg16,
        Arch::SqueezeNet1_1,
        Arch::ResNet18,
        Arch::ResNet50,
    ] {
        let t = match arch {
            Arch::ResNet18 | Arch::ResNet50 => synthetic_weights(arch),
            _ => match weights(WeightSet::Trunk(arch)) {
                Some(t) => t,
                None => continue,
            },
        };
        let size = if arch == Arch::Vgg16 { 64 } else { 115 };
        let x = input(size, 2);
        let fast = Backbone::from_tensors(arch, &t).expect("fast");
        let reference = CandleNet::from_tensors(arch, &t).expect("candle");
        let taps: Vec<Tap> = arch
            .taps()
            .into_iter()
            .flat_map(|n| [Tap::pre(n.clone()), Tap::post(n)])
            .collect();
        let got = fast.forward_taps(&x, &taps).expect("fast forward");
        let xt = Tensor::from_vec(x.to_nchw(), (x.n, 3, x.h, x.w), &Device::Cpu).expect("tensor");
        let want = reference.forward_taps(&xt, &taps).expect("candle forward");
        for ((tap, g), w) in taps.iter().zip(&got).zip(&want) {
            let (n, c, h, wd) = w.dims4().expect("dims");
            assert_eq!((g.n, g.c, g.h, g.w), (n, c, h, wd), "{arch} {tap}");
            let e = relative_error(g, w);
            assert!(e <= 1e-4, "{arch} {tap}: relative error {e}");
        }
    }
}

#[test]
fn activations_are_spatial_channel_means_per_image_and_tap_and_do_not_depend_on_the_batch() {
    let t = synthetic_weights(Arch::ResNet18);
    let net = Backbone::from_tensors(Arch::ResNet18, &t).expect("net");
    let x = input(64, 3);
    let taps = [Tap::pre("conv1"), Tap::post("layer2"), Tap::pre("layer4")];
    let acts = net.activations(&x, &taps).expect("activations");
    assert_eq!(acts.len(), 3);
    assert_eq!(
        acts[0].iter().map(Vec::len).collect::<Vec<_>>(),
        [64, 128, 512]
    );
    assert!(
        acts[0][0].iter().any(|v| *v < 0.0),
        "pre-ReLU means can be negative"
    );
    assert!(
        acts[0][1].iter().all(|v| *v >= 0.0),
        "post-ReLU means are not"
    );
    let one = Fmap {
        n: 1,
        data: x.image(1).to_vec(),
        ..x.clone()
    };
    let single = net.activations(&one, &taps).expect("single");
    for (a, b) in acts[1].iter().flatten().zip(single[0].iter().flatten()) {
        assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()));
    }
}

#[test]
fn an_unknown_tap_is_an_error_listing_the_known_ones() {
    let net =
        Backbone::from_tensors(Arch::ResNet18, &synthetic_weights(Arch::ResNet18)).expect("net");
    let e = net
        .forward_taps(&input(32, 1), &[Tap::pre("conv9")])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("conv9") && e.contains("layer1"), "{e}");
}
