//! The locked path: each participant operation against PostgreSQL, with the session row locked where
//! it changes the session, so a participant's retries and concurrent requests are handled one at a
//! time. Each function runs in the caller's transaction; `respond` commits its own. The rules it
//! applies are [`super::rules`]; [`super::Sessions`] decides when this path is taken.

use rand::Rng;
use sqlx::PgConnection;

use super::cache::Cache;
use super::messages::{
    Answer, Completion, NewSession, PracticeRound, Reply, SessionState, Started, TrialView,
};
use super::rules::{self, AfterBlock, Verdict};
use crate::db::{self, sessions::Session};
use crate::error::AppError;
use crate::states::{Stage, StudyStatus, TrialKind};
use crate::study::appearance::TrialImages;
use crate::study::exclusion;
use crate::study::recruit::{ParticipantKey, Source};
use crate::study::schedule::{self, practice_round, session_schedule};
use crate::study::{Study, StudyConfig};

const MAX_FEEDBACK_LEN: usize = 5000;
const MAX_EXTERNAL_ID_LEN: usize = 200;
/// Recruitment parameters are a few short strings (DESIGN 2.2); anything larger is not a platform's.
const MAX_PARAMS: usize = 16;
const MAX_PARAM_NAME_LEN: usize = 64;
const MAX_PARAM_VALUE_LEN: usize = 200;

/// What a start request led to.
#[derive(Debug)]
pub(super) enum StartOutcome {
    Started(Started),
    /// The external id already has a session (started or finished). Ids are not secrets, so its token
    /// is not handed out: the participant's own browser holds it. The refusal was counted on that
    /// session, so the caller commits and then answers with [`already_started`].
    AlreadyStarted,
}

/// The one refusal for an external id that has started or finished, alike, so it tells an outsider nothing.
pub(super) fn already_started() -> AppError {
    AppError::conflict(
        "already_started",
        "this participant id has already started or taken part in this study; if you started it, \
         please continue in the browser where you began (contact the researchers if you cannot)",
    )
}

/// Starts a session. An external id that already has one gets no session: resuming needs the token
/// the participant's browser was given (`GET /sessions/{token}`), not the id alone.
pub(super) async fn start(
    conn: &mut PgConnection,
    cache: &Cache,
    key: &ParticipantKey,
    slug: &str,
    new: NewSession,
) -> Result<StartOutcome, AppError> {
    let study = active_study(conn, slug).await?;
    let external_id = new.external_id.as_deref().map(str::trim);
    if external_id.is_some_and(|id| id.chars().count() > MAX_EXTERNAL_ID_LEN) {
        return Err(AppError::invalid(
            "invalid_external_id",
            "external_id is longer than 200 characters",
        ));
    }
    check_params(&new.params)?;
    let external_id = external_id.and_then(|id| pseudonym(key, study.id, id));
    if let Some(id) = &external_id {
        if db::sessions::refuse_start(conn, study.id, id).await? {
            return Ok(StartOutcome::AlreadyStarted);
        }
    }
    let source = new.source.unwrap_or(Source::Link);
    let token = hex::encode(rand::rng().random::<[u8; 32]>());
    let params = serde_json::Value::Object(new.params);
    let Some(session_id) = db::sessions::insert(
        conn,
        study.id,
        &token,
        external_id.as_deref(),
        source.as_str(),
        &params,
    )
    .await?
    else {
        // The same external id was registered concurrently.
        if let Some(id) = &external_id {
            db::sessions::refuse_start(conn, study.id, id).await?;
        }
        return Ok(StartOutcome::AlreadyStarted);
    };

    let config = &study.config;
    let mut rng = schedule::rng_for(config.seed, session_id, 0);
    let planned = cache
        .schedule(conn, study.id, config.release_after_secs, |main, catch| {
            (!main.is_empty()).then(|| {
                session_schedule(
                    main,
                    catch,
                    config.trials_per_session as usize,
                    config.catch_per_session as usize,
                    &mut rng,
                )
            })
        })
        .await?;
    let Some(slots) = planned else {
        return Err(AppError::conflict(
            "no_trials",
            "this study has no trials yet",
        ));
    };
    db::sessions::assign_main(conn, session_id, &slots).await?;
    Ok(StartOutcome::Started(Started {
        token,
        stage: Stage::Consent,
    }))
}

