//! Creating and editing a study: every field of `StudyConfig`, checked on the server. An invalid form
//! comes back with its values and a message beside each wrong field; nothing is saved.

use actix_web::http::StatusCode;
use actix_web::web;
use askama::Template;
use serde::Deserialize;

use super::form::admin_form;
use super::{load_study, page, see_other, Admin, AdminForm, Chrome, PageResult, StudyNav};
use crate::db;
use crate::states::StudyStatus;
use crate::study::config::{Completion, ExclusionThresholds, PracticeConfig, Side, Texts};
use crate::study::{session, StudyConfig};
use crate::web::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/studies/new", web::get().to(new))
        .route("/studies", web::post().to(create))
        .route("/studies/{id}/edit", web::get().to(edit))
        .route("/studies/{id}/edit", web::post().to(update));
}

/// The form's fields, as typed; names follow the configuration's field paths so errors land beside them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StudyForm {
    pub csrf: String,
    pub slug: String,
    pub title: String,
    pub trials_per_session: String,
    pub catch_per_session: String,
    pub lock_ms: String,
    pub feedback: Option<String>,
    pub max_side: String,
    #[serde(rename = "practice.trials")]
    pub practice_trials: String,
    #[serde(rename = "practice.max_attempts")]
    pub practice_max_attempts: String,
    #[serde(rename = "texts.consent")]
    pub consent: String,
    #[serde(rename = "texts.instructions")]
    pub instructions: String,
    #[serde(rename = "texts.debrief")]
    pub debrief: String,
    #[serde(rename = "completion.code")]
    pub completion_code: String,
    #[serde(rename = "completion.redirect_url")]
    pub redirect_url: String,
    #[serde(rename = "exclusion.min_catch_accuracy")]
    pub min_catch_accuracy: String,
    #[serde(rename = "exclusion.min_answers_per_position")]
    pub min_answers_per_position: String,
    #[serde(rename = "exclusion.min_instructions_secs")]
    pub min_instructions_secs: String,
    #[serde(rename = "exclusion.min_total_secs")]
    pub min_total_secs: String,
    #[serde(rename = "exclusion.max_total_secs")]
    pub max_total_secs: String,
    #[serde(rename = "exclusion.max_practice_attempts")]
    pub max_practice_attempts: String,
    /// Empty: not checked.
    #[serde(rename = "exclusion.max_fast_answers")]
    pub max_fast_answers: String,
    pub responses_per_unit: String,
    /// Empty: the default.
    pub release_after_secs: String,
    pub seed: String,
}

