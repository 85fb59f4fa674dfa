//! Nothing a participant receives tells which centre image is the max query.

mod common;

use std::collections::BTreeSet;

use common::spawn_app;
use meilab::study::StudyConfig;
use serde_json::json;

const TRIAL_FIELDS: [&str; 10] = [
    "answered", "attempt", "kind", "lock_ms", "max_refs", "max_side", "min_refs", "position",
    "queries", "total",
];

fn is_image_url(url: &serde_json::Value) -> bool {
    url.as_str()
        .and_then(|u| u.strip_prefix("/img/"))
        .is_some_and(|sha| {
            sha.len() == 64
                && sha
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        })
}

#[tokio::test]
async fn trial_payloads_and_images_carry_no_max_or_min_label_for_the_queries() {
    let app = spawn_app().await;
    let config = StudyConfig {
        trials_per_session: 12,
        catch_per_session: 3,
        lock_ms: 0,
        ..StudyConfig::default()
    };
    app.create_synthetic_study("leak", config).await;
    let mut max_on_top = 0;
    let mut trials_seen = 0;
    let mut kinds = BTreeSet::new();
    for i in 0..3 {
        let p = app
            .participant("leak", json!({"external_id": format!("p{i}")}))
            .await;
        p.consent_and_read_instructions().await;
        while let Some(trial) = p.next_trial().await {
            let fields: Vec<&str> = trial
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(fields, TRIAL_FIELDS, "unexpected payload fields");
            kinds.insert(trial["kind"].as_str().unwrap().to_string());
            let queries = trial["queries"].as_array().unwrap();
            assert!(queries
                .iter()
                .chain(trial["max_refs"].as_array().unwrap())
                .all(is_image_url));
            let position = trial["position"].as_i64().unwrap();
            let max_index = p.max_index(position).await;
            max_on_top += (max_index == 0) as usize;
            trials_seen += 1;
            for query in queries {
                check_image_response(&app, query.as_str().unwrap()).await;
            }
            let (status, _) = p
                .answer(common::Participant::answer_body(position, max_index))
                .await;
            assert_eq!(status, 200);
        }
    }
    // Catch trials are served as "main"; the order of the queries is random, so it tells nothing.
    assert_eq!(
        kinds,
        BTreeSet::from(["main".to_string(), "practice".to_string()])
    );
    let share = max_on_top as f64 / trials_seen as f64;
    assert!(
        (0.25..=0.75).contains(&share),
        "max query on top in {max_on_top} of {trials_seen} trials"
    );
}

/// The bytes are a clean PNG (no text chunks) and the headers name no file.
async fn check_image_response(app: &common::TestApp, url: &str) {
    let response = app.get(url).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("content-disposition").is_none());
    assert_eq!(response.headers()["content-type"], "image/png");
    let bytes = response.bytes().await.unwrap();
    for chunk in [&b"tEXt"[..], b"iTXt", b"zTXt", b"eXIf"] {
        assert!(
            !bytes.windows(4).any(|w| w == chunk),
            "image carries a metadata chunk"
        );
    }
}

#[tokio::test]
async fn the_participant_page_names_no_image() {
    let app = spawn_app().await;
    app.create_synthetic_study("page", StudyConfig::default())
        .await;
    let html = app
        .get("/s/page?PROLIFIC_PID=abc&STUDY_ID=s&SESSION_ID=x")
        .await
        .text()
        .await
        .unwrap();
    for word in ["/img/", "max_query", "min_query", "is_max", "correct"] {
        assert!(!html.contains(word), "the page contains {word}");
    }
}

#[tokio::test]
async fn image_names_that_are_not_sha256_are_refused() {
    let app = spawn_app().await;
    for name in [
        "..%2F..%2Fetc%2Fpasswd",
        "ABCDEF",
        &"g".repeat(64),
        &"A".repeat(64),
    ] {
        let response = app.get(&format!("/img/{name}")).await;
        assert_eq!(response.status(), 400, "{name}");
        assert_eq!(
            response.json::<serde_json::Value>().await.unwrap()["error"],
            "bad_request"
        );
    }
    assert_eq!(
        app.get(&format!("/img/{}", "a".repeat(64))).await.status(),
        404
    );
}
