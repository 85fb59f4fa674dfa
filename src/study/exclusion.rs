//! Session exclusion (DESIGN 1.3): each rule checked against the study's thresholds, with its detail kept.
//! One participation per external id and study is not a check here: the schema's unique key enforces it.

use serde::{Deserialize, Serialize};

use super::config::ExclusionThresholds;
pub use crate::db::sessions::SessionSummary;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub rule: String,
    pub passed: bool,
    pub detail: String,
}

/// Every rule checked against the thresholds, with its detail; the session is excluded when any fails.
pub fn evaluate(s: &SessionSummary, t: &ExclusionThresholds) -> Vec<Check> {
    let check = |rule: &str, passed: bool, detail: String| Check {
        rule: rule.into(),
        passed,
        detail,
    };
    let catch_accuracy = (s.catch_total > 0).then(|| s.catch_correct as f64 / s.catch_total as f64);
    let fewest = s.chose_first.min(s.chose_second);
    let seconds =
        |secs: Option<f64>| secs.map_or("not recorded".to_string(), |v| format!("{v:.1} s"));
    vec![
            check(
                "catch_accuracy",
                catch_accuracy.is_none_or(|a| a >= t.min_catch_accuracy),
                match catch_accuracy {
                    Some(a) => format!(
                        "{} of {} catch trials correct ({a:.2}; at least {:.2} needed)",
                        s.catch_correct, s.catch_total, t.min_catch_accuracy
                    ),
                    None => "no catch trials".into(),
                },
            ),
            check(
                "answers_per_position",
                fewest >= t.min_answers_per_position,
                format!(
                    "chose the upper query {} and the lower {} times (at least {} each needed)",
                    s.chose_first, s.chose_second, t.min_answers_per_position
                ),
            ),
            check(
                "instructions_time",
                s.instructions_secs
                    .is_some_and(|s| s >= t.min_instructions_secs),
                format!(
                    "{} on the instructions (at least {} s needed)",
                    seconds(s.instructions_secs),
                    t.min_instructions_secs
                ),
            ),
            check(
                "total_time",
                s.total_secs
                    .is_some_and(|s| s >= t.min_total_secs && s <= t.max_total_secs),
                format!(
                    "{} in total (between {} s and {} s allowed)",
                    seconds(s.total_secs),
                    t.min_total_secs,
                    t.max_total_secs
                ),
            ),
            check(
                "practice_attempts",
                s.practice_attempts <= t.max_practice_attempts,
                format!(
                    "{} practice rounds (at most {} allowed)",
                    s.practice_attempts, t.max_practice_attempts
                ),
            ),
            check(
                "answer_timing",
                t.max_fast_answers.is_none_or(|max| s.fast_answers <= max),
                match t.max_fast_answers {
                    Some(max) => format!(
                        "{} answers came sooner than the {} ms button lock allows (at most {max} allowed)",
                        s.fast_answers, s.lock_ms
                    ),
                    None => "not checked".into(),
                },
            ),
        ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session that passes every IMI default with no margin to spare.
    fn just_passing() -> SessionSummary {
        SessionSummary {
            catch_total: 5,
            catch_correct: 4,
            chose_first: 5,
            chose_second: 40,
            instructions_secs: Some(15.0),
            total_secs: Some(135.0),
            practice_attempts: 3,
            fast_answers: 0,
            lock_ms: 1500,
        }
    }

    fn failed(summary: &SessionSummary) -> Vec<String> {
        evaluate(summary, &ExclusionThresholds::default())
            .into_iter()
            .filter(|c| !c.passed)
            .map(|c| c.rule)
            .collect()
    }

    #[test]
    fn a_session_at_every_threshold_passes() {
        assert_eq!(failed(&just_passing()), Vec::<String>::new());
        let longest = SessionSummary {
            total_secs: Some(2500.0),
            ..just_passing()
        };
        assert_eq!(failed(&longest), Vec::<String>::new());
    }

    #[test]
    fn each_rule_fails_just_beyond_its_threshold() {
        let cases = [
            (
                "catch_accuracy",
                SessionSummary {
                    catch_correct: 3,
                    ..just_passing()
                },
            ),
            (
                "answers_per_position",
                SessionSummary {
                    chose_first: 4,
                    ..just_passing()
                },
            ),
            (
                "answers_per_position",
                SessionSummary {
                    chose_second: 4,
                    chose_first: 40,
                    ..just_passing()
                },
            ),
            (
                "instructions_time",
                SessionSummary {
                    instructions_secs: Some(14.9),
                    ..just_passing()
                },
            ),
            (
                "instructions_time",
                SessionSummary {
                    instructions_secs: None,
                    ..just_passing()
                },
            ),
            (
                "total_time",
                SessionSummary {
                    total_secs: Some(134.9),
                    ..just_passing()
                },
            ),
            (
                "total_time",
                SessionSummary {
                    total_secs: Some(2500.1),
                    ..just_passing()
                },
            ),
            (
                "practice_attempts",
                SessionSummary {
                    practice_attempts: 4,
                    ..just_passing()
                },
            ),
            (
                "answer_timing",
                SessionSummary {
                    fast_answers: 1,
                    ..just_passing()
                },
            ),
        ];
        for (rule, summary) in cases {
            assert_eq!(failed(&summary), vec![rule.to_string()], "{summary:?}");
        }
    }

    #[test]
    fn answer_timing_is_not_checked_where_it_is_turned_off() {
        let off = ExclusionThresholds {
            max_fast_answers: None,
            ..ExclusionThresholds::default()
        };
        let summary = SessionSummary {
            fast_answers: 40,
            ..just_passing()
        };
        let timing = evaluate(&summary, &off)
            .into_iter()
            .find(|c| c.rule == "answer_timing")
            .unwrap();
        assert!(timing.passed);
        assert_eq!(timing.detail, "not checked");
    }

    #[test]
    fn thresholds_are_the_studys_own() {
        let strict = ExclusionThresholds {
            min_catch_accuracy: 1.0,
            ..ExclusionThresholds::default()
        };
        let checks = evaluate(&just_passing(), &strict);
        assert!(!checks[0].passed);
        assert_eq!(
            checks[0].detail,
            "4 of 5 catch trials correct (0.80; at least 1.00 needed)"
        );
    }
}
