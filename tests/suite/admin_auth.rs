//! Dashboard access: every route needs a session, roles limit what a session may change, every form
//! needs its CSRF token, failed logins are limited and tell nothing about which names exist.

use std::time::{Duration, Instant};

use meilab::accounts::Role;
use meilab::study::StudyConfig;
use meilab::web::admin::login;
use meilab::web::api::limit::{Limits, TrustedProxies};
use reqwest::header::COOKIE;

use crate::common::admin::{
    client, client_from, cookie, location, set_cookie_header, spawn_app_with, AdminClient, PASSWORD,
};
use crate::common::{self, spawn_app};

/// Every dashboard route, with `{id}` for a study.
const GET_ROUTES: &[&str] = &[
    "/admin",
    "/admin/",
    "/admin/studies/new",
    "/admin/studies/{id}",
    "/admin/studies/{id}/edit",
    "/admin/studies/{id}/monitor",
    "/admin/studies/{id}/preview",
    "/admin/studies/{id}/results",
    "/admin/lab",
];
const DATA_ROUTES: &[&str] = &[
    "/admin/studies.json",
    "/admin/studies/{id}/monitor.json",
    "/admin/studies/{id}/responses.csv",
    "/admin/jobs.json",
];
const POST_ROUTES: &[&str] = &[
    "/admin/logout",
    "/admin/studies",
    "/admin/studies/{id}/edit",
    "/admin/studies/{id}/status",
    "/admin/studies/{id}/clone",
    "/admin/studies/{id}/stimuli",
    "/admin/lab/weights",
    "/admin/lab/weights/import",
    "/admin/lab/image-sets",
    "/admin/lab/uploads",
    "/admin/lab/builds",
    "/admin/jobs/{id}/cancel",
    "/admin/studies/{id}/observer",
];

async fn study_status(app: &common::TestApp, id: i64) -> String {
    sqlx::query_scalar("SELECT status FROM studies WHERE id = $1")
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("study")
}

#[tokio::test]
async fn every_admin_route_without_a_session_gets_the_login_page_or_401() {
    let app = spawn_app().await;
    let id = app
        .create_synthetic_study("guarded", StudyConfig::default())
        .await;
    let http = client();
    let forged = format!("meilab_admin={}", "ab".repeat(32));
    for cookie_header in [None, Some(forged.as_str())] {
        for route in GET_ROUTES {
            let path = route.replace("{id}", &id.to_string());
            let mut request = http.get(app.url(&path));
            if let Some(c) = cookie_header {
                request = request.header(COOKIE, c);
            }
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), 303, "GET {path} without a session");
            assert!(
                location(&response).starts_with("/admin/login?next="),
                "GET {path} goes to the login page, not {}",
                location(&response)
            );
        }
        for route in DATA_ROUTES {
            let path = route.replace("{id}", &id.to_string());
            let mut request = http.get(app.url(&path));
            if let Some(c) = cookie_header {
                request = request.header(COOKIE, c);
            }
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), 401, "GET {path} without a session");
        }
        for route in POST_ROUTES {
            let path = route.replace("{id}", &id.to_string());
            let mut request = http
                .post(app.url(&path))
                .form(&[("csrf", "x".repeat(64)), ("to", "closed".into())]);
            if let Some(c) = cookie_header {
                request = request.header(COOKIE, c);
            }
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), 401, "POST {path} without a session");
        }
    }
    assert_eq!(study_status(&app, id).await, "active", "nothing changed");
    assert_eq!(app.count("SELECT count(*) FROM studies").await, 1);
}

#[tokio::test]
async fn a_researcher_reads_and_exports_but_gets_403_on_admin_actions() {
    let app = spawn_app().await;
    let id = app
        .create_synthetic_study("readonly", StudyConfig::default())
        .await;
    app.create_account("rita", Role::Researcher).await;
    let rita = app.login("rita").await;
    for route in GET_ROUTES.iter().chain(DATA_ROUTES) {
        let path = route.replace("{id}", &id.to_string());
        let expected = if path.ends_with("/new") || path.ends_with("/edit") {
            403
        } else {
            200
        };
        assert_eq!(
            rita.get(&path).await.status(),
            expected,
            "GET {path} as a researcher"
        );
    }
    for route in &POST_ROUTES[1..] {
        let path = route.replace("{id}", &id.to_string());
        let response = rita
            .post(&path, &[("to", "closed"), ("source", "synthetic")])
            .await;
        assert_eq!(response.status(), 403, "POST {path} as a researcher");
    }
    assert_eq!(study_status(&app, id).await, "active");
    assert_eq!(app.count("SELECT count(*) FROM studies").await, 1);
    let (_, dashboard) = rita.text("/admin").await;
    assert!(
        !dashboard.contains("/admin/studies/new"),
        "no link to an action the role cannot take"
    );
}