/// The stored form of an external id: the keyed pseudonym of the trimmed id; `None` for a blank one.
pub fn pseudonym(key: &ParticipantKey, study_id: i64, external_id: &str) -> Option<String> {
    let id = external_id.trim();
    (!id.is_empty()).then(|| key.pseudonym(study_id, id))
}

/// A participant's withdrawal: what was deleted of their session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawn {
    pub stage: Stage,
    pub deleted: db::sessions::Deleted,
}

/// Deletes the session of `external_id` in the study `slug` with everything keyed by it, whatever its
/// stage; `None` if that id never took part. Runs in the caller's transaction.
pub async fn withdraw(
    conn: &mut PgConnection,
    key: &ParticipantKey,
    slug: &str,
    external_id: &str,
) -> Result<Option<Withdrawn>, AppError> {
    let study = crate::study::by_slug(conn, slug)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no study named {slug}")))?;
    let Some(hash) = pseudonym(key, study.id, external_id) else {
        return Err(AppError::invalid(
            "invalid_external_id",
            "the external id is empty",
        ));
    };
    let Some(session) = db::sessions::lock_by_external_id(conn, study.id, &hash).await? else {
        return Ok(None);
    };
    let deleted = db::sessions::delete(conn, session.id).await?;
    Ok(Some(Withdrawn {
        stage: session.stage,
        deleted,
    }))
}

/// Flat string parameters only; PostgreSQL cannot store a NUL character in text or JSONB.
fn check_params(params: &serde_json::Map<String, serde_json::Value>) -> Result<(), AppError> {
    let invalid = |message: String| Err(AppError::invalid("invalid_params", message));
    if params.len() > MAX_PARAMS {
        return invalid(format!("at most {MAX_PARAMS} params are kept"));
    }
    for (name, value) in params {
        if name.is_empty() || name.chars().count() > MAX_PARAM_NAME_LEN || name.contains('\0') {
            return invalid(format!(
                "param names are 1 to {MAX_PARAM_NAME_LEN} characters without NUL"
            ));
        }
        match value.as_str() {
            Some(v) if v.chars().count() <= MAX_PARAM_VALUE_LEN && !v.contains('\0') => {}
            _ => {
                return invalid(format!(
                "param values are strings of at most {MAX_PARAM_VALUE_LEN} characters without NUL"
            ))
            }
        }
    }
    Ok(())
}

async fn active_study(conn: &mut PgConnection, slug: &str) -> Result<Study, AppError> {
    let study = crate::study::by_slug(conn, slug)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no study named {slug}")))?;
    if study.status != StudyStatus::Active {
        return Err(AppError::conflict(
            "study_not_active",
            "this study is not open for participants at the moment",
        ));
    }
    Ok(study)
}

/// The session of `token`, locked, with its study.
async fn locked_session(
    conn: &mut PgConnection,
    token: &str,
) -> Result<(Session, Study), AppError> {
    let session = db::sessions::by_token_for_update(conn, token)
        .await?
        .ok_or_else(unknown_session)?;
    let study = crate::study::by_id(conn, session.study_id)
        .await?
        .ok_or_else(|| AppError::NotFound("unknown study".into()))?;
    Ok((session, study))
}

fn unknown_session() -> AppError {
    AppError::NotFound("unknown session".into())
}

pub(super) async fn state(conn: &mut PgConnection, token: &str) -> Result<SessionState, AppError> {
    let session = db::sessions::by_token(conn, token)
        .await?
        .ok_or_else(unknown_session)?;
    let answered = db::sessions::main_answered(conn, session.id, session.main_total).await?;
    Ok(SessionState {
        stage: session.stage,
        answered,
        total: session.main_total,
        completion_code: session.completion_code,
    })
}

/// Records consent; repeating it later is harmless.
pub(super) async fn consent(conn: &mut PgConnection, token: &str) -> Result<Stage, AppError> {
    if let Some(stage) = db::sessions::consent(conn, token).await? {
        return Ok(stage);
    }
    let session = db::sessions::by_token(conn, token)
        .await?
        .ok_or_else(unknown_session)?;
    Ok(session.stage)
}

/// Ends the instructions (their time is recorded) and starts the practice, if the study has one.
pub(super) async fn finish_instructions(
    conn: &mut PgConnection,
    token: &str,
) -> Result<Stage, AppError> {
    let (session, study) = locked_session(conn, token).await?;
    match session.stage {
        Stage::Consent => Err(AppError::conflict("wrong_stage", "consent comes first")),
        Stage::Instructions => {
            let practice = db::trials::ids(conn, study.id, TrialKind::Practice).await?;
            let next = if study.config.practice.trials > 0 && !practice.is_empty() {
                start_practice_round(
                    conn,
                    session.id,
                    session.main_total,
                    &study.config,
                    &practice,
                )
                .await?;
                Stage::Practice
            } else {
                Stage::Trials
            };
            db::sessions::advance(conn, session.id, next).await?;
            Ok(next)
        }
        _ => Ok(session.stage),
    }
}

