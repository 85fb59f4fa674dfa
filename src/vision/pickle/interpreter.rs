//! The pickle virtual machine: opcodes to a tree of [`Value`]s. Calls (`REDUCE`, `NEWOBJ`) and `BUILD`
//! are kept symbolic; nothing is imported or executed.

use std::collections::BTreeMap;

use super::{PickleError, Result};

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
    pub(super) fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub(super) fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }
    pub(super) fn as_seq(&self) -> Option<&[Value]> {
        match self {
            Value::Tuple(v) | Value::List(v) => Some(v),
            _ => None,
        }
    }
    pub(super) fn is_global(&self, module: &str, name: &str) -> bool {
        matches!(self, Value::Global(m, n) if m == module && n == name)
    }

    /// Key/value pairs of a dict-like value (dict, OrderedDict built by reduce, or either after BUILD).
    pub(super) fn items(&self) -> Option<Vec<(&Value, &Value)>> {
        match self {
            Value::Dict(d) => Some(d.iter().map(|(k, v)| (k, v)).collect()),
            Value::Build(obj, _) => obj.items(),
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

    /// A tuple of sizes (a shape, a stride); `what` names it in the error.
    pub(super) fn usizes(&self, what: &str) -> Result<Vec<usize>> {
        self.as_seq()
            .ok_or_else(|| PickleError::malformed(format!("{what} is not a tuple")))?
            .iter()
            .map(|x| {
                x.as_int()
                    .and_then(|i| usize::try_from(i).ok())
                    .ok_or_else(|| PickleError::malformed(format!("{what} holds a non-integer")))
            })
            .collect()
    }
}

/// Reads one pickle from the start of `data`; returns the value and the number of bytes consumed.
pub fn read_pickle(data: &[u8]) -> Result<(Value, usize)> {
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
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.data.len() - self.pos < n {
            return Err(PickleError::Truncated {
                need: n,
                offset: self.pos,
                have: self.data.len() - self.pos,
            });
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn le<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        b.copy_from_slice(self.take(N)?);
        Ok(b)
    }
    fn len_u32(&mut self) -> Result<usize> {
        Ok(u32::from_le_bytes(self.le()?) as usize)
    }
    fn len_u64(&mut self) -> Result<usize> {
        usize::try_from(u64::from_le_bytes(self.le()?)).map_err(|_| PickleError::LengthOverflow)
    }
    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(PickleError::UnterminatedLine)?;
        self.pos += end + 1;
        std::str::from_utf8(&rest[..end]).map_err(|_| PickleError::NotUtf8("text"))
    }
    fn pop(&mut self) -> Result<Value> {
        self.stack.pop().ok_or(PickleError::StackUnderflow)
    }
    fn top(&mut self) -> Result<&mut Value> {
        self.stack.last_mut().ok_or(PickleError::StackUnderflow)
    }
    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let at = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or(PickleError::MarkNotFound)?;
        let items = self.stack.split_off(at + 1);
        self.stack.pop();
        Ok(items)
    }
    fn text(&mut self, n: usize) -> Result<String> {
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| PickleError::NotUtf8("string"))
    }
    fn memo_put(&mut self, key: u64) -> Result<()> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }
    fn memo_get(&mut self, key: u64) -> Result<()> {
        let v = self
            .memo
            .get(&key)
            .cloned()
            .ok_or(PickleError::MemoKeyNotFound(key))?;
        self.stack.push(v);
        Ok(())
    }
    fn set_items(&mut self, items: Vec<Value>) -> Result<()> {
        if !items.len().is_multiple_of(2) {
            return Err(PickleError::OddSetItems);
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
    fn append(&mut self, items: Vec<Value>) -> Result<()> {
        match self.top()? {
            Value::List(l) => {
                l.extend(items);
                Ok(())
            }
            other => Err(PickleError::AppendToNonList(format!("{other:?}"))),
        }
    }

    fn run(mut self) -> Result<(Value, usize)> {
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
                        _ => Value::Int(l.parse().map_err(|_| bad("INT", l))?),
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
                        .map_err(|_| PickleError::UnsupportedLong(l.to_string()))?;
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
                    let v = l.parse().map_err(|_| bad("FLOAT", l))?;
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
                        return Err(PickleError::StackUnderflow);
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
                        _ => return Err(PickleError::StackGlobal),
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
                    let k = l.parse().map_err(|_| bad("PUT", l))?;
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
                    let k = l.parse().map_err(|_| bad("GET", l))?;
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
                    return Err(PickleError::UnsupportedOpcode {
                        opcode: other,
                        offset: self.pos - 1,
                    })
                }
            }
        }
    }
}

fn bad(opcode: &'static str, text: &str) -> PickleError {
    PickleError::BadArgument {
        opcode,
        text: text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_truncated_pickle_is_an_error() {
        let p = b"\x80\x02}q\x00(X\x03\x00\x00\x00abc";
        assert!(read_pickle(p).is_err());
        assert!(read_pickle(&p[..5]).is_err());
    }
}