#[tokio::test]
async fn a_form_posted_without_its_csrf_token_is_rejected() {
    let app = spawn_app().await;
    let id = app
        .create_synthetic_study("tokens", StudyConfig::default())
        .await;
    app.create_account("owner", Role::Admin).await;
    let owner = app.login("owner").await;
    let path = format!("/admin/studies/{id}/status");
    let missing = owner.post_raw(&path, &[("to", "paused")]).await;
    assert_eq!(missing.status(), 403);
    let wrong = owner
        .post_raw(&path, &[("csrf", &"0".repeat(64)), ("to", "paused")])
        .await;
    assert_eq!(wrong.status(), 403);
    assert_eq!(study_status(&app, id).await, "active", "nothing changed");
    let clone = owner
        .post_raw(&format!("/admin/studies/{id}/clone"), &[])
        .await;
    assert_eq!(clone.status(), 403);
    assert_eq!(app.count("SELECT count(*) FROM studies").await, 1);

    let right = owner.post(&path, &[("to", "paused")]).await;
    assert_eq!(right.status(), 303);
    assert_eq!(study_status(&app, id).await, "paused");

    // The login form too: its token must match the cookie the form page set.
    let login = client()
        .post(app.url("/admin/login"))
        .form(&[("username", "owner"), ("password", PASSWORD)])
        .send()
        .await
        .expect("login");
    assert_eq!(login.status(), 403);
    assert!(cookie(&login, "meilab_admin").is_none());
}

/// A multipart upload of a small zip to the lab, with `csrf` as its token field if given.
async fn upload(who: &AdminClient<'_>, csrf: Option<&str>) -> reqwest::Response {
    let boundary = "----meilab-auth-boundary";
    let mut body = Vec::new();
    let fields = csrf
        .map(|c| ("csrf", c))
        .into_iter()
        .chain([("name", "refused")]);
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"archive\"; filename=\"a.zip\"\r\n\
             Content-Type: application/zip\r\n\r\nPK\x03\x04 not read\r\n--{boundary}--\r\n"
        )
        .as_bytes(),
    );
    who.request(reqwest::Method::POST, "/admin/lab/uploads")
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .expect("upload is sent")
}

/// The status and error page title of a refused form.
async fn refusal(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let page = response.text().await.expect("body");
    let title = ["Form expired", "Not allowed"]
        .into_iter()
        .find(|t| page.contains(t))
        .unwrap_or("no error page")
        .to_string();
    (status, title)
}

