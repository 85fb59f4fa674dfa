//! The participant JSON API against a real server and PostgreSQL.

use meilab::study::StudyConfig;
use serde_json::json;

use crate::common::{spawn_app, Participant};

fn small_study() -> StudyConfig {
    StudyConfig {
        trials_per_session: 4,
        catch_per_session: 1,
        lock_ms: 0,
        feedback: true,
        ..StudyConfig::default()
    }
}

#[tokio::test]
async fn a_session_is_created_resumed_by_its_token_and_never_handed_out_for_its_external_id() {
    let app = spawn_app().await;
    app.create_synthetic_study("s1", small_study()).await;
    let who = json!({"external_id": "P-1", "source": "prolific", "params": {"STUDY_ID": "x"}});
    let (status, first) = app.join("s1", who.clone()).await;
    assert_eq!((status, first["stage"].as_str()), (201, Some("consent")));
    let raw_ids = app
        .count("SELECT count(*) FROM sessions WHERE external_id_hash LIKE '%P-1%' OR params::text LIKE '%P-1%'")
        .await;
    assert_eq!(raw_ids, 0, "the raw external id is stored");

    // Anyone who knows the id (ids are not secrets) gets a refusal without a token, before and after
    // the participant finished, in the same words.
    let (status, taken) = app.join("s1", who.clone()).await;
    assert_eq!(
        (status, taken["error"].as_str()),
        (409, Some("already_started")),
        "{taken}"
    );
    assert!(
        taken.get("token").is_none()
            && !taken.to_string().contains(first["token"].as_str().unwrap()),
        "a start by external id handed out the session: {taken}"
    );

    // The participant's own browser resumes with the token it was given.
    let p = Participant {
        app: &app,
        token: first["token"].as_str().unwrap().to_string(),
    };
    assert_eq!(p.stage().await, "consent");
    p.consent_and_read_instructions().await;
    assert_eq!(p.stage().await, "practice");
    let answered = p.answer_everything().await;
    assert_eq!(
        answered,
        3 + 5,
        "three practice trials and 4 + 1 main trials"
    );
    assert_eq!(p.stage().await, "debrief");
    let (status, done) = p.finish(json!({"feedback": "fine"})).await;
    assert_eq!(
        (status, done["completion_code"].as_str()),
        (200, Some("MEILAB-DONE"))
    );

    let (status, refused) = app.join("s1", who).await;
    assert_eq!(
        (status, &refused),
        (409, &taken),
        "started and finished are refused alike"
    );
    let refusals: (i32, bool) = sqlx::query_as(
        "SELECT refused_starts, last_refused_at IS NOT NULL FROM sessions WHERE token = $1",
    )
    .bind(&p.token)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        refusals,
        (2, true),
        "refused starts are counted on the session"
    );
    let state: serde_json::Value = app
        .get(&format!("/api/v1/sessions/{}", p.token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(state["stage"], "complete");
    assert_eq!(state["completion_code"], "MEILAB-DONE");
    assert_eq!(
        (state["answered"].as_i64(), state["total"].as_i64()),
        (Some(5), Some(5))
    );
}

#[tokio::test]
async fn twenty_parallel_starts_with_one_external_id_make_one_session_and_hand_out_one_token() {
    let app = spawn_app().await;
    app.create_synthetic_study("race", small_study()).await;
    let starts = (0..20).map(|_| app.join("race", json!({"external_id": "same-person"})));
    let replies = futures_util::future::join_all(starts).await;
    let created: Vec<_> = replies
        .iter()
        .filter(|(status, _)| *status == 201)
        .collect();
    assert_eq!(created.len(), 1, "{replies:?}");
    for (status, reply) in &replies {
        assert!(
            *status == 201 || (*status == 409 && reply["error"] == "already_started"),
            "{status} {reply}"
        );
    }
    let tokens = replies
        .iter()
        .filter(|(_, r)| r.get("token").is_some())
        .count();
    assert_eq!(tokens, 1, "only the first start gets a token");
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 1);
    assert_eq!(
        app.count("SELECT refused_starts::bigint FROM sessions")
            .await,
        19
    );
}

#[tokio::test]
async fn the_same_response_id_twice_stores_one_row_and_replies_the_same() {
    let app = spawn_app().await;
    app.create_synthetic_study(
        "s2",
        StudyConfig {
            practice: meilab::study::config::PracticeConfig {
                trials: 0,
                max_attempts: 1,
            },
            ..small_study()
        },
    )
    .await;
    let p = app.participant("s2", json!({})).await;
    p.consent_and_read_instructions().await;
    let trial = p.next_trial().await.expect("a trial");
    let body = Participant::answer_body(trial["position"].as_i64().unwrap(), 1);
    let (s1, r1) = p.answer(body.clone()).await;
    let (s2, r2) = p.answer(body).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(r1, r2);
    assert_eq!(app.count("SELECT count(*) FROM responses").await, 1);
}

