//! `meilab bench vision`: throughput figures of the vision engine on real images.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use image::RgbImage;

use crate::vision::backbone::candle::CandleNet;
use crate::vision::weights::{load_set, locate, WeightSet};
use crate::vision::{load_image, to_batch, Backbone, Lpips, LpipsNet, Normalization, Resize};

#[derive(clap::Args, Debug)]
pub struct VisionArgs {
    /// Folder of images (JPEG/PNG/WebP); default `$MEILAB_ASSETS/images/imagenet-sample-224`.
    #[arg(long)]
    pub images: Option<PathBuf>,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Images in the distance matrix (N x N).
    #[arg(long, default_value_t = 1000)]
    pub matrix: usize,
    /// Also time candle's plain conv2d path (slow).
    #[arg(long)]
    pub candle: bool,
    /// Backbones to time (alex, vgg, squeeze); default all.
    #[arg(long, value_delimiter = ',')]
    pub nets: Vec<LpipsNet>,
    /// Only the backbone figures.
    #[arg(long)]
    pub backbones_only: bool,
}

/// Calls `f` (which handles `per_call` items) for about `seconds`; returns items per second.
fn rate(
    seconds: f64,
    per_call: usize,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    f()?;
    let start = Instant::now();
    let mut n = 0;
    while start.elapsed().as_secs_f64() < seconds || n == 0 {
        f()?;
        n += per_call;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Peak resident memory of this process (Linux), in MiB.
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn load_images(dir: &Path, n: usize) -> anyhow::Result<Vec<RgbImage>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                ["jpg", "jpeg", "png", "webp"].contains(&e.to_ascii_lowercase().as_str())
            })
        })
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no images in {}", dir.display());
    }
    let policy = Resize::Exact {
        width: 224,
        height: 224,
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(policy.apply(&load_image(&files[i % files.len()])?));
    }
    Ok(out)
}

pub fn run(args: VisionArgs, data_dir: &Path) -> anyhow::Result<()> {
    let images_dir = match args.images {
        Some(d) => d,
        None => PathBuf::from(std::env::var_os(crate::vision::weights::ASSETS_ENV).context(
            "give --images DIR (or set MEILAB_ASSETS to a folder with images/imagenet-sample-224)",
        )?)
        .join("images/imagenet-sample-224"),
    };
    let secs = args.seconds;
    let imgs = load_images(&images_dir, args.matrix.max(32))?;
    println!(
        "vision benchmark: {} threads, {} images from {}, {secs} s per figure",
        rayon::current_num_threads(),
        imgs.len(),
        images_dir.display()
    );

    println!("\n## backbone forward, 224 px, images/s (fast path: im2col + gemm x86-v4, NHWC)");
    let nets = if args.nets.is_empty() {
        LpipsNet::ALL.to_vec()
    } else {
        args.nets.clone()
    };
    for net in nets {
        let arch = net.arch();
        let Ok(bb) = Backbone::from_data_dir(arch, data_dir) else {
            println!("{arch}: no weights, skipped");
            continue;
        };
        let taps = net.taps();
        for batch in [1usize, 16] {
            let x = to_batch(&imgs[..batch], Normalization::ImageNet)?;
            let r = rate(secs, batch, || {
                bb.forward_taps(&x, &taps)?;
                Ok(())
            })?;
            println!("{arch:>14} batch {batch:>2}: {r:8.1} images/s");
        }
        if args.candle && net == LpipsNet::Alex {
            let t = load_set(
                &locate(data_dir, WeightSet::Trunk(arch))?,
                WeightSet::Trunk(arch),
            )?;
            let cn = CandleNet::from_tensors(arch, &t)?;
            for batch in [1usize, 16] {
                let x = to_batch(&imgs[..batch], Normalization::ImageNet)?;
                let tx = candle_core::Tensor::from_vec(
                    x.to_nchw(),
                    (batch, 3, 224, 224),
                    &candle_core::Device::Cpu,
                )?;
                let r = rate(secs, batch, || {
                    cn.forward_taps(&tx, &taps)?;
                    Ok(())
                })?;
                println!(
                    "{:>14} batch {batch:>2}: {r:8.1} images/s (candle conv2d)",
                    "alexnet"
                );
            }
        }
    }

    if args.backbones_only {
        return Ok(());
    }
    let lpips = Lpips::from_data_dir(LpipsNet::Alex, data_dir)?;
    println!("\n## LPIPS alex, 224 px");
    let mut k = 0;
    let naive = rate(secs, 1, || {
        lpips.distance(&imgs[k % 32], &imgs[(k + 1) % 32])?;
        k += 1;
        Ok(())
    })?;
    println!("naive (two backbone passes per pair): {naive:10.1} pairs/s");
    let feats = lpips.features(&imgs[..32])?;
    let cached = rate(secs, 16 * 16, || {
        lpips.distances(&feats[..16], &feats[16..32])?;
        Ok(())
    })?;
    println!("from cached features (16 x 16 GEMM): {cached:10.1} pairs/s");
    let feature_rate = rate(secs, 16, || {
        lpips.features(&imgs[..16])?;
        Ok(())
    })?;
    println!("feature extraction (batch 16):        {feature_rate:10.1} images/s");

    // A trial of the in-silico observer: 2 queries against 9 max + 9 min references.
    let (queries, refs) = (&feats[..2], &feats[2..20]);
    let trial_cached = rate(secs, 1, || {
        lpips.distances(queries, refs)?;
        Ok(())
    })?;
    let trial_naive = naive / 36.0;
    println!(
        "trial (2 queries x 18 refs = 36 pairs): cached {trial_cached:.1} trials/s, naive {trial_naive:.2} trials/s, ratio {:.0}x",
        trial_cached / trial_naive
    );

    for size in [224u32, 64] {
        let n = args.matrix;
        let set: Vec<RgbImage> = if size == 224 {
            imgs[..n].to_vec()
        } else {
            let p = Resize::Exact {
                width: size,
                height: size,
            };
            imgs[..n].iter().map(|i| p.apply(i)).collect()
        };
        let t0 = Instant::now();
        let f = lpips.features(&set)?;
        let extract = t0.elapsed().as_secs_f64();
        let t1 = Instant::now();
        let m = lpips.distances(&f, &f)?;
        let matrix = t1.elapsed().as_secs_f64();
        println!(
            "{n} x {n} matrix at {size} px from cached features: {matrix:.3} s ({} floats per image, {:.2} GB cached; extraction {extract:.1} s); d[0][1] = {:.4}",
            f[0].data.len(),
            (f.len() * f[0].bytes()) as f64 / 1e9,
            m.get(0, 1)
        );
    }
    if let Some(mib) = peak_rss_mib() {
        println!("\npeak memory (VmHWM): {mib:.0} MiB");
    }
    Ok(())
}
