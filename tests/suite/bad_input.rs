//! The bad-input sweep: every kind of malformed, hostile or out-of-turn request gets a 4xx JSON error
//! and writes nothing; hostile text is escaped wherever it is shown.

use meilab::accounts::Role;
use serde_json::json;

use crate::common::studies::small_study;
use crate::common::{spawn_app, Participant, TestApp};

/// Everything a participant request could write: row counts and a digest of every session, assignment
/// and response, so an update shows as well as an insert. A refused start with a known external id
/// counts itself on that session (the dashboard shows such refusals); that count is left out.
async fn snapshot(app: &TestApp) -> (i64, i64, i64, String) {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM assignments),
                (SELECT count(*) FROM responses),
                md5(coalesce((SELECT string_agg((to_jsonb(s) - 'refused_starts' - 'last_refused_at')::text, '|' ORDER BY s.id) FROM sessions s), '')
                 || coalesce((SELECT string_agg(a::text, '|' ORDER BY a.session_id, a.position) FROM assignments a), '')
                 || coalesce((SELECT string_agg(r::text, '|' ORDER BY r.response_id) FROM responses r), ''))",
    )
    .fetch_one(&app.pool)
    .await
    .expect("snapshot query")
}

/// Asserts a 4xx reply with a JSON `{error, message}` body; returns the status and the error code.
async fn json_error(response: reqwest::Response, case: &str) -> (u16, String) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = response.text().await.expect("body");
    assert!(
        (400..500).contains(&status),
        "{case}: expected a 4xx, got {status} {body}"
    );
    assert!(
        content_type.starts_with("application/json"),
        "{case}: expected JSON, got {content_type:?}: {body}"
    );
    let value: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{case}: not JSON ({e}): {body}"));
    let error = value["error"].as_str();
    assert!(
        error.is_some_and(|e| !e.is_empty()) && value["message"].is_string(),
        "{case}: expected {{error, message}}, got {body}"
    );
    (status, error.unwrap_or_default().to_string())
}

