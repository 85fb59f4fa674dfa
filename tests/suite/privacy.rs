//! Privacy: `meilab participant delete` removes every row of a withdrawn participant and nothing else;
//! raw external ids are stored nowhere and exported nowhere.

use std::process::Command;

use meilab::accounts::Role;
use meilab::study::recruit::ParticipantKey;
use meilab::web::{self, AppState};
use serde_json::json;
use sqlx::PgPool;

use crate::common::studies::small_study;
use crate::common::{self, spawn_app, Participant, TestApp};

const SECRET: &str = "a-test-server-secret-0123456789abcdef";

/// The test app, served under a secret the command line can be given too.
async fn app_with_secret() -> TestApp {
    let mut app = spawn_app().await;
    let key = ParticipantKey::new(SECRET.as_bytes());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let port = listener.local_addr().expect("address").port();
    let state = AppState::new(app.pool.clone(), app.store.clone(), key.clone());
    tokio::spawn(web::serve(listener, state).expect("server starts"));
    app.address = format!("http://127.0.0.1:{port}");
    app.key = key;
    app
}

/// Runs `meilab participant delete` against the test database; returns success, stdout and stderr.
async fn delete(app: &TestApp, study: &str, external_id: &str) -> (bool, String, String) {
    let url = common::database_url(&app.pool);
    let data_dir = tempfile::tempdir().expect("data folder");
    let (study, external_id) = (study.to_string(), external_id.to_string());
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_meilab"))
            .args(["participant", "delete", &study, &external_id])
            .env("DATABASE_URL", url)
            .env("MEILAB_SECRET", SECRET)
            .env("MEILAB_DATA_DIR", data_dir.path())
            .env_remove("MEILAB_BIND")
            .output()
            .expect("meilab runs")
    })
    .await
    .expect("command thread");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Every row of the session as text, children included, for comparing before and after.
async fn rows_of(pool: &PgPool, session_id: i64) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT s::text FROM sessions s WHERE s.id = $1
         UNION ALL (SELECT a::text FROM assignments a WHERE a.session_id = $1 ORDER BY a.position)
         UNION ALL (SELECT r::text FROM responses r WHERE r.session_id = $1 ORDER BY r.position)",
    )
    .bind(session_id)
    .fetch_all(pool)
    .await
    .expect("rows")
}

async fn session_id(pool: &PgPool, token: &str) -> i64 {
    sqlx::query_scalar("SELECT id FROM sessions WHERE token = $1")
        .bind(token)
        .fetch_one(pool)
        .await
        .expect("session")
}

/// Tables any of whose rows contains `needle` anywhere, in any column (a grep of the whole database).
async fn tables_containing(pool: &PgPool, needle: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'
           AND strpos(query_to_xml(format('SELECT * FROM %I', table_name), true, false, '')::text, $1) > 0",
    )
    .bind(needle)
    .fetch_all(pool)
    .await
    .expect("grep the database")
}

async fn complete<'a>(app: &'a TestApp, slug: &str, external_id: &str) -> Participant<'a> {
    let p = app
        .participant(
            slug,
            json!({"external_id": external_id, "source": "prolific"}),
        )
        .await;
    p.consent_and_read_instructions().await;
    p.answer_everything().await;
    let (status, reply) = p.finish(json!({"feedback": "fine"})).await;
    assert_eq!(status, 200, "{reply}");
    p
}

