//! The rules of an answer, with no I/O: what is a valid answer, whether it is correct, what the
//! participant is told, and where the session goes when a block ends. The fast path (a block kept in
//! memory) and the locked path (the session row locked in PostgreSQL) both answer by these.

use super::messages::{Answer, PracticeRound, Reply};
use crate::db::sessions::AnswerContext;
use crate::error::AppError;
use crate::states::Stage;

/// Refuses values out of range before anything is read.
pub fn check_answer(answer: &Answer) -> Result<(), AppError> {
    if answer.position < 0 {
        return Err(AppError::invalid(
            "invalid_position",
            "position must not be negative",
        ));
    }
    if !(0..=1).contains(&answer.chosen) {
        return Err(AppError::invalid("invalid_choice", "chosen must be 0 or 1"));
    }
    if !(1..=3).contains(&answer.confidence) {
        return Err(AppError::invalid(
            "invalid_confidence",
            "confidence must be 1, 2 or 3",
        ));
    }
    if !(0..=3_600_000).contains(&answer.rt_ms) {
        return Err(AppError::invalid(
            "invalid_rt",
            "rt_ms must be between 0 and 3600000",
        ));
    }
    Ok(())
}

/// An answer is correct when it chose the max query: the first shown when `max_first`.
pub fn is_correct(chosen: i64, max_first: bool) -> bool {
    (chosen == 0) == max_first
}

/// Whether the participant is told if they were right: always in practice, in the main block only
/// when the study gives feedback.
fn told(stage: Stage, feedback: bool, correct: bool) -> Option<bool> {
    (stage == Stage::Practice || feedback).then_some(correct)
}

/// The reply to an answer that leaves trials in its block: the session stays where it is.
pub fn reply_within_block(stage: Stage, feedback: bool, correct: bool, next: Option<i32>) -> Reply {
    Reply {
        correct: told(stage, feedback, correct),
        next_position: next,
        stage,
        practice_round: None,
    }
}

/// Where a session goes after the last answer of its current block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterBlock {
    /// Practice passed (or out of attempts): the main trials start.
    Trials,
    /// Practice failed with attempts left: another round.
    AnotherRound,
    /// The main trials are done.
    Debrief,
}

/// The practice round is passed when every answer was right; after `max_attempts` rounds the main
/// trials start anyway (the exclusion rules may count the attempts).
pub fn after_block(stage: Stage, all_correct: bool, attempt: i32, max_attempts: i64) -> AfterBlock {
    match stage {
        Stage::Practice if all_correct || i64::from(attempt) >= max_attempts => AfterBlock::Trials,
        Stage::Practice => AfterBlock::AnotherRound,
        _ => AfterBlock::Debrief,
    }
}

/// The reply to the answer that ends a block, once the session has moved on to `stage` with its
/// next trial at `next_position`.
pub fn reply_at_block_end(
    answered_in: Stage,
    feedback: bool,
    correct: bool,
    round: Option<PracticeRound>,
    stage: Stage,
    next_position: Option<i32>,
) -> Reply {
    Reply {
        correct: told(answered_in, feedback, correct),
        next_position,
        stage,
        practice_round: round,
    }
}

/// What the locked path found for an answer.
pub enum Verdict {
    /// Stored before under the same response id: its reply.
    Replay(Reply),
    /// A new answer to the current trial of the block, and whether it is correct.
    New { correct: bool },
}

/// Checks an answer against its session as read with the session locked: a replay of a stored one,
/// a new one, or the refusal.
pub fn verdict(ctx: &AnswerContext, session_id: i64, answer: &Answer) -> Result<Verdict, AppError> {
    if let Some(stored) = &ctx.stored {
        let same = stored.session_id == session_id
            && stored.position == answer.position
            && i64::from(stored.chosen) == answer.chosen
            && i64::from(stored.confidence) == answer.confidence;
        if !same {
            return Err(AppError::conflict(
                "response_id_reused",
                "this response id was already used for a different answer",
            ));
        }
        return serde_json::from_value(stored.reply.clone())
            .map(Verdict::Replay)
            .map_err(|e| AppError::Internal(e.into()));
    }
    if !matches!(ctx.stage, Stage::Practice | Stage::Trials) {
        return Err(AppError::conflict(
            "wrong_stage",
            format!(
                "the session is at the {} stage and takes no answers",
                ctx.stage
            ),
        ));
    }
    let Some(max_first) = ctx.max_first else {
        return Err(AppError::invalid(
            "unknown_position",
            "no trial is assigned at this position",
        ));
    };
    if ctx.answered {
        return Err(AppError::conflict(
            "already_answered",
            "this trial was already answered",
        ));
    }
    if ctx.expected != Some(answer.position) {
        return Err(AppError::conflict(
            "out_of_order",
            "answer the trials in order: this is not the current trial",
        ));
    }
    Ok(Verdict::New {
        correct: is_correct(answer.chosen, max_first),
    })
}

/// The refusal of an answer sent sooner than the button lock allows after its trial was served.
pub fn answered_too_soon(lock_ms: i64) -> AppError {
    AppError::invalid(
        "answered_too_soon",
        format!("answers are taken no sooner than {lock_ms} ms after the trial was served"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_max_query_is_the_right_choice_wherever_it_is_shown() {
        assert!(is_correct(0, true));
        assert!(is_correct(1, false));
        assert!(!is_correct(1, true));
        assert!(!is_correct(0, false));
    }

    #[test]
    fn practice_always_tells_and_the_main_block_only_with_feedback() {
        let practice = reply_within_block(Stage::Practice, false, true, Some(7));
        assert_eq!(practice.correct, Some(true));
        assert_eq!(practice.next_position, Some(7));
        assert_eq!(
            reply_within_block(Stage::Trials, false, true, Some(1)).correct,
            None
        );
        assert_eq!(
            reply_within_block(Stage::Trials, true, false, Some(1)).correct,
            Some(false)
        );
    }

    #[test]
    fn a_failed_practice_round_repeats_until_the_attempts_run_out() {
        assert_eq!(after_block(Stage::Practice, true, 1, 3), AfterBlock::Trials);
        assert_eq!(
            after_block(Stage::Practice, false, 1, 3),
            AfterBlock::AnotherRound
        );
        assert_eq!(
            after_block(Stage::Practice, false, 3, 3),
            AfterBlock::Trials
        );
        assert_eq!(after_block(Stage::Trials, false, 0, 3), AfterBlock::Debrief);
    }
}