#[tokio::test]
async fn a_second_different_answer_for_the_same_position_is_rejected() {
    let app = spawn_app().await;
    app.create_synthetic_study("s3", small_study()).await;
    let p = app.participant("s3", json!({})).await;
    p.consent_and_read_instructions().await;
    let position = p.next_trial().await.unwrap()["position"].as_i64().unwrap();
    assert_eq!(p.answer(Participant::answer_body(position, 0)).await.0, 200);
    let (status, error) = p.answer(Participant::answer_body(position, 1)).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (409, Some("already_answered"))
    );
    assert_eq!(app.count("SELECT count(*) FROM responses").await, 1);
}

#[tokio::test]
async fn bad_answers_get_a_json_4xx_and_store_nothing() {
    let app = spawn_app().await;
    app.create_synthetic_study("s4", small_study()).await;
    let p = app.participant("s4", json!({})).await;

    // Before consent no answers are taken.
    let (status, error) = p.answer(Participant::answer_body(0, 0)).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (409, Some("wrong_stage"))
    );

    p.consent_and_read_instructions().await;
    let position = p.next_trial().await.unwrap()["position"].as_i64().unwrap();
    let mut body = Participant::answer_body(position, 0);

    body["confidence"] = json!(4);
    let (status, error) = p.answer(body.clone()).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (422, Some("invalid_confidence"))
    );
    body["confidence"] = json!(2);
    body["chosen"] = json!(2);
    assert_eq!(p.answer(body.clone()).await.0, 422);
    body["chosen"] = json!("left");
    assert_eq!(p.answer(body.clone()).await.0, 400);
    body["chosen"] = json!(0);
    body["rt_ms"] = json!(-5);
    assert_eq!(p.answer(body.clone()).await.0, 422);

    let (status, error) = p.answer(Participant::answer_body(position + 1, 0)).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (409, Some("out_of_order"))
    );
    let (status, error) = p.answer(Participant::answer_body(9999, 0)).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (422, Some("unknown_position"))
    );

    let malformed = app
        .client
        .post(app.url(&format!("/api/v1/sessions/{}/responses", p.token)))
        .header("content-type", "application/json")
        .body("{\"response_id\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    let error: serde_json::Value = malformed.json().await.unwrap();
    assert_eq!(error["error"], "bad_request");

    let unknown = app
        .post(
            &format!("/api/v1/sessions/{}/responses", "0".repeat(64)),
            Participant::answer_body(0, 0),
        )
        .await;
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        unknown.json::<serde_json::Value>().await.unwrap()["error"],
        "not_found"
    );

    let early = p.finish(json!({})).await;
    assert_eq!(early.0, 409);
    assert_eq!(app.count("SELECT count(*) FROM responses").await, 0);
}

#[tokio::test]
async fn a_paused_or_unknown_study_takes_no_sessions() {
    let app = spawn_app().await;
    let id = app.create_synthetic_study("s5", small_study()).await;
    sqlx::query("UPDATE studies SET status = 'paused' WHERE id = $1")
        .bind(id)
        .execute(&app.pool)
        .await
        .unwrap();
    let (status, error) = app.join("s5", json!({})).await;
    assert_eq!(
        (status, error["error"].as_str()),
        (409, Some("study_not_active"))
    );
    let page = app.get("/s/s5").await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("not open"));
    assert_eq!(app.join("nope", json!({})).await.0, 404);
    assert_eq!(app.get("/s/nope").await.status(), 404);
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 0);
}

#[tokio::test]
async fn failed_practice_repeats_until_all_correct_within_the_attempt_limit() {
    let app = spawn_app().await;
    app.create_synthetic_study("s6", small_study()).await;
    let p = app.participant("s6", json!({})).await;
    p.consent_and_read_instructions().await;
    // Round 1: answer the first practice trial wrongly.
    let mut rounds = Vec::new();
    for wrong_first in [true, false] {
        let mut first = true;
        loop {
            let trial = p.next_trial().await.unwrap();
            assert_eq!(trial["kind"], "practice");
            let position = trial["position"].as_i64().unwrap();
            let right = p.max_index(position).await;
            let chosen = if wrong_first && first {
                1 - right
            } else {
                right
            };
            first = false;
            let (status, reply) = p.answer(Participant::answer_body(position, chosen)).await;
            assert_eq!(status, 200);
            assert_eq!(reply["correct"], json!(chosen == right));
            if !reply["practice_round"].is_null() {
                rounds.push(reply["practice_round"].clone());
                break;
            }
        }
    }
    assert_eq!(
        rounds,
        vec![
            json!({"attempt": 1, "all_correct": false}),
            json!({"attempt": 2, "all_correct": true})
        ]
    );
    assert_eq!(p.stage().await, "trials");
    let next = p.next_trial().await.unwrap();
    assert_eq!(next["kind"], "main");
    assert!(
        next["position"].as_i64().unwrap() < 5,
        "main trials hold the first positions"
    );
}

