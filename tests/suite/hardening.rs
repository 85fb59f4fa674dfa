//! Hardening for the open internet: the private database is private, bad path segments cost a 4xx and
//! one short log line, every page carries the security headers, and the API is consistent about what
//! it accepts.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meilab::accounts::Role;
use meilab::db::cluster::{self, PrivateCluster, APP_ROLE};
use meilab::study::StudyConfig;
use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::common::{self, spawn_app, TestApp};

async fn shared_cluster() -> PrivateCluster {
    tokio::task::spawn_blocking(common::private_cluster)
        .await
        .expect("cluster start panicked")
}

/// Connecting as `user` over the cluster's socket with `password` (none: no password at all).
async fn socket_login(
    cluster: &PrivateCluster,
    user: &str,
    password: Option<&str>,
) -> Result<PgConnection, sqlx::Error> {
    let mut options = PgConnectOptions::new()
        .socket(cluster.socket_dir())
        .port(cluster.port())
        .username(user)
        .database("postgres");
    if let Some(password) = password {
        options = options.password(password);
    }
    options.connect().await
}

#[tokio::test]
async fn the_private_cluster_refuses_local_connections_without_the_password() {
    let cluster = shared_cluster().await;
    for user in [APP_ROLE, "meilab", "postgres"] {
        for password in [None, Some(""), Some("meilab")] {
            let attempt = socket_login(&cluster, user, password).await;
            assert!(
                attempt.is_err(),
                "{user} with password {password:?} logged in over the socket"
            );
        }
    }
    // Nothing listens on TCP: no listen address, none in the server's pid file.
    let mut conn = PgConnection::connect(&cluster.url("postgres"))
        .await
        .expect("the application role logs in with its password");
    let listen: String = sqlx::query_scalar("SHOW listen_addresses")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(listen, "", "the private cluster listens on TCP");
    let pid_file = std::fs::read_to_string(cluster.socket_dir().join("postmaster.pid")).unwrap();
    assert_eq!(
        pid_file.lines().nth(5).map(str::trim),
        Some(""),
        "{pid_file}"
    );
    let user: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(user, APP_ROLE);
}

#[tokio::test]
async fn the_password_file_is_readable_by_the_user_running_meilab_only() {
    let cluster = shared_cluster().await;
    let metadata = std::fs::metadata(cluster.app_password_file()).expect("the password file");
    assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
    let me = std::fs::metadata("/proc/self").expect("/proc/self").uid();
    assert_eq!(
        metadata.uid(),
        me,
        "the password file belongs to the user running meilab"
    );
}

