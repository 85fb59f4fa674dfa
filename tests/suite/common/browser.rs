//! A headless Chromium driven over WebDriver (fantoccini + chromedriver), one at a time across test
//! processes. Needs `chromium` and `chromedriver` (Debian: `apt-get install chromium chromium-driver`);
//! other paths can be given with `MEILAB_TEST_CHROMIUM` and `MEILAB_TEST_CHROMEDRIVER`. A missing
//! browser fails the test with a message saying so.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

pub const WAIT: Duration = Duration::from_secs(30);

pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    _slot: std::fs::File,
}

/// One browser at a time, across threads and processes; released when the file closes.
async fn browser_slot() -> std::fs::File {
    tokio::task::spawn_blocking(|| {
        let path = std::env::temp_dir().join("meilab-browser-tests.lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
        file.lock()
            .unwrap_or_else(|e| panic!("lock {}: {e}", path.display()));
        file
    })
    .await
    .expect("waiting for the browser slot")
}

fn tool(env: &str, default: &str, what: &str) -> String {
    let path = std::env::var(env).unwrap_or_else(|_| default.to_string());
    assert!(
        Path::new(&path).exists(),
        "{what} not found at {path}: the browser tests need Chromium and its WebDriver \
         (Debian/Ubuntu: `apt-get install chromium chromium-driver`), or set {env} to its path"
    );
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("no free local port")
        .port()
}

/// Where screenshots go: `target/screenshots/`.
pub fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots")
}

impl Browser {
    pub async fn start(width: u32, height: u32) -> Self {
        let slot = browser_slot().await;
        let chromium = tool("MEILAB_TEST_CHROMIUM", "/usr/bin/chromium", "Chromium");
        let chromedriver = tool(
            "MEILAB_TEST_CHROMEDRIVER",
            "/usr/bin/chromedriver",
            "chromedriver",
        );
        let port = free_port();
        let mut command = Command::new(&chromedriver);
        command
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        {
            // Its own process group, so that the browser it starts goes down with it.
            use std::os::unix::process::CommandExt;
            command.process_group(0);
        }
        let mut driver = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {chromedriver}: {e}"));
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = driver.try_wait() {
                panic!("chromedriver exited at start ({status})");
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not listen on port {port} within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().expect("temporary browser profile");
        let mut capabilities = Capabilities::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--no-first-run",
                    "--hide-scrollbars",
                    format!("--window-size={width},{height}"),
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::native()
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("chromedriver could not start Chromium ({chromium}): {e}"));
        let browser = Self {
            client,
            driver,
            _profile: profile,
            _slot: slot,
        };
        browser.set_viewport(width, height).await;
        browser
    }

    /// Sizes the window so that the page itself (not the window frame) is `width` x `height`.
    pub async fn set_viewport(&self, width: u32, height: u32) {
        let inner = self
            .js("return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight];")
            .await;
        let frame = |i: usize| inner[i].as_u64().unwrap_or(0) as u32;
        self.client
            .set_window_size(width + frame(0), height + frame(1))
            .await
            .expect("resize the browser window");
        let size = self
            .js("return [window.innerWidth, window.innerHeight];")
            .await;
        assert_eq!(
            size,
            json!([width, height]),
            "the viewport could not be set"
        );
    }

    pub async fn close(mut self) {
        let client = self.client.clone();
        client.close().await.expect("close the browser session");
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }

    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    pub async fn path(&self) -> String {
        self.js("return location.pathname + location.search;")
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub async fn js(&self, script: &str) -> Value {
        self.js_with(script, vec![]).await
    }

    pub async fn js_with(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits for a visible element matching `css`.
    pub async fn wait(&self, css: &str) -> fantoccini::elements::Element {
        let started = Instant::now();
        loop {
            let visible = self
                .js_with(
                    "const e = document.querySelector(arguments[0]); return !!e && !e.closest('[hidden]');",
                    vec![json!(css)],
                )
                .await;
            if visible == json!(true) {
                return self
                    .client
                    .find(Locator::Css(css))
                    .await
                    .expect("find element");
            }
            if started.elapsed() > WAIT {
                panic!("waited {WAIT:?} for {css} on {}", self.path().await);
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }

    /// Waits until `script` returns true.
    pub async fn wait_until(&self, what: &str, script: &str) {
        let started = Instant::now();
        while self.js(script).await != json!(true) {
            if started.elapsed() > WAIT {
                panic!("waited {WAIT:?} for {what} on {}", self.path().await);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        self.wait(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Replaces the value of the input or textarea `css` by typing `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.wait(css).await;
        element
            .clear()
            .await
            .unwrap_or_else(|e| panic!("clear {css}: {e}"));
        element
            .send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("type into {css}: {e}"));
    }

    /// The text of `css`; found again if the page replaced it meanwhile (live counts refresh).
    pub async fn text(&self, css: &str) -> String {
        for _ in 0..20 {
            match self.wait(css).await.text().await {
                Ok(text) => return text,
                Err(fantoccini::error::CmdError::Standard(e))
                    if e.error == fantoccini::error::ErrorStatus::StaleElementReference => {}
                Err(e) => panic!("text of {css}: {e}"),
            }
        }
        panic!("{css} kept being replaced")
    }

    /// Saves what the window shows as `target/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot folder");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Normally `close` ran already; after a failed assertion this still takes the browser down.
        #[cfg(unix)]
        {
            let _ = Command::new("kill")
                .args(["-TERM", "--", &format!("-{}", self.driver.id())])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