#[tokio::test]
async fn a_deleted_participant_leaves_no_row_and_others_are_untouched() {
    let app = app_with_secret().await;
    app.create_synthetic_study("withdraw", small_study()).await;
    let alice = complete(&app, "withdraw", "PID-alice-5f1a9c").await;
    let bob = complete(&app, "withdraw", "PID-bob-77e2d0").await;
    // Carol is half-way through.
    let carol = app
        .participant("withdraw", json!({"external_id": "PID-carol-0c3b11"}))
        .await;
    carol.consent_and_read_instructions().await;
    let position = carol.next_trial().await.expect("a trial")["position"]
        .as_i64()
        .expect("position");
    let chosen = carol.max_index(position).await;
    assert_eq!(
        carol
            .answer(Participant::answer_body(position, chosen))
            .await
            .0,
        200
    );

    let alice_id = session_id(&app.pool, &alice.token).await;
    let (bob_id, carol_id) = (
        session_id(&app.pool, &bob.token).await,
        session_id(&app.pool, &carol.token).await,
    );
    let bob_rows = rows_of(&app.pool, bob_id).await;
    let carol_rows = rows_of(&app.pool, carol_id).await;
    let alice_responses: i64 =
        sqlx::query_scalar("SELECT count(*) FROM responses WHERE session_id = $1")
            .bind(alice_id)
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert!(alice_responses >= 5, "Alice answered everything");
    let alice_assignments: i64 =
        sqlx::query_scalar("SELECT count(*) FROM assignments WHERE session_id = $1")
            .bind(alice_id)
            .fetch_one(&app.pool)
            .await
            .expect("count");

    // The id is given as the participant gave it, surrounding blanks and all.
    let (ok, out, err) = delete(&app, "withdraw", " PID-alice-5f1a9c ").await;
    assert!(ok, "delete fails: {err}");
    assert!(
        out.contains(&format!("{alice_responses} responses"))
            && out.contains(&format!("{alice_assignments} assignments"))
            && out.contains("stage complete"),
        "the command says what it removed: {out}"
    );
    assert!(
        rows_of(&app.pool, alice_id).await.is_empty(),
        "no row of Alice's is left"
    );
    assert_eq!(rows_of(&app.pool, bob_id).await, bob_rows, "Bob untouched");
    assert_eq!(
        rows_of(&app.pool, carol_id).await,
        carol_rows,
        "Carol untouched"
    );
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 2);
    let state = app.get(&format!("/api/v1/sessions/{}", alice.token)).await;
    assert_eq!(
        state.status(),
        404,
        "Alice's token no longer opens anything"
    );

    // A half-finished participant can withdraw too; then nothing is left to delete.
    let (ok, out, _) = delete(&app, "withdraw", "PID-carol-0c3b11").await;
    assert!(ok && out.contains("1 responses"), "{out}");
    assert!(rows_of(&app.pool, carol_id).await.is_empty());
    let (ok, out, _) = delete(&app, "withdraw", "PID-carol-0c3b11").await;
    assert!(
        ok && out.contains("nothing deleted"),
        "a second delete says so: {out}"
    );
    let (ok, _, err) = delete(&app, "no-such-study", "PID-bob-77e2d0").await;
    assert!(!ok && err.contains("no study named no-such-study"), "{err}");
    assert_eq!(rows_of(&app.pool, bob_id).await, bob_rows, "Bob untouched");
}

#[tokio::test]
async fn raw_external_ids_are_in_no_table_and_no_export() {
    let app = app_with_secret().await;
    let id = app
        .create_synthetic_study("pseudonyms", small_study())
        .await;
    let ids = ["PID-dora-a81f3e", "PID-emil-93b0c4"];
    for external_id in ids {
        complete(&app, "pseudonyms", external_id).await;
    }
    // The check itself finds what it looks for.
    assert_eq!(
        tables_containing(&app.pool, "pseudonyms").await,
        vec!["studies".to_string()]
    );
    let pseudonym = app.key.pseudonym(id, ids[0]);
    assert_eq!(
        tables_containing(&app.pool, &pseudonym).await,
        vec!["sessions".to_string()]
    );
    for external_id in ids {
        assert!(
            tables_containing(&app.pool, external_id).await.is_empty(),
            "{external_id} is stored raw"
        );
    }

    app.create_account("rita", Role::Researcher).await;
    let rita = app.login("rita").await;
    let mut exported = 0;
    for file in [
        "responses.csv",
        "lower-quality.csv",
        "units.csv",
        "agreement.csv",
        "roc.csv",
    ] {
        let (status, body) = rita.text(&format!("/admin/studies/{id}/{file}")).await;
        if file == "responses.csv" {
            assert_eq!(status, 200);
            // Exported under (a prefix of) the pseudonym.
            assert!(
                body.contains(&format!("p-{}", &pseudonym[..16])),
                "responses are exported under the pseudonym"
            );
        }
        if status == 200 {
            exported += 1;
            for external_id in ids {
                assert!(!body.contains(external_id), "{file} holds {external_id}");
            }
        }
    }
    assert!(exported >= 1);
}