#[tokio::test]
async fn the_application_role_is_no_superuser_and_cannot_run_programs_or_read_server_files() {
    let cluster = shared_cluster().await;
    let mut conn = PgConnection::connect(&cluster.url("postgres"))
        .await
        .expect("the application role logs in");
    let (superuser, programs, reads, writes): (bool, bool, bool, bool) = sqlx::query_as(
        "SELECT rolsuper,
                pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER'),
                pg_has_role(current_user, 'pg_read_server_files', 'MEMBER'),
                pg_has_role(current_user, 'pg_write_server_files', 'MEMBER')
         FROM pg_roles WHERE rolname = current_user",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(!superuser && !programs && !reads && !writes);

    for sql in [
        "COPY (SELECT 1) TO PROGRAM 'id'",
        "COPY (SELECT 1) TO '/tmp/meilab-copy-test'",
        "SELECT pg_read_file('/etc/passwd')",
        "CREATE ROLE intruder SUPERUSER",
    ] {
        let error = sqlx::query(sql)
            .execute(&mut conn)
            .await
            .expect_err(sql)
            .into_database_error()
            .expect("a database error");
        assert_eq!(
            error.code().as_deref(),
            Some("42501"),
            "{sql}: {}",
            error.message()
        );
    }
}

/// The cluster's user for server commands: `postgres` under root, as the cluster does.
fn as_server_user(program: &Path) -> Command {
    let root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn run_ok(command: &mut Command) {
    let output = command.output().expect("command runs");
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn a_cluster_of_an_earlier_version_is_secured_on_start() {
    // The layout and settings of earlier versions: trust for everything, TCP on 127.0.0.1, the
    // application database owned by the superuser `meilab`.
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("earlier-cluster-{}", uuid::Uuid::new_v4().simple()));
    let pgdata = root.join("data");
    std::fs::create_dir_all(&root).unwrap();
    if std::fs::metadata("/proc/self").unwrap().uid() == 0 {
        run_ok(Command::new("chown").arg("postgres:").arg(&root));
    }
    let bin = cluster::server_binaries().unwrap();
    run_ok(
        as_server_user(&bin.join("initdb"))
            .arg("-D")
            .arg(&pgdata)
            .args(["-U", "meilab", "--auth=trust", "-E", "UTF8", "--locale=C"]),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = format!(
        "-p {port} -c listen_addresses=127.0.0.1 -k {}",
        pgdata.display()
    );
    run_ok(
        as_server_user(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&pgdata)
            .arg("-l")
            .arg(root.join("server.log"))
            .args(["-w", "-o", &options, "start"]),
    );
    let old_url = format!("postgres://meilab@127.0.0.1:{port}/postgres");
    let mut conn = PgConnection::connect(&old_url).await.unwrap();
    sqlx::query("CREATE DATABASE meilab")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let mut conn = PgConnection::connect(&old_url.replace("/postgres", "/meilab"))
        .await
        .unwrap();
    sqlx::query("CREATE TABLE kept (id bigint GENERATED ALWAYS AS IDENTITY, note text)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("INSERT INTO kept (note) VALUES ('from before')")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    // Running, it is refused with a message that says what to do.
    let running = {
        let root = root.clone();
        tokio::task::spawn_blocking(move || PrivateCluster::start(&root))
            .await
            .unwrap()
    };
    let message = format!(
        "{:#}",
        running.err().expect("a running open cluster is refused")
    );
    assert!(message.contains("stop it"), "{message}");

    run_ok(
        as_server_user(&bin.join("pg_ctl"))
            .arg("-D")
            .arg(&pgdata)
            .args(["-m", "fast", "-w", "stop"]),
    );
    let cluster = {
        let root = root.clone();
        tokio::task::spawn_blocking(move || PrivateCluster::start(&root))
            .await
            .unwrap()
            .expect("the earlier cluster is secured and started")
    };
    let mut conn = PgConnection::connect(&cluster.url("meilab"))
        .await
        .expect("the application role logs in to the kept database");
    let (note, owner): (String, String) = sqlx::query_as(
        "SELECT (SELECT note FROM kept), (SELECT tableowner::text FROM pg_tables WHERE tablename = 'kept')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!((note.as_str(), owner.as_str()), ("from before", APP_ROLE));
    sqlx::query("INSERT INTO kept (note) VALUES ('after')")
        .execute(&mut conn)
        .await
        .expect("the application role writes to its tables, sequences included");
    conn.close().await.unwrap();
    assert!(
        socket_login(&cluster, "meilab", None).await.is_err(),
        "trust is gone"
    );
    assert!(
        PgConnection::connect(&old_url).await.is_err(),
        "TCP is gone"
    );
    let hba = std::fs::read_to_string(pgdata.join("pg_hba.conf")).unwrap();
    assert!(!hba
        .lines()
        .any(|l| !l.starts_with('#') && l.contains("trust")));

    tokio::task::spawn_blocking(move || cluster.stop())
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&root);
}

/// `meilab serve` as its own process on a fresh database, with its log (stderr) collected line by line.
struct LoggedServer {
    child: std::process::Child,
    base: String,
    lines: Arc<Mutex<Vec<String>>>,
    _data_dir: tempfile::TempDir,
}

impl LoggedServer {
    async fn start(database_url: &str) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_meilab"))
            .args([
                "serve",
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(data_dir.path())
            .env("DATABASE_URL", database_url)
            // Backtraces on: they still must not reach the log.
            .env("RUST_BACKTRACE", "1")
            .env("RUST_LIB_BACKTRACE", "1")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("meilab serve starts");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                match line {
                    Ok(line) => sink.lock().unwrap().push(line),
                    Err(_) => break,
                }
            }
        });
        let base = format!("http://127.0.0.1:{port}");
        let mut ready = false;
        for _ in 0..300 {
            ready = reqwest::get(format!("{base}/readyz"))
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            ready,
            "meilab serve is not ready: {:#?}",
            lines.lock().unwrap()
        );
        // Start-up lines are not the requests'.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Self {
            child,
            base,
            lines,
            _data_dir: data_dir,
        }
    }

    /// The log lines written while `request` ran, once the log has been quiet for a moment.
    async fn log_of(&self, request: reqwest::RequestBuilder) -> (reqwest::Response, Vec<String>) {
        let before = self.lines.lock().unwrap().len();
        let response = request.send().await.expect("request is sent");
        let after = self.settled_len().await;
        let lines = self.lines.lock().unwrap()[before..after].to_vec();
        (response, lines)
    }

    async fn settled_len(&self) -> usize {
        let mut last = usize::MAX;
        loop {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = self.lines.lock().unwrap().len();
            if now == last {
                return now;
            }
            last = now;
        }
    }
}

impl Drop for LoggedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn bad_path_segments_are_4xx_with_at_most_one_short_log_line() {
    let (pool, url) = common::fresh_database_with_url().await;
    let server = LoggedServer::start(&url).await;
    let http = reqwest::Client::new();
    let junk = [
        "%00",
        "demo%00",
        "%FF%FE",
        "%C3%28",
        "%E2%80%8B",
        "..%2F..%2Fetc%2Fpasswd",
        "%27%3B%20DROP%20TABLE%20sessions%3B%20--",
        &"A".repeat(64),
        &"a".repeat(63),
        &format!("{}%00", "a".repeat(63)),
        &"x".repeat(3000),
    ];
    let mut worst = 0;
    for bad in junk {
        let answer = json!({"response_id": uuid::Uuid::new_v4(), "position": 0, "chosen": 0,
                            "confidence": 2, "rt_ms": 900});
        let requests = [
            ("GET", format!("/api/v1/sessions/{bad}"), None),
            ("POST", format!("/api/v1/sessions/{bad}/consent"), None),
            ("POST", format!("/api/v1/sessions/{bad}/instructions"), None),
            ("GET", format!("/api/v1/sessions/{bad}/trials/next"), None),
            (
                "POST",
                format!("/api/v1/sessions/{bad}/responses"),
                Some(answer),
            ),
            ("POST", format!("/api/v1/sessions/{bad}/finish"), None),
            ("POST", format!("/api/v1/studies/{bad}/sessions"), None),
            ("GET", format!("/s/{bad}"), None),
            ("GET", format!("/s/{bad}?PROLIFIC_PID={bad}"), None),
            ("GET", format!("/img/{bad}"), None),
            (
                "GET",
                format!("/api/v1/sessions/{bad}/images/0/{}", "0".repeat(32)),
                None,
            ),
            (
                "GET",
                format!("/api/v1/sessions/{}/images/{bad}/{bad}", "0".repeat(64)),
                None,
            ),
            ("GET", format!("/static/{bad}"), None),
            ("GET", format!("/admin/studies/{bad}"), None),
        ];
        for (method, path, body) in requests {
            let mut request =
                http.request(method.parse().unwrap(), format!("{}{path}", server.base));
            if let Some(body) = body {
                request = request.json(&body);
            }
            let case = format!("{method} {}", &path[..path.len().min(80)]);
            let (response, lines) = server.log_of(request).await;
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let text = response.text().await.unwrap();
            if path.starts_with("/admin/") {
                // Logged out, the dashboard shows its login form first.
                assert!(status < 500, "{case}: {status}: {text}");
            } else {
                assert!(
                    (400..500).contains(&status),
                    "{case}: expected a 4xx, got {status}: {text}"
                );
            }
            if path.starts_with("/api/") {
                let value: serde_json::Value = serde_json::from_str(&text)
                    .unwrap_or_else(|_| panic!("{case}: not JSON: {text}"));
                assert!(
                    value["error"].is_string() && value["message"].is_string(),
                    "{case}: {text}"
                );
            } else if path.starts_with("/s/") {
                assert!(
                    content_type.starts_with("text/html"),
                    "{case}: {content_type} {text}"
                );
            }
            assert!(
                lines.len() <= 1,
                "{case}: {} log lines: {lines:#?}",
                lines.len()
            );
            for line in &lines {
                assert!(
                    line.len() < 1024,
                    "{case}: a log line of {} bytes: {line}",
                    line.len()
                );
                assert!(!line.contains("backtrace"), "{case}: {line}");
            }
            worst = worst.max(lines.iter().map(|l| l.len() + 1).sum::<usize>());
        }
    }
    println!("largest log per bad request: {worst} bytes");

    // A session token in a 4xx line shows its first 8 characters only.
    let token = "0123456789abcdef".repeat(4);
    let (response, lines) = server
        .log_of(http.get(format!(
            "{}/api/v1/sessions/{token}/trials/next",
            server.base
        )))
        .await;
    assert_eq!(response.status(), 404);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("/api/v1/sessions/01234567"),
        "{}",
        lines[0]
    );
    assert!(!lines[0].contains(&token[..9]), "{}", lines[0]);

    // An internal error is one line with its cause, no backtrace.
    sqlx::query("ALTER TABLE studies RENAME TO studies_elsewhere")
        .execute(&pool)
        .await
        .unwrap();
    let (response, lines) = server
        .log_of(http.get(format!("{}/s/demo", server.base)))
        .await;
    assert_eq!(response.status(), 500);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("studies"),
        "the cause is logged: {}",
        lines[0]
    );
    assert!(
        lines[0].len() < 1024 && !lines[0].contains("backtrace"),
        "{}",
        lines[0]
    );
}

