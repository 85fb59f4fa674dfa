//! Study settings the tests share.

use meilab::study::config::{ExclusionThresholds, PracticeConfig};
use meilab::study::StudyConfig;

/// Thresholds a session answered by a test in a few milliseconds passes, if it gets the catch trials right.
pub fn lenient() -> ExclusionThresholds {
    ExclusionThresholds {
        min_answers_per_position: 0,
        min_instructions_secs: 0.0,
        min_total_secs: 0.0,
        ..ExclusionThresholds::default()
    }
}

/// Four main trials and one catch trial, no button lock, lenient exclusion.
pub fn small_study() -> StudyConfig {
    StudyConfig {
        trials_per_session: 4,
        catch_per_session: 1,
        lock_ms: 0,
        exclusion: lenient(),
        ..StudyConfig::default()
    }
}

/// Sixteen main trials and two catch trials, no practice, no button lock, and the given exclusion.
pub fn no_practice_study(exclusion: ExclusionThresholds) -> StudyConfig {
    StudyConfig {
        trials_per_session: 16,
        catch_per_session: 2,
        lock_ms: 0,
        practice: PracticeConfig {
            trials: 0,
            max_attempts: 1,
        },
        exclusion,
        ..StudyConfig::default()
    }
}
