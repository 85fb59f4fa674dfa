//! The OpenAPI document at `/api/v1/openapi.json` against the routes the server really answers.

use std::collections::BTreeSet;

use meilab::study::StudyConfig;
use serde_json::{json, Value};

use crate::common::{self, spawn_app, Participant};

/// The participant API as DESIGN 2.2 lists it.
const ROUTES: [(&str, &str); 8] = [
    ("post", "/api/v1/studies/{slug}/sessions"),
    ("get", "/api/v1/sessions/{token}"),
    ("post", "/api/v1/sessions/{token}/consent"),
    ("post", "/api/v1/sessions/{token}/instructions"),
    ("get", "/api/v1/sessions/{token}/trials/next"),
    ("get", "/api/v1/sessions/{token}/images/{position}/{tag}"),
    ("post", "/api/v1/sessions/{token}/responses"),
    ("post", "/api/v1/sessions/{token}/finish"),
];

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

async fn document(app: &common::TestApp) -> Value {
    let response = app.get("/api/v1/openapi.json").await;
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("application/json"));
    response.json().await.expect("the document is JSON")
}

fn operations(doc: &Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .filter(|k| METHODS.contains(&k.as_str()))
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect()
}

/// Sends `method` to `path` with placeholders filled in; returns the status and the error message, if any.
async fn probe(app: &common::TestApp, method: &str, path: &str) -> (u16, String) {
    let url = app.url(
        &path
            .replace("{slug}", "no-such-study")
            .replace("{token}", &"0".repeat(64)),
    );
    let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
    let response = app
        .client
        .request(method, url)
        .json(&json!({}))
        .send()
        .await
        .expect("request is sent");
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body["message"].as_str().unwrap_or_default().to_string(),
    )
}

/// Whether the server has a handler for this method and path (not the catch-all, not 405).
async fn is_routed(app: &common::TestApp, method: &str, path: &str) -> bool {
    let (status, message) = probe(app, method, path).await;
    status != 405 && message != "no such endpoint"
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_the_server_answers() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert!(doc["openapi"]
        .as_str()
        .unwrap_or_default()
        .starts_with("3."));

    let expected: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    let documented = operations(&doc);
    let missing: Vec<_> = expected.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&expected).collect();
    assert!(missing.is_empty(), "routes not documented: {missing:?}");
    assert!(
        extra.is_empty(),
        "documented routes not in the API: {extra:?}"
    );

    // Both directions against the running server: each documented operation is handled, and no other
    // method is handled on its path.
    for path in documented.iter().map(|(_, p)| p).collect::<BTreeSet<_>>() {
        for method in METHODS {
            let listed = documented.contains(&(method.to_string(), path.clone()));
            assert_eq!(
                is_routed(&app, method, path).await,
                listed,
                "{method} {path}: routed vs documented"
            );
        }
    }
    // The probe can tell: a path that is not in the API is not routed.
    assert!(!is_routed(&app, "get", "/api/v1/sessions/{token}/trials").await);
}

#[tokio::test]
async fn operations_name_their_parameters_bodies_and_replies() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    for (method, path) in ROUTES {
        let op = &doc["paths"][path][method];
        let names: BTreeSet<&str> = op["parameters"]
            .as_array()
            .map(|ps| ps.iter().filter_map(|p| p["name"].as_str()).collect())
            .unwrap_or_default();
        for placeholder in ["slug", "token"] {
            assert_eq!(
                names.contains(placeholder),
                path.contains(&format!("{{{placeholder}}}")),
                "{method} {path}: parameter {placeholder}"
            );
        }
        let responses = op["responses"].as_object().expect("responses");
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path}: a success reply"
        );
        assert!(
            responses.contains_key("404") || path.ends_with("/sessions"),
            "{method} {path}: unknown tokens"
        );
        for (status, reply) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                assert_eq!(
                    reply["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ApiError",
                    "{method} {path} {status}: errors are {{error, message}}"
                );
            }
        }
    }
    let answer = &doc["components"]["schemas"]["Answer"];
    let required: BTreeSet<&str> = answer["required"]
        .as_array()
        .expect("required fields")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        required,
        BTreeSet::from(["response_id", "position", "chosen", "confidence", "rt_ms"])
    );
    // What a trial shows says nothing about which query is the max one.
    let trial = doc["components"]["schemas"]["TrialView"]["properties"]
        .as_object()
        .expect("TrialView");
    for secret in ["max_first", "max_query", "correct", "max_index"] {
        assert!(!trial.contains_key(secret), "TrialView documents {secret}");
    }
}

/// The keys of a real reply against the schema: every key documented, every required key present.
fn matches_schema(doc: &Value, schema: &str, reply: &Value) {
    let schema = &doc["components"]["schemas"][schema];
    let properties = schema["properties"].as_object().expect("properties");
    let keys = reply.as_object().expect("an object reply");
    for key in keys.keys() {
        assert!(properties.contains_key(key), "{key} is not documented");
    }
    for required in schema["required"].as_array().into_iter().flatten() {
        let name = required.as_str().unwrap_or_default();
        assert!(keys.contains_key(name), "{name} is missing from {reply}");
    }
}

#[tokio::test]
async fn real_replies_have_the_documented_shape() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    app.create_synthetic_study(
        "shape",
        StudyConfig {
            trials_per_session: 4,
            catch_per_session: 1,
            lock_ms: 0,
            ..StudyConfig::default()
        },
    )
    .await;
    let (status, started) = app.join("shape", json!({"external_id": "x"})).await;
    assert_eq!(status, 201);
    matches_schema(&doc, "Started", &started);
    let p = Participant {
        app: &app,
        token: started["token"].as_str().expect("token").to_string(),
    };
    let state: Value = app
        .get(&format!("/api/v1/sessions/{}", p.token))
        .await
        .json()
        .await
        .expect("state");
    matches_schema(&doc, "SessionState", &state);
    p.consent_and_read_instructions().await;
    let trial = p.next_trial().await.expect("a trial");
    matches_schema(&doc, "TrialView", &trial);
    let position = trial["position"].as_i64().expect("position");
    let (status, reply) = p.answer(Participant::answer_body(position, 0)).await;
    assert_eq!(status, 200);
    matches_schema(&doc, "Reply", &reply);
    let (status, error) = p.answer(Participant::answer_body(9999, 0)).await;
    assert_eq!(status, 422);
    matches_schema(&doc, "ApiError", &error);
}
