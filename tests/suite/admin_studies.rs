//! Studies from the dashboard: the settings form and its validation, the lifecycle, stimuli, cloning,
//! monitoring figures and the responses download.

use std::path::PathBuf;

use meilab::accounts::Role;
use meilab::study::StudyConfig;

use crate::common::admin::{as_refs, location, study_fields, with, AdminClient};
use crate::common::studies::lenient;
use crate::common::{self, spawn_app};

async fn config_json(app: &common::TestApp, id: i64) -> serde_json::Value {
    sqlx::query_scalar("SELECT config FROM studies WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("study")
}

/// Creates a draft through the form; returns its id.
async fn create_study(admin: &AdminClient<'_>, slug: &str) -> i64 {
    let response = admin
        .post("/admin/studies", &as_refs(&study_fields(slug)))
        .await;
    assert_eq!(response.status(), 303, "the study is created");
    let to = location(&response);
    to.trim_start_matches("/admin/studies/")
        .split('?')
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("redirected to the new study, not {to}"))
}

fn imi_fixtures() -> PathBuf {
    std::env::var_os("MEILAB_TEST_ASSETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/assets"))
        .join("imi")
}

#[tokio::test]
async fn invalid_settings_are_refused_with_a_message_on_the_form_and_nothing_is_saved() {
    let app = spawn_app().await;
    app.create_account("owner", Role::Admin).await;
    let owner = app.login("owner").await;
    let cases = [
        (
            "catch_per_session",
            "41",
            "cannot exceed the number of main trials",
        ),
        ("lock_ms", "-1", "must be between 0 and 60000 ms"),
        (
            "completion.redirect_url",
            "javascript:alert(1)",
            "must be an http:// or https:// URL",
        ),
        (
            "completion.redirect_url",
            "ftp://files.example/done",
            "must be an http:// or https:// URL",
        ),
        ("trials_per_session", "many", "must be a whole number"),
        ("slug", "Not A Slug", "lowercase letters"),
    ];
    for (field, value, message) in cases {
        let fields = with(study_fields("new-study"), field, value);
        let response = owner.post("/admin/studies", &as_refs(&fields)).await;
        assert_eq!(response.status(), 422, "{field} = {value}");
        let page = response.text().await.expect("body");
        assert!(
            page.contains("Nothing was saved"),
            "{field}: the form says so"
        );
        assert!(
            page.contains(&format!("data-testid=\"error-{field}\"")),
            "{field}: the message sits beside the field"
        );
        assert!(page.contains(message), "{field}: {message}");
        assert!(
            page.contains(&format!("value=\"{}\"", value.replace('&', "&amp;")))
                || field.starts_with("texts"),
            "{field}: the typed value is kept"
        );
    }
    assert_eq!(
        app.count("SELECT count(*) FROM studies").await,
        0,
        "nothing saved"
    );

    // Editing refuses the same way and leaves the stored settings as they were.
    let id = create_study(&owner, "kept").await;
    let before = config_json(&app, id).await;
    let fields = with(study_fields("kept"), "lock_ms", "-1");
    let response = owner
        .post(&format!("/admin/studies/{id}/edit"), &as_refs(&fields))
        .await;
    assert_eq!(response.status(), 422);
    assert_eq!(config_json(&app, id).await, before);

    let fields = with(study_fields("kept"), "lock_ms", "800");
    let response = owner
        .post(&format!("/admin/studies/{id}/edit"), &as_refs(&fields))
        .await;
    assert_eq!(response.status(), 303);
    assert_eq!(config_json(&app, id).await["lock_ms"], 800);

    // A taken name is refused on the field too.
    let response = owner
        .post("/admin/studies", &as_refs(&study_fields("kept")))
        .await;
    assert_eq!(response.status(), 422);
    assert!(response
        .text()
        .await
        .expect("body")
        .contains("is already used by another study"));
}