/// A message for one field.
#[derive(Debug, Clone)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl StudyForm {
    pub fn from_study(slug: &str, title: &str, c: &StudyConfig) -> Self {
        let e = &c.exclusion;
        Self {
            csrf: String::new(),
            slug: slug.into(),
            title: title.into(),
            trials_per_session: c.trials_per_session.to_string(),
            catch_per_session: c.catch_per_session.to_string(),
            lock_ms: c.lock_ms.to_string(),
            feedback: c.feedback.then(|| "on".into()),
            max_side: c.max_side.as_str().into(),
            practice_trials: c.practice.trials.to_string(),
            practice_max_attempts: c.practice.max_attempts.to_string(),
            consent: c.texts.consent.clone(),
            instructions: c.texts.instructions.clone(),
            debrief: c.texts.debrief.clone(),
            completion_code: c.completion.code.clone(),
            redirect_url: c.completion.redirect_url.clone().unwrap_or_default(),
            min_catch_accuracy: e.min_catch_accuracy.to_string(),
            min_answers_per_position: e.min_answers_per_position.to_string(),
            min_instructions_secs: e.min_instructions_secs.to_string(),
            min_total_secs: e.min_total_secs.to_string(),
            max_total_secs: e.max_total_secs.to_string(),
            max_practice_attempts: e.max_practice_attempts.to_string(),
            max_fast_answers: e
                .max_fast_answers
                .map(|n| n.to_string())
                .unwrap_or_default(),
            responses_per_unit: c.responses_per_unit.to_string(),
            release_after_secs: c.release_after_secs.to_string(),
            seed: c.seed.to_string(),
        }
    }

    /// The configuration, or every problem found (parsing first, then the configuration's own rules).
    pub fn parse(&self) -> Result<StudyConfig, Vec<Problem>> {
        let mut problems = Vec::new();
        let mut whole = |field: &str, text: &str| -> i64 {
            text.trim().parse::<i64>().unwrap_or_else(|_| {
                problems.push(Problem {
                    field: field.into(),
                    message: "must be a whole number".into(),
                });
                0
            })
        };
        let trials_per_session = whole("trials_per_session", &self.trials_per_session);
        let catch_per_session = whole("catch_per_session", &self.catch_per_session);
        let lock_ms = whole("lock_ms", &self.lock_ms);
        let practice_trials = whole("practice.trials", &self.practice_trials);
        let practice_max_attempts = whole("practice.max_attempts", &self.practice_max_attempts);
        let min_answers = whole(
            "exclusion.min_answers_per_position",
            &self.min_answers_per_position,
        );
        let max_practice = whole(
            "exclusion.max_practice_attempts",
            &self.max_practice_attempts,
        );
        let responses_per_unit = whole("responses_per_unit", &self.responses_per_unit);
        let max_fast_answers = (!self.max_fast_answers.trim().is_empty())
            .then(|| whole("exclusion.max_fast_answers", &self.max_fast_answers));
        let mut number = |field: &str, text: &str| -> f64 {
            match text.trim().parse::<f64>() {
                Ok(v) if v.is_finite() => v,
                _ => {
                    problems.push(Problem {
                        field: field.into(),
                        message: "must be a number".into(),
                    });
                    0.0
                }
            }
        };
        let min_catch_accuracy = number("exclusion.min_catch_accuracy", &self.min_catch_accuracy);
        let min_instructions_secs = number(
            "exclusion.min_instructions_secs",
            &self.min_instructions_secs,
        );
        let min_total_secs = number("exclusion.min_total_secs", &self.min_total_secs);
        let max_total_secs = number("exclusion.max_total_secs", &self.max_total_secs);
        let release_after_secs = if self.release_after_secs.trim().is_empty() {
            StudyConfig::default().release_after_secs
        } else {
            number("release_after_secs", &self.release_after_secs)
        };
        let seed = self.seed.trim().parse::<u64>().unwrap_or_else(|_| {
            problems.push(Problem {
                field: "seed".into(),
                message: "must be a whole number from 0 to 18446744073709551615".into(),
            });
            0
        });
        let max_side = match self.max_side.as_str() {
            "left" => Side::Left,
            "right" => Side::Right,
            _ => {
                problems.push(Problem {
                    field: "max_side".into(),
                    message: "must be left or right".into(),
                });
                Side::Right
            }
        };
        let redirect_url = self.redirect_url.trim();
        let config = StudyConfig {
            trials_per_session,
            catch_per_session,
            lock_ms,
            feedback: self.feedback.is_some(),
            max_side,
            practice: PracticeConfig {
                trials: practice_trials,
                max_attempts: practice_max_attempts,
            },
            texts: Texts {
                consent: normalise_text(&self.consent),
                instructions: normalise_text(&self.instructions),
                debrief: normalise_text(&self.debrief),
            },
            completion: Completion {
                code: self.completion_code.trim().into(),
                redirect_url: (!redirect_url.is_empty()).then(|| redirect_url.into()),
            },
            exclusion: ExclusionThresholds {
                min_catch_accuracy,
                min_answers_per_position: min_answers,
                min_instructions_secs,
                min_total_secs,
                max_total_secs,
                max_practice_attempts: max_practice,
                max_fast_answers,
            },
            responses_per_unit,
            release_after_secs,
            seed,
            // A record of the build, not a setting: `update` keeps the study's own.
            construction: Default::default(),
        };
        let parsed: Vec<String> = problems.iter().map(|p| p.field.clone()).collect();
        for error in config.validate() {
            // A field that did not parse already has its message.
            if !parsed.iter().any(|f| f == error.field) {
                problems.push(Problem {
                    field: error.field.into(),
                    message: error.message,
                });
            }
        }
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(problems)
        }
    }

    /// Title and slug rules (the database enforces them too).
    fn check_names(&self, problems: &mut Vec<Problem>) {
        let slug = self.slug.trim();
        if !crate::study::valid_slug(slug) {
            problems.push(Problem {
                field: "slug".into(),
                message: "must be 1 to 63 lowercase letters, digits or '-', not starting with '-'"
                    .into(),
            });
        }
        let title = self.title.trim();
        if title.is_empty() || title.chars().count() > 200 {
            problems.push(Problem {
                field: "title".into(),
                message: "must be 1 to 200 characters".into(),
            });
        }
    }
}

/// Browsers send line breaks as CRLF; the texts keep plain LF.
fn normalise_text(text: &str) -> String {
    text.replace("\r\n", "\n").trim().to_string()
}

#[derive(Template)]
#[template(path = "admin/study_form.html")]
pub struct StudyFormPage {
    pub chrome: Chrome,
    pub nav: Option<StudyNav>,
    pub form: StudyForm,
    pub problems: Vec<Problem>,
    pub action: String,
    pub slug_locked: bool,
}

admin_form!(StudyForm);

impl StudyFormPage {
    /// The message for `field`, if it has one.
    pub fn problem(&self, field: &str) -> Option<&str> {
        self.problems
            .iter()
            .find(|p| p.field == field)
            .map(|p| p.message.as_str())
    }

    pub fn invalid(&self, field: &str) -> bool {
        self.problem(field).is_some()
    }
}

