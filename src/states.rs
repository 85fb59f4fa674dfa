//! The states and kinds the database stores as text, as enums: a session's stage, a study's status,
//! a trial's kind, a job's kind and status. Each is stored as its lowercase name (the schema's
//! `CHECK`s list the same names) and read back through `sqlx::Type`, so no code compares strings.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Defines a text-stored enum with its names, `as_str`, `Display` and `FromStr`.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type)]
        #[serde(rename_all = "lowercase")]
        #[sqlx(type_name = "text", rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(format!(
                        "unknown {} {other:?} (one of: {})",
                        stringify!($name),
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

text_enum! {
    /// Where a session is: consent -> instructions -> practice -> trials -> debrief -> complete.
    #[derive(ToSchema)]
    Stage {
        Consent = "consent",
        Instructions = "instructions",
        Practice = "practice",
        Trials = "trials",
        Debrief = "debrief",
        Complete = "complete",
    }
}

text_enum! {
    /// Whether a study takes participants.
    StudyStatus {
        Draft = "draft",
        Active = "active",
        Paused = "paused",
        Closed = "closed",
    }
}

text_enum! {
    /// What a trial is for: the measured main trials, catch trials that check attention, and the
    /// practice trials with feedback before the main block.
    TrialKind {
        Main = "main",
        Catch = "catch",
        Practice = "practice",
    }
}

text_enum! {
    /// What a queued job does.
    JobKind {
        Weights = "weights",
        Images = "images",
        Build = "build",
        Score = "score",
    }
}

text_enum! {
    /// Where a queued job is.
    JobStatus {
        Queued = "queued",
        Running = "running",
        Done = "done",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

impl JobStatus {
    /// Whether the job has ended (done, failed or cancelled).
    pub fn finished(self) -> bool {
        matches!(self, Self::Done | Self::Failed | Self::Cancelled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_json() {
        for stage in Stage::ALL {
            assert_eq!(stage.as_str().parse::<Stage>(), Ok(*stage));
            assert_eq!(
                serde_json::to_value(stage).unwrap(),
                serde_json::json!(stage.as_str())
            );
        }
        for kind in TrialKind::ALL {
            assert_eq!(kind.to_string().parse::<TrialKind>(), Ok(*kind));
        }
        assert!("Main".parse::<TrialKind>().is_err());
    }
}