/// Assigns a new practice round after everything assigned so far; returns its first position.
async fn start_practice_round(
    conn: &mut PgConnection,
    session_id: i64,
    main_total: i32,
    config: &StudyConfig,
    practice: &[i64],
) -> Result<i32, AppError> {
    let (attempt, end) = db::sessions::next_practice_round(conn, session_id).await?;
    let first = end.max(main_total);
    let mut rng = schedule::rng_for(config.seed, session_id, attempt as u64);
    let slots = practice_round(practice, config.practice.trials as usize, &mut rng);
    db::sessions::assign(conn, session_id, first, attempt, &slots).await?;
    Ok(first)
}

fn config_of(json: serde_json::Value) -> Result<StudyConfig, AppError> {
    StudyConfig::from_json(json)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("invalid study configuration: {e}")))
}

/// The session's next trial in its current block, read from the database.
pub(super) async fn next_trial(
    conn: &mut PgConnection,
    key: &ParticipantKey,
    token: &str,
) -> Result<Option<TrialView>, AppError> {
    let next = db::sessions::next_trial(conn, token)
        .await?
        .ok_or_else(unknown_session)?;
    let Some(trial) = next.trial else {
        return Ok(None);
    };
    let config = config_of(next.config)?;
    let images = TrialImages {
        max_query: &trial.max_query,
        min_query: &trial.min_query,
        max_refs: &trial.max_refs,
        min_refs: &trial.min_refs,
    };
    let urls = images.urls(key, token, next.session_id, trial.position);
    Ok(Some(TrialView {
        position: trial.position,
        // Catch trials look like any other trial.
        kind: shown_kind(trial.kind),
        min_refs: urls.min_refs,
        max_refs: urls.max_refs,
        queries: urls.queries,
        lock_ms: config.lock_ms,
        max_side: config.max_side.as_str(),
        answered: next.answered,
        total: next.main_total,
        attempt: trial.attempt,
    }))
}

/// The kind a participant is shown: catch trials look like main trials.
pub(super) fn shown_kind(kind: TrialKind) -> &'static str {
    match kind {
        TrialKind::Practice => "practice",
        TrialKind::Main | TrialKind::Catch => "main",
    }
}

/// Takes one answer with the session locked and stores it with its reply; acknowledged only once
/// committed. This is the authoritative path: it tells replays, errors and races apart and moves the
/// session on at the end of a block. Retried answers get their stored reply.
pub(super) async fn respond(
    conn: &mut PgConnection,
    token: &str,
    answer: &Answer,
) -> Result<Reply, AppError> {
    // The answer writer takes no lock, so a copy of this answer sent there may commit between the
    // locked read and the insert; a second attempt then finds it stored.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        match respond_locked(&mut tx, token, answer).await {
            Ok(reply) => {
                tx.commit().await?;
                return Ok(reply);
            }
            Err(AppError::Internal(e))
                if attempts < 3
                    && e.downcast_ref::<sqlx::Error>()
                        .is_some_and(is_unique_violation) => {}
            Err(e) => return Err(e),
        }
    }
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// The answer with the session locked, in the caller's transaction: moves the session on when the
/// answer ends a practice round or the main block.
async fn respond_locked(
    conn: &mut PgConnection,
    token: &str,
    answer: &Answer,
) -> Result<Reply, AppError> {
    let session_id = db::sessions::lock(conn, token)
        .await?
        .ok_or_else(unknown_session)?;
    let ctx =
        db::sessions::answer_context(conn, session_id, answer.position, answer.response_id).await?;
    let correct = match rules::verdict(&ctx, session_id, answer)? {
        Verdict::Replay(reply) => return Ok(reply),
        Verdict::New { correct } => correct,
    };
    let config = config_of(ctx.config)?;
    let reply = if ctx.block_answered + 1 < ctx.block_assigned {
        rules::reply_within_block(ctx.stage, config.feedback, correct, ctx.following)
    } else {
        let all_correct = ctx.block_correct + i64::from(correct) == ctx.block_assigned;
        let round = (ctx.stage == Stage::Practice).then_some(PracticeRound {
            attempt: ctx.practice_attempts,
            all_correct,
        });
        let after = rules::after_block(
            ctx.stage,
            all_correct,
            ctx.practice_attempts,
            config.practice.max_attempts,
        );
        let (stage, next_position) = match after {
            AfterBlock::Trials => {
                let first =
                    db::sessions::first_unanswered_main(conn, session_id, ctx.main_total).await?;
                (Stage::Trials, first)
            }
            AfterBlock::AnotherRound => {
                let practice = db::trials::ids(conn, ctx.study_id, TrialKind::Practice).await?;
                let first =
                    start_practice_round(conn, session_id, ctx.main_total, &config, &practice)
                        .await?;
                (Stage::Practice, Some(first))
            }
            AfterBlock::Debrief => (Stage::Debrief, None),
        };
        if stage != ctx.stage {
            db::sessions::advance(conn, session_id, stage).await?;
        }
        rules::reply_at_block_end(
            ctx.stage,
            config.feedback,
            correct,
            round,
            stage,
            next_position,
        )
    };
    let json = serde_json::to_value(&reply).map_err(|e| AppError::Internal(e.into()))?;
    db::responses::insert(conn, &answer.response(session_id, correct), &json).await?;
    Ok(reply)
}

