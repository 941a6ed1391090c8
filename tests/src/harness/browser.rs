//! A headless Chromium (Debian's, with WebGPU on SwiftShader) driven through playwright-core by
//! `tests/browser/driver.mjs`, one JSON command per line. Each [`Browser`] is its own Chromium
//! process with a fresh profile, so its IndexedDB key and consent start empty.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    next: u64,
}

/// Where the site (wasm worker, SDK, pages) was assembled: `cargo xtask test` sets it.
pub fn site_dir() -> PathBuf {
    let dir = std::env::var_os("HYPHAE_SITE_DIR").map(PathBuf::from).unwrap_or_else(|| {
        panic!("HYPHAE_SITE_DIR is not set: run the browser tests through `cargo xtask test` (it builds the wasm worker and the site)")
    });
    assert!(dir.join("pkg").join("hyphae_node_bg.wasm").exists(), "{} holds no wasm worker", dir.display());
    dir
}

/// Where the tests save screenshots for people to look at.
pub fn screenshot_dir() -> PathBuf {
    let dir = super::bin_dir().join("screenshots");
    std::fs::create_dir_all(&dir).expect("creating the screenshot directory");
    dir
}

impl Browser {
    /// Chromium with WebGPU (SwiftShader where there is no GPU).
    pub async fn launch() -> Browser {
        Browser::launch_with(true).await
    }

    /// Chromium as it ships on Linux, WebGPU off: a visitor whose browser cannot contribute.
    pub async fn launch_without_webgpu() -> Browser {
        Browser::launch_with(false).await
    }

    async fn launch_with(webgpu: bool) -> Browser {
        let modules = std::env::var("HYPHAE_NODE_MODULES").unwrap_or_else(|_| {
            panic!("HYPHAE_NODE_MODULES is not set: run the browser tests through `cargo xtask test`")
        });
        let driver = super::crate_dir().join("browser").join("driver.mjs");
        let mut child = Command::new("node")
            .arg(driver)
            .env("HYPHAE_NODE_MODULES", modules)
            .env("HYPHAE_BROWSER_WEBGPU", if webgpu { "on" } else { "off" })
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("starting node tests/browser/driver.mjs");
        let stdin = child.stdin.take().expect("piped");
        let stdout = BufReader::new(child.stdout.take().expect("piped")).lines();
        Browser { child, stdin, stdout, next: 0 }
    }

    /// Sends one command and returns its value, or the driver's error.
    pub async fn command(&mut self, mut command: serde_json::Value) -> Result<serde_json::Value, String> {
        self.next += 1;
        command["id"] = self.next.into();
        let line = format!("{command}\n");
        self.stdin.write_all(line.as_bytes()).await.map_err(|e| e.to_string())?;
        let answer = tokio::time::timeout(Duration::from_secs(120), self.stdout.next_line())
            .await
            .map_err(|_| format!("the browser driver did not answer {command}"))?
            .map_err(|e| e.to_string())?
            .ok_or("the browser driver exited")?;
        let answer: serde_json::Value = serde_json::from_str(&answer).map_err(|e| format!("{e}: {answer}"))?;
        match answer["ok"].as_bool() {
            Some(true) => Ok(answer["value"].clone()),
            _ => Err(answer["error"].as_str().unwrap_or("unknown error").to_owned()),
        }
    }

    async fn must(&mut self, command: serde_json::Value) -> serde_json::Value {
        let described = command.to_string();
        self.command(command).await.unwrap_or_else(|e| panic!("browser: {described}: {e}"))
    }

    pub async fn goto(&mut self, url: &str) {
        self.must(serde_json::json!({"op": "goto", "url": url})).await;
    }

    pub async fn click(&mut self, selector: &str) {
        self.must(serde_json::json!({"op": "click", "selector": selector})).await;
    }

    /// Opens the relay's page and starts a worker through the SDK as a site would, consent
    /// already given, at full duty cycle, with `options` added to `Hyphae.connect`'s (say
    /// `{"maxShards": 1}`). The grid is `window.sdkGrid`; returns once it runs.
    pub async fn join_grid(&mut self, relay_url: &str, options: serde_json::Value) {
        let mut all = serde_json::json!({
            "consent": "granted", "maxUtilization": 1, "pauseWhenHidden": false, "pauseOnBattery": false,
        });
        if let (Some(all), Some(extra)) = (all.as_object_mut(), options.as_object()) {
            all.extend(extra.clone());
        }
        self.goto(relay_url).await;
        self.wait_for("window.hyphaeGrid !== undefined", Duration::from_secs(30)).await;
        self.eval(&format!(
            "(async () => {{
                const {{ Hyphae }} = await import('/sdk/hyphae.js');
                window.sdkGrid = await Hyphae.connect({all});
                await window.sdkGrid.start();
            }})()"
        ))
        .await;
        self.wait_for("window.sdkGrid.state === 'running'", Duration::from_secs(60)).await;
    }

    /// Evaluates a JavaScript expression in the page (promises are awaited).
    pub async fn eval(&mut self, js: &str) -> serde_json::Value {
        self.must(serde_json::json!({"op": "eval", "js": js})).await
    }

    /// Waits until a JavaScript expression is truthy in the page.
    pub async fn wait_for(&mut self, js: &str, timeout: Duration) {
        self.must(serde_json::json!({"op": "wait", "js": js, "timeout": timeout.as_millis() as u64})).await;
    }

    pub async fn screenshot(&mut self, name: &str) -> PathBuf {
        let path = screenshot_dir().join(format!("{name}.png"));
        self.must(serde_json::json!({"op": "screenshot", "path": path, "fullPage": true})).await;
        eprintln!("screenshot: {}", path.display());
        path
    }

    pub async fn viewport(&mut self, width: u32, height: u32) {
        self.must(serde_json::json!({"op": "viewport", "width": width, "height": height})).await;
    }

    pub async fn color_scheme(&mut self, scheme: &str) {
        self.must(serde_json::json!({"op": "color-scheme", "scheme": scheme})).await;
    }

    pub async fn close(mut self) {
        drop(self.stdin);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}
