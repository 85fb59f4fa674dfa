//! A study's overview: lifecycle (draft -> active -> paused -> closed), recruitment links ready to copy,
//! its stimuli, progress, and cloning.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use askama::Template;
use serde::Deserialize;

use super::form::admin_form;
use super::{
    count, load_study, page, percent, see_other, Admin, AdminError, AdminForm, Chrome, PageResult,
    StudyNav,
};
use crate::db;
use crate::states::StudyStatus;
use crate::study::Study;
use crate::web::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/studies/{id}", web::get().to(show))
        .route("/studies/{id}/status", web::post().to(set_status))
        .route("/studies/{id}/clone", web::post().to(clone));
}

/// A move of the lifecycle, as offered on the page.
pub struct Transition {
    pub to: StudyStatus,
    pub label: &'static str,
    pub primary: bool,
}

/// The moves allowed from `status`. A closed study stays closed; its data stays.
pub fn transitions(status: StudyStatus) -> Vec<Transition> {
    use StudyStatus::{Active, Closed, Draft, Paused};
    let t = |to, label, primary| Transition { to, label, primary };
    match status {
        Draft => vec![t(Active, "Open to participants", true)],
        Active => vec![
            t(Paused, "Pause", false),
            t(Closed, "Close for good", false),
        ],
        Paused => vec![
            t(Active, "Resume", true),
            t(Closed, "Close for good", false),
        ],
        Closed => vec![],
    }
}

pub struct RecruitLink {
    pub platform: &'static str,
    pub url: String,
    pub hint: &'static str,
}

/// The study's address for each recruitment platform, with the platform's own placeholders.
pub fn recruitment_links(base: &str, slug: &str) -> Vec<RecruitLink> {
    let study = format!("{base}/s/{slug}");
    vec![
        RecruitLink {
            platform: "Prolific",
            url: format!(
                "{study}?PROLIFIC_PID={{{{%PROLIFIC_PID%}}}}&STUDY_ID={{{{%STUDY_ID%}}}}&SESSION_ID={{{{%SESSION_ID%}}}}"
            ),
            hint: "Paste as the study URL; Prolific fills in the participant, study and session ids.",
        },
        RecruitLink {
            platform: "MTurk",
            url: study.clone(),
            hint: "Use as the ExternalQuestion URL; MTurk appends workerId, assignmentId and hitId itself.",
        },
        RecruitLink {
            platform: "SONA",
            url: format!("{study}?id=%SURVEY_CODE%"),
            hint: "Paste as the study URL; SONA replaces %SURVEY_CODE% with the participant's code.",
        },
        RecruitLink {
            platform: "Plain link",
            url: study,
            hint: "Anonymous: every visit starts a new session.",
        },
    ]
}

#[derive(Template)]
#[template(path = "admin/study.html")]
pub struct StudyPage {
    pub chrome: Chrome,
    pub nav: StudyNav,
    pub notice: Option<&'static str>,
    pub error: Option<String>,
    pub transitions: Vec<Transition>,
    pub links: Vec<RecruitLink>,
    pub stimuli: db::dashboard::StimulusCounts,
    pub sessions: db::dashboard::SessionCounts,
    pub valid: String,
    pub target: String,
    pub percent: i64,
    pub trials_per_session: i64,
    pub catch_per_session: i64,
    pub responses_per_unit: i64,
    pub imi_folder: String,
    pub imi_model: String,
}

#[derive(Deserialize)]
struct NoticeQuery {
    notice: Option<String>,
}

fn notice_text(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "created" => "Study created as a draft. Add stimuli, check the preview, then open it to participants.",
        "saved" => "Settings saved.",
        "stimuli" => "Stimuli added.",
        "cloned" => "This is a copy: a draft with the same settings and stimuli and no sessions.",
        "active" => "The study is open: recruitment links now lead to it.",
        "paused" => "The study is paused: participants see a friendly 'not open right now' page.",
        "closed" => "The study is closed. Its data stays available for monitoring and downloads.",
        _ => return None,
    })
}

/// The public base URL: the `public_url` setting, else the address this server listens on. Host,
/// X-Forwarded-Host and Forwarded are set by the client, so links are never built from them.
pub fn base_url(state: &AppState, request: &HttpRequest) -> String {
    match &state.public_url {
        Some(url) => url.clone(),
        None => format!("http://{}", request.app_config().local_addr()),
    }
}

/// How the overview is shown: after a failed form, with its error and the values typed.
pub struct Outcome {
    pub status: StatusCode,
    pub notice: Option<&'static str>,
    pub error: Option<String>,
    pub imi_folder: String,
    pub imi_model: String,
}

impl Default for Outcome {
    fn default() -> Self {
        Self {
            status: StatusCode::OK,
            notice: None,
            error: None,
            imi_folder: String::new(),
            imi_model: "imported".into(),
        }
    }
}