#[tokio::test]
async fn a_nul_byte_that_reaches_the_database_is_a_bad_request() {
    // Defence in depth behind the path checks: PostgreSQL's data exceptions are the client's fault.
    let app = spawn_app().await;
    let mut conn = app.pool.acquire().await.unwrap();
    let error = sqlx::query("SELECT $1::text")
        .bind("a\0b")
        .execute(&mut *conn)
        .await
        .expect_err("PostgreSQL refuses NUL in text");
    let app_error = meilab::error::AppError::from(error);
    assert_eq!(app_error.code(), "bad_request", "{app_error:?}");
    assert!(!format!("{app_error:?}").contains('\n'));
}

fn assert_security_headers(response: &reqwest::Response, case: &str) {
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let csp = header("content-security-policy");
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(
            csp.contains(directive),
            "{case}: CSP {csp:?} lacks {directive}"
        );
    }
    assert!(!csp.contains("script-src 'self' 'unsafe"), "{case}: {csp}");
    assert_eq!(header("x-content-type-options"), "nosniff", "{case}");
    assert!(
        ["no-referrer", "same-origin"].contains(&header("referrer-policy").as_str()),
        "{case}: Referrer-Policy {:?}",
        header("referrer-policy")
    );
    assert_eq!(header("x-frame-options"), "DENY", "{case}");
}

