//! Long work (activation extraction, trial building, observer scoring) as jobs in a PostgreSQL queue,
//! claimed with `FOR UPDATE SKIP LOCKED` by any number of workers.

pub mod worker;

pub use worker::Worker;

use serde_json::Value;

use crate::observer::ScoreSummary;
use crate::states::JobKind;
use crate::stimuli::build::BuildSummary;
use crate::stimuli::image_set::ImagesSummary;

/// What a finished job produced, by its kind; stored as the summary's JSON.
#[derive(Debug, Clone)]
pub enum JobResult {
    Build(BuildSummary),
    Images(ImagesSummary),
    Score(ScoreSummary),
    /// The weight sets fetched.
    Weights(Vec<String>),
}

impl JobResult {
    pub fn to_json(&self) -> serde_json::Result<Value> {
        match self {
            Self::Build(summary) => serde_json::to_value(summary),
            Self::Images(summary) => serde_json::to_value(summary),
            Self::Score(summary) => serde_json::to_value(summary),
            Self::Weights(sets) => serde_json::to_value(sets),
        }
    }

    /// The stored result of a job of `kind`; `None` when it has none or one this version cannot read.
    pub fn read(kind: JobKind, stored: Option<&Value>) -> Option<Self> {
        let value = stored?.clone();
        match kind {
            JobKind::Build => serde_json::from_value(value).ok().map(Self::Build),
            JobKind::Images => serde_json::from_value(value).ok().map(Self::Images),
            JobKind::Score => serde_json::from_value(value).ok().map(Self::Score),
            JobKind::Weights => serde_json::from_value(value).ok().map(Self::Weights),
        }
    }
}
