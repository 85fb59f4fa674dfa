//! PyTorch `.pth` checkpoints: the zip serialisation (`archive/data.pkl` + `archive/data/N`) and the
//! legacy one (magic number, protocol, system info, the state dict and its storage keys as five pickles,
//! then the raw storages).

use std::collections::BTreeMap;
use std::io::Read;

use super::interpreter::{read_pickle, Value};
use super::{Elem, PickleError, Result};
use crate::vision::weights::HostTensor;

const LEGACY_MAGIC: u128 = 0x1950a86a20f9469cfc6c;

fn storage_elem(class: &Value) -> Result<Elem> {
    let name = match class {
        Value::Global(_, n) => n.as_str(),
        Value::Str(s) => s.as_str(),
        _ => {
            return Err(PickleError::malformed(format!(
                "unexpected storage type {class:?}"
            )))
        }
    };
    match name {
        "FloatStorage" | "float32" => Ok(Elem::F32),
        "DoubleStorage" | "float64" => Ok(Elem::F64),
        "HalfStorage" | "float16" => Ok(Elem::F16),
        "BFloat16Storage" | "bfloat16" => Ok(Elem::Bf16),
        other => Err(PickleError::NotFloat {
            dtype: other.to_string(),
            what: "tensors",
        }),
    }
}