async fn new(admin: Admin) -> PageResult {
    admin.require_admin()?;
    let mut form = StudyForm::from_study("", "", &StudyConfig::default());
    form.seed = rand::random::<u32>().to_string();
    page(
        StatusCode::OK,
        &StudyFormPage {
            chrome: Chrome::new(&admin, "new"),
            nav: None,
            form,
            problems: vec![],
            action: "/admin/studies".into(),
            slug_locked: false,
        },
    )
}

/// The form's settings, or every problem with them: names, values, and a URL name taken by another study
/// (`own_id` is the study being edited, 0 for a new one).
async fn check(
    tx: &mut sqlx::PgConnection,
    form: &StudyForm,
    own_id: i64,
) -> Result<Result<StudyConfig, Vec<Problem>>, crate::error::AppError> {
    let mut problems = Vec::new();
    form.check_names(&mut problems);
    let config = form.parse().map_err(|p| problems.extend(p)).ok();
    if problems.is_empty() && db::studies::slug_taken(tx, form.slug.trim(), own_id).await? {
        problems.push(Problem {
            field: "slug".into(),
            message: "is already used by another study".into(),
        });
    }
    Ok(config.filter(|_| problems.is_empty()).ok_or(problems))
}

async fn create(
    state: web::Data<AppState>,
    AdminForm { admin, form }: AdminForm<StudyForm>,
) -> PageResult {
    let mut tx = state.pool.begin().await?;
    let checked = check(&mut tx, &form, 0).await?;
    let Ok(config) = checked else {
        let problems = checked.err().unwrap_or_default();
        return page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &StudyFormPage {
                chrome: Chrome::new(&admin, "new"),
                nav: None,
                form,
                problems,
                action: "/admin/studies".into(),
                slug_locked: false,
            },
        );
    };
    let id = db::studies::insert(
        &mut tx,
        form.slug.trim(),
        form.title.trim(),
        StudyStatus::Draft,
        &config,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(admin = %admin.username, study = id, "study created");
    Ok(see_other(&format!("/admin/studies/{id}?notice=created")))
}

async fn edit(state: web::Data<AppState>, admin: Admin, id: web::Path<i64>) -> PageResult {
    admin.require_admin()?;
    let mut conn = state.pool.acquire().await?;
    let study = load_study(&mut conn, *id).await?;
    let form = StudyForm::from_study(&study.slug, &study.title, &study.config);
    page(
        StatusCode::OK,
        &StudyFormPage {
            chrome: Chrome::new(&admin, "studies"),
            slug_locked: study.status != StudyStatus::Draft,
            action: format!("/admin/studies/{}/edit", study.id),
            nav: Some(StudyNav::new(&study, "settings")),
            form,
            problems: vec![],
        },
    )
}

async fn update(
    state: web::Data<AppState>,
    AdminForm { admin, mut form }: AdminForm<StudyForm>,
    id: web::Path<i64>,
) -> PageResult {
    let mut tx = state.pool.begin().await?;
    let study = load_study(&mut tx, *id).await?;
    db::studies::lock(&mut tx, study.id).await?;
    // Recruitment links carry the slug: it is fixed once the study has been opened.
    let slug_locked = study.status != StudyStatus::Draft;
    if slug_locked {
        form.slug = study.slug.clone();
    }
    let checked = check(&mut tx, &form, study.id).await?;
    let Ok(mut config) = checked else {
        let problems = checked.err().unwrap_or_default();
        return page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &StudyFormPage {
                chrome: Chrome::new(&admin, "studies"),
                nav: Some(StudyNav::new(&study, "settings")),
                form,
                problems,
                action: format!("/admin/studies/{}/edit", study.id),
                slug_locked,
            },
        );
    };
    config.construction = study.config.construction.clone();
    db::studies::update(
        &mut tx,
        study.id,
        form.slug.trim(),
        form.title.trim(),
        &config,
    )
    .await?;
    let reevaluated = config.exclusion != study.config.exclusion;
    if reevaluated {
        session::reevaluate_exclusions(&mut tx, study.id, &config).await?;
    }
    tx.commit().await?;
    if reevaluated {
        state.sessions.loads_changed(study.id);
    }
    tracing::info!(admin = %admin.username, study = study.id, "study settings saved");
    Ok(see_other(&format!(
        "/admin/studies/{}?notice=saved",
        study.id
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> StudyForm {
        StudyForm::from_study("s", "S", &StudyConfig::default())
    }

    #[test]
    fn the_default_configuration_round_trips_through_the_form() {
        assert_eq!(form().parse().expect("valid"), StudyConfig::default());
    }

    #[test]
    fn unparsable_and_invalid_fields_are_named() {
        let mut f = form();
        f.lock_ms = "-5".into();
        f.seed = "three".into();
        f.redirect_url = "ftp://x".into();
        let fields: Vec<String> = f
            .parse()
            .unwrap_err()
            .into_iter()
            .map(|p| p.field)
            .collect();
        assert_eq!(fields, ["seed", "lock_ms", "completion.redirect_url"]);
    }
}
