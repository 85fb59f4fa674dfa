//! A participant's path through a session: consent -> instructions -> practice -> trials -> debrief ->
//! complete. Every function runs inside the caller's transaction; the session row is locked while an
//! answer is taken, so retries and concurrent requests of one participant are handled one at a time.

use chrono::{DateTime, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::db::{self, sessions::Session, studies::Study};
use crate::error::AppError;
use crate::stimuli::TrialKind;
use crate::study::exclusion;
use crate::study::recruit::{ParticipantKey, Source};
use crate::study::schedule::{self, practice_round, session_schedule};
use crate::study::StudyConfig;

pub mod stage {
    pub const CONSENT: &str = "consent";
    pub const INSTRUCTIONS: &str = "instructions";
    pub const PRACTICE: &str = "practice";
    pub const TRIALS: &str = "trials";
    pub const DEBRIEF: &str = "debrief";
    pub const COMPLETE: &str = "complete";
}

const MAX_FEEDBACK_LEN: usize = 5000;
const MAX_EXTERNAL_ID_LEN: usize = 200;
/// Recruitment parameters are a few short strings (DESIGN 2.2); anything larger is not a platform's.
const MAX_PARAMS: usize = 16;
const MAX_PARAM_NAME_LEN: usize = 64;
const MAX_PARAM_VALUE_LEN: usize = 200;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSession {
    pub external_id: Option<String>,
    pub source: Option<Source>,
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Started {
    pub token: String,
    pub stage: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionState {
    pub stage: String,
    pub answered: i64,
    pub total: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_code: Option<String>,
}

/// What the page needs to show one trial. Queries are in the stored order; nothing says which is which.
#[derive(Debug, Clone, Serialize)]
pub struct TrialView {
    pub position: i32,
    pub kind: &'static str,
    pub min_refs: Vec<String>,
    pub max_refs: Vec<String>,
    pub queries: [String; 2],
    pub lock_ms: i64,
    pub max_side: &'static str,
    pub answered: i64,
    pub total: i32,
    pub attempt: i32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answer {
    pub response_id: Uuid,
    pub position: i32,
    pub chosen: i64,
    pub confidence: i64,
    pub rt_ms: i64,
    pub client_ts: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub correct: Option<bool>,
    pub next_position: Option<i32>,
    pub stage: String,
    pub practice_round: Option<PracticeRound>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PracticeRound {
    pub attempt: i32,
    pub all_correct: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Completion {
    pub completion_code: String,
    pub redirect_url: Option<String>,
}

/// Starts a session, or resumes the one of the same external id; `true` when new.
pub async fn start(
    conn: &mut PgConnection,
    key: &ParticipantKey,
    slug: &str,
    new: NewSession,
) -> Result<(Started, bool), AppError> {
    let study = active_study(conn, slug).await?;
    let external_id = new.external_id.as_deref().map(str::trim);
    if external_id.is_some_and(|id| id.len() > MAX_EXTERNAL_ID_LEN) {
        return Err(AppError::invalid(
            "invalid_external_id",
            "external_id is longer than 200 characters",
        ));
    }
    check_params(&new.params)?;
    let external_id = external_id.and_then(|id| pseudonym(key, study.id, id));
    if let Some(id) = &external_id {
        if let Some(existing) = db::sessions::by_external_id(conn, study.id, id).await? {
            return resume(existing);
        }
    }
    let source = new.source.unwrap_or(Source::Link);
    db::studies::lock(conn, study.id).await?;
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
        let id = external_id.unwrap_or_default();
        let existing = db::sessions::by_external_id(conn, study.id, &id).await?;
        return resume(existing.ok_or_else(|| AppError::NotFound("session vanished".into()))?);
    };

    let main = db::trials::loads(conn, study.id, TrialKind::Main).await?;
    if main.is_empty() {
        return Err(AppError::conflict(
            "no_trials",
            "this study has no trials yet",
        ));
    }
    let catch = db::trials::loads(conn, study.id, TrialKind::Catch).await?;
    let config = &study.config;
    let slots = session_schedule(
        &main,
        &catch,
        config.trials_per_session as usize,
        config.catch_per_session as usize,
        &mut schedule::rng_for(config.seed, session_id, 0),
    );
    db::sessions::assign(conn, session_id, 0, 0, &slots).await?;
    db::sessions::set_main_total(conn, session_id, slots.len() as i32).await?;
    Ok((
        Started {
            token,
            stage: stage::CONSENT.into(),
        },
        true,
    ))
}

/// The stored form of an external id: the keyed pseudonym of the trimmed id; `None` for a blank one.
pub fn pseudonym(key: &ParticipantKey, study_id: i64, external_id: &str) -> Option<String> {
    let id = external_id.trim();
    (!id.is_empty()).then(|| key.pseudonym(study_id, id))
}

/// A participant's withdrawal: what was deleted of their session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawn {
    pub stage: String,
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
    let study = db::studies::by_slug(conn, slug)
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

fn resume(session: Session) -> Result<(Started, bool), AppError> {
    if session.stage == stage::COMPLETE {
        return Err(AppError::conflict(
            "already_completed",
            "you have already taken part in this study",
        ));
    }
    Ok((
        Started {
            token: session.token,
            stage: session.stage,
        },
        false,
    ))
}

async fn active_study(conn: &mut PgConnection, slug: &str) -> Result<Study, AppError> {
    let study = db::studies::by_slug(conn, slug)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no study named {slug}")))?;
    if study.status != "active" {
        return Err(AppError::conflict(
            "study_not_active",
            "this study is not open for participants at the moment",
        ));
    }
    Ok(study)
}

async fn session_and_study(
    conn: &mut PgConnection,
    token: &str,
    lock: bool,
) -> Result<(Session, Study), AppError> {
    let session = if lock {
        db::sessions::by_token_for_update(conn, token).await?
    } else {
        db::sessions::by_token(conn, token).await?
    };
    let session = session.ok_or_else(|| AppError::NotFound("unknown session".into()))?;
    let study = db::studies::by_study_id(conn, session.study_id)
        .await?
        .ok_or_else(|| AppError::NotFound("unknown study".into()))?;
    Ok((session, study))
}

pub async fn state(conn: &mut PgConnection, token: &str) -> Result<SessionState, AppError> {
    let session = db::sessions::by_token(conn, token)
        .await?
        .ok_or_else(|| AppError::NotFound("unknown session".into()))?;
    let progress = db::sessions::progress(conn, session.id, 0, session.main_total, 0).await?;
    Ok(SessionState {
        stage: session.stage,
        answered: progress.answered,
        total: session.main_total,
        completion_code: session.completion_code,
    })
}

/// Records consent; repeating it later is harmless.
pub async fn consent(conn: &mut PgConnection, token: &str) -> Result<String, AppError> {
    let (session, _) = session_and_study(conn, token, true).await?;
    if session.stage != stage::CONSENT {
        return Ok(session.stage);
    }
    db::sessions::advance(conn, session.id, stage::INSTRUCTIONS).await?;
    Ok(stage::INSTRUCTIONS.into())
}

/// Ends the instructions (their time is recorded) and starts the practice, if the study has one.
pub async fn finish_instructions(conn: &mut PgConnection, token: &str) -> Result<String, AppError> {
    let (session, study) = session_and_study(conn, token, true).await?;
    match session.stage.as_str() {
        stage::CONSENT => Err(AppError::conflict("wrong_stage", "consent comes first")),
        stage::INSTRUCTIONS => {
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
                stage::PRACTICE
            } else {
                stage::TRIALS
            };
            db::sessions::advance(conn, session.id, next).await?;
            Ok(next.into())
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
    let attempt = db::sessions::next_practice_attempt(conn, session_id).await?;
    let first = db::sessions::end_position(conn, session_id)
        .await?
        .max(main_total);
    let mut rng = schedule::rng_for(config.seed, session_id, attempt as u64);
    let slots = practice_round(practice, config.practice.trials as usize, &mut rng);
    db::sessions::assign(conn, session_id, first, attempt, &slots).await?;
    Ok(first)
}

fn config_of(json: serde_json::Value) -> Result<StudyConfig, AppError> {
    StudyConfig::from_json(json)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("invalid study configuration: {e}")))
}

pub async fn next_trial(
    conn: &mut PgConnection,
    token: &str,
) -> Result<Option<TrialView>, AppError> {
    let next = db::sessions::next_trial(conn, token)
        .await?
        .ok_or_else(|| AppError::NotFound("unknown session".into()))?;
    let Some(trial) = next.trial else {
        return Ok(None);
    };
    let config = config_of(next.config)?;
    let url = |sha: &String| format!("/img/{sha}");
    let (max, min) = (url(&trial.max_query), url(&trial.min_query));
    let queries = if trial.max_first {
        [max, min]
    } else {
        [min, max]
    };
    Ok(Some(TrialView {
        position: trial.position,
        // Catch trials look like any other trial.
        kind: if trial.kind == "practice" {
            "practice"
        } else {
            "main"
        },
        min_refs: trial.min_refs.iter().map(url).collect(),
        max_refs: trial.max_refs.iter().map(url).collect(),
        queries,
        lock_ms: config.lock_ms,
        max_side: config.max_side.as_str(),
        answered: next.answered,
        total: next.main_total,
        attempt: trial.attempt,
    }))
}

/// Takes one answer: checks it against the session in a single read, stores it with its reply, and moves
/// the session on when the answer ends a practice round or the main block.
pub async fn respond(
    conn: &mut PgConnection,
    token: &str,
    answer: Answer,
) -> Result<Reply, AppError> {
    check_answer(&answer)?;
    let session_id = db::sessions::lock(conn, token)
        .await?
        .ok_or_else(|| AppError::NotFound("unknown session".into()))?;
    let ctx =
        db::sessions::answer_context(conn, session_id, answer.position, answer.response_id).await?;

    if let Some((stored_session, position, chosen, confidence, reply)) = ctx.stored {
        let same = stored_session == session_id
            && position == answer.position
            && i64::from(chosen) == answer.chosen
            && i64::from(confidence) == answer.confidence;
        if !same {
            return Err(AppError::conflict(
                "response_id_reused",
                "this response id was already used for a different answer",
            ));
        }
        return serde_json::from_value(reply).map_err(|e| AppError::Internal(e.into()));
    }
    let in_practice = ctx.stage == stage::PRACTICE;
    if !in_practice && ctx.stage != stage::TRIALS {
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
    let config = config_of(ctx.config)?;
    let correct = (answer.chosen == 0) == max_first;

    let mut next_stage = ctx.stage.clone();
    let mut next_position = ctx.following;
    let mut practice_round = None;
    if ctx.block_answered + 1 == ctx.block_assigned {
        if in_practice {
            let all_correct = ctx.block_correct + i64::from(correct) == ctx.block_assigned;
            let attempt = ctx.practice_attempts;
            practice_round = Some(PracticeRound {
                attempt,
                all_correct,
            });
            if all_correct || i64::from(attempt) >= config.practice.max_attempts {
                next_stage = stage::TRIALS.into();
                next_position =
                    db::sessions::next_unanswered(conn, session_id, 0, ctx.main_total, 0)
                        .await?
                        .map(|t| t.position);
            } else {
                let practice = db::trials::ids(conn, ctx.study_id, TrialKind::Practice).await?;
                next_position = Some(
                    start_practice_round(conn, session_id, ctx.main_total, &config, &practice)
                        .await?,
                );
            }
        } else {
            next_stage = stage::DEBRIEF.into();
            next_position = None;
        }
        if next_stage != ctx.stage {
            db::sessions::advance(conn, session_id, &next_stage).await?;
        }
    }
    let reply = Reply {
        correct: (in_practice || config.feedback).then_some(correct),
        next_position,
        stage: next_stage,
        practice_round,
    };
    let json = serde_json::to_value(&reply).map_err(|e| AppError::Internal(e.into()))?;
    let response = db::responses::NewResponse {
        response_id: answer.response_id,
        session_id,
        position: answer.position,
        chosen: answer.chosen as i16,
        correct,
        confidence: answer.confidence as i16,
        rt_ms: answer.rt_ms as i32,
        client_at: answer.client_ts,
    };
    db::responses::insert(conn, &response, &json).await?;
    Ok(reply)
}

fn check_answer(answer: &Answer) -> Result<(), AppError> {
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

/// Ends the session after the debrief; finishing again returns the same code.
pub async fn finish(
    conn: &mut PgConnection,
    token: &str,
    feedback: Option<String>,
) -> Result<Completion, AppError> {
    let (session, study) = session_and_study(conn, token, true).await?;
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
    let code = match session.stage.as_str() {
        stage::DEBRIEF => {
            let code = study.config.completion.code.clone();
            db::sessions::complete(conn, session.id, &code, feedback.as_deref()).await?;
            exclusion::apply(conn, session.id, &study.config.exclusion).await?;
            code
        }
        stage::COMPLETE => session
            .completion_code
            .unwrap_or(study.config.completion.code.clone()),
        other => {
            return Err(AppError::conflict(
                "wrong_stage",
                format!("the session is at the {other} stage; finish after the last trial"),
            ))
        }
    };
    Ok(Completion {
        completion_code: code,
        redirect_url: study.config.redirect_url(),
    })
}
