//! Live monitoring of a study: sessions by state, exclusions with their reasons, responses per unit
//! against the target, catch accuracy, median reaction and completion times. The page renders the
//! figures once and `static/admin.js` refreshes them from `monitor.json`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use askama::Template;
use serde::{Deserialize, Serialize};

use super::{count, load_study, page, percent, Admin, AdminError, Chrome, PageResult, StudyNav};
use crate::db;
use crate::export::responses;
use crate::web::AppState;

/// How often the page asks for fresh figures.
pub const REFRESH_MS: u64 = 5000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/studies/{id}/monitor", web::get().to(show))
        .route("/studies/{id}/monitor.json", web::get().to(json));
}

#[derive(Debug, Serialize)]
pub struct UnitRow {
    pub label: String,
    pub tap: String,
    pub basis: String,
    pub assigned: i64,
    pub valid: i64,
    pub target: i64,
    pub percent: i64,
}

#[derive(Debug, Serialize)]
pub struct Reason {
    pub reason: String,
    pub sessions: i64,
}

/// An excluded session: its pseudonym (as in `responses.csv`) and the rules it failed, in words.
#[derive(Debug, Serialize)]
pub struct Excluded {
    pub session: String,
    pub when: String,
    pub failed: Vec<String>,
}

/// How long the list of recent exclusions is.
const RECENT_EXCLUSIONS: i64 = 8;

/// A session that refused starts with its external id (see [`db::dashboard::refused_starts`]).
#[derive(Debug, Serialize)]
pub struct Refused {
    pub session: String,
    pub stage: String,
    pub times: i32,
    pub last: String,
}

/// How many sessions with refused starts are listed.
const REFUSED_LISTED: i64 = 20;

/// The exclusion rules (DESIGN 1.3) in words.
fn rule_label(rule: &str) -> String {
    match rule {
        "catch_accuracy" => "Catch accuracy below the threshold".into(),
        "answers_per_position" => "Too few answers at one query position".into(),
        "instructions_time" => "Too little time on the instructions".into(),
        "total_time" => "Total time outside the allowed range".into(),
        "practice_attempts" => "Too many practice rounds".into(),
        "answer_timing" => "Answers sooner than the button lock allows".into(),
        other => other.into(),
    }
}

