//! The stimuli lab of the dashboard: an image set registered from a server folder or a zip upload, a
//! trial build queued from the form and run by a worker with live progress, and the form's refusals.

mod common;
mod vision_common;

use common::admin::{csrf_of, PASSWORD};
use common::browser::Browser;
use common::spawn_app;
use meilab::accounts::Role;
use meilab::jobs::Worker;

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
    let app = spawn_app().await;
    app.create_account("owner", Role::Admin).await;
    let photos = vision_common::photo_subset(24);
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
    // 2 taps x 2 bases x 2 units.
    assert!(
        counts.contains("units\n8") || counts.contains("units 8"),
        "{counts}"
    );
    let status: String = sqlx::query_scalar("SELECT status FROM studies WHERE slug = 'lab-built'")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(status, "draft");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_build_form_refuses_bad_settings_and_queues_nothing() {
    let app = spawn_app().await;
    app.create_account("owner", Role::Admin).await;
    let owner = app.login("owner").await;
    let photos = vision_common::photo_subset(10);
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
        ("catch_per_unit", "1"),
        ("practice_units", "0"),
        ("seed", "0"),
    ];
    let cases: [(&str, &str, &str); 7] = [
        ("taps", "conv9", "has no tap"),
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
    let app = spawn_app().await;
    app.create_account("owner", Role::Admin).await;
    let owner = app.login("owner").await;
    let legacy = vision_common::assets().join("weights/lpips_v0.1_alex_lin.legacy.pth");
    if !legacy.is_file() {
        eprintln!(
            "SKIPPED PART: {} absent (the legacy .pth ships only with ../shared)",
            legacy.display()
        );
        return;
    }
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
