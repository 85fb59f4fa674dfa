//! Nothing a participant receives tells which centre image is the max query.

use std::collections::BTreeSet;

use meilab::study::StudyConfig;
use serde_json::json;
use sha2::Digest;

use crate::common::{self, spawn_app};

const TRIAL_FIELDS: [&str; 10] = [
    "answered", "attempt", "kind", "lock_ms", "max_refs", "max_side", "min_refs", "position",
    "queries", "total",
];

/// A trial image's URL: the session's own path, its position and an opaque 32-hex tag, nothing else.
fn is_image_url(token: &str, position: i64, url: &serde_json::Value) -> bool {
    let prefix = format!("/api/v1/sessions/{token}/images/{position}/");
    url.as_str()
        .and_then(|u| u.strip_prefix(&prefix))
        .is_some_and(|tag| {
            tag.len() == 32
                && tag
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
            let position = trial["position"].as_i64().unwrap();
            assert!(queries
                .iter()
                .chain(trial["max_refs"].as_array().unwrap())
                .chain(trial["min_refs"].as_array().unwrap())
                .all(|u| is_image_url(&p.token, position, u)));
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
    for word in [
        "/img/",
        "/images/",
        "max_query",
        "min_query",
        "is_max",
        "correct",
    ] {
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

/// Everything a script can compare without looking: URLs and the SHA-256 of the bytes served.
async fn fingerprints(app: &common::TestApp, urls: &[serde_json::Value]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for url in urls {
        let url = url.as_str().unwrap().to_string();
        let bytes = app.get(&url).await.bytes().await.unwrap();
        out.push((url, hex::encode(sha2::Sha256::digest(&bytes))));
    }
    out
}

#[tokio::test]
async fn a_script_matching_urls_or_bytes_finds_no_catch_query_among_the_references() {
    let app = spawn_app().await;
    let config = StudyConfig {
        trials_per_session: 6,
        catch_per_session: 6,
        lock_ms: 0,
        ..StudyConfig::default()
    };
    app.create_synthetic_study("bots", config).await;
    let p = app.participant("bots", json!({})).await;
    p.consent_and_read_instructions().await;
    let mut catch_seen = 0;
    let mut urls_seen = BTreeSet::new();
    while let Some(trial) = p.next_trial().await {
        let position = trial["position"].as_i64().unwrap();
        let refs: Vec<serde_json::Value> = trial["max_refs"]
            .as_array()
            .unwrap()
            .iter()
            .chain(trial["min_refs"].as_array().unwrap())
            .cloned()
            .collect();
        let queries = trial["queries"].as_array().unwrap().clone();
        let refs = fingerprints(&app, &refs).await;
        let queries = fingerprints(&app, &queries).await;
        for (url, sha) in &queries {
            assert!(
                !refs.iter().any(|(u, s)| u == url || s == sha),
                "a query at position {position} matches a reference by URL or bytes"
            );
        }
        for (url, _) in refs.iter().chain(&queries) {
            assert!(urls_seen.insert(url.clone()), "a URL came twice: {url}");
        }
        let is_catch: bool = sqlx::query_scalar(
            "SELECT t.kind = 'catch' FROM assignments a JOIN sessions s ON s.id = a.session_id
             JOIN trials t ON t.id = a.trial_id WHERE s.token = $1 AND a.position = $2",
        )
        .bind(&p.token)
        .bind(position as i32)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        catch_seen += usize::from(is_catch);
        let max_index = p.max_index(position).await;
        let (status, _) = p
            .answer(common::Participant::answer_body(position, max_index))
            .await;
        assert_eq!(status, 200);
    }
    assert_eq!(catch_seen, 6, "the session showed its catch trials");
}

#[tokio::test]
async fn a_catch_query_decodes_to_the_same_pixels_as_its_reference() {
    let app = spawn_app().await;
    let config = StudyConfig {
        trials_per_session: 2,
        catch_per_session: 2,
        lock_ms: 0,
        practice: meilab::study::config::PracticeConfig {
            trials: 0,
            max_attempts: 1,
        },
        ..StudyConfig::default()
    };
    app.create_synthetic_study("pixels", config).await;
    let p = app.participant("pixels", json!({})).await;
    p.consent_and_read_instructions().await;
    let mut matched = 0;
    while let Some(trial) = p.next_trial().await {
        let position = trial["position"].as_i64().unwrap();
        let decode = |bytes: &[u8]| image::load_from_memory(bytes).unwrap().to_rgb8().into_raw();
        let mut refs = Vec::new();
        for url in trial["max_refs"].as_array().unwrap() {
            refs.push(decode(
                &app.get(url.as_str().unwrap()).await.bytes().await.unwrap(),
            ));
        }
        for url in trial["queries"].as_array().unwrap() {
            let pixels = decode(&app.get(url.as_str().unwrap()).await.bytes().await.unwrap());
            matched += usize::from(refs.contains(&pixels));
        }
        let max_index = p.max_index(position).await;
        p.answer(common::Participant::answer_body(position, max_index))
            .await;
    }
    assert_eq!(matched, 2, "each catch query shows a reference's pixels");
}

#[tokio::test]
async fn trial_images_resolve_only_for_their_own_session() {
    let app = spawn_app().await;
    app.create_synthetic_study(
        "own",
        StudyConfig {
            lock_ms: 0,
            ..StudyConfig::default()
        },
    )
    .await;
    let a = app.participant("own", json!({})).await;
    let b = app.participant("own", json!({})).await;
    for p in [&a, &b] {
        p.consent_and_read_instructions().await;
    }
    let trial = a.next_trial().await.unwrap();
    let url = trial["queries"][0].as_str().unwrap();
    assert_eq!(app.get(url).await.status(), 200);
    // The same tag under another session's token, another position, or altered: not found.
    let tail = url.rsplit_once("/images/").unwrap().1;
    for other in [
        format!("/api/v1/sessions/{}/images/{tail}", b.token),
        url.replacen(&format!("/images/{}/", trial["position"]), "/images/99/", 1),
        format!(
            "{}{}",
            &url[..url.len() - 1],
            if url.ends_with('0') { '1' } else { '0' }
        ),
        format!("/api/v1/sessions/{}/images/0/{}", a.token, "0".repeat(32)),
    ] {
        let response = app.get(&other).await;
        assert_eq!(response.status(), 404, "{other}");
        assert_eq!(
            response.json::<serde_json::Value>().await.unwrap()["error"],
            "not_found"
        );
    }
}