#[tokio::test]
async fn units_are_distinct_within_a_session_and_spread_across_sessions() {
    let app = spawn_app().await;
    app.create_synthetic_study(
        "s7",
        StudyConfig {
            trials_per_session: 8,
            ..small_study()
        },
    )
    .await;
    for i in 0..4 {
        app.participant("s7", json!({"external_id": format!("p{i}")}))
            .await;
    }
    let repeated: i64 = app
        .count(
            "SELECT count(*) FROM (SELECT a.session_id, t.unit_id FROM assignments a JOIN trials t ON t.id = a.trial_id
             WHERE t.kind = 'main' GROUP BY 1, 2 HAVING count(*) > 1) d",
        )
        .await;
    assert_eq!(repeated, 0, "a unit appears twice in a session");
    // 16 units, 4 sessions x 8 units: least-served first means every unit is used exactly twice.
    let spread: Vec<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM assignments a JOIN trials t ON t.id = a.trial_id WHERE t.kind = 'main' GROUP BY t.unit_id",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(spread, vec![2; 16]);
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    assert_eq!(app.get("/readyz").await.status(), 200);
    let missing = app.get("/api/v1/nothing").await;
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<serde_json::Value>().await.unwrap()["error"],
        "not_found"
    );
}

#[tokio::test]
async fn session_starts_beyond_the_per_ip_limit_get_429_with_retry_after() {
    let app = spawn_app().await;
    app.create_synthetic_study("limited", small_study()).await;
    // A second server on the same database, configured with a limit of 3 per minute.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("address").port();
    let state = meilab::web::AppState::new(app.pool.clone(), app.store.clone(), app.key.clone());
    let limiter = meilab::web::api::limit::SessionLimiter::per_minute(3);
    tokio::spawn(meilab::web::serve_with(listener, state, limiter).expect("server starts"));
    let join = |client: reqwest::Client, n: usize| async move {
        client
            .post(format!(
                "http://127.0.0.1:{port}/api/v1/studies/limited/sessions"
            ))
            .json(&json!({"external_id": format!("p{n}")}))
            .send()
            .await
            .expect("request is sent")
    };

    let mut tokens = Vec::new();
    for n in 0..3 {
        let response = join(app.client.clone(), n).await;
        assert_eq!(response.status(), 201);
        let reply: serde_json::Value = response.json().await.expect("JSON");
        tokens.push(reply["token"].as_str().expect("token").to_string());
    }
    let refused = join(app.client.clone(), 3).await;
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("seconds");
    assert!((1..=21).contains(&retry_after), "{retry_after}");
    let error: serde_json::Value = refused.json().await.expect("JSON");
    assert_eq!(error["error"], "rate_limited");
    assert!(error["message"].is_string());
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 3);

    // Only session starts are limited: the sessions already started go on.
    let consent = app
        .client
        .post(format!(
            "http://127.0.0.1:{port}/api/v1/sessions/{}/consent",
            tokens[0]
        ))
        .send()
        .await
        .expect("consent");
    assert_eq!(consent.status(), 200);
    // Another address has its own bucket.
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .expect("client");
    assert_eq!(join(other, 4).await.status(), 201);
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 4);
}

#[tokio::test]
async fn a_server_whose_cached_block_lags_the_database_stores_nothing_twice() {
    let app = spawn_app().await;
    app.create_synthetic_study("two", small_study()).await;
    let p = app.participant("two", json!({})).await;
    p.consent_and_read_instructions().await;
    // This server now keeps the session's current block.
    let first = p.next_trial().await.expect("a trial")["position"]
        .as_i64()
        .expect("position");

    // Another server process on the same database takes the answer.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("address").port();
    let other = meilab::web::AppState::new(app.pool.clone(), app.store.clone(), app.key.clone());
    tokio::spawn(meilab::web::serve(listener, other).expect("server starts"));
    let elsewhere = app
        .client
        .post(format!(
            "http://127.0.0.1:{port}/api/v1/sessions/{}/responses",
            p.token
        ))
        .json(&Participant::answer_body(first, 0))
        .send()
        .await
        .expect("request is sent");
    assert_eq!(elsewhere.status(), 200);

    // The first server's block still shows that trial open: a second answer to it is refused, not stored.
    let (status, reply) = p.answer(Participant::answer_body(first, 1)).await;
    assert_eq!(status, 409, "{reply}");
    assert_eq!(reply["error"], "already_answered");
    assert_eq!(app.count("SELECT count(*) FROM responses").await, 1);
    // Having been refused, the server reads the block again and moves on.
    let next = p.next_trial().await.expect("a trial")["position"]
        .as_i64()
        .expect("position");
    assert!(next > first, "{next} follows {first}");
}

