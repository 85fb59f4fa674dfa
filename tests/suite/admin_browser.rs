//! The dashboard in a real headless Chromium: an admin logs in, creates a study, gives it stimuli,
//! opens it; a participant completes it; the admin sees the responses counted live and downloads
//! `responses.csv`. Screenshots of each page go to `target/screenshots/admin-*.png`.

use meilab::accounts::Role;
use serde_json::json;

use crate::common::admin::PASSWORD;
use crate::common::browser::Browser;
use crate::common::spawn_app;

#[tokio::test]
async fn an_admin_creates_and_opens_a_study_and_downloads_its_responses() {
    let app = spawn_app().await;
    app.create_account("owner", Role::Admin).await;
    let browser = Browser::start(940, 600).await;

    // Any dashboard page sends a visitor to the login form, and back after logging in.
    browser.goto(&app.url("/admin")).await;
    browser.wait("[data-testid=login-form]").await;
    browser.screenshot("admin-login").await;
    browser.fill("[data-testid=login-username]", "owner").await;
    browser
        .fill("[data-testid=login-password]", "not it at all")
        .await;
    browser.click("[data-testid=login-submit]").await;
    assert_eq!(
        browser.text("[data-testid=login-error]").await,
        "Wrong user name or password."
    );
    browser.fill("[data-testid=login-password]", PASSWORD).await;
    browser.click("[data-testid=login-submit]").await;
    browser.wait("[data-testid=new-study]").await;
    assert_eq!(browser.path().await, "/admin");

    // The form refuses impossible settings beside the field, then takes corrected ones.
    browser.click("[data-testid=new-study]").await;
    browser
        .fill("[data-testid='field-title']", "Which image fits? (browser)")
        .await;
    browser
        .fill("[data-testid='field-slug']", "browser-study")
        .await;
    browser
        .fill("[data-testid='field-trials_per_session']", "3")
        .await;
    browser
        .fill("[data-testid='field-catch_per_session']", "5")
        .await;
    browser.fill("[data-testid='field-lock_ms']", "-1").await;
    browser.js("window.scrollTo(0, 0);").await;
    browser.screenshot("admin-study-form").await;
    browser.click("[data-testid=save]").await;
    browser.wait("[data-testid=form-errors]").await;
    assert!(browser
        .text("[data-testid='error-catch_per_session']")
        .await
        .contains("cannot exceed"));
    assert!(browser
        .text("[data-testid='error-lock_ms']")
        .await
        .contains("between 0 and 60000"));
    browser.screenshot("admin-study-form-errors").await;
    assert_eq!(app.count("SELECT count(*) FROM studies").await, 0);
    browser
        .fill("[data-testid='field-catch_per_session']", "1")
        .await;
    browser.fill("[data-testid='field-lock_ms']", "200").await;
    browser
        .fill("[data-testid='field-practice.trials']", "0")
        .await;
    browser
        .fill("[data-testid='field-responses_per_unit']", "2")
        .await;
    browser
        .js("document.querySelector('[data-testid=\"field-exclusion.min_catch_accuracy\"]').closest('fieldset').scrollIntoView();")
        .await;
    browser.screenshot("admin-study-form-exclusion").await;
    // A participant driven by the test answers in milliseconds; the IMI time rules would exclude it.
    for field in [
        "exclusion.min_answers_per_position",
        "exclusion.min_instructions_secs",
        "exclusion.min_total_secs",
    ] {
        browser
            .fill(&format!("[data-testid='field-{field}']"), "0")
            .await;
    }
    browser.click("[data-testid=save]").await;
    browser.wait("[data-testid=synthetic-form]").await;

    // Stimuli: the synthetic calibration set; then the preview, with the answer marked.
    browser.click("[data-testid=synthetic-add]").await;
    browser.wait("[data-testid=stimuli-counts]").await;
    browser.click("[data-testid=tab-preview]").await;
    browser.wait("[data-testid=preview-answer]").await;
    browser
        .wait_until(
            "the preview's images",
            "return [...document.images].every(i => i.complete && i.naturalWidth > 0);",
        )
        .await;
    browser.screenshot("admin-preview").await;

    // Open it.
    let study_path = browser.path().await.replace("/preview", "");
    browser.goto(&app.url(&study_path)).await;
    browser.click("[data-testid=status-active]").await;
    assert_eq!(
        browser
            .text("[data-testid=study-status]")
            .await
            .to_lowercase(),
        "active"
    );
    browser.screenshot("admin-study-overview").await;
    let prolific = browser
        .js("return document.querySelector('[data-testid=link-prolific]').value;")
        .await;
    assert!(prolific
        .as_str()
        .unwrap_or_default()
        .ends_with("/s/browser-study?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}&SESSION_ID={{%SESSION_ID%}}"));

    // Monitoring before anyone took part, then a participant completes the study meanwhile.
    browser.click("[data-testid=tab-monitor]").await;
    assert_eq!(browser.text("[data-testid=stat-valid]").await, "0");
    let participant = app
        .participant(
            "browser-study",
            json!({"external_id": "p-1", "source": "prolific"}),
        )
        .await;
    participant.consent_and_read_instructions().await;
    let answered = participant.answer_everything().await;
    let (status, _) = participant.finish(json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(answered, 4, "three main trials and a catch trial");
    browser
        .wait_until(
            "the figures to refresh without a reload",
            "return document.querySelector('[data-testid=stat-valid]').textContent === '3' \
             && document.querySelector('[data-testid=stat-completed]').textContent === '1';",
        )
        .await;
    // A second participant misses the catch trial: excluded, with the reason on the page.
    let careless = app
        .participant(
            "browser-study",
            json!({"external_id": "p-2", "source": "prolific"}),
        )
        .await;
    careless.consent_and_read_instructions().await;
    careless.answer_everything_wrong().await;
    assert_eq!(careless.finish(json!({})).await.0, 200);
    browser
        .wait_until(
            "the exclusion to show",
            "return document.querySelector('[data-testid=stat-excluded]').textContent === '1' \
             && document.querySelector('[data-reasons]').textContent.includes('Catch accuracy');",
        )
        .await;
    assert_eq!(browser.text("[data-testid=stat-valid]").await, "3");
    browser.screenshot("admin-monitoring").await;

    // The download holds the response, one row each.
    browser.click("[data-testid=tab-results]").await;
    browser.wait("[data-testid='download-responses.csv']").await;
    browser.screenshot("admin-results").await;
    let csv = browser
        .js(
            "const a = document.querySelector('[data-testid=\"download-responses.csv\"]'); \
             return fetch(a.href, {credentials: 'same-origin'}).then(r => r.text());",
        )
        .await;
    let csv = csv.as_str().expect("CSV text");
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    let stored_count = app.count("SELECT count(*) FROM responses").await;
    assert_eq!(
        rows.len() as i64,
        stored_count,
        "every response, excluded ones flagged"
    );
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT response_id::text FROM responses ORDER BY position")
            .fetch_all(&app.pool)
            .await
            .expect("responses");
    for id in &stored {
        assert!(
            csv.contains(id.as_str()),
            "response {id} is in responses.csv"
        );
    }

    // The dashboard counts it too; then the same pages wider.
    browser.goto(&app.url("/admin")).await;
    browser.wait("[data-testid=studies]").await;
    assert!(browser
        .text("[data-testid=studies]")
        .await
        .contains("3 / 32"));
    browser.screenshot("admin-dashboard").await;
    browser.set_viewport(1280, 800).await;
    browser.screenshot("admin-dashboard-wide").await;
    browser
        .goto(&app.url(&format!("{study_path}/monitor")))
        .await;
    browser.wait("[data-testid=stat-valid]").await;
    browser.screenshot("admin-monitoring-wide").await;
    browser.close().await;
}