#[tokio::test]
async fn a_study_moves_from_draft_to_active_to_paused_to_closed() {
    let app = spawn_app().await;
    app.create_account("owner", Role::Admin).await;
    let owner = app.login("owner").await;
    let id = create_study(&owner, "lifecycle").await;
    let status = |to: &'static str| [("to", to)];
    let set = |to: &'static str| {
        let path = format!("/admin/studies/{id}/status");
        let owner = &owner;
        async move { owner.post(&path, &status(to)).await.status().as_u16() }
    };
    assert_eq!(set("active").await, 409, "no stimuli yet");
    let added = owner
        .post(
            &format!("/admin/studies/{id}/stimuli"),
            &[("source", "synthetic")],
        )
        .await;
    assert_eq!(added.status(), 303);
    let (_, overview) = owner.text(&format!("/admin/studies/{id}")).await;
    assert!(overview.contains("data-testid=\"stimuli-counts\""));
    assert_eq!(set("paused").await, 409, "a draft cannot be paused");
    assert_eq!(set("active").await, 303);
    assert!(app
        .get("/s/lifecycle")
        .await
        .text()
        .await
        .expect("page")
        .contains("data-slug=\"lifecycle\""));
    assert_eq!(set("paused").await, 303);
    let paused = app.get("/s/lifecycle").await.text().await.expect("page");
    assert!(
        paused.contains("not open right now"),
        "participants see a friendly page"
    );
    assert_eq!(set("active").await, 303);
    assert_eq!(set("closed").await, 303);
    assert_eq!(set("active").await, 409, "closed for good");

    // The recruitment links are on the overview, ready to copy.
    let (_, overview) = owner.text(&format!("/admin/studies/{id}")).await;
    assert!(overview.contains(
        "/s/lifecycle?PROLIFIC_PID={{%PROLIFIC_PID%}}&#38;STUDY_ID={{%STUDY_ID%}}&#38;SESSION_ID={{%SESSION_ID%}}"
    ));
    assert!(overview.contains("/s/lifecycle?id=%SURVEY_CODE%"));
}

#[tokio::test]
async fn an_imi_folder_on_the_server_becomes_the_stimuli_of_a_draft_and_a_clone_copies_them() {
    let app = common::admin::spawn_app_with(|data| {
        meilab::web::api::limit::Limits::per_minute(120)
            .with_import_roots(vec![data.to_path_buf(), imi_fixtures()])
    })
    .await;
    app.create_account("owner", Role::Admin).await;
    let owner = app.login("owner").await;
    let id = create_study(&owner, "imported").await;
    let missing = owner
        .post(
            &format!("/admin/studies/{id}/stimuli"),
            &[
                ("source", "imi"),
                ("folder", "/no/such/folder"),
                ("model", "googlenet"),
            ],
        )
        .await;
    assert_eq!(missing.status(), 422);
    assert!(missing
        .text()
        .await
        .expect("body")
        .contains("is not a folder"));
    // A folder outside the import roots is refused like a missing one, without being read.
    let outside = owner
        .post(
            &format!("/admin/studies/{id}/stimuli"),
            &[("source", "imi"), ("folder", "/etc"), ("model", "x")],
        )
        .await;
    assert_eq!(outside.status(), 422);
    assert!(outside.text().await.expect("body").contains("import_roots"));

    let folder = imi_fixtures().join("trials/demo_natural_9_references");
    let folder = folder.to_str().expect("UTF-8 path");
    let added = owner
        .post(
            &format!("/admin/studies/{id}/stimuli"),
            &[
                ("source", "imi"),
                ("folder", folder),
                ("model", "googlenet"),
                ("catch_trials", "2"),
                ("practice_trials", "1"),
            ],
        )
        .await;
    assert_eq!(added.status(), 303);
    let trials = |study: i64| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM trials WHERE study_id = $1")
                .bind(study)
                .fetch_one(&pool)
                .await
                .expect("count")
        }
    };
    let imported = trials(id).await;
    assert!(imported >= 2, "{imported} trials");
    let again = owner
        .post(
            &format!("/admin/studies/{id}/stimuli"),
            &[("source", "synthetic")],
        )
        .await;
    assert_eq!(again.status(), 422, "a study's stimuli are not mixed");
    assert_eq!(trials(id).await, imported);

    let (status, preview) = owner.text(&format!("/admin/studies/{id}/preview")).await;
    assert_eq!(status, 200);
    assert_eq!(
        preview.matches("data-testid=\"preview-answer\"").count(),
        1,
        "the answer is marked"
    );

    let cloned = owner.post(&format!("/admin/studies/{id}/clone"), &[]).await;
    assert_eq!(cloned.status(), 303);
    let copy: i64 = sqlx::query_scalar(
        "SELECT id FROM studies WHERE slug = 'imported-copy' AND status = 'draft'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("the copy is a draft");
    assert_eq!(trials(copy).await, imported);
    assert_eq!(config_json(&app, copy).await, config_json(&app, id).await);
}