/// Where a tensor's values are: a storage, and a strided view of it.
struct TorchRef {
    key: String,
    elem: Elem,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

fn torch_ref(v: &Value) -> Result<TorchRef> {
    let Value::Call(f, args) = v else {
        return Err(PickleError::malformed("not a tensor"));
    };
    let args = args
        .as_seq()
        .ok_or_else(|| PickleError::malformed("tensor arguments are not a tuple"))?;
    match &**f {
        Value::Global(m, n) if m == "torch._utils" && n == "_rebuild_parameter" => torch_ref(
            args.first()
                .ok_or_else(|| PickleError::malformed("empty parameter"))?,
        ),
        Value::Global(m, n)
            if m == "torch._utils" && (n == "_rebuild_tensor_v2" || n == "_rebuild_tensor") =>
        {
            if args.len() < 4 {
                return Err(PickleError::malformed("short tensor record"));
            }
            let Value::PersistentId(pid) = &args[0] else {
                return Err(PickleError::malformed("tensor without storage"));
            };
            let pid = pid
                .as_seq()
                .ok_or_else(|| PickleError::malformed("storage id is not a tuple"))?;
            if pid.len() < 3 {
                return Err(PickleError::malformed("short storage id"));
            }
            let elem = storage_elem(&pid[1])?;
            let key = match &pid[2] {
                Value::Str(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                other => return Err(PickleError::malformed(format!("bad storage key {other:?}"))),
            };
            let offset = args[1]
                .as_int()
                .and_then(|i| usize::try_from(i).ok())
                .ok_or_else(|| PickleError::malformed("bad storage offset"))?;
            Ok(TorchRef {
                key,
                elem,
                offset,
                shape: args[2].usizes("tensor size")?,
                stride: args[3].usizes("tensor stride")?,
            })
        }
        other => Err(PickleError::malformed(format!(
            "unsupported tensor constructor {other:?}"
        ))),
    }
}

/// Gathers a strided view out of raw storage bytes into a contiguous f32 tensor.
fn gather(r: &TorchRef, storage: &[u8]) -> Result<HostTensor> {
    if r.shape.len() != r.stride.len() {
        return Err(PickleError::malformed("size and stride ranks differ"));
    }
    let es = r.elem.size();
    let numel: usize = r.shape.iter().product();
    let max_index = r.offset
        + r.shape
            .iter()
            .zip(&r.stride)
            .map(|(&n, &s)| n.saturating_sub(1) * s)
            .sum::<usize>();
    if numel > 0 && (max_index + 1) * es > storage.len() {
        return Err(PickleError::StorageTooSmall {
            key: r.key.clone(),
            have: storage.len(),
            need: (max_index + 1) * es,
        });
    }
    let mut data = Vec::with_capacity(numel);
    let mut idx = vec![0usize; r.shape.len()];
    for _ in 0..numel {
        let at = r.offset + idx.iter().zip(&r.stride).map(|(i, s)| i * s).sum::<usize>();
        data.push(r.elem.read(&storage[at * es..], false));
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < r.shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok(HostTensor {
        shape: r.shape.clone(),
        data,
    })
}

fn torch_state_dict(root: &Value) -> Result<Vec<(String, TorchRef)>> {
    // A checkpoint may wrap the state dict, e.g. {"state_dict": {...}}.
    let items = root.items().ok_or(PickleError::NoStateDict)?;
    let mut out = Vec::new();
    for (k, v) in items {
        let name = k
            .as_str()
            .ok_or_else(|| PickleError::malformed("non-string key in state dict"))?
            .to_string();
        if let Ok(r) = torch_ref(v) {
            out.push((name, r));
        } else if v.items().is_some() {
            for (sub, r) in torch_state_dict(v)? {
                out.push((format!("{name}.{sub}"), r));
            }
        }
    }
    Ok(out)
}

fn is_legacy_magic(bytes: &[u8]) -> bool {
    let mut a = [0u8; 16];
    bytes.len() <= 16 && {
        a[..bytes.len()].copy_from_slice(bytes);
        u128::from_le_bytes(a) == LEGACY_MAGIC
    }
}

/// Reads a PyTorch `.pth` in the legacy (pre-zip) serialisation.
pub fn read_torch_legacy(data: &[u8]) -> Result<BTreeMap<String, HostTensor>> {
    let mut pos = 0;
    let mut next = |what: &str| -> Result<Value> {
        let (v, n) = read_pickle(&data[pos..]).map_err(|e| e.within(what))?;
        pos += n;
        Ok(v)
    };
    match next("magic number")? {
        Value::BigInt(b) if is_legacy_magic(&b) => {}
        _ => return Err(PickleError::WrongMagic),
    }
    next("protocol version")?;
    next("system info")?;
    let root = next("state dict")?;
    let keys = next("storage keys")?;
    let refs = torch_state_dict(&root)?;
    let keys: Vec<String> = keys
        .as_seq()
        .ok_or_else(|| PickleError::malformed("storage keys are not a list"))?
        .iter()
        .map(|k| {
            k.as_str()
                .map(str::to_string)
                .ok_or_else(|| PickleError::malformed("bad storage key"))
        })
        .collect::<Result<_>>()?;
    let mut storages: BTreeMap<String, &[u8]> = BTreeMap::new();
    for key in keys {
        let elem = refs
            .iter()
            .find(|(_, r)| r.key == key)
            .map(|(_, r)| r.elem)
            .unwrap_or(Elem::F32);
        let Some(head) = data.get(pos..pos + 8) else {
            return Err(PickleError::StorageHeaderMissing(key));
        };
        let mut b = [0u8; 8];
        b.copy_from_slice(head);
        let numel = usize::try_from(u64::from_le_bytes(b))
            .map_err(|_| PickleError::malformed("bad storage size"))?;
        pos += 8;
        let Some(bytes) = numel
            .checked_mul(elem.size())
            .filter(|&n| n <= data.len() - pos)
        else {
            return Err(PickleError::StorageTruncated {
                key,
                elements: numel,
            });
        };
        storages.insert(key, &data[pos..pos + bytes]);
        pos += bytes;
    }
    let mut out = BTreeMap::new();
    for (name, r) in refs {
        let tensor = match storages.get(&r.key) {
            Some(s) => gather(&r, s),
            None => Err(PickleError::StorageMissing(r.key.clone())),
        };
        let tensor = tensor.map_err(|e| e.within(format!("tensor `{name}`")))?;
        out.insert(name, tensor);
    }
    Ok(out)
}

/// Reads a PyTorch `.pth` in the zip serialisation (`archive/data.pkl` + `archive/data/N`).
pub fn read_torch_zip(data: &[u8]) -> Result<BTreeMap<String, HostTensor>> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(data))?;
    let pkl_name = zip
        .file_names()
        .filter_map(|n| n.ok())
        .find(|n| n.ends_with("data.pkl"))
        .map(|n| n.to_string())
        .ok_or(PickleError::NoDataPkl)?;
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    let read = |zip: &mut zip::ZipArchive<_>, name: &str| -> Result<Vec<u8>> {
        let mut f = zip.by_name(name).map_err(|source| PickleError::ZipEntry {
            name: name.to_string(),
            source,
        })?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map_err(|source| PickleError::ZipRead {
                name: name.to_string(),
                source,
            })?;
        Ok(buf)
    };
    let pkl = read(&mut zip, &pkl_name)?;
    let (root, _) = read_pickle(&pkl)?;
    let mut out = BTreeMap::new();
    for (name, r) in torch_state_dict(&root)? {
        let tensor = read(&mut zip, &format!("{prefix}data/{}", r.key))
            .and_then(|storage| gather(&r, &storage))
            .map_err(|e| e.within(format!("tensor `{name}`")))?;
        out.insert(name, tensor);
    }
    Ok(out)
}

/// True when the bytes start with a legacy PyTorch magic-number pickle.
pub fn is_torch_legacy(data: &[u8]) -> bool {
    matches!(read_pickle(data), Ok((Value::BigInt(b), _)) if is_legacy_magic(&b))
}