#[tokio::test]
async fn forms_without_their_token_or_from_a_researcher_are_refused_before_they_act() {
    let app = spawn_app().await;
    let id = app
        .create_synthetic_study("checked", StudyConfig::default())
        .await;
    let (status, _) = app
        .join("checked", serde_json::json!({"external_id": "p1"}))
        .await;
    assert_eq!(status, 201);
    app.create_account("owner", Role::Admin).await;
    app.create_account("rita", Role::Researcher).await;
    let owner = app.login("owner").await;
    let rita = app.login("rita").await;
    let expired = (403, "Form expired".to_string());
    let not_allowed = (403, "Not allowed".to_string());

    let reset = format!("/admin/studies/{id}/participants/reset");
    let build = "/admin/lab/builds";
    for path in [reset.as_str(), build] {
        let fields = [
            ("external_id", "p1"),
            ("study", "refused"),
            ("model", "alexnet"),
        ];
        let missing = owner.post_raw(path, &fields).await;
        assert_eq!(refusal(missing).await, expired, "{path} without a token");
        let mut wrong = vec![("csrf", "0".repeat(64))];
        wrong.extend(fields.map(|(k, v)| (k, v.to_string())));
        let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let wrong = owner.post_raw(path, &wrong).await;
        assert_eq!(refusal(wrong).await, expired, "{path} with another token");
        let researcher = rita.post(path, &fields).await;
        assert_eq!(
            refusal(researcher).await,
            not_allowed,
            "{path} as a researcher"
        );
    }
    assert_eq!(
        app.count("SELECT count(*) FROM sessions").await,
        1,
        "the participant is not reset"
    );

    assert_eq!(
        refusal(upload(&owner, None).await).await,
        expired,
        "an upload without a token"
    );
    assert_eq!(
        refusal(upload(&owner, Some(&"0".repeat(64))).await).await,
        expired,
        "an upload with another token"
    );
    assert_eq!(
        refusal(upload(&rita, Some(&rita.csrf)).await).await,
        not_allowed,
        "an upload from a researcher"
    );
    let uploads = std::fs::read_dir(app.data_dir().join("uploads"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(uploads, 0, "nothing of a refused upload is written");
    assert_eq!(app.count("SELECT count(*) FROM jobs").await, 0);

    // Logging out needs the token too, and is open to every role.
    let missing = rita.post_raw("/admin/logout", &[]).await;
    assert_eq!(refusal(missing).await, expired, "logout without a token");
    assert_eq!(rita.get("/admin").await.status(), 200, "still logged in");
    assert_eq!(rita.post("/admin/logout", &[]).await.status(), 303);
    assert_eq!(rita.get("/admin").await.status(), 303, "logged out");
}

#[tokio::test]
async fn the_session_cookie_is_http_only_and_same_site_and_logout_ends_it() {
    let app = spawn_app().await;
    app.create_account("owner", Role::Admin).await;
    let response = app.try_login("owner", PASSWORD).await;
    let header = set_cookie_header(&response, "meilab_admin")
        .expect("session cookie")
        .to_string();
    assert!(header.contains("HttpOnly"), "{header}");
    assert!(header.contains("SameSite=Strict"), "{header}");
    assert!(header.contains("Path=/admin"), "{header}");
    let stored: String = sqlx::query_scalar("SELECT token_hash FROM admin_sessions")
        .fetch_one(&app.pool)
        .await
        .expect("a session row");
    let token = cookie(&response, "meilab_admin").expect("cookie");
    assert!(!token.contains(&stored), "only the token's hash is stored");

    let owner = app.login("owner").await;
    assert_eq!(owner.post("/admin/logout", &[]).await.status(), 303);
    assert_eq!(
        owner.get("/admin").await.status(),
        303,
        "the old cookie no longer works"
    );
}

#[tokio::test]
async fn ten_wrong_passwords_in_a_row_are_rate_limited() {
    let app = spawn_app().await;
    app.create_account("owner", Role::Admin).await;
    let mut statuses = vec![];
    for _ in 0..10 {
        let response = app.try_login("owner", "not the password").await;
        assert!(cookie(&response, "meilab_admin").is_none());
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses[0], 401);
    assert_eq!(
        statuses[9], 429,
        "limited by the tenth attempt: {statuses:?}"
    );
    let right = app.try_login("owner", PASSWORD).await;
    assert_eq!(
        right.status(),
        429,
        "even the right password waits out the limit"
    );
    assert!(cookie(&right, "meilab_admin").is_none());
    assert!(right
        .text()
        .await
        .expect("body")
        .contains("Too many failed attempts"));
    // Failures are kept in PostgreSQL, where every web process counts them.
    assert!(
        app.count(
            "SELECT coalesce(max(failures), 0)::int8 FROM login_throttle WHERE account = 'owner'"
        )
        .await
            >= 5
    );
    assert_eq!(
        app.count("SELECT count(*) FROM login_throttle WHERE client !~ '^[0-9a-f]{64}$'")
            .await,
        0,
        "client addresses are kept only as keyed hashes"
    );
}

const ELSEWHERE: [u8; 4] = [127, 0, 0, 2];

#[tokio::test]
async fn wrong_passwords_from_another_address_do_not_lock_the_owner_out() {
    let app = spawn_app().await;
    app.create_account("owner", Role::Admin).await;
    let intruder = client_from(ELSEWHERE.into());
    let mut statuses = vec![];
    for _ in 0..10 {
        let response = app
            .try_login_with(&intruder, "owner", "not the password", None)
            .await;
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses[..5], [401; 5], "{statuses:?}");
    assert_eq!(
        statuses[9], 429,
        "the intruder is slowed down: {statuses:?}"
    );
    let intruder_right = app.try_login_with(&intruder, "owner", PASSWORD, None).await;
    assert_eq!(
        intruder_right.status(),
        429,
        "even the right password waits out the back-off where the failures came from"
    );
    let owner = app.try_login("owner", PASSWORD).await;
    assert_eq!(owner.status(), 303, "the owner, elsewhere, logs in");
    assert!(cookie(&owner, "meilab_admin").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_wrong_logins_run_no_more_password_checks_than_the_limit() {
    let app = spawn_app().await;
    app.create_account("owner", Role::Admin).await;
    let attempts = (0..40).map(|_| app.try_login("owner", "not the password"));
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    // A 401 is a password checked and found wrong; a 429 was refused before any check.
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + refused, 40, "{statuses:?}");
    assert_eq!(
        checked,
        login::PER_ACCOUNT.free as usize,
        "password checks: {statuses:?}"
    );
}

#[tokio::test]
async fn forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
    // Not trusted: an intruder cannot dodge its count by claiming new addresses.
    let app = spawn_app().await;
    app.create_account("owner", Role::Admin).await;
    let http = client();
    let mut last = 0;
    for i in 0..10 {
        let claimed = format!("198.51.100.{i}");
        last = app
            .try_login_with(&http, "owner", "not the password", Some(&claimed))
            .await
            .status()
            .as_u16();
    }
    assert_eq!(last, 429, "counted against the real peer");

    // Behind a trusted proxy: the forwarded address is the client, so the owner behind the same proxy
    // is not locked out by someone else's failures.
    let proxied = spawn_app_with(|_| {
        Limits::per_minute(120).trusting(TrustedProxies::parse(&["127.0.0.1".into()]).unwrap())
    })
    .await;
    proxied.create_account("owner", Role::Admin).await;
    for _ in 0..10 {
        last = proxied
            .try_login_with(&http, "owner", "not the password", Some("198.51.100.9"))
            .await
            .status()
            .as_u16();
    }
    assert_eq!(last, 429);
    // A client naming an address itself, to the left of the proxy's entry, is not believed either.
    let spoofed = proxied
        .try_login_with(&http, "owner", PASSWORD, Some("203.0.113.5, 198.51.100.9"))
        .await;
    assert_eq!(spoofed.status(), 429);
    let owner = proxied
        .try_login_with(&http, "owner", PASSWORD, Some("198.51.100.1"))
        .await;
    assert_eq!(owner.status(), 303, "the owner behind the proxy logs in");
}

#[tokio::test]
async fn session_starts_count_the_forwarded_client_only_behind_a_trusted_proxy() {
    let start = |app: &common::TestApp, forwarded: String| {
        app.client
            .post(app.url("/api/v1/studies/open/sessions"))
            .header("X-Forwarded-For", forwarded)
            .json(&serde_json::json!({}))
            .send()
    };
    let direct = spawn_app_with(|_| Limits::per_minute(2)).await;
    direct
        .create_synthetic_study("open", StudyConfig::default())
        .await;
    let mut statuses = vec![];
    for i in 0..3 {
        let response = start(&direct, format!("198.51.100.{i}")).await.unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [201, 201, 429], "one peer, whatever it claims");

    let proxied = spawn_app_with(|_| {
        Limits::per_minute(2).trusting(TrustedProxies::parse(&["127.0.0.0/8".into()]).unwrap())
    })
    .await;
    proxied
        .create_synthetic_study("open", StudyConfig::default())
        .await;
    let mut statuses = vec![];
    for i in 0..3 {
        let response = start(&proxied, format!("198.51.100.{i}")).await.unwrap();
        statuses.push(response.status().as_u16());
    }
    for _ in 0..2 {
        let response = start(&proxied, "198.51.100.0".into()).await.unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(
        statuses,
        [201, 201, 201, 201, 429],
        "one bucket per forwarded client"
    );
}

#[tokio::test]
async fn an_unknown_user_and_a_wrong_password_get_the_same_answer() {
    let app = spawn_app().await;
    app.create_account("owner", Role::Admin).await;
    let mut timings = (vec![], vec![]);
    let mut bodies = (String::new(), String::new());
    for _ in 0..4 {
        let started = Instant::now();
        let unknown = app.try_login("nobody", "not the password").await;
        timings.0.push(started.elapsed());
        assert_eq!(unknown.status(), 401);
        bodies.0 = unknown
            .text()
            .await
            .expect("body")
            .replace("nobody", "NAME");

        let started = Instant::now();
        let wrong = app.try_login("owner", "not the password").await;
        timings.1.push(started.elapsed());
        assert_eq!(wrong.status(), 401);
        bodies.1 = wrong
            .text()
            .await
            .expect("body")
            .replace("value=\"owner\"", "value=\"NAME\"");
    }
    let without_token = |s: &str| {
        let marker = "name=\"csrf\" value=\"";
        let at = s.find(marker).expect("csrf field") + marker.len();
        format!("{}{}", &s[..at], &s[at + 64..])
    };
    assert_eq!(without_token(&bodies.0), without_token(&bodies.1));
    assert!(bodies.0.contains("Wrong user name or password."));
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    let (unknown, wrong) = (median(&mut timings.0), median(&mut timings.1));
    let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
    assert!(
        (0.4..2.5).contains(&ratio),
        "an unknown name ({unknown:?}) and a wrong password ({wrong:?}) take about as long"
    );
}