fn small_study() -> StudyConfig {
    StudyConfig {
        trials_per_session: 4,
        catch_per_session: 1,
        ..StudyConfig::default()
    }
}

#[tokio::test]
async fn every_html_page_carries_the_security_headers() {
    let app = spawn_app().await;
    let study = app.create_synthetic_study("headers", small_study()).await;
    app.create_account("boss", Role::Admin).await;

    let mut pages: Vec<(String, reqwest::Response)> = vec![];
    for path in [
        "/s/headers",
        "/s/headers?PROLIFIC_PID=p1&STUDY_ID=s&SESSION_ID=x",
        "/s/no-such-study",
        "/s/demo%00",
        "/nowhere",
        "/admin/login",
    ] {
        pages.push((
            path.into(),
            common::admin::client()
                .get(app.url(path))
                .send()
                .await
                .unwrap(),
        ));
    }
    let admin = app.login("boss").await;
    for path in [
        "/admin".to_string(),
        "/admin/studies/new".to_string(),
        format!("/admin/studies/{study}"),
        format!("/admin/studies/{study}/edit"),
        format!("/admin/studies/{study}/monitor"),
        format!("/admin/studies/{study}/preview"),
        format!("/admin/studies/{study}/results"),
        "/admin/lab".to_string(),
        "/admin/studies/999999".to_string(),
        "/admin/studies/%00".to_string(),
    ] {
        let response = admin.get(&path).await;
        pages.push((path, response));
    }
    // Not logged in: the redirect to the login page, and the 401 of a bare request.
    pages.push((
        "/admin (logged out)".into(),
        common::admin::client()
            .get(app.url("/admin"))
            .send()
            .await
            .unwrap(),
    ));
    for (path, response) in pages {
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        assert!(
            content_type.starts_with("text/html") || response.status().is_redirection(),
            "{path}: {} {content_type}",
            response.status()
        );
        assert_security_headers(&response, &path);
    }
    // The API and the static files get them too.
    for path in ["/api/v1/sessions/%00", "/static/participant.js", "/healthz"] {
        let response = app.get(path).await;
        assert_security_headers(&response, path);
    }
}