/// A finished session: its completion code, and the study and main trials that went back to the pool
/// when the session was excluded.
pub(super) struct Finished {
    pub completion: Completion,
    pub returned: Option<(i64, Vec<i64>)>,
}

/// Ends the session after the debrief; finishing again returns the same code.
pub(super) async fn finish(
    conn: &mut PgConnection,
    token: &str,
    feedback: Option<String>,
) -> Result<Finished, AppError> {
    let (session, study) = locked_session(conn, token).await?;
    let feedback = feedback
        .map(|f| f.trim().to_string())
        .filter(|f| !f.is_empty());
    if feedback
        .as_ref()
        .is_some_and(|f| f.chars().count() > MAX_FEEDBACK_LEN)
    {
        return Err(AppError::invalid(
            "feedback_too_long",
            "feedback is limited to 5000 characters",
        ));
    }
    if feedback.as_ref().is_some_and(|f| f.contains('\0')) {
        return Err(AppError::invalid(
            "invalid_feedback",
            "feedback must not contain NUL characters",
        ));
    }
    let mut returned = None;
    let code = match session.stage {
        Stage::Debrief => {
            let code = study.config.completion.code.clone();
            db::sessions::complete(conn, session.id, &code, feedback.as_deref()).await?;
            if apply_exclusion(conn, session.id, &study.config).await? {
                let trials = db::sessions::main_trials(conn, session.id).await?;
                returned = Some((study.id, trials));
            }
            code
        }
        Stage::Complete => session
            .completion_code
            .unwrap_or(study.config.completion.code.clone()),
        other => {
            return Err(AppError::conflict(
                "wrong_stage",
                format!("the session is at the {other} stage; finish after the last trial"),
            ))
        }
    };
    Ok(Finished {
        completion: Completion {
            completion_code: code,
            redirect_url: study.config.redirect_url(),
        },
        returned,
    })
}

/// Evaluates a session's exclusion rules and stores the result; excluded sessions are kept, and their
/// trials stop counting towards their units' quotas.
async fn apply_exclusion(
    conn: &mut PgConnection,
    session_id: i64,
    config: &StudyConfig,
) -> sqlx::Result<bool> {
    let summary = db::sessions::exclusion_summary(conn, session_id, config.lock_ms).await?;
    let checks = exclusion::evaluate(&summary, &config.exclusion);
    let excluded = checks.iter().any(|c| !c.passed);
    let json = serde_json::to_value(&checks).unwrap_or_default();
    db::sessions::set_exclusion(conn, session_id, excluded, &json).await?;
    Ok(excluded)
}

/// Re-evaluates every completed session of a study (after its thresholds changed), in the caller's
/// transaction; returns how many are excluded. The caller then tells [`super::Sessions::loads_changed`].
pub async fn reevaluate_exclusions(
    conn: &mut PgConnection,
    study_id: i64,
    config: &StudyConfig,
) -> sqlx::Result<usize> {
    let mut excluded = 0;
    for id in db::sessions::completed_ids(conn, study_id).await? {
        excluded += usize::from(apply_exclusion(conn, id, config).await?);
    }
    Ok(excluded)
}
