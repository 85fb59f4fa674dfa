//! A participant's session, from start to completion code, behind one service. [`Sessions`] owns the
//! pool and the blocks kept in memory and offers the participant operations; each handler calls one
//! of them. Inside, an operation takes the fast path (a block kept by [`cache`], answers stored by its
//! group-commit writer) where the kept block can vouch for it, and the locked path ([`flow`]) where it
//! cannot; both answer by the same [`rules`].
//!
//! The path of one answer: `web::api::sessions::respond` -> [`Sessions::respond`] -> `rules::check_answer`
//! -> `Cache::check` (the kept block, `rules::is_correct` and `rules::reply_within_block`) ->
//! `Cache::write` -> the writer's `db::responses::insert_many`; or, when the block cannot vouch for it,
//! `flow::respond` -> `db::sessions::answer_context` -> `rules::verdict` -> `db::responses::insert`.

mod cache;
pub mod flow;
pub mod messages;
pub mod rules;

use sqlx::PgPool;

pub use cache::{BLOCK_TTL, LOADS_TTL};
pub use flow::{pseudonym, reevaluate_exclusions, withdraw, Withdrawn};
pub use messages::{
    Answer, Completion, NewSession, PracticeRound, Reply, SessionState, Started, TrialView,
};

use crate::error::AppError;
use crate::states::Stage;
use crate::study::appearance::TrialImages;
use crate::study::recruit::ParticipantKey;
use cache::Cache;
use flow::StartOutcome;

/// The participant operations of this process.
pub struct Sessions {
    pool: PgPool,
    key: ParticipantKey,
    cache: Cache,
}

impl Sessions {
    /// Starts the answer writer on the current Tokio runtime.
    pub fn start(pool: PgPool, key: ParticipantKey) -> Self {
        let cache = Cache::start(pool.clone());
        Self { pool, key, cache }
    }

    /// Starts a session of the study `slug`. An external id that has already started or taken part gets
    /// `already_started`: resuming needs the token its browser was given.
    pub async fn start_session(&self, slug: &str, new: NewSession) -> Result<Started, AppError> {
        let mut tx = self.pool.begin().await?;
        let outcome = flow::start(&mut tx, &self.cache, &self.key, slug, new).await?;
        // A refusal is counted on the session it names, so it commits too.
        tx.commit().await?;
        match outcome {
            StartOutcome::Started(started) => Ok(started),
            StartOutcome::AlreadyStarted => Err(flow::already_started()),
        }
    }

    /// The session's stage and progress.
    pub async fn state(&self, token: &str) -> Result<SessionState, AppError> {
        let mut conn = self.pool.acquire().await?;
        flow::state(&mut conn, token).await
    }

    /// Records consent (one autocommitted statement); repeating it is harmless.
    pub async fn consent(&self, token: &str) -> Result<Stage, AppError> {
        let mut conn = self.pool.acquire().await?;
        flow::consent(&mut conn, token).await
    }

    /// Ends the instructions; the practice (if any) or the trials start.
    pub async fn finish_instructions(&self, token: &str) -> Result<Stage, AppError> {
        let mut tx = self.pool.begin().await?;
        let stage = flow::finish_instructions(&mut tx, token).await?;
        tx.commit().await?;
        Ok(stage)
    }

    /// The session's next trial; `None` when its current stage has none left. The time it was first
    /// served is kept: an answer sooner than the button lock after it is refused.
    pub async fn next_trial(&self, token: &str) -> Result<Option<TrialView>, AppError> {
        if let Some(view) = self.cache.serve(&self.key, token) {
            return Ok(Some(view));
        }
        let mut conn = self.pool.acquire().await?;
        self.cache.load(&mut conn, token).await?;
        match self.cache.serve(&self.key, token) {
            Some(view) => Ok(Some(view)),
            // No trials at this stage, or an unknown session: the database path answers.
            None => flow::next_trial(&mut conn, &self.key, token).await,
        }
    }

    /// The image behind an appearance tag of the trial at `position` (see [`crate::study::appearance`]).
    pub async fn image(
        &self,
        token: &str,
        position: i32,
        tag: &str,
    ) -> Result<Option<String>, AppError> {
        if let Some(found) = self.cache.image(&self.key, token, position, tag) {
            return Ok(found);
        }
        // A trial of an earlier block, or a session served by another process.
        let mut conn = self.pool.acquire().await?;
        let Some(row) = crate::db::sessions::trial_at(&mut conn, token, position).await? else {
            return Ok(None);
        };
        let images = TrialImages {
            max_query: &row.max_query,
            min_query: &row.min_query,
            max_refs: &row.max_refs,
            min_refs: &row.min_refs,
        };
        Ok(images.resolve(&self.key, row.session_id, position, row.max_first, tag))
    }

    /// Takes one answer; replies only once it is stored. Idempotent on the response id.
    pub async fn respond(&self, token: &str, answer: Answer) -> Result<Reply, AppError> {
        rules::check_answer(&answer)?;
        if !self.cache.holds(token) {
            let mut conn = self.pool.acquire().await?;
            self.cache.load(&mut conn, token).await?;
        }
        if let Some((checked, reply)) = self.cache.check(token, &answer)? {
            if self.cache.write(token, checked).await? {
                return Ok(reply);
            }
        }
        // What the block cannot vouch for takes the lock; the session may move on, so its block is
        // read again next time.
        let mut conn = self.pool.acquire().await?;
        let outcome = flow::respond(&mut conn, token, &answer).await;
        self.cache.forget(token);
        outcome
    }

    /// Ends the session after the debrief; finishing again returns the same code. An excluded
    /// session's main trials go back to the pool.
    pub async fn finish(
        &self,
        token: &str,
        feedback: Option<String>,
    ) -> Result<Completion, AppError> {
        let mut tx = self.pool.begin().await?;
        let finished = flow::finish(&mut tx, token, feedback).await?;
        tx.commit().await?;
        if let Some((study, trials)) = &finished.returned {
            self.cache.unassigned(*study, trials);
        }
        Ok(finished.completion)
    }

    /// A study's exclusions were re-evaluated (see [`reevaluate_exclusions`]): its loads are read
    /// again at the next start.
    pub fn loads_changed(&self, study_id: i64) {
        self.cache.loads_changed(study_id);
    }
}