#[tokio::test]
async fn monitoring_and_responses_csv_count_a_completed_session() {
    let app = spawn_app().await;
    let config = StudyConfig {
        trials_per_session: 4,
        catch_per_session: 1,
        responses_per_unit: 2,
        lock_ms: 0,
        exclusion: lenient(),
        ..StudyConfig::default()
    };
    let id = app.create_synthetic_study("counted", config).await;
    app.create_account("rita", Role::Researcher).await;
    let rita = app.login("rita").await;

    let before: serde_json::Value = rita
        .get(&format!("/admin/studies/{id}/monitor.json"))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(before["started"], 0);
    assert_eq!(before["target"], 16 * 2, "16 units x 2 responses");

    let participant = app
        .participant(
            "counted",
            serde_json::json!({"external_id": "=cmd|calc", "source": "prolific"}),
        )
        .await;
    participant.consent_and_read_instructions().await;
    let answered = participant.answer_everything().await;
    let (status, _) = participant.finish(serde_json::json!({})).await;
    assert_eq!(status, 200);

    let after: serde_json::Value = rita
        .get(&format!("/admin/studies/{id}/monitor.json"))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        (after["started"].as_i64(), after["completed"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(after["valid"], 4, "four main trials");
    assert_eq!(after["catch_answered"], 1);
    assert!(after["median_rt_ms"].as_f64().is_some());
    assert_eq!(
        after["units"]
            .as_array()
            .expect("units")
            .iter()
            .map(|u| u["valid"].as_i64().unwrap_or(0))
            .sum::<i64>(),
        4
    );

    let response = rita
        .get(&format!("/admin/studies/{id}/responses.csv"))
        .await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("text/csv"));
    assert!(response.headers()["content-disposition"]
        .to_str()
        .unwrap_or_default()
        .contains("counted-responses.csv"));
    let csv = response.text().await.expect("CSV");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], meilab::export::responses::HEADER.join(","));
    assert_eq!(lines.len() - 1, answered, "one row per response");
    let stored = app.count("SELECT count(*) FROM responses").await;
    assert_eq!(stored as usize, answered);
    assert!(
        !csv.contains(&participant.token),
        "the session token never leaves the server"
    );
    assert!(
        !csv.contains("=cmd"),
        "no participant id, let alone a formula"
    );
    assert!(
        lines[1..].iter().all(|l| l.starts_with("s-")),
        "rows start with the session pseudonym"
    );
    assert_eq!(csv.matches(",main,").count(), 4);

    // A careless participant fails the catch trial: excluded, with the reason, and not counted.
    let careless = app
        .participant(
            "counted",
            serde_json::json!({"external_id": "p-2", "source": "prolific"}),
        )
        .await;
    careless.consent_and_read_instructions().await;
    let wrong = careless.answer_everything_wrong().await;
    assert_eq!(careless.finish(serde_json::json!({})).await.0, 200);
    let now: serde_json::Value = rita
        .get(&format!("/admin/studies/{id}/monitor.json"))
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        (
            now["started"].as_i64(),
            now["completed"].as_i64(),
            now["excluded"].as_i64()
        ),
        (Some(2), Some(1), Some(1))
    );
    assert_eq!(
        now["valid"], 4,
        "an excluded session's answers are not valid"
    );
    assert_eq!(
        now["reasons"][0]["reason"],
        "Catch accuracy below the threshold"
    );
    let detail = now["recent_exclusions"][0]["failed"][0]
        .as_str()
        .unwrap_or_default();
    assert!(detail.contains("catch trials correct"), "{detail}");
    let (_, page) = rita.text(&format!("/admin/studies/{id}/monitor")).await;
    assert!(page.contains("Catch accuracy below the threshold"));
    let csv = rita
        .get(&format!("/admin/studies/{id}/responses.csv"))
        .await
        .text()
        .await
        .expect("CSV");
    assert_eq!(
        csv.lines().count() - 1,
        answered + wrong,
        "excluded sessions are exported"
    );
    assert_eq!(csv.matches(",true,complete,").count(), wrong, "and flagged");
}