#[tokio::test]
async fn an_answer_sooner_than_the_lock_after_its_trial_was_served_is_refused_and_not_stored() {
    let app = spawn_app().await;
    let lock_ms = 800;
    let mut config = small_study();
    config.lock_ms = lock_ms;
    config.practice.trials = 0;
    app.create_synthetic_study("locked", config).await;
    let p = app.participant("locked", json!({})).await;
    p.consent_and_read_instructions().await;
    let trial = p.next_trial().await.expect("a trial");
    let position = trial["position"].as_i64().unwrap();
    assert_eq!(trial["lock_ms"], lock_ms);
    let served = std::time::Instant::now();

    let (status, reply) = p.answer(Participant::answer_body(position, 0)).await;
    assert_eq!(
        (status, reply["error"].as_str()),
        (422, Some("answered_too_soon")),
        "{reply}"
    );
    assert_eq!(app.count("SELECT count(*) FROM responses").await, 0);

    // Asking for the trial again does not restart its lock; once it has passed, the answer is taken.
    assert_eq!(p.next_trial().await.unwrap()["position"], position);
    tokio::time::sleep(
        std::time::Duration::from_millis(lock_ms as u64).saturating_sub(served.elapsed()),
    )
    .await;
    let (status, reply) = p.answer(Participant::answer_body(position, 0)).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(app.count("SELECT count(*) FROM responses").await, 1);
}

#[tokio::test]
async fn an_abandoned_session_stops_holding_its_units_after_the_release_time() {
    let app = spawn_app().await;
    let mut config = small_study();
    config.exclusion = meilab::study::config::ExclusionThresholds {
        min_answers_per_position: 0,
        min_instructions_secs: 0.0,
        min_total_secs: 0.0,
        ..Default::default()
    };
    let study = app.create_synthetic_study("released", config).await;
    let abandoned = app.participant("released", json!({})).await;
    let finished = app.participant("released", json!({})).await;
    finished.consent_and_read_instructions().await;
    finished.answer_everything().await;
    assert_eq!(finished.finish(json!({})).await.0, 200);

    let served = |release: f64| {
        let pool = app.pool.clone();
        async move {
            let mut conn = pool.acquire().await.unwrap();
            let (main, catch) = meilab::db::sessions::schedule_loads(&mut conn, study, release)
                .await
                .unwrap();
            main.iter().chain(&catch).map(|t| t.served).sum::<i64>()
        }
    };
    let per_session = small_study().trials_per_session + small_study().catch_per_session;
    assert_eq!(
        served(2500.0).await,
        2 * per_session,
        "both sessions hold their units"
    );

    // An hour later: the unfinished session's units are free again, the finished one's are not.
    sqlx::query(
        "UPDATE sessions SET created_at = created_at - interval '1 hour', completed_at = completed_at - interval '1 hour'",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    assert_eq!(served(2500.0).await, per_session);
    assert_eq!(
        served(7200.0).await,
        2 * per_session,
        "the release time is the study's"
    );
    // The abandoned session itself is kept and can still go on.
    assert_eq!(abandoned.stage().await, "consent");
}

#[tokio::test]
async fn twenty_parallel_answers_to_one_position_store_one_row() {
    let app = spawn_app().await;
    app.create_synthetic_study("answers", small_study()).await;
    let p = app.participant("answers", json!({})).await;
    p.consent_and_read_instructions().await;
    let position = p.next_trial().await.expect("a trial")["position"]
        .as_i64()
        .unwrap();
    // Different answers under different ids, all at once: one is stored, the rest are refused.
    let answers = (0..20).map(|i| p.answer(Participant::answer_body(position, i % 2)));
    let replies = futures_util::future::join_all(answers).await;
    let stored: Vec<_> = replies
        .iter()
        .filter(|(status, _)| *status == 200)
        .collect();
    assert_eq!(stored.len(), 1, "{replies:?}");
    assert!(
        replies
            .iter()
            .all(|(status, _)| *status == 200 || *status == 409),
        "{replies:?}"
    );
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM responses r JOIN sessions s ON s.id = r.session_id
         WHERE s.token = $1 AND r.position = $2",
    )
    .bind(&p.token)
    .bind(position as i32)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(rows, 1);
}