/// Renders the overview.
pub async fn render(
    state: &AppState,
    request: &HttpRequest,
    admin: &Admin,
    study: &Study,
    outcome: Outcome,
) -> PageResult {
    let mut conn = state.pool.acquire().await?;
    let stimuli = db::dashboard::stimulus_counts(&mut conn, study.id).await?;
    let sessions = db::dashboard::session_counts(&mut conn, study.id).await?;
    let responses = db::dashboard::response_counts(&mut conn, study.id).await?;
    let target = stimuli.units * study.config.responses_per_unit;
    page(
        outcome.status,
        &StudyPage {
            chrome: Chrome::new(admin, "studies"),
            nav: StudyNav::new(study, "overview"),
            notice: outcome.notice,
            error: outcome.error,
            transitions: transitions(study.status),
            links: recruitment_links(&base_url(state, request), &study.slug),
            stimuli,
            sessions,
            valid: count(responses.valid),
            target: count(target),
            percent: percent(responses.valid, target),
            trials_per_session: study.config.trials_per_session,
            catch_per_session: study.config.catch_per_session,
            responses_per_unit: study.config.responses_per_unit,
            imi_folder: outcome.imi_folder,
            imi_model: outcome.imi_model,
        },
    )
}

async fn show(
    state: web::Data<AppState>,
    request: HttpRequest,
    admin: Admin,
    id: web::Path<i64>,
    query: web::Query<NoticeQuery>,
) -> PageResult {
    let mut conn = state.pool.acquire().await?;
    let study = load_study(&mut conn, *id).await?;
    drop(conn);
    let outcome = Outcome {
        notice: notice_text(query.notice.as_deref()),
        ..Outcome::default()
    };
    render(&state, &request, &admin, &study, outcome).await
}

#[derive(Deserialize)]
struct StatusForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    to: String,
}

async fn set_status(
    state: web::Data<AppState>,
    request: HttpRequest,
    AdminForm { admin, form }: AdminForm<StatusForm>,
    id: web::Path<i64>,
) -> PageResult {
    let mut tx = state.pool.begin().await?;
    let study = load_study(&mut tx, *id).await?;
    db::studies::lock(&mut tx, study.id).await?;
    let to = form
        .to
        .parse::<StudyStatus>()
        .ok()
        .filter(|to| transitions(study.status).iter().any(|t| t.to == *to));
    let refusal = match to {
        None => Err(format!(
            "A {} study cannot become {}.",
            study.status, form.to
        )),
        Some(StudyStatus::Active)
            if db::dashboard::stimulus_counts(&mut tx, study.id)
                .await?
                .main
                == 0 =>
        {
            Err("Add stimuli first: a study without main trials cannot be opened.".to_string())
        }
        Some(to) => Ok(to),
    };
    let to = match refusal {
        Ok(to) => to,
        Err(message) => {
            drop(tx);
            let outcome = Outcome {
                status: StatusCode::CONFLICT,
                error: Some(message),
                ..Outcome::default()
            };
            return render(&state, &request, &admin, &study, outcome).await;
        }
    };
    db::studies::set_status(&mut tx, study.id, to).await?;
    tx.commit().await?;
    tracing::info!(admin = %admin.username, study = study.id, status = %to, "study status changed");
    Ok(see_other(&format!(
        "/admin/studies/{}?notice={to}",
        study.id
    )))
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

admin_form!(StatusForm, CsrfForm);

/// A draft with the same settings and stimuli, under a free name; the original is untouched.
async fn clone(
    state: web::Data<AppState>,
    AdminForm { admin, .. }: AdminForm<CsrfForm>,
    id: web::Path<i64>,
) -> PageResult {
    let mut tx = state.pool.begin().await?;
    let study = load_study(&mut tx, *id).await?;
    let stem: String = study.slug.chars().take(50).collect();
    let mut slug = format!("{stem}-copy");
    let mut n = 2;
    while db::studies::slug_taken(&mut tx, &slug, 0).await? {
        if n > 999 {
            return Err(AdminError::BadRequest("no free name for the copy".into()));
        }
        slug = format!("{stem}-copy-{n}");
        n += 1;
    }
    let title: String = format!("Copy of {}", study.title)
        .chars()
        .take(200)
        .collect();
    let copy =
        db::studies::insert(&mut tx, &slug, &title, StudyStatus::Draft, &study.config).await?;
    db::studies::copy_stimuli(&mut tx, study.id, copy).await?;
    tx.commit().await?;
    tracing::info!(admin = %admin.username, from = study.id, to = copy, "study cloned");
    Ok(see_other(&format!("/admin/studies/{copy}?notice=cloned")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prolific_link_carries_its_placeholders() {
        let links = recruitment_links("https://lab.example", "demo");
        assert_eq!(
            links[0].url,
            "https://lab.example/s/demo?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"
        );
        assert_eq!(links[2].url, "https://lab.example/s/demo?id=%SURVEY_CODE%");
    }

    #[test]
    fn the_lifecycle_only_moves_forward_or_between_active_and_paused() {
        use StudyStatus::{Active, Closed, Draft, Paused};
        let to = |s| transitions(s).iter().map(|t| t.to).collect::<Vec<_>>();
        assert_eq!(to(Draft), [Active]);
        assert_eq!(to(Active), [Paused, Closed]);
        assert_eq!(to(Paused), [Active, Closed]);
        assert!(to(Closed).is_empty());
    }
}