#[tokio::test]
async fn recruitment_links_ignore_the_host_headers_a_client_sends() {
    let app = spawn_app().await;
    app.create_account("owner", Role::Admin).await;
    let owner = app.login("owner").await;
    let id = create_study(&owner, "links").await;
    let overview = owner
        .request(reqwest::Method::GET, &format!("/admin/studies/{id}"))
        .header("Host", "evil.example")
        .header("X-Forwarded-Host", "evil.example")
        .header("X-Forwarded-Proto", "https")
        .header("Forwarded", "host=evil.example;proto=https")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !overview.contains("evil.example"),
        "a link names the client's host"
    );
    let port = app.address.rsplit(':').next().unwrap();
    assert!(
        overview.contains(&format!("http://127.0.0.1:{port}/s/links?")),
        "links use the server's own address"
    );
}

#[tokio::test]
async fn the_study_form_warns_about_feedback_on_main_trials_which_is_off_by_default() {
    let app = spawn_app().await;
    app.create_account("owner", Role::Admin).await;
    let owner = app.login("owner").await;
    let (status, form) = owner.text("/admin/studies/new").await;
    assert_eq!(status, 200);
    let checkbox = form
        .lines()
        .find(|l| l.contains("data-testid=\"field-feedback\""))
        .expect("the feedback checkbox");
    assert!(!checkbox.contains("checked"), "feedback is off by default");
    assert!(form.contains("data-testid=\"feedback-warning\""));
    assert!(form.contains("tells every participant which image was the right one"));
}

#[tokio::test]
async fn a_refused_start_shows_on_the_monitor_and_an_admin_can_reset_the_participant() {
    let app = spawn_app().await;
    let config = StudyConfig {
        lock_ms: 0,
        ..StudyConfig::default()
    };
    let study = app.create_synthetic_study("claimed", config).await;
    app.create_account("owner", Role::Admin).await;
    app.create_account("reader", Role::Researcher).await;
    let (status, _) = app
        .join("claimed", serde_json::json!({"external_id": "4711"}))
        .await;
    assert_eq!(status, 201);
    // The real participant, in another browser, is refused; the dashboard shows it.
    let (status, _) = app
        .join("claimed", serde_json::json!({"external_id": "4711"}))
        .await;
    assert_eq!(status, 409);
    let owner = app.login("owner").await;
    let (_, monitor) = owner.text(&format!("/admin/studies/{study}/monitor")).await;
    let refused = &monitor[monitor
        .find("data-testid=\"refused-starts\"")
        .expect("the list")..];
    assert!(
        refused.contains("<td class=\"num\">1</td>"),
        "one refused start listed"
    );

    let path = format!("/admin/studies/{study}/participants/reset");
    // Not without the CSRF token, not for a researcher.
    let forged = owner.post_raw(&path, &[("external_id", "4711")]).await;
    assert_eq!(forged.status(), 403);
    let reader = app.login("reader").await;
    let denied = reader.post(&path, &[("external_id", "4711")]).await;
    assert_eq!(denied.status(), 403);
    let blank = owner.post(&path, &[("external_id", "  ")]).await;
    assert_eq!(blank.status(), 400);
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 1);

    let reset = owner.post(&path, &[("external_id", "4711")]).await;
    assert_eq!(reset.status(), 303);
    assert!(location(&reset).ends_with("monitor?participant=reset"));
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 0);
    let (status, _) = app
        .join("claimed", serde_json::json!({"external_id": "4711"}))
        .await;
    assert_eq!(status, 201, "the participant starts afresh");

    let unknown = owner.post(&path, &[("external_id", "nobody")]).await;
    assert!(location(&unknown).ends_with("monitor?participant=unknown"));
}