#[tokio::test]
async fn every_request_body_must_be_declared_json() {
    let app = spawn_app().await;
    app.create_synthetic_study("typed", small_study()).await;
    let join = app.url("/api/v1/studies/typed/sessions");
    let plain = |url: &str, body: &str| {
        app.client
            .post(url)
            .header("content-type", "text/plain")
            .body(body.to_string())
    };
    let response = plain(&join, r#"{"external_id": "p1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "a start sent as text/plain");
    assert_eq!(app.count("SELECT count(*) FROM sessions").await, 0);

    // Declared JSON (with a charset) and an empty body both work.
    let response = app
        .client
        .post(&join)
        .header("content-type", "application/json; charset=utf-8")
        .body(r#"{"external_id": "p1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let token = response.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let response = app.client.post(&join).send().await.unwrap();
    assert_eq!(response.status(), 201, "an anonymous start without a body");

    let finish = app.url(&format!("/api/v1/sessions/{token}/finish"));
    let response = plain(&finish, r#"{"feedback": "hi"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400, "a finish sent as text/plain");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"], "bad_request");

    // The OpenAPI document says so.
    let doc: serde_json::Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    for (path, method) in [
        ("/api/v1/studies/{slug}/sessions", "post"),
        ("/api/v1/sessions/{token}/responses", "post"),
        ("/api/v1/sessions/{token}/finish", "post"),
    ] {
        let content = doc["paths"][path][method]["requestBody"]["content"]
            .as_object()
            .unwrap_or_else(|| panic!("{path}: a request body"));
        assert_eq!(
            content.keys().collect::<Vec<_>>(),
            ["application/json"],
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_external_id_limit_counts_characters() {
    let app = spawn_app().await;
    app.create_synthetic_study("ids", small_study()).await;
    let (status, reply) = app
        .join("ids", json!({"external_id": "é".repeat(200)}))
        .await;
    assert_eq!(
        status, 201,
        "200 characters (400 bytes) are within the limit: {reply}"
    );
    let (status, reply) = app
        .join("ids", json!({"external_id": "é".repeat(201)}))
        .await;
    assert_eq!(status, 422, "{reply}");
    assert_eq!(reply["error"], "invalid_external_id");
}

#[tokio::test]
async fn the_schema_says_an_answer_position_is_not_negative() {
    let app: TestApp = spawn_app().await;
    let doc: serde_json::Value = app.get("/api/v1/openapi.json").await.json().await.unwrap();
    assert_eq!(
        doc["components"]["schemas"]["Answer"]["properties"]["position"]["minimum"],
        json!(0)
    );
}
