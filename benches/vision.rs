//! Criterion benchmarks of the vision engine. The full set of figures (all nets, naive vs cached
//! LPIPS, the 1000 x 1000 matrix, peak memory) is printed by `meilab bench vision`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use meilab::vision::{load_image, to_batch, Backbone, Lpips, LpipsNet, Normalization, Resize};

fn assets() -> PathBuf {
    std::env::var_os("MEILAB_TEST_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/assets"))
}

fn images(n: usize, size: u32) -> Option<Vec<image::RgbImage>> {
    let dir = assets().join("images/imagenet-sample-224");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let policy = Resize::Exact {
        width: size,
        height: size,
    };
    files
        .iter()
        .take(n)
        .map(|p| load_image(p).ok().map(|i| policy.apply(&i)))
        .collect()
}

fn backbones(c: &mut Criterion) {
    let Some(imgs) = images(16, 224) else {
        eprintln!(
            "benches/vision: no images under {}; skipped",
            assets().display()
        );
        return;
    };
    let mut g = c.benchmark_group("backbone_224");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for net in [LpipsNet::Alex, LpipsNet::Squeeze] {
        let Ok(bb) = Backbone::from_data_dir(net.arch(), &assets()) else {
            continue;
        };
        for batch in [1usize, 16] {
            let x = to_batch(&imgs[..batch], Normalization::ImageNet).expect("batch");
            let taps = net.taps();
            g.throughput(Throughput::Elements(batch as u64));
            g.bench_with_input(BenchmarkId::new(net.arch().name(), batch), &x, |b, x| {
                b.iter(|| bb.forward_taps(x, &taps).expect("forward"))
            });
        }
    }
    g.finish();
}

fn lpips(c: &mut Criterion) {
    let (Some(imgs), Ok(lp)) = (
        images(20, 224),
        Lpips::from_data_dir(LpipsNet::Alex, &assets()),
    ) else {
        eprintln!(
            "benches/vision: no images or weights under {}; skipped",
            assets().display()
        );
        return;
    };
    let mut g = c.benchmark_group("lpips_alex_224");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    g.bench_function("naive_pair", |b| {
        b.iter(|| lp.distance(&imgs[0], &imgs[1]).expect("distance"))
    });
    let feats = lp.features(&imgs).expect("features");
    // A trial: 2 queries against 9 max + 9 min references.
    g.throughput(Throughput::Elements(36));
    g.bench_function("cached_trial_2x18", |b| {
        b.iter(|| lp.distances(&feats[..2], &feats[2..20]).expect("distances"))
    });
    g.finish();

    let Some(small) = images(200, 64) else { return };
    let f = lp.features(&small).expect("features");
    let mut g = c.benchmark_group("lpips_alex_64");
    g.sample_size(10);
    g.throughput(Throughput::Elements((f.len() * f.len()) as u64));
    g.bench_function("matrix_200x200", |b| {
        b.iter(|| lp.distances(&f, &f).expect("matrix"))
    });
    g.finish();
}

criterion_group!(benches, backbones, lpips);
criterion_main!(benches);
