use meilab::vision::lpips::LpipsReference;
use meilab::vision::weights::WeightSet;
use meilab::vision::{Lpips, LpipsNet};

use crate::vision_common::{self, golden, sample_images, weights};

const GOLDEN: [(LpipsNet, f32, f32); 3] = [
    (LpipsNet::Alex, 0.721881, 0.137566),
    (LpipsNet::Vgg, 0.568613, 0.421664),
    (LpipsNet::Squeeze, 0.711048, 0.147902),
];

fn models(net: LpipsNet) -> Option<(Lpips, LpipsReference)> {
    let trunk = weights(WeightSet::Trunk(net.arch()))?;
    let lin = weights(WeightSet::Lin(net))?;
    Some((
        Lpips::from_tensors(net, &trunk, &lin).expect("lpips"),
        LpipsReference::from_tensors(net, &trunk, &lin).expect("reference"),
    ))
}

#[test]
fn lpips_matches_the_golden_triplet_for_every_net_on_both_paths() {
    let Some([r, p0, p1]) = golden() else { return };
    for (net, d0, d1) in GOLDEN {
        let Some((fast, reference)) = models(net) else {
            continue;
        };
        let got = [
            fast.distance(&r, &p0).expect("d0"),
            fast.distance(&r, &p1).expect("d1"),
            reference.distance(&r, &p0).expect("ref d0"),
            reference.distance(&r, &p1).expect("ref d1"),
        ];
        let feats = fast.features(&[&r, &p0, &p1]).expect("features");
        let m = fast.distances(&feats[..1], &feats[1..]).expect("matrix");
        eprintln!(
            "{net}: fast {:?} reference {:?} cached {:?}",
            &got[..2],
            &got[2..],
            m.data
        );
        for (i, want) in [d0, d1, d0, d1, d0, d1].into_iter().enumerate() {
            let g = if i < 4 { got[i] } else { m.data[i - 4] };
            assert!(
                (g - want).abs() < 1e-4,
                "{net}: value {i} = {g}, expected {want}"
            );
        }
    }
}

#[test]
fn the_distance_of_an_image_to_itself_is_zero_and_distances_are_symmetric() {
    let Some([r, p0, _]) = golden() else { return };
    for net in LpipsNet::ALL {
        let Some((fast, _)) = models(net) else {
            continue;
        };
        assert_eq!(fast.distance(&r, &r).expect("d"), 0.0, "{net}");
        assert_eq!(
            fast.distance(&r, &p0).expect("d"),
            fast.distance(&p0, &r).expect("d"),
            "{net}"
        );
        let f = fast.features(&[&r, &p0]).expect("features");
        let m = fast.distances(&f, &f).expect("matrix");
        assert!(
            m.get(0, 0).abs() < 1e-6 && m.get(1, 1).abs() < 1e-6,
            "{net}: {:?}",
            m.data
        );
        assert_eq!(m.get(0, 1), m.get(1, 0), "{net}");
    }
}

#[test]
fn cached_distances_equal_direct_distances_on_real_image_pairs() {
    let imgs: Vec<image::RgbImage> = match sample_images(24) {
        Some(v) => v.into_iter().map(|(_, i)| i).collect(),
        None => {
            eprintln!(
                "!!!!! ImageNet sample not found (set MEILAB_TEST_ASSETS): synthetic images !!!!!"
            );
            (0..24)
                .map(|i| vision_common::noise_image(224, 224, i))
                .collect()
        }
    };
    for net in LpipsNet::ALL {
        let Some((fast, _)) = models(net) else {
            continue;
        };
        let (a, b) = imgs.split_at(12);
        let fa = fast.features(a).expect("features a");
        let fb = fast.features(b).expect("features b");
        let m = fast.distances(&fa, &fb).expect("matrix");
        let mut worst = 0f32;
        // A spread of pairs: the diagonal and a shifted diagonal.
        for (i, ai) in a.iter().enumerate() {
            for j in [i, (i + 5) % b.len()] {
                let direct = fast.distance(ai, &b[j]).expect("direct");
                worst = worst.max((direct - m.get(i, j)).abs());
            }
        }
        eprintln!("{net}: worst |cached - direct| = {worst:e}");
        assert!(worst < 1e-5, "{net}: {worst}");
    }
}

#[test]
fn the_feature_cache_computes_each_image_once_and_round_trips_through_disk() {
    use meilab::vision::{image_sha256, FeatureCache};
    let Some((lpips, _)) = models(LpipsNet::Alex) else {
        return;
    };
    let imgs: Vec<image::RgbImage> = (0..3)
        .map(|i| vision_common::noise_image(64, 64, i))
        .collect();
    let shas: Vec<String> = imgs.iter().map(|i| image_sha256(i.as_raw())).collect();
    let dir = std::env::temp_dir().join(format!("meilab-test-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let items: Vec<(&str, &image::RgbImage)> = shas.iter().map(String::as_str).zip(&imgs).collect();
    // Budget for two images: the third insertion evicts the first.
    let direct = lpips.features(&imgs).expect("features");
    let mut cache = FeatureCache::new(2 * direct[0].bytes(), Some(dir.clone()));
    let first = cache.get_or_compute(&lpips, &items).expect("first");
    assert_eq!(cache.len(), 2);
    assert!(cache.memory_bytes() <= 2 * direct[0].bytes());
    for (f, d) in first.iter().zip(&direct) {
        assert_eq!(&**f, d);
    }
    // A fresh cache finds everything on disk, bit for bit.
    let mut again = FeatureCache::new(1 << 30, Some(dir.clone()));
    let second = again
        .get_or_compute(&lpips, &[items[2], items[0], items[0]])
        .expect("second");
    assert_eq!(*second[0], direct[2]);
    assert_eq!(*second[1], direct[0]);
    assert_eq!(again.len(), 2);
    let m = lpips.distances(&second[..1], &first).expect("matrix");
    assert!(m.get(0, 2).abs() < 1e-6);
    let _ = std::fs::remove_dir_all(&dir);
}
