//! The participant page in a real headless Chromium, driven over WebDriver (fantoccini + chromedriver),
//! against the real server and a fresh PostgreSQL database.
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`); other paths
//! can be given with `MEILAB_TEST_CHROMIUM` and `MEILAB_TEST_CHROMEDRIVER`. A missing browser fails the
//! tests with a message saying so: they are never skipped silently.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use meilab::study::config::{Completion, PracticeConfig, StudyConfig};
use serde_json::{json, Value};
use sqlx::Row;

use crate::common::{self, spawn_app, TestApp};

const VIEWPORT: (u32, u32) = (940, 600);
const LOCK_MS: i64 = 300;
const WAIT: Duration = Duration::from_secs(30);
const COMPLETION_CODE: &str = "BROWSER-OK";

// ---------------------------------------------------------------------------------------------
// The browser

/// The shared headless Chromium (`common::browser`), with this page's ways of reading and driving it.
struct Browser(common::browser::Browser);

impl std::ops::Deref for Browser {
    type Target = common::browser::Browser;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Browser {
    async fn start() -> Self {
        Self(common::browser::Browser::start(VIEWPORT.0, VIEWPORT.1).await)
    }

    async fn close(self) {
        self.0.close().await;
    }

    /// What the page shows: the app's view, the trial's state, kind and position, and the status line.
    async fn page_state(&self) -> PageState {
        let v = self
            .js(
                r#"const app = document.getElementById('app');
                   const t = document.querySelector('[data-testid="trial"]');
                   const s = document.querySelector('[data-testid="status"]');
                   return [app ? app.dataset.state : 'no app', t ? (t.dataset.state || '') : '',
                           t ? (t.dataset.kind || '') : '', t ? Number(t.dataset.position ?? -1) : -1,
                           s ? s.textContent : ''];"#,
            )
            .await;
        PageState {
            view: v[0].as_str().unwrap_or_default().to_string(),
            trial: v[1].as_str().unwrap_or_default().to_string(),
            kind: v[2].as_str().unwrap_or_default().to_string(),
            position: v[3].as_i64().unwrap_or(-1),
            status: v[4].as_str().unwrap_or_default().to_string(),
        }
    }

    /// Waits until `ready` holds for the page state; fails with what the page shows instead.
    async fn wait_for(&self, what: &str, ready: impl Fn(&PageState) -> bool) -> PageState {
        let started = Instant::now();
        loop {
            let state = self.page_state().await;
            if ready(&state) {
                return state;
            }
            if started.elapsed() > WAIT {
                panic!(
                    "waited {WAIT:?} for {what}; the page shows {state:?} (status line: {:?})",
                    state.status
                );
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }

    /// Waits for a visible element with this `data-testid`.
    /// Waits for a visible element with this `data-testid`.
    async fn wait_testid(&self, testid: &str) -> fantoccini::elements::Element {
        self.0.wait(&format!(r#"[data-testid="{testid}"]"#)).await
    }

    async fn click(&self, testid: &str) {
        self.0.click(&format!(r#"[data-testid="{testid}"]"#)).await;
    }

    async fn text(&self, testid: &str) -> String {
        self.0.text(&format!(r#"[data-testid="{testid}"]"#)).await
    }

    async fn press(&self, key: char) {
        let keys = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.client
            .perform_actions(keys)
            .await
            .expect("press a key");
    }

    async fn reload(&self) {
        self.client.refresh().await.expect("reload the page");
    }

    /// The answers waiting in the page's outbox (`meilab:<slug>:outbox`).
    async fn outbox(&self, slug: &str) -> Vec<Value> {
        let raw = self
            .js_with(
                "return localStorage.getItem(arguments[0]);",
                vec![json!(format!("meilab:{slug}:outbox"))],
            )
            .await;
        match raw.as_str() {
            Some(text) => serde_json::from_str(text).expect("the outbox is JSON"),
            None => vec![],
        }
    }
}

#[derive(Debug, Clone)]
struct PageState {
    view: String,
    trial: String,
    kind: String,
    position: i64,
    status: String,
}

impl PageState {
    fn trial_ready(&self) -> bool {
        self.view == "trial" && self.trial == "ready"
    }
}

// ---------------------------------------------------------------------------------------------
// Study, answers and database helpers

fn study_config(main_trials: i64, catch_trials: i64) -> StudyConfig {
    StudyConfig {
        trials_per_session: main_trials,
        catch_per_session: catch_trials,
        lock_ms: LOCK_MS,
        practice: PracticeConfig {
            trials: 2,
            max_attempts: 3,
        },
        completion: Completion {
            code: COMPLETION_CODE.into(),
            redirect_url: None,
        },
        ..StudyConfig::default()
    }
}

/// The (chosen query, confidence) that answer button / key `k` (1..=6) stands for.
fn meaning_of_key(k: u8) -> (i16, i16) {
    match k {
        1 => (0, 3),
        2 => (0, 2),
        3 => (0, 1),
        4 => (1, 1),
        5 => (1, 2),
        6 => (1, 3),
        _ => unreachable!("keys are 1..=6"),
    }
}

/// The key that answers `chosen` (0 = top, 1 = bottom) with a middling confidence.
fn key_for(chosen: bool, variant: usize) -> u8 {
    let top = [1u8, 2, 3];
    let bottom = [6u8, 5, 4];
    if chosen {
        bottom[variant % 3]
    } else {
        top[variant % 3]
    }
}

async fn session_id(app: &TestApp, external_id: &str) -> i64 {
    // Sessions keep only the keyed pseudonym of the external id.
    let study: i64 = sqlx::query_scalar("SELECT id FROM studies")
        .fetch_one(&app.pool)
        .await
        .expect("one study");
    sqlx::query_scalar("SELECT id FROM sessions WHERE external_id_hash = $1")
        .bind(app.key.pseudonym(study, external_id))
        .fetch_one(&app.pool)
        .await
        .expect("the session exists")
}

/// Whether the query shown on top at `position` is the max one (read from the database, never the page).
async fn max_on_top(app: &TestApp, session: i64, position: i64) -> bool {
    sqlx::query("SELECT max_first FROM assignments WHERE session_id = $1 AND position = $2")
        .bind(session)
        .bind(position as i32)
        .fetch_one(&app.pool)
        .await
        .expect("the position is assigned")
        .get("max_first")
}

#[derive(Debug)]
struct StoredResponse {
    response_id: String,
    position: i32,
    chosen: i16,
    confidence: i16,
    rt_ms: i32,
}

async fn responses(app: &TestApp, session: i64) -> Vec<StoredResponse> {
    sqlx::query(
        "SELECT response_id::text AS response_id, position, chosen, confidence, rt_ms \
         FROM responses WHERE session_id = $1 ORDER BY position",
    )
    .bind(session)
    .fetch_all(&app.pool)
    .await
    .expect("read responses")
    .into_iter()
    .map(|row| StoredResponse {
        response_id: row.get("response_id"),
        position: row.get("position"),
        chosen: row.get("chosen"),
        confidence: row.get("confidence"),
        rt_ms: row.get("rt_ms"),
    })
    .collect()
}

async fn assigned_positions(app: &TestApp, session: i64) -> Vec<i32> {
    sqlx::query("SELECT position FROM assignments WHERE session_id = $1 ORDER BY position")
        .bind(session)
        .fetch_all(&app.pool)
        .await
        .expect("read assignments")
        .into_iter()
        .map(|row| row.get("position"))
        .collect()
}

/// Every assigned position has exactly one response, and the answers are those the test gave.
async fn assert_every_answer_stored_once(app: &TestApp, session: i64, given: &BTreeMap<i64, u8>) {
    let stored = responses(app, session).await;
    let positions: Vec<i32> = stored.iter().map(|r| r.position).collect();
    let distinct: HashSet<i32> = positions.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        stored.len(),
        "duplicate responses: {positions:?}"
    );
    let ids: HashSet<&str> = stored.iter().map(|r| r.response_id.as_str()).collect();
    assert_eq!(ids.len(), stored.len(), "a response id was stored twice");
    assert_eq!(
        positions,
        assigned_positions(app, session).await,
        "every assigned position (main, catch and practice) has one response"
    );
    for response in &stored {
        assert!(response.rt_ms > 0, "rt_ms must be positive: {response:?}");
        assert!(
            i64::from(response.rt_ms) >= LOCK_MS,
            "an answer came before the buttons unlocked: {response:?}"
        );
        let key = given
            .get(&i64::from(response.position))
            .unwrap_or_else(|| panic!("the test never answered position {}", response.position));
        assert_eq!(
            (response.chosen, response.confidence),
            meaning_of_key(*key),
            "position {} was answered with key {key}",
            response.position
        );
    }
}

async fn assert_complete(app: &TestApp, session: i64, feedback: Option<&str>) {
    let row = sqlx::query("SELECT stage, completed_at IS NOT NULL AS done, feedback, main_total FROM sessions WHERE id = $1")
        .bind(session)
        .fetch_one(&app.pool)
        .await
        .expect("read the session");
    assert_eq!(row.get::<String, _>("stage"), "complete");
    assert!(row.get::<bool, _>("done"), "completed_at is set");
    assert_eq!(
        row.get::<Option<String>, _>("feedback").as_deref(),
        feedback
    );
}

async fn main_total(app: &TestApp, session: i64) -> i64 {
    let total: i32 = sqlx::query("SELECT main_total FROM sessions WHERE id = $1")
        .bind(session)
        .fetch_one(&app.pool)
        .await
        .expect("read the session")
        .get("main_total");
    i64::from(total)
}

// ---------------------------------------------------------------------------------------------
// Driving the page

/// Consent and instructions, from the page as it loads.
async fn consent_and_start(browser: &Browser) {
    browser.wait_testid("consent").await;
    assert!(
        !browser.text("consent-text").await.trim().is_empty(),
        "the consent text is shown"
    );
    browser.click("consent-agree").await;
    browser.wait_testid("instructions").await;
    browser.click("instructions-start").await;
}

/// Answers the trial on screen by clicking (`by_key == false`) or by key; returns the key used.
async fn answer(browser: &Browser, key: u8, by_key: bool) {
    if by_key {
        browser.press(char::from(b'0' + key)).await;
    } else {
        browser.click(&format!("answer-{key}")).await;
    }
}

/// Practice: the first round is answered wrong on purpose (to see it repeat), the second right.
/// Returns the keys given per position.
async fn run_practice(
    browser: &Browser,
    app: &TestApp,
    session: i64,
    given: &mut BTreeMap<i64, u8>,
) {
    let mut rounds_seen = 0;
    loop {
        let state = browser
            .wait_for("a practice trial or the end of a practice round", |s| {
                s.trial_ready() || s.view == "round"
            })
            .await;
        if state.view == "round" {
            rounds_seen += 1;
            let result = browser
                .js(r#"return document.querySelector('[data-testid="round"]').dataset.result;"#)
                .await;
            let text = browser.text("round-text").await;
            if rounds_seen == 1 {
                assert_eq!(
                    result,
                    json!("not-all-correct"),
                    "the first round was answered wrong: {text}"
                );
                assert!(
                    text.contains("repeat"),
                    "the participant is told the practice repeats: {text}"
                );
            } else {
                assert_eq!(
                    result,
                    json!("all-correct"),
                    "the second round was answered right: {text}"
                );
                assert!(
                    text.contains("main part"),
                    "the participant is told the main part starts: {text}"
                );
            }
            browser.click("round-continue").await;
            if rounds_seen == 2 {
                return;
            }
            continue;
        }
        assert_eq!(
            state.kind, "practice",
            "practice comes before the main block: {state:?}"
        );
        let label = browser.text("progress-label").await;
        assert_eq!(
            label, "Practice",
            "the progress bar says Practice during practice"
        );
        let top_is_max = max_on_top(app, session, state.position).await;
        let choose_bottom = if rounds_seen == 0 {
            top_is_max
        } else {
            !top_is_max
        };
        let key = key_for(choose_bottom, given.len());
        answer(browser, key, given.len() % 2 == 1).await;
        given.insert(state.position, key);
        // Practice always gives feedback; the page keeps the last one on the feedback element.
        let expected = if rounds_seen == 0 { "wrong" } else { "correct" };
        let started = Instant::now();
        loop {
            let shown = browser
                .js(
                    r#"const f = document.querySelector('[data-testid="feedback"]');
                       return [f.dataset.position ?? null, f.dataset.result ?? null];"#,
                )
                .await;
            if shown[0] == json!(state.position.to_string()) {
                assert_eq!(
                    shown[1],
                    json!(expected),
                    "feedback for practice position {}",
                    state.position
                );
                break;
            }
            if started.elapsed() > WAIT {
                panic!(
                    "no feedback after a practice answer; the page shows {:?}",
                    browser.page_state().await
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A trial is on screen, whole, without scrolling, at the test viewport.
async fn assert_trial_fits(browser: &Browser) {
    let layout = browser
        .js(
            r#"const r = (id) => document.querySelector(`[data-testid="${id}"]`).getBoundingClientRect();
               const parts = ['refs-left', 'refs-right', 'query-0', 'query-1', 'answer-1', 'answer-6', 'progress', 'question'];
               const out = parts.filter((id) => { const b = r(id);
                   return b.width === 0 || b.left < 0 || b.top < 0 || b.right > innerWidth || b.bottom > innerHeight; });
               return { outside: out,
                        scrolls: document.documentElement.scrollHeight > innerHeight || document.documentElement.scrollWidth > innerWidth,
                        images: document.querySelectorAll('[data-testid="trial"] img').length,
                        undecoded: [...document.querySelectorAll('[data-testid="trial"] img')].filter((i) => !i.complete || i.naturalWidth === 0).length,
                        unlabelled: [...document.querySelectorAll('[data-testid="trial"] img')].filter((i) => !i.alt).length };"#,
        )
        .await;
    assert_eq!(
        layout["outside"],
        json!([]),
        "parts of the trial lie outside the {VIEWPORT:?} viewport: {layout}"
    );
    assert_eq!(
        layout["scrolls"],
        json!(false),
        "the trial page scrolls at {VIEWPORT:?}: {layout}"
    );
    assert_eq!(
        layout["images"],
        json!(20),
        "9 + 9 references and 2 queries are shown: {layout}"
    );
    assert_eq!(
        layout["undecoded"],
        json!(0),
        "every image is loaded before the trial shows: {layout}"
    );
    assert_eq!(
        layout["unlabelled"],
        json!(0),
        "every image has alt text: {layout}"
    );
}

/// Debrief with a comment, then the completion code.
async fn finish(browser: &Browser, feedback: &str) -> String {
    browser
        .wait_for("the debrief", |s| s.view == "debrief")
        .await;
    assert!(
        !browser.text("debrief-text").await.trim().is_empty(),
        "the debrief text is shown"
    );
    let textarea = browser.wait_testid("debrief-feedback").await;
    textarea.send_keys(feedback).await.expect("type feedback");
    browser.click("debrief-finish").await;
    browser
        .wait_for("the completion page", |s| s.view == "complete")
        .await;
    browser.text("completion-code").await
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn a_participant_completes_a_study_with_clicks_and_keys() {
    let app = spawn_app().await;
    let slug = "browser-complete";
    app.create_synthetic_study(slug, study_config(5, 1)).await;
    let browser = Browser::start().await;
    let external_id = "prolific-participant-a";
    browser
        .goto(&format!(
            "{}/s/{slug}?PROLIFIC_PID={external_id}&STUDY_ID=study-1&SESSION_ID=visit-1",
            app.address
        ))
        .await;

    consent_and_start(&browser).await;
    let session = session_id(&app, external_id).await;
    let mut given = BTreeMap::new();
    run_practice(&browser, &app, session, &mut given).await;

    let total = main_total(&app, session).await;
    let mut main_answers = 0i64;
    loop {
        let state = browser
            .wait_for("a main trial or the debrief", |s| {
                s.trial_ready() || s.view == "debrief"
            })
            .await;
        if state.view == "debrief" {
            break;
        }
        assert_eq!(
            state.kind, "main",
            "only main trials follow the practice: {state:?}"
        );
        assert_eq!(state.position, main_answers, "main trials come in order");
        assert_eq!(
            browser.text("progress-label").await,
            format!("{main_answers} / {total}"),
            "the progress bar counts the main block"
        );
        if main_answers == 0 {
            assert_trial_fits(&browser).await;
        }
        // Alternate clicks and keys, over all six answers.
        let key = (main_answers % 6) as u8 + 1;
        answer(&browser, key, main_answers % 2 == 1).await;
        given.insert(state.position, key);
        main_answers += 1;
        browser
            .wait_for("the answer to be acknowledged", |s| {
                s.position != state.position || s.view != "trial"
            })
            .await;
    }
    assert_eq!(main_answers, total, "every main trial was shown once");

    let code = finish(&browser, "The images were clear.").await;
    assert_eq!(code, COMPLETION_CODE);
    assert!(
        browser.outbox(slug).await.is_empty(),
        "nothing is left unsent"
    );
    browser.close().await;

    assert_complete(&app, session, Some("The images were clear.")).await;
    assert_every_answer_stored_once(&app, session, &given).await;
    let practice_attempts: i32 =
        sqlx::query("SELECT practice_attempts FROM sessions WHERE id = $1")
            .bind(session)
            .fetch_one(&app.pool)
            .await
            .expect("read the session")
            .get("practice_attempts");
    assert_eq!(
        practice_attempts, 2,
        "one failed and one passed practice round"
    );
}

#[tokio::test]
async fn a_reload_in_the_main_block_resumes_at_the_next_unanswered_trial() {
    let app = spawn_app().await;
    let slug = "browser-reload";
    app.create_synthetic_study(slug, study_config(8, 1)).await;
    let browser = Browser::start().await;
    let external_id = "mturk-worker-b";
    let url = format!(
        "{}/s/{slug}?workerId={external_id}&assignmentId=a-1&hitId=h-1",
        app.address
    );
    browser.goto(&url).await;
    consent_and_start(&browser).await;
    let session = session_id(&app, external_id).await;
    let mut given = BTreeMap::new();
    run_practice(&browser, &app, session, &mut given).await;

    // Answers the main trial on screen and waits for the acknowledgement.
    async fn answer_and_wait(browser: &Browser, given: &mut BTreeMap<i64, u8>) -> i64 {
        let state = browser
            .wait_for("a main trial", PageState::trial_ready)
            .await;
        let key = (state.position % 6) as u8 + 1;
        answer(browser, key, state.position % 2 == 0).await;
        given.insert(state.position, key);
        browser
            .wait_for("the answer to be acknowledged", |s| {
                s.position != state.position || s.view != "trial"
            })
            .await;
        state.position
    }

    // 1. Two answers, then a plain reload: the page resumes at the next trial.
    answer_and_wait(&browser, &mut given).await;
    let last = answer_and_wait(&browser, &mut given).await;
    browser.reload().await;
    let state = browser
        .wait_for("the resumed trial", PageState::trial_ready)
        .await;
    assert_eq!(
        (state.kind.as_str(), state.position),
        ("main", last + 1),
        "resumes at the next unanswered trial"
    );

    // 2. Reload after the click, before the answer reached the server: the outbox delivers it.
    browser
        .js(r#"const real = window.fetch.bind(window);
               window.fetch = (url, init) => String(url).endsWith('/responses') ? new Promise(() => {}) : real(url, init);"#)
        .await;
    let held = state.position;
    answer(&browser, 2, false).await;
    given.insert(held, 2);
    let queued = browser.outbox(slug).await;
    assert_eq!(
        queued.len(),
        1,
        "the answer waits in the outbox: {queued:?}"
    );
    assert_eq!(queued[0]["body"]["position"], json!(held));
    let held_id = queued[0]["body"]["response_id"]
        .as_str()
        .expect("a response id")
        .to_string();
    assert_eq!(
        browser
            .js(r#"return document.querySelector('[data-testid="saving"]').hidden;"#)
            .await,
        json!(false),
        "a saving indicator shows while the answer is unacknowledged"
    );
    assert!(
        responses(&app, session)
            .await
            .iter()
            .all(|r| i64::from(r.position) != held),
        "the server has not seen the held answer yet"
    );
    browser.reload().await;
    let state = browser
        .wait_for("the trial after the held one", PageState::trial_ready)
        .await;
    assert_eq!(
        state.position,
        held + 1,
        "the held answer was delivered after the reload"
    );
    assert!(
        browser.outbox(slug).await.is_empty(),
        "the outbox is empty once acknowledged"
    );

    // 3. Reload after the server stored the answer but before the page saw the acknowledgement:
    //    the same response id is sent again and the server answers it idempotently.
    browser
        .js(r#"const real = window.fetch.bind(window);
               window.__sent = 0;
               window.fetch = (url, init) => String(url).endsWith('/responses')
                   ? real(url, init).then(() => { window.__sent += 1; return new Promise(() => {}); })
                   : real(url, init);"#)
        .await;
    let unacked = state.position;
    answer(&browser, 5, true).await;
    given.insert(unacked, 5);
    let started = Instant::now();
    while browser.js("return window.__sent;").await != json!(1) {
        assert!(started.elapsed() < WAIT, "the answer was never sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let queued = browser.outbox(slug).await;
    assert_eq!(
        queued.len(),
        1,
        "the unacknowledged answer stays in the outbox: {queued:?}"
    );
    let unacked_id = queued[0]["body"]["response_id"]
        .as_str()
        .expect("a response id")
        .to_string();
    browser.reload().await;
    let state = browser
        .wait_for(
            "the trial after the unacknowledged one",
            PageState::trial_ready,
        )
        .await;
    assert_eq!(state.position, unacked + 1, "no trial is shown twice");

    // 4. The rest of the block.
    loop {
        let state = browser
            .wait_for("a main trial or the debrief", |s| {
                s.trial_ready() || s.view == "debrief"
            })
            .await;
        if state.view == "debrief" {
            break;
        }
        answer_and_wait(&browser, &mut given).await;
    }
    let code = finish(&browser, "Reloaded twice.").await;
    assert_eq!(code, COMPLETION_CODE);

    // A reload at the end shows this browser its code again; another browser with the same
    // participant id is told it has already taken part.
    browser.reload().await;
    browser
        .wait_for("the completion page after a reload", |s| {
            s.view == "complete"
        })
        .await;
    assert_eq!(browser.text("completion-code").await, COMPLETION_CODE);
    browser.js("localStorage.clear();").await;
    browser.reload().await;
    browser
        .wait_for("the already-taken-part page", |s| {
            s.view == "already-started"
        })
        .await;
    browser.close().await;

    assert_complete(&app, session, Some("Reloaded twice.")).await;
    assert_every_answer_stored_once(&app, session, &given).await;
    let stored = responses(&app, session).await;
    let id_at = |p: i64| {
        stored
            .iter()
            .find(|r| i64::from(r.position) == p)
            .map(|r| r.response_id.clone())
    };
    assert_eq!(
        id_at(held),
        Some(held_id),
        "the held answer is stored under the page's response id"
    );
    assert_eq!(
        id_at(unacked),
        Some(unacked_id),
        "the resent answer was not stored a second time"
    );
    let total = main_total(&app, session).await;
    assert_eq!(
        stored
            .iter()
            .filter(|r| i64::from(r.position) < total)
            .count() as i64,
        total,
        "one response per main position"
    );
}

#[tokio::test]
async fn the_page_and_payloads_carry_no_label_of_the_max_query() {
    const FORBIDDEN: &[&str] = &[
        "max_query",
        "min_query",
        "maxquery",
        "minquery",
        "is_max",
        "ismax",
        "max_first",
        "maxfirst",
        "correct_query",
        "query-max",
        "query-min",
        "max-query",
        "min-query",
        "data-max",
        "data-correct",
    ];
    let app = spawn_app().await;
    let slug = "browser-blind";
    app.create_synthetic_study(slug, study_config(8, 1)).await;

    // The page, its script and its stylesheet, as any client receives them.
    let http = reqwest::Client::new();
    for path in [
        format!("/s/{slug}"),
        "/static/participant.js".into(),
        "/static/style.css".into(),
    ] {
        let body = http
            .get(format!("{}{path}", app.address))
            .send()
            .await
            .expect("fetch")
            .text()
            .await
            .expect("body")
            .to_lowercase();
        for word in FORBIDDEN {
            assert!(!body.contains(word), "{path} contains {word:?}");
        }
    }

    // The page as it runs: the page itself keeps the session token (no external id).
    let browser = Browser::start().await;
    browser.goto(&format!("{}/s/{slug}", app.address)).await;
    consent_and_start(&browser).await;
    let token = browser
        .js_with(
            "return localStorage.getItem(arguments[0]);",
            vec![json!(format!("meilab:{slug}:token"))],
        )
        .await
        .as_str()
        .expect("the page keeps its token")
        .to_string();
    let session: i64 = sqlx::query("SELECT id FROM sessions WHERE token = $1")
        .bind(&token)
        .fetch_one(&app.pool)
        .await
        .expect("the session exists")
        .get("id");

    let mut seen_main = 0;
    let mut max_on_top_seen = HashSet::new();
    let mut given = BTreeMap::new();
    loop {
        let state = browser
            .wait_for("a trial, a round message or the debrief", |s| {
                s.trial_ready() || s.view == "round" || s.view == "debrief"
            })
            .await;
        match state.view.as_str() {
            "debrief" => break,
            "round" => {
                browser.click("round-continue").await;
                continue;
            }
            _ => {}
        }

        // The DOM around the two centre images: alike except for their order.
        let dom = browser
            .js(
                r#"const strip = (el) => {
                       const c = el.cloneNode(true);
                       for (const n of [c, ...c.querySelectorAll('*')]) {
                           for (const a of [...n.attributes]) {
                               if (['src', 'alt', 'data-testid', 'data-query'].includes(a.name)) n.removeAttribute(a.name);
                           }
                       }
                       return c.outerHTML;
                   };
                   const q = [0, 1].map((i) => document.querySelector(`[data-testid="query-${i}"]`));
                   const img = q.map((b) => b.querySelector('img'));
                   return { shapes: q.map(strip), src: img.map((i) => i.getAttribute('src')),
                            alt: img.map((i) => i.alt),
                            trial: document.querySelector('[data-testid="trial"]').outerHTML.toLowerCase() };"#,
            )
            .await;
        assert_eq!(
            dom["shapes"][0], dom["shapes"][1],
            "the two centre images differ beyond their order: {dom}"
        );
        let html = dom["trial"].as_str().unwrap_or_default();
        for word in FORBIDDEN {
            assert!(!html.contains(word), "the trial's DOM contains {word:?}");
        }
        for i in 0..2 {
            let src = dom["src"][i].as_str().unwrap_or_default();
            let (prefix, tag) = src.rsplit_once('/').unwrap_or_default();
            assert!(
                prefix.ends_with(&format!("/images/{}", state.position))
                    && tag.len() == 32
                    && tag.bytes().all(|b| b.is_ascii_hexdigit()),
                "a query image is served under an opaque tag only: {src}"
            );
        }
        let alts: Vec<&str> = dom["alt"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap_or_default())
            .collect();
        assert_eq!(
            alts,
            ["Centre image, top", "Centre image, bottom"],
            "alt texts say only top and bottom"
        );

        // The max query really is sometimes on top and sometimes below: its place tells nothing.
        let top_is_max = max_on_top(&app, session, state.position).await;
        if state.kind == "main" {
            max_on_top_seen.insert(top_is_max);
            seen_main += 1;
        }
        let key = if state.position % 2 == 0 { 1 } else { 6 };
        answer(&browser, key, false).await;
        given.insert(state.position, key);
        browser
            .wait_for("the next view", |s| {
                s.position != state.position || s.view != "trial"
            })
            .await;

        // The payload the page receives has only the documented keys.
        if seen_main == 1 {
            let next = http
                .get(format!(
                    "{}/api/v1/sessions/{token}/trials/next",
                    app.address
                ))
                .send()
                .await
                .expect("fetch the next trial");
            if next.status() == 200 {
                let payload: Value = next.json().await.expect("JSON");
                let keys: Vec<&String> = payload.as_object().expect("an object").keys().collect();
                let allowed = [
                    "answered", "attempt", "kind", "lock_ms", "max_refs", "max_side", "min_refs",
                    "position", "queries", "total",
                ];
                assert!(
                    keys.iter().all(|k| allowed.contains(&k.as_str())),
                    "unexpected keys in a trial: {keys:?}"
                );
                let text = payload.to_string().to_lowercase();
                for word in FORBIDDEN {
                    assert!(!text.contains(word), "the trial payload contains {word:?}");
                }
            }
        }
    }
    assert!(seen_main >= 4, "the main trials were shown");
    browser.close().await;
    // With 5 trials and random order, the max query on top every time (or never) has chance 1/16;
    // the order is seeded, so this is stable for the study seed used here.
    assert_eq!(
        max_on_top_seen.len(),
        2,
        "the max query appears on top in some trials and below in others"
    );
}