/// The failed checks of a session's stored exclusion result, each as "label: detail".
fn failed_checks(checks: &serde_json::Value) -> Vec<String> {
    checks
        .as_array()
        .map(|all| {
            all.iter()
                .filter_map(|c| match c {
                    serde_json::Value::String(rule) => Some(rule_label(rule)),
                    serde_json::Value::Object(o) if o.get("passed") != Some(&true.into()) => {
                        let rule = o.get("rule").and_then(|r| r.as_str()).unwrap_or("rule");
                        let detail = o.get("detail").and_then(|d| d.as_str()).unwrap_or("");
                        Some(format!("{}: {detail}", rule_label(rule)))
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every figure of the page; the JSON endpoint sends the same.
#[derive(Debug, Serialize)]
pub struct Snapshot {
    pub status: String,
    pub started: i64,
    pub in_progress: i64,
    pub completed: i64,
    pub excluded: i64,
    pub reasons: Vec<Reason>,
    pub recent_exclusions: Vec<Excluded>,
    pub refused: Vec<Refused>,
    pub valid: i64,
    pub target: i64,
    pub percent: i64,
    pub catch_answered: i64,
    pub catch_accuracy: Option<f64>,
    pub median_rt_ms: Option<f64>,
    pub median_completion_secs: Option<f64>,
    pub units_done: i64,
    pub units: Vec<UnitRow>,
    /// The same figures as the page prints them.
    pub text: SnapshotText,
}

#[derive(Debug, Serialize)]
pub struct SnapshotText {
    pub started: String,
    pub in_progress: String,
    pub completed: String,
    pub excluded: String,
    pub valid: String,
    pub target: String,
    pub catch_accuracy: String,
    pub median_rt: String,
    pub median_completion: String,
    pub units_done: String,
    pub updated: String,
}

pub async fn snapshot(
    state: &AppState,
    study_id: i64,
) -> Result<(Snapshot, crate::study::Study), AdminError> {
    let mut conn = state.pool.acquire().await?;
    let study = load_study(&mut conn, study_id).await?;
    let sessions = db::dashboard::session_counts(&mut conn, study.id).await?;
    let responses = db::dashboard::response_counts(&mut conn, study.id).await?;
    let reasons = db::dashboard::exclusion_reasons(&mut conn, study.id).await?;
    let units = db::dashboard::unit_progress(&mut conn, study.id).await?;
    let recent = db::dashboard::recent_exclusions(&mut conn, study.id, RECENT_EXCLUSIONS).await?;
    let refused = db::dashboard::refused_starts(&mut conn, study.id, REFUSED_LISTED).await?;
    let per_unit = study.config.responses_per_unit;
    let target = units.len() as i64 * per_unit;
    let units: Vec<UnitRow> = units
        .into_iter()
        .map(|u| UnitRow {
            label: format!("{} · {} · {} #{}", u.model, u.tap, u.basis, u.unit_index),
            tap: u.tap,
            basis: u.basis,
            assigned: u.assigned,
            valid: u.valid,
            target: per_unit,
            percent: percent(u.valid, per_unit),
        })
        .collect();
    let units_done = units.iter().filter(|u| u.valid >= per_unit).count() as i64;
    let catch_accuracy = (responses.catch_answered > 0)
        .then(|| responses.catch_correct as f64 / responses.catch_answered as f64);
    let text = SnapshotText {
        started: count(sessions.started),
        in_progress: count(sessions.in_progress),
        completed: count(sessions.completed),
        excluded: count(sessions.excluded),
        valid: count(responses.valid),
        target: count(target),
        catch_accuracy: catch_accuracy
            .map(|a| format!("{:.0} %", a * 100.0))
            .unwrap_or_else(|| "–".into()),
        median_rt: responses
            .median_rt_ms
            .map(|ms| format!("{:.2} s", ms / 1000.0))
            .unwrap_or_else(|| "–".into()),
        median_completion: sessions
            .median_completion_secs
            .map(minutes)
            .unwrap_or_else(|| "–".into()),
        units_done: format!("{} of {}", count(units_done), count(units.len() as i64)),
        updated: chrono::Utc::now().format("%H:%M:%S UTC").to_string(),
    };
    let snapshot = Snapshot {
        status: study.status.to_string(),
        started: sessions.started,
        in_progress: sessions.in_progress,
        completed: sessions.completed,
        excluded: sessions.excluded,
        reasons: reasons
            .into_iter()
            .map(|r| Reason {
                reason: rule_label(&r.reason),
                sessions: r.sessions,
            })
            .collect(),
        recent_exclusions: recent
            .into_iter()
            .map(|e| Excluded {
                session: responses::pseudonym(&e.token),
                when: e
                    .completed_at
                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_else(|| "not finished".into()),
                failed: failed_checks(&e.checks),
            })
            .collect(),
        refused: refused
            .into_iter()
            .map(|r| Refused {
                session: responses::pseudonym(&r.token),
                stage: r.stage,
                times: r.refused_starts,
                last: r
                    .last_refused_at
                    .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                    .unwrap_or_default(),
            })
            .collect(),
        valid: responses.valid,
        target,
        percent: percent(responses.valid, target),
        catch_answered: responses.catch_answered,
        catch_accuracy,
        median_rt_ms: responses.median_rt_ms,
        median_completion_secs: sessions.median_completion_secs,
        units_done,
        units,
        text,
    };
    Ok((snapshot, study))
}

/// `m:ss` below an hour, `h:mm:ss` above.
fn minutes(secs: f64) -> String {
    let total = secs.max(0.0).round() as i64;
    let (h, m, s) = (total / 3600, total / 60 % 60, total % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m}:{s:02}")
    }
}

#[derive(Template)]
#[template(path = "admin/monitor.html")]
struct MonitorPage {
    chrome: Chrome,
    nav: StudyNav,
    s: Snapshot,
    refresh_ms: u64,
    notice: Option<&'static str>,
}

#[derive(Deserialize)]
struct MonitorQuery {
    participant: Option<String>,
}

async fn show(
    state: web::Data<AppState>,
    admin: Admin,
    id: web::Path<i64>,
    query: web::Query<MonitorQuery>,
) -> PageResult {
    let (s, study) = snapshot(&state, *id).await?;
    let notice = match query.participant.as_deref() {
        Some("reset") => Some("The participant was reset: their session and its answers are deleted, and their id can start again."),
        Some("unknown") => Some("No session has that participant id in this study; nothing was changed."),
        _ => None,
    };
    page(
        StatusCode::OK,
        &MonitorPage {
            chrome: Chrome::new(&admin, "studies"),
            nav: StudyNav::new(&study, "monitor"),
            s,
            refresh_ms: REFRESH_MS,
            notice,
        },
    )
}

async fn json(state: web::Data<AppState>, _admin: Admin, id: web::Path<i64>) -> PageResult {
    let (s, _) = snapshot(&state, *id).await?;
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(s))
}

#[cfg(test)]
mod tests {
    use super::{failed_checks, minutes};

    #[test]
    fn failed_checks_are_put_in_words() {
        let checks = serde_json::json!([
            {"rule": "catch_accuracy", "passed": false, "detail": "1 of 5 catch trials correct"},
            {"rule": "total_time", "passed": true, "detail": "300 s in total"},
        ]);
        assert_eq!(
            failed_checks(&checks),
            ["Catch accuracy below the threshold: 1 of 5 catch trials correct"]
        );
    }

    #[test]
    fn durations_read_as_clock_times() {
        assert_eq!(minutes(59.6), "1:00");
        assert_eq!(minutes(754.0), "12:34");
        assert_eq!(minutes(3723.0), "1:02:03");
    }
}