enum Body {
    Raw(&'static str, String),
    Json(serde_json::Value),
}

async fn send(app: &TestApp, method: reqwest::Method, path: &str, body: Body) -> reqwest::Response {
    let request = app.client.request(method, app.url(path));
    let request = match body {
        Body::Raw(content_type, text) => request.header("content-type", content_type).body(text),
        Body::Json(value) => request.json(&value),
    };
    request.send().await.expect("request is sent")
}

/// Sends `body` and asserts a 4xx JSON error with `status` and nothing written.
async fn refused(app: &TestApp, case: &str, path: &str, body: Body, status: u16) -> String {
    let before = snapshot(app).await;
    let response = send(app, reqwest::Method::POST, path, body).await;
    let (got, code) = json_error(response, case).await;
    assert_eq!(got, status, "{case}: status (error {code})");
    assert_eq!(snapshot(app).await, before, "{case}: nothing is written");
    code
}

#[tokio::test]
async fn malformed_and_mistyped_bodies_are_refused_without_writing() {
    let app = spawn_app().await;
    app.create_synthetic_study("typed", small_study()).await;
    let p = app.participant("typed", json!({})).await;
    p.consent_and_read_instructions().await;
    let position = p.next_trial().await.expect("a trial")["position"]
        .as_i64()
        .expect("position");
    let join = "/api/v1/studies/typed/sessions";
    let respond = format!("/api/v1/sessions/{}/responses", p.token);
    let finish = format!("/api/v1/sessions/{}/finish", p.token);
    let json_type = "application/json";

    for (case, text) in [
        ("truncated JSON", "{\"external_id\": "),
        ("not an object", "[1, 2, 3]"),
        ("trailing garbage", "{} {}"),
        ("not JSON at all", "external_id=abc"),
        ("invalid UTF-8 escape", "{\"external_id\": \"\\ud800\"}"),
    ] {
        for path in [join, respond.as_str(), finish.as_str()] {
            let code = refused(
                &app,
                &format!("{case} to {path}"),
                path,
                Body::Raw(json_type, text.into()),
                400,
            )
            .await;
            assert_eq!(code, "bad_request");
        }
    }
    refused(
        &app,
        "an answer that is not declared JSON",
        &respond,
        Body::Raw(
            "text/plain",
            Participant::answer_body(position, 0).to_string(),
        ),
        400,
    )
    .await;

    let session_cases = [
        ("external_id as a number", json!({"external_id": 5})),
        ("external_id as an object", json!({"external_id": {"a": 1}})),
        ("an unknown source", json!({"source": "myspace"})),
        ("source as a number", json!({"source": 1})),
        ("params as a list", json!({"params": [1, 2]})),
        ("params as a string", json!({"params": "a=b"})),
        ("an unknown field", json!({"token": "0".repeat(64)})),
    ];
    for (case, body) in session_cases {
        refused(&app, case, join, Body::Json(body), 400).await;
    }
    let session_rules = [
        ("a nested param", json!({"params": {"a": {"b": 1}}})),
        ("a numeric param", json!({"params": {"a": 1}})),
        (
            "too many params",
            json!({"params": (0..40).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<_, _>>()}),
        ),
        ("a long param", json!({"params": {"a": "x".repeat(1000)}})),
        ("a NUL in a param", json!({"params": {"a": "x\u{0}y"}})),
        ("a NUL in a param name", json!({"params": {"a\u{0}": "y"}})),
        (
            "a long external id",
            json!({"external_id": "x".repeat(201)}),
        ),
    ];
    for (case, body) in session_rules {
        refused(&app, case, join, Body::Json(body), 422).await;
    }

    let mut answer_cases = Vec::new();
    for (field, value) in [
        ("chosen", json!("left")),
        ("chosen", json!(0.5)),
        ("chosen", json!(null)),
        ("confidence", json!("sure")),
        ("position", json!("0")),
        ("position", json!(1u64 << 40)),
        ("rt_ms", json!(1.5)),
        ("rt_ms", json!(1e300)),
        ("response_id", json!("not-a-uuid")),
        ("response_id", json!(42)),
        ("client_ts", json!("yesterday")),
        ("extra", json!(true)),
    ] {
        let mut body = Participant::answer_body(position, 0);
        body[field] = value.clone();
        answer_cases.push((format!("{field} = {value}"), body));
    }
    let mut missing = Participant::answer_body(position, 0);
    missing
        .as_object_mut()
        .expect("object")
        .remove("response_id");
    answer_cases.push(("no response_id".into(), missing));
    for (case, body) in answer_cases {
        refused(&app, &case, &respond, Body::Json(body), 400).await;
    }
    for (case, field, value, code) in [
        ("chosen 2", "chosen", json!(2), "invalid_choice"),
        ("confidence 0", "confidence", json!(0), "invalid_confidence"),
        ("negative rt", "rt_ms", json!(-1), "invalid_rt"),
        (
            "negative position",
            "position",
            json!(-1),
            "invalid_position",
        ),
    ] {
        let mut body = Participant::answer_body(position, 0);
        body[field] = value;
        assert_eq!(
            refused(&app, case, &respond, Body::Json(body), 422).await,
            code
        );
    }

    refused(
        &app,
        "feedback as a number",
        &finish,
        Body::Json(json!({"feedback": 42})),
        400,
    )
    .await;
    // Finishing before the last trial is out of turn, whatever the feedback.
    refused(
        &app,
        "finish mid-session",
        &finish,
        Body::Json(json!({"feedback": "fine"})),
        409,
    )
    .await;

    // The session still works after all that.
    let chosen = p.max_index(position).await;
    let (status, _) = p.answer(Participant::answer_body(position, chosen)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bodies_over_the_cap_are_refused_before_they_are_read() {
    let app = spawn_app().await;
    app.create_synthetic_study("huge", small_study()).await;
    let p = app.participant("huge", json!({})).await;
    p.consent_and_read_instructions().await;
    let position = p.next_trial().await.expect("a trial")["position"]
        .as_i64()
        .expect("position");
    let padding = "x".repeat(100 * 1024);
    let mut answer = Participant::answer_body(position, 0);
    answer["pad"] = json!(padding);
    let cases = [
        (
            "/api/v1/studies/huge/sessions".to_string(),
            json!({"external_id": "big", "params": {"a": padding}}),
        ),
        (format!("/api/v1/sessions/{}/responses", p.token), answer),
        (
            format!("/api/v1/sessions/{}/finish", p.token),
            json!({"feedback": padding}),
        ),
    ];
    for (path, body) in cases {
        let before = snapshot(&app).await;
        let response = send(&app, reqwest::Method::POST, &path, Body::Json(body)).await;
        let (status, _) = json_error(response, &format!("100 KiB to {path}")).await;
        assert_eq!(status, 413, "{path}");
        assert_eq!(snapshot(&app).await, before, "{path}: nothing is written");
    }
}

#[tokio::test]
async fn unknown_or_foreign_tokens_and_unassigned_positions_are_refused() {
    let app = spawn_app().await;
    app.create_synthetic_study("tokens", small_study()).await;
    let alice = app
        .participant("tokens", json!({"external_id": "alice"}))
        .await;
    let bob = app
        .participant("tokens", json!({"external_id": "bob"}))
        .await;
    for p in [&alice, &bob] {
        p.consent_and_read_instructions().await;
    }
    let position = bob.next_trial().await.expect("a trial")["position"]
        .as_i64()
        .expect("position");
    let bob_answer = Participant::answer_body(position, bob.max_index(position).await);
    assert_eq!(bob.answer(bob_answer.clone()).await.0, 200);

    let unknown = [
        "f".repeat(64),
        "F".repeat(64),
        "not-a-token".into(),
        "x".repeat(2000),
        "%27%20OR%20%271%27%3D%271".into(),
        "..%2F..%2Fetc%2Fpasswd".into(),
    ];
    for token in &unknown {
        let base = format!("/api/v1/sessions/{token}");
        for (method, tail, body) in [
            (reqwest::Method::GET, "", json!(null)),
            (reqwest::Method::POST, "/consent", json!({})),
            (reqwest::Method::POST, "/instructions", json!({})),
            (reqwest::Method::GET, "/trials/next", json!(null)),
            (
                reqwest::Method::POST,
                "/responses",
                Participant::answer_body(0, 0),
            ),
            (reqwest::Method::POST, "/finish", json!({})),
        ] {
            let before = snapshot(&app).await;
            let response = send(&app, method, &format!("{base}{tail}"), Body::Json(body)).await;
            let (status, _) = json_error(response, &format!("token {token} on {tail}")).await;
            assert_eq!(status, 404, "token {token} on {tail:?}");
            assert_eq!(snapshot(&app).await, before);
        }
    }

    let alice_path = format!("/api/v1/sessions/{}/responses", alice.token);
    // Bob's response (same id, same answer) sent on Alice's token is not hers to replay.
    let code = refused(
        &app,
        "another participant's response id",
        &alice_path,
        Body::Json(bob_answer.clone()),
        409,
    )
    .await;
    assert_eq!(code, "response_id_reused");
    let mut reused = bob_answer.clone();
    reused["chosen"] = json!(1 - bob_answer["chosen"].as_i64().unwrap_or(0));
    refused(
        &app,
        "another participant's response id, other answer",
        &alice_path,
        Body::Json(reused),
        409,
    )
    .await;
    // Bob's next position is not Alice's turn: she has not answered the first one.
    let bob_next = bob.next_trial().await.expect("a trial")["position"]
        .as_i64()
        .expect("position");
    let code = refused(
        &app,
        "another participant's position",
        &alice_path,
        Body::Json(Participant::answer_body(bob_next, 0)),
        409,
    )
    .await;
    assert_eq!(code, "out_of_order");

    for (case, position) in [
        ("a position past the session", 9999),
        ("the largest position", i64::from(i32::MAX)),
        ("a practice position never assigned", 4 + 50),
    ] {
        let code = refused(
            &app,
            case,
            &alice_path,
            Body::Json(Participant::answer_body(position, 0)),
            422,
        )
        .await;
        assert_eq!(code, "unknown_position", "{case}");
    }
    let response: serde_json::Value = app
        .get(&format!("/api/v1/sessions/{}", bob.token))
        .await
        .json()
        .await
        .expect("state");
    assert_eq!(response["stage"], "practice", "Bob's session is untouched");
}

#[tokio::test]
async fn replays_after_completion_change_nothing() {
    let app = spawn_app().await;
    app.create_synthetic_study("replay", small_study()).await;
    let p = app
        .participant("replay", json!({"external_id": "carol"}))
        .await;
    p.consent_and_read_instructions().await;
    let first = p.next_trial().await.expect("a trial")["position"]
        .as_i64()
        .expect("position");
    let chosen = p.max_index(first).await;
    let first_answer = Participant::answer_body(first, chosen);
    let (status, first_reply) = p.answer(first_answer.clone()).await;
    assert_eq!(status, 200);
    p.answer_everything().await;
    let (status, done) = p.finish(json!({"feedback": "thanks"})).await;
    assert_eq!(status, 200, "{done}");

    let respond = format!("/api/v1/sessions/{}/responses", p.token);
    let mut different = first_answer.clone();
    different["chosen"] = json!(1 - chosen);
    assert_eq!(
        refused(
            &app,
            "the same id, a different answer",
            &respond,
            Body::Json(different),
            409
        )
        .await,
        "response_id_reused"
    );
    assert_eq!(
        refused(
            &app,
            "a new answer after completion",
            &respond,
            Body::Json(Participant::answer_body(first, 1 - chosen)),
            409,
        )
        .await,
        "wrong_stage"
    );
    assert_eq!(
        refused(
            &app,
            "joining again",
            "/api/v1/studies/replay/sessions",
            Body::Json(json!({"external_id": "carol"})),
            409,
        )
        .await,
        "already_started"
    );
    // The exact retry of an acknowledged answer still gets its reply, and stores nothing new.
    let before = snapshot(&app).await;
    let (status, reply) = p.answer(first_answer).await;
    assert_eq!((status, &reply), (200, &first_reply));
    let (status, again) = p.finish(json!({"feedback": "changed my mind"})).await;
    assert_eq!(
        (status, &again["completion_code"]),
        (200, &done["completion_code"])
    );
    assert_eq!(snapshot(&app).await, before, "retries after completion");
    let feedback: Option<String> = sqlx::query_scalar("SELECT feedback FROM sessions")
        .fetch_one(&app.pool)
        .await
        .expect("feedback");
    assert_eq!(feedback.as_deref(), Some("thanks"));
}

#[tokio::test]
async fn image_names_other_than_a_lowercase_sha256_are_refused() {
    let app = spawn_app().await;
    app.create_synthetic_study("images", small_study()).await;
    let sha: String = sqlx::query_scalar("SELECT sha256 FROM images LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .expect("an image");
    assert_eq!(app.get(&format!("/img/{sha}")).await.status(), 200);

    for (name, status) in [
        ("..%2F..%2Fetc%2Fpasswd", 400),
        ("..%2f..%2f..%2f..%2fetc%2fpasswd", 400),
        ("%2Fetc%2Fpasswd", 400),
        ("ZZZ", 400),
        ("..%5C..%5Cwindows", 400),
        (&sha.to_uppercase(), 400),
        (&sha[..63], 400),
        (&format!("{sha}0"), 400),
        (&format!("{sha}%00"), 400),
        (&format!("{sha}.png"), 400),
        (&"0".repeat(64), 404),
    ] {
        let response = app.get(&format!("/img/{name}")).await;
        let (got, _) = json_error(response, &format!("/img/{name}")).await;
        assert_eq!(got, status, "/img/{name}");
    }
    // Dot segments sent as they are (an HTTP client would resolve them first) reach no file either.
    for target in [
        "/img/../../../../../../etc/passwd",
        "/img/..",
        "/img/%2e%2e/%2e%2e/etc/passwd",
    ] {
        let reply = raw_get(&app, target).await;
        let status_line = reply.lines().next().unwrap_or_default().to_string();
        assert!(
            status_line.starts_with("HTTP/1.1 4"),
            "{target}: {status_line}"
        );
        assert!(!reply.contains("root:"), "{target}: {reply}");
    }
}

/// A GET of `target` exactly as written, over a plain socket.
async fn raw_get(app: &TestApp, target: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream
        .write_all(
            format!("GET {target} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .expect("request");
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.expect("reply");
    String::from_utf8_lossy(&reply).into_owned()
}

const XSS: [&str; 4] = [
    "<script>alert('xss')</script>",
    "\"><img src=x onerror=alert(1)>",
    "';alert(String.fromCharCode(88,83,83))//",
    "</textarea><svg onload=alert(1)>",
];

/// `text` does not carry any payload raw (every one contains `<`, `>` or a quote that must be escaped).
fn assert_escaped(page: &str, text: &str, what: &str) {
    for payload in XSS {
        let tagged = format!("{what}{payload}");
        assert!(
            !text.contains(&tagged),
            "{page} shows the {what} payload unescaped"
        );
    }
}

#[tokio::test]
async fn hostile_study_texts_are_escaped_on_participant_and_dashboard_pages() {
    let app = spawn_app().await;
    let mut config = small_study();
    // Each field gets every payload, prefixed by its name so a hit says where it came from.
    let payload = |field: &str| XSS.map(|x| format!("{field}{x}")).join(" ");
    config.texts.consent = payload("consent");
    config.texts.instructions = payload("instructions");
    config.texts.debrief = payload("debrief");
    config.completion.redirect_url =
        Some("https://example.org/?a=\"><script>alert(1)</script>".into());
    let id = app.create_synthetic_study("hostile", config).await;
    sqlx::query("UPDATE studies SET title = $1 WHERE id = $2")
        .bind(payload("title"))
        .bind(id)
        .execute(&app.pool)
        .await
        .expect("title");

    let query = "?PROLIFIC_PID=%3Cscript%3Ealert(1)%3C%2Fscript%3E\
                 &STUDY_ID=%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E";
    let page = app.get(&format!("/s/hostile{query}")).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.expect("page");
    for field in ["title", "consent", "instructions", "debrief"] {
        assert_escaped("/s/hostile", &html, field);
        assert!(
            html.contains(&format!("{field}&lt;script&gt;"))
                || html.contains(&format!("{field}&#60;script&#62;")),
            "the {field} text is shown, escaped"
        );
    }
    assert!(!html.contains("<script>alert(1)</script>"));
    assert!(!html.contains("<img src=x onerror=alert(1)>"));

    // A participant's hostile feedback, and the dashboard pages that show the study.
    let p = app.participant("hostile", json!({})).await;
    p.consent_and_read_instructions().await;
    p.answer_everything().await;
    let (status, done) = p.finish(json!({"feedback": XSS.join(" ")})).await;
    assert_eq!(status, 200);
    assert_eq!(
        done["redirect_url"],
        json!("https://example.org/?a=\"><script>alert(1)</script>"),
        "JSON carries the URL as data"
    );
    app.create_account("owner", Role::Admin).await;
    let owner = app.login("owner").await;
    for path in [
        "/admin".to_string(),
        format!("/admin/studies/{id}"),
        format!("/admin/studies/{id}/edit"),
        format!("/admin/studies/{id}/monitor"),
        format!("/admin/studies/{id}/preview"),
        format!("/admin/studies/{id}/results"),
    ] {
        let (status, html) = owner.text(&path).await;
        assert_eq!(status, 200, "{path}");
        for field in ["title", "consent", "instructions", "debrief"] {
            assert_escaped(&path, &html, field);
        }
        assert!(!html.contains("<script>alert(1)</script>"), "{path}");
        assert!(!html.contains("<svg onload=alert(1)>"), "{path}");
    }
    let (_, form) = owner.text(&format!("/admin/studies/{id}/edit")).await;
    assert!(
        form.contains("title&lt;script&gt;") || form.contains("title&#60;script&#62;"),
        "the form shows the title, escaped"
    );
}

#[tokio::test]
async fn sql_metacharacters_in_participant_fields_are_data() {
    let app = spawn_app().await;
    let study = app.create_synthetic_study("quotes", small_study()).await;
    let hostile = [
        "'; DROP TABLE responses; --",
        "\" OR 1=1 --",
        "x' OR '1'='1",
        "\\'; SELECT pg_sleep(5); --",
        "$1 $$ %_ \\x00",
        "Robert'); DELETE FROM sessions;--",
    ];
    for (i, text) in hostile.iter().enumerate() {
        let (status, reply) = app
            .join(
                "quotes",
                json!({
                    "external_id": text,
                    "source": "prolific",
                    "params": {"STUDY_ID": text, (*text): "v"},
                }),
            )
            .await;
        assert_eq!(status, 201, "{text}: {reply}");
        let token = reply["token"].as_str().expect("token").to_string();
        let (hash, params): (Option<String>, serde_json::Value) =
            sqlx::query_as("SELECT external_id_hash, params FROM sessions WHERE token = $1")
                .bind(&token)
                .fetch_one(&app.pool)
                .await
                .expect("the session is stored");
        assert_eq!(hash, Some(app.key.pseudonym(study, text)));
        assert_eq!(params, json!({"STUDY_ID": text, (*text): "v"}));

        let p = Participant { app: &app, token };
        p.consent_and_read_instructions().await;
        p.answer_everything().await;
        let (status, _) = p.finish(json!({"feedback": text})).await;
        assert_eq!(status, 200);
        let feedback: Option<String> =
            sqlx::query_scalar("SELECT feedback FROM sessions WHERE token = $1")
                .bind(&p.token)
                .fetch_one(&app.pool)
                .await
                .expect("feedback");
        assert_eq!(feedback.as_deref(), Some(*text));
        assert_eq!(
            app.count("SELECT count(*) FROM sessions").await,
            i as i64 + 1
        );
    }
    // Every session answered everything: 4 main + 1 catch + practice, all still there.
    let per_session = app
        .count("SELECT min(n) FROM (SELECT count(*) AS n FROM responses GROUP BY session_id) c")
        .await;
    assert!(per_session >= 5);
    assert_eq!(
        app.count("SELECT count(DISTINCT session_id) FROM responses")
            .await,
        hostile.len() as i64
    );

    for source in ["prolific'--", "link; DROP TABLE sessions", "LINK"] {
        refused(
            &app,
            source,
            "/api/v1/studies/quotes/sessions",
            Body::Json(json!({"source": source})),
            400,
        )
        .await;
    }
    for slug in [
        "quotes'--",
        "x%27%20OR%20%271%27%3D%271",
        "quotes%3B%20DROP%20TABLE%20studies",
    ] {
        let code = refused(
            &app,
            slug,
            &format!("/api/v1/studies/{slug}/sessions"),
            Body::Json(json!({})),
            404,
        )
        .await;
        assert_eq!(code, "not_found");
    }
    // NUL cannot be stored in text: refused as input, not failed as a query.
    let p = app.participant("quotes", json!({})).await;
    p.consent_and_read_instructions().await;
    p.answer_everything().await;
    refused(
        &app,
        "NUL in feedback",
        &format!("/api/v1/sessions/{}/finish", p.token),
        Body::Json(json!({"feedback": "a\u{0}b"})),
        422,
    )
    .await;
    let (status, _) = app
        .join("quotes", json!({"external_id": "nul\u{0}id"}))
        .await;
    assert_eq!(status, 201, "external ids are hashed, so NUL is harmless");
}

#[tokio::test]
async fn wrong_methods_and_unknown_api_paths_get_json_errors() {
    let app = spawn_app().await;
    app.create_synthetic_study("methods", small_study()).await;
    let p = app.participant("methods", json!({})).await;
    let before = snapshot(&app).await;
    let session = format!("/api/v1/sessions/{}", p.token);
    for (method, path, status) in [
        (reqwest::Method::DELETE, format!("{session}/responses"), 405),
        (reqwest::Method::GET, format!("{session}/consent"), 405),
        (
            reqwest::Method::PUT,
            "/api/v1/studies/methods/sessions".to_string(),
            405,
        ),
        (reqwest::Method::POST, format!("{session}/trials/next"), 405),
        (
            reqwest::Method::GET,
            "/api/v1/no-such-endpoint".to_string(),
            404,
        ),
        (reqwest::Method::POST, format!("{session}/answers"), 404),
    ] {
        let case = format!("{method} {path}");
        let response = send(&app, method, &path, Body::Json(json!({}))).await;
        let (got, _) = json_error(response, &case).await;
        assert_eq!(got, status, "{case}");
    }
    assert_eq!(snapshot(&app).await, before, "nothing is written");
}
