//! The stimuli lab of the dashboard: an image set registered from a server folder or a zip upload, a
//! trial build queued from the form and run by a worker with live progress, and the form's refusals.

use std::path::{Path, PathBuf};
use std::time::Duration;

use meilab::accounts::Role;
use meilab::jobs::Worker;
use meilab::web::api::limit::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::admin::{csrf_of, spawn_app_with, PASSWORD};
use crate::common::browser::Browser;
use crate::common::{self, spawn_app};
use crate::vision_common;

/// Limits under which the dashboard may also read `extra` (besides the data directory).
fn reading(data: &Path, extra: &[&Path]) -> Limits {
    let mut roots = vec![data.to_path_buf()];
    roots.extend(extra.iter().map(|p| p.to_path_buf()));
    Limits::per_minute(120).with_import_roots(roots)
}

fn worker(app: &common::TestApp, data: &tempfile::TempDir) -> Worker {
    Worker {
        pool: app.pool.clone(),
        data_dir: data.path().to_path_buf(),
        store: app.store.clone(),
        name: "test-worker".into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_builds_a_study_from_a_folder_in_the_browser() {
    let photos = vision_common::photo_subset(24);
    let app = spawn_app_with(|data| reading(data, &[photos.path()])).await;
    app.create_account("owner", Role::Admin).await;
    let data = vision_common::data_dir_with_weights();
    let worker = worker(&app, &data);
    let browser = Browser::start(940, 600).await;
    browser.goto(&app.url("/admin/lab")).await;
    browser.wait("[data-testid=login-form]").await;
    browser.fill("[data-testid=login-username]", "owner").await;
    browser.fill("[data-testid=login-password]", PASSWORD).await;
    browser.click("[data-testid=login-submit]").await;
    browser.wait("[data-testid=add-folder]").await;
    assert_eq!(browser.path().await, "/admin/lab");

    browser
        .fill("#f-folder", photos.path().to_str().unwrap())
        .await;
    browser.fill("#f-name", "lab photos").await;
    browser.click("[data-testid=add-folder]").await;
    browser.wait("[data-testid=notice]").await;
    assert!(worker.run_one().await.unwrap(), "the registration job ran");
    browser
        .wait_until(
            "the jobs table shows the registration done",
            "return document.querySelector('tr[data-job] [data-field=status]')?.textContent === 'done'",
        )
        .await;
    browser.goto(&app.url("/admin/lab")).await;
    assert!(browser
        .text("[data-testid=image-sets]")
        .await
        .contains("lab photos"));

    browser.fill("#b-study", "lab-built").await;
    browser.fill("#b-title", "Built in the lab").await;
    browser.fill("#b-taps", "conv1,conv5").await;
    browser.click("input[name=pca]").await;
    browser.fill("#b-units", "2").await;
    browser.fill("#b-batches", "2").await;
    browser.fill("#b-references", "3").await;
    browser.fill("#b-practice", "1").await;
    browser.click("[data-testid=build]").await;
    browser
        .wait("[data-testid=notice], [data-testid=page-error]")
        .await;
    let page = browser.text("main").await;
    assert!(page.contains("The job is queued"), "{page}");
    let queued = browser.text("[data-testid=jobs]").await.to_lowercase();
    assert!(
        queued.contains("build") && queued.contains("queued"),
        "{queued}"
    );
    browser.screenshot("admin-lab-queued").await;
    assert!(worker.run_one().await.unwrap(), "the build job ran");
    browser
        .wait_until(
            "the build shows done with a link to its study",
            "return !!document.querySelector('tr[data-job] [data-field=outcome] a')",
        )
        .await;
    browser.screenshot("admin-lab").await;
    browser.click("tr[data-job] [data-field=outcome] a").await;
    browser.wait("[data-testid=stimuli-counts]").await;
    let counts = browser
        .text("[data-testid=stimuli-counts]")
        .await
        .to_lowercase();
    // 2 taps x 2 bases x 2 units; the page counts those with main trials: a practice and a catch
    // unit are held out.
    assert!(
        counts.contains("units\n6") || counts.contains("units 6"),
        "{counts}"
    );
    let held_out: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM units u WHERE NOT EXISTS
           (SELECT 1 FROM trials t WHERE t.unit_id = u.id AND t.kind = 'main')",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(held_out, 2);
    let status: String = sqlx::query_scalar("SELECT status FROM studies WHERE slug = 'lab-built'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "draft");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_build_form_refuses_bad_settings_and_queues_nothing() {
    let photos = vision_common::photo_subset(10);
    let app = spawn_app_with(|data| reading(data, &[photos.path()])).await;
    app.create_account("owner", Role::Admin).await;
    let owner = app.login("owner").await;
    let (_, page) = owner.text("/admin/lab").await;
    let csrf = csrf_of(&page);
    let response = owner
        .post_raw(
            "/admin/lab/image-sets",
            &[
                ("csrf", &csrf),
                ("folder", photos.path().to_str().unwrap()),
                ("name", "ten"),
            ],
        )
        .await;
    assert_eq!(response.status(), 303);
    let data = vision_common::data_dir_with_weights();
    assert!(worker(&app, &data).run_one().await.unwrap());
    let set_id: i64 = sqlx::query_scalar("SELECT id FROM image_sets WHERE name = 'ten'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    let set = set_id.to_string();
    let base = [
        ("csrf", csrf.as_str()),
        ("study", "refused"),
        ("image_set", set.as_str()),
        ("model", "alexnet"),
        ("taps", "conv1"),
        ("neuron", "on"),
        ("units", "2"),
        ("conditions", "easy"),
        ("batches", "1"),
        ("references", "3"),
        ("catch_units", "1"),
        ("practice_units", "0"),
        ("kmeans_activation", "distance"),
        ("seed", "0"),
    ];
    let cases: [(&str, &str, &str); 9] = [
        ("taps", "conv9", "has no tap"),
        // 10 images: hard99 queries would start in the 4 ranks reference and easy images take.
        (
            "conditions",
            "hard99",
            "the smallest image set that allows it has 401 images",
        ),
        ("kmeans_activation", "nearest", "k-means activation"),
        ("conditions", "hard50", "unknown condition"),
        ("units", "many", "Units"),
        ("study", "Bad Name!", "URL name"),
        ("model", "resnet1000", "Choose a model"),
        ("batches", "5", "need at least"),
        ("neuron", "", "at least one basis"),
    ];
    for (field, value, message) in cases {
        let fields: Vec<(&str, &str)> = base
            .iter()
            .filter(|(k, _)| !(*k == field && value.is_empty()))
            .map(|&(k, v)| if k == field { (k, value) } else { (k, v) })
            .collect();
        let response = owner.post_raw("/admin/lab/builds", &fields).await;
        assert_eq!(response.status(), 422, "{field}={value}");
        let body = response.text().await.unwrap();
        assert!(
            body.contains(message),
            "{field}={value}: {message} not in the page"
        );
    }
    let (status, _) = (
        owner.post_raw("/admin/lab/builds", &base).await.status(),
        (),
    );
    assert_eq!(status, 303, "the corrected form is queued");
    let builds: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'build'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(builds, 1, "only the valid form queued a build");
    let folder = owner
        .post_raw(
            "/admin/lab/image-sets",
            &[("csrf", &csrf), ("folder", "/no/such/folder")],
        )
        .await;
    assert_eq!(folder.status(), 422);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_command_line_refuses_the_builds_the_lab_refuses() {
    let app = spawn_app().await;
    app.create_account("owner", Role::Admin).await;
    let owner = app.login("owner").await;
    let (_, page) = owner.text("/admin/lab").await;
    let csrf = csrf_of(&page);
    let data = tempfile::tempdir().unwrap();
    let url = common::database_url(&app.pool);
    // A valid build, as the lab's form and as `meilab stimuli build` flags.
    let base = [
        ("study", "checked", "--study"),
        ("taps", "conv1", "--taps"),
        ("units", "2", "--units"),
        ("conditions", "easy", "--conditions"),
        ("batches", "1", "--batches"),
        ("references", "3", "--references"),
        ("catch_units", "1", "--catch-units"),
        ("practice_units", "0", "--practice-units"),
        ("seed", "0", "--seed"),
    ];
    // One field changed, and words of the one refusal both show.
    let cases = [
        (
            "batches",
            "101",
            "Batches (B) is from 1 to 100; 101 is outside.",
        ),
        (
            "references",
            "37",
            "References (R) is from 1 to 36; 37 is outside.",
        ),
        (
            "catch_units",
            "21",
            "Catch units is from 0 to 20; 21 is outside.",
        ),
        (
            "practice_units",
            "21",
            "Practice units is from 0 to 20; 21 is outside.",
        ),
        ("taps", "conv9", "alexnet has no tap"),
        ("conditions", "hard50", "Conditions: unknown condition"),
        (
            "study",
            "Bad-Name",
            "URL name uses lowercase letters, digits and",
        ),
    ];
    for (field, value, refusal) in cases {
        let set = |k: &str, v: &'static str| if k == field { value } else { v };
        let mut form = vec![
            ("csrf", csrf.as_str()),
            ("image_set", "1"),
            ("model", "alexnet"),
            ("neuron", "on"),
            ("kmeans_activation", "distance"),
        ];
        form.extend(base.iter().map(|&(k, v, _)| (k, set(k, v))));
        let response = owner.post_raw("/admin/lab/builds", &form).await;
        assert_eq!(response.status(), 422, "the lab: {field}={value}");
        let body = response.text().await.unwrap();
        assert!(
            body.contains(refusal),
            "the lab: `{refusal}` not in the page"
        );

        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_meilab"));
        command
            .args(["stimuli", "build", "--images"])
            .arg(data.path().join("no-such-folder"))
            .arg("--data-dir")
            .arg(data.path())
            .env("DATABASE_URL", &url);
        for &(k, v, flag) in &base {
            command.args([flag, set(k, v)]);
        }
        let output = tokio::task::block_in_place(|| command.output().unwrap());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "the command line: {field}={value}"
        );
        assert!(
            stderr.contains(refusal),
            "the command line: `{refusal}` not in {stderr}"
        );
    }
    for table in ["jobs", "image_sets", "studies"] {
        let rows: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&app.pool)
                .await
                .unwrap();
        assert_eq!(rows, 0, "nothing was queued or written: {table}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_zip_upload_becomes_an_image_set() {
    let app = spawn_app().await;
    app.create_account("owner", Role::Admin).await;
    let owner = app.login("owner").await;
    let (_, page) = owner.text("/admin/lab").await;
    let csrf = csrf_of(&page);
    let photos = vision_common::photo_subset(4);
    let mut archive = Vec::new();
    {
        use std::io::Write;
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(&mut archive));
        for entry in std::fs::read_dir(photos.path()).unwrap() {
            let path = entry.unwrap().path();
            zip.start_file(
                path.file_name().unwrap().to_str().unwrap(),
                zip::write::SimpleFileOptions::default(),
            )
            .unwrap();
            zip.write_all(&std::fs::read(&path).unwrap()).unwrap();
        }
        zip.start_file("../outside.png", zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(b"x").unwrap();
        zip.finish().unwrap();
    }
    let boundary = "----meilab-test-boundary";
    let mut body = Vec::new();
    for (name, value) in [("csrf", csrf.as_str()), ("name", "zipped"), ("size", "128")] {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"archive\"; filename=\"pics.zip\"\r\nContent-Type: application/zip\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(&archive);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let response = owner
        .request(reqwest::Method::POST, "/admin/lab/uploads")
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let data = vision_common::data_dir_with_weights();
    assert!(worker(&app, &data).run_one().await.unwrap());
    let (status, result): (String, serde_json::Value) =
        sqlx::query_as("SELECT status, result FROM jobs WHERE kind = 'images'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(status, "done");
    assert_eq!(result["images"], 4);
    assert_eq!(result["skipped"][0]["path"], "../outside.png");
    let sizes: Vec<(i32, i32)> = sqlx::query_as(
        "SELECT i.width, i.height FROM images i JOIN image_set_members m USING (sha256)",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        sizes,
        vec![(128, 128); 4],
        "pictures brought to the chosen square size"
    );
    let uploads = app.store.root().parent().unwrap().join("uploads");
    assert_eq!(
        std::fs::read_dir(uploads).unwrap().count(),
        0,
        "the upload is removed once registered"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn weights_are_imported_from_the_lab_with_their_names_checked() {
    let legacy = vision_common::assets().join("weights/lpips_v0.1_alex_lin.legacy.pth");
    if !legacy.is_file() {
        eprintln!(
            "SKIPPED PART: {} absent (the legacy .pth ships only with ../shared)",
            legacy.display()
        );
        return;
    }
    let weights = legacy.parent().unwrap().to_path_buf();
    let app = spawn_app_with(|data| reading(data, &[&weights])).await;
    app.create_account("owner", Role::Admin).await;
    let owner = app.login("owner").await;
    let response = owner
        .post(
            "/admin/lab/weights/import",
            &[
                ("file", legacy.to_str().unwrap()),
                ("name", "lpips_v0.1_alex_lin"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    assert!(response
        .text()
        .await
        .unwrap()
        .contains("Imported 5 tensors as lpips_v0.1_alex_lin"));
    let written = app
        .store
        .root()
        .parent()
        .unwrap()
        .join("weights/lpips_v0.1_alex_lin.safetensors");
    assert!(written.is_file());
    // The same file is not a VGG lin set: refused, naming what is wrong.
    let wrong = owner
        .post(
            "/admin/lab/weights/import",
            &[
                ("file", legacy.to_str().unwrap()),
                ("name", "lpips_v0.1_vgg_lin"),
            ],
        )
        .await;
    assert_eq!(wrong.status(), 422);
    assert!(wrong
        .text()
        .await
        .unwrap()
        .contains("could not be imported"));
    assert!(!app
        .store
        .root()
        .parent()
        .unwrap()
        .join("weights/lpips_v0.1_vgg_lin.safetensors")
        .exists());
}

/// Resident memory of this process (the server runs in it), in bytes.
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread")]
async fn weights_from_dev_zero_or_outside_the_import_roots_are_refused_without_reading() {
    // `/dev` is a root here, so `/dev/zero` meets the regular-file check rather than the roots.
    let app = spawn_app_with(|data| reading(data, &[Path::new("/dev")])).await;
    app.create_account("owner", Role::Admin).await;
    let owner = app.login("owner").await;
    let data = app.data_dir();
    let link = data.join("passwd.pth");
    std::os::unix::fs::symlink("/etc/passwd", &link).unwrap();
    let sparse = data.join("huge.safetensors");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    let outside = "is not a file under the folders the dashboard may read";
    let cases: [(&str, &str); 5] = [
        ("/dev/zero", "is not a regular file"),
        ("/etc/passwd", outside),
        (link.to_str().unwrap(), outside),
        ("/no/such/file.pth", outside),
        (sparse.to_str().unwrap(), "is larger than 1024 MiB"),
    ];
    let before = resident_bytes();
    for (file, message) in cases {
        let started = std::time::Instant::now();
        let response = tokio::time::timeout(
            Duration::from_secs(10),
            owner.post(
                "/admin/lab/weights/import",
                &[("file", file), ("name", "lpips_v0.1_alex_lin")],
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("{file}: no answer within 10 s"));
        let took = started.elapsed();
        assert_eq!(response.status(), 422, "{file}");
        let body = response.text().await.unwrap();
        assert!(
            body.contains(message),
            "{file}: `{message}` not in the page"
        );
        assert!(!body.contains("root:x:0"), "{file}: no file contents shown");
        eprintln!("{file}: refused in {took:?}");
    }
    let grown = resident_bytes().saturating_sub(before);
    eprintln!("resident memory grew by {} KiB", grown / 1024);
    assert!(grown < 64 << 20, "nothing was read: grew by {grown} bytes");
    assert!(!data
        .join("weights/lpips_v0.1_alex_lin.safetensors")
        .exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_folder_outside_the_import_roots_is_refused_and_links_out_of_a_root_are_not_followed() {
    let app = spawn_app().await;
    app.create_account("owner", Role::Admin).await;
    let owner = app.login("owner").await;
    let data = app.data_dir();
    let above = data.parent().unwrap().to_str().unwrap().to_string();
    for folder in ["/root", "/etc", "/dev/zero", &above, "/no/such/folder"] {
        let response = owner
            .post("/admin/lab/image-sets", &[("folder", folder)])
            .await;
        assert_eq!(response.status(), 422, "{folder}");
        let body = response.text().await.unwrap();
        assert!(
            body.contains("is not a folder under the folders the dashboard may read"),
            "{folder}"
        );
    }
    assert_eq!(
        app.count("SELECT count(*) FROM jobs").await,
        0,
        "nothing queued"
    );

    // Inside the data directory: pictures, and links that lead out of it.
    let photos = vision_common::photo_subset(2);
    let inside = data.join("incoming");
    std::fs::create_dir(&inside).unwrap();
    for entry in std::fs::read_dir(photos.path()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, inside.join(path.file_name().unwrap())).unwrap();
    }
    std::os::unix::fs::symlink("/etc", inside.join("etc")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", inside.join("host.png")).unwrap();
    let response = owner
        .post(
            "/admin/lab/image-sets",
            &[("folder", inside.to_str().unwrap()), ("name", "inside")],
        )
        .await;
    assert_eq!(response.status(), 303);
    let work = vision_common::data_dir_with_weights();
    assert!(worker(&app, &work).run_one().await.unwrap());
    let (status, result): (String, serde_json::Value) =
        sqlx::query_as("SELECT status, result FROM jobs WHERE kind = 'images'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(status, "done");
    assert_eq!(result["images"], 2);
    let skipped: Vec<String> = result["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap().to_string())
        .collect();
    let mut expected = vec![
        inside.join("etc").display().to_string(),
        inside.join("host.png").display().to_string(),
    ];
    expected.sort();
    assert_eq!(
        skipped, expected,
        "nothing under the link to /etc is listed"
    );
}

/// Sends an upload by hand: `declared` as its Content-Length (headers only, no body), or else a
/// chunked body of `bytes` zeros after the form's token; returns the status of the reply.
async fn raw_upload(
    app: &common::TestApp,
    cookie: &str,
    csrf: &str,
    declared: Option<u64>,
    bytes: u64,
) -> u16 {
    let address = app.address.trim_start_matches("http://").to_string();
    let stream = tokio::net::TcpStream::connect(&address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let reply = tokio::spawn(async move {
        let mut reply = Vec::new();
        let _ = reader.read_to_end(&mut reply).await;
        reply
    });
    let framing = match declared {
        Some(n) => format!("Content-Length: {n}"),
        None => "Transfer-Encoding: chunked".to_string(),
    };
    let head = format!(
        "POST /admin/lab/uploads HTTP/1.1\r\nHost: {address}\r\nCookie: {cookie}\r\n\
         Content-Type: multipart/form-data; boundary=B\r\n{framing}\r\nConnection: close\r\n\r\n"
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    if declared.is_none() {
        let prefix = format!(
            "--B\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n{csrf}\r\n--B\r\n\
             Content-Disposition: form-data; name=\"archive\"; filename=\"big.zip\"\r\n\
             Content-Type: application/zip\r\n\r\n"
        );
        let mut chunks = vec![prefix.into_bytes()];
        let zeros = vec![0u8; 64 * 1024];
        let mut sent = 0;
        while sent < bytes {
            chunks.push(zeros.clone());
            sent += zeros.len() as u64;
            for chunk in chunks.drain(..) {
                let framed = [
                    format!("{:x}\r\n", chunk.len()).into_bytes(),
                    chunk,
                    b"\r\n".to_vec(),
                ]
                .concat();
                if writer.write_all(&framed).await.is_err() || reply.is_finished() {
                    sent = bytes;
                    break;
                }
            }
        }
        let _ = writer.write_all(b"0\r\n\r\n").await;
    }
    let reply = tokio::time::timeout(Duration::from_secs(20), reply)
        .await
        .expect("a reply within 20 s")
        .unwrap();
    let text = String::from_utf8_lossy(&reply);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_over_the_limit_is_refused_with_413_and_nothing_is_kept() {
    let app = spawn_app_with(|_| Limits::per_minute(120).with_max_upload_bytes(1 << 20)).await;
    app.create_account("owner", Role::Admin).await;
    let owner = app.login("owner").await;
    let (_, page) = owner.text("/admin/lab").await;
    let csrf = csrf_of(&page);
    let started = std::time::Instant::now();
    let declared = raw_upload(&app, &owner.cookie, &csrf, Some(8 << 30), 0).await;
    assert_eq!(
        declared, 413,
        "refused on its declared length, before any byte of it"
    );
    eprintln!("declared 8 GiB: refused in {:?}", started.elapsed());
    let streamed = raw_upload(&app, &owner.cookie, &csrf, None, 64 << 20).await;
    assert_eq!(streamed, 413, "refused once past the limit");
    let uploads: Vec<PathBuf> = std::fs::read_dir(app.data_dir().join("uploads"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(
        uploads.is_empty(),
        "the partial upload is removed: {uploads:?}"
    );
    assert_eq!(app.count("SELECT count(*) FROM jobs").await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_observer_form_queues_single_layers_and_refuses_a_layer_the_net_lacks() {
    let app = spawn_app().await;
    let id = app
        .create_synthetic_study("layered", meilab::study::StudyConfig::default())
        .await;
    app.create_account("owner", Role::Admin).await;
    let owner = app.login("owner").await;
    let path = format!("/admin/studies/{id}/observer");
    for (net, layers, message) in [
        (
            "alex",
            "9",
            "alex has layers 1 to 5 (conv1, conv2, conv3, conv4, conv5); there is no layer 9",
        ),
        ("alex", "1;3", "expected `all` or layer numbers from 1"),
        ("resnet", "", "unknown observer `resnet`"),
    ] {
        let response = owner
            .post(
                &path,
                &[("rule", "max-set"), ("net", net), ("layers", layers)],
            )
            .await;
        assert_eq!(response.status(), 400, "net={net} layers={layers}");
        let body = response.text().await.unwrap();
        assert!(body.contains(message), "{message} not in {body}");
    }
    let jobs = || async {
        sqlx::query_scalar::<_, serde_json::Value>(
            "SELECT payload FROM jobs WHERE kind = 'score' ORDER BY id",
        )
        .fetch_all(&app.pool)
        .await
        .unwrap()
    };
    assert!(jobs().await.is_empty(), "a refused form queues nothing");

    // The form's layers field is for LPIPS only: with colour it is ignored.
    for (net, layers) in [("alex", "1,3"), ("colour", "all")] {
        let response = owner
            .post(
                &path,
                &[("rule", "max-set"), ("net", net), ("layers", layers)],
            )
            .await;
        assert_eq!(response.status(), 303, "net={net} layers={layers}");
    }
    let queued = jobs().await;
    assert_eq!(
        (queued[0]["net"].as_str(), queued[0]["layers"].as_str()),
        (Some("alex"), Some("1,3"))
    );
    assert_eq!(
        (queued[1]["net"].as_str(), queued[1]["layers"].as_str()),
        (Some("colour"), Some(""))
    );

    // A worker runs both: the full alex observer, its layers 1 and 3, and the colour observer.
    let data = vision_common::data_dir_with_weights();
    let worker = worker(&app, &data);
    assert!(worker.run_one().await.unwrap());
    assert!(worker.run_one().await.unwrap());
    let observers: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT observer FROM judgments ORDER BY observer")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        observers,
        [
            "colour/max-set",
            "lpips-alex/max-set",
            "lpips-alex:conv1/max-set",
            "lpips-alex:conv3/max-set"
        ]
    );
}
