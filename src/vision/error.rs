//! The error type of the vision engine.

use std::path::PathBuf;

/// Everything that can go wrong in `vision`. Messages name the file, tensor or layer involved.
#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a readable weight file: {reason}")]
    WeightFormat { path: PathBuf, reason: String },
    #[error("{path}: tensor `{tensor}` is missing (expected shape {expected:?})")]
    MissingTensor {
        path: PathBuf,
        tensor: String,
        expected: Vec<usize>,
    },
    #[error("{path}: tensor `{tensor}` has shape {found:?}, expected {expected:?}")]
    WrongShape {
        path: PathBuf,
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{path}: tensor `{tensor}` has dtype {found}, expected a float type")]
    WrongDtype {
        path: PathBuf,
        tensor: String,
        found: String,
    },
    #[error("{path}: tensor `{tensor}`: {reason}")]
    BadTensor {
        path: PathBuf,
        tensor: String,
        reason: String,
    },
    #[error("{path}: SHA-256 mismatch for `{what}`: expected {expected}, found {found}")]
    Checksum {
        path: PathBuf,
        what: String,
        expected: String,
        found: String,
    },
    #[error("cannot decode image {name}: {reason}")]
    Image { name: String, reason: String },
    #[error(
        "unknown architecture `{0}` (known: alexnet, vgg16, squeezenet1_1, resnet18, resnet50)"
    )]
    UnknownArch(String),
    #[error("unknown LPIPS net `{0}` (known: alex, vgg, squeeze)")]
    UnknownNet(String),
    #[error("{arch} has no tap `{tap}` (taps: {known})")]
    UnknownTap {
        arch: String,
        tap: String,
        known: String,
    },
    #[error("no weights for {what} in {searched}; run `meilab weights fetch` or `meilab weights import FILE --as {name}`")]
    WeightsNotFound {
        what: String,
        name: String,
        searched: String,
    },
    #[error("invalid input: {0}")]
    Input(String),
    #[error("fetching weights failed: {0}")]
    Fetch(String),
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = VisionError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> VisionError {
    let path = path.into();
    move |source| VisionError::Io { path, source }
}
