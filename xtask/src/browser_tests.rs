//! The wasm-bindgen test suites in headless Chromium, built for `wasm32-unknown-unknown` and run
//! by `wasm-bindgen-test-runner` (the lockfile's version) through chromedriver:
//! `shaders/tests/browser.rs` on Chromium's WebGPU (SwiftShader where there is no GPU), which
//! catches kernels and executor behaviour that naga and lavapipe accept and browsers refuse; then
//! `node-wasm/tests/rtc_browser.rs`, two WebRTC peers in one page over the machine's interfaces.
//!
//! The runner reads the browser's capabilities from the file named by
//! `WASM_BINDGEN_TEST_WEBDRIVER_JSON` (default: `webdriver.json` in the current directory, which
//! would put a generated file in the repository). We write it under
//! `$HOME/.cache/hyphae/browser-tests/`, with the flags WebGPU needs (DESIGN.md §7) and a fresh
//! profile directory per run, removed afterwards. The runner appends `headless`,
//! `disable-dev-shm-usage` and `no-sandbox` itself.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context as _;
use xshell::{Shell, cmd};

use crate::{cache_dir, deps};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Chromium flags for WebGPU without a display or a GPU: `--enable-unsafe-webgpu` turns WebGPU
/// on where Chromium does not allow it by default (Linux, SwiftShader); the rest keep a
/// headless run quiet and offline. Not `--disable-gpu`: it turns WebGPU off.
///
/// WebRTC between two peers of one page needs no flag: Chromium resolves its own mDNS host
/// candidates, and `--allow-loopback-in-peer-connection` adds no loopback candidate anyway. What
/// it needs is a default route: Chromium gathers only on that route's interface.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--enable-unsafe-webgpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
];

/// Seconds the runner waits for a whole suite to report (its default, 20, is short for a cold
/// SwiftShader on a loaded CI machine; each suite takes a few seconds here).
const TEST_TIMEOUT_S: &str = "120";
/// Seconds the runner waits for chromedriver to listen (default 5).
const DRIVER_TIMEOUT_S: &str = "30";

/// Variables that would make the runner pick another WebDriver (it looks for geckodriver and
/// safaridriver before chromedriver) or open no browser at all.
const RUNNER_OVERRIDES: &[&str] = &[
    "GECKODRIVER",
    "GECKODRIVER_REMOTE",
    "SAFARIDRIVER",
    "SAFARIDRIVER_REMOTE",
    "CHROMEDRIVER_REMOTE",
    "MSEDGEDRIVER_REMOTE",
    "NO_HEADLESS",
];

pub fn run(sh: &Shell) -> anyhow::Result<()> {
    deps::ensure_debian_packages(sh, deps::BROWSER_PACKAGES)?;
    deps::ensure_rust_target(sh, "wasm32-unknown-unknown")?;
    let runner = deps::ensure_wasm_bindgen(sh)?.join("wasm-bindgen-test-runner");

    let dir = cache_dir().join("browser-tests");
    let profile = dir.join(format!("chromium-profile-{}", std::process::id()));
    std::fs::create_dir_all(&profile).with_context(|| format!("creating {}", profile.display()))?;
    let webdriver_json = dir.join("webdriver.json");
    std::fs::write(&webdriver_json, capabilities(&profile))
        .with_context(|| format!("writing {}", webdriver_json.display()))?;
    eprintln!("browser capabilities in {}", webdriver_json.display());

    let result = run_suites(sh, &runner, &webdriver_json);
    // Best effort: a leftover profile is only disk space, and must not hide the suites' result.
    let _ = std::fs::remove_dir_all(&profile);
    result
}

/// The suites as (package, test target), in the order they run.
const SUITES: &[(&str, &str)] = &[("hyphae-shaders", "browser"), ("hyphae-node", "rtc_browser")];

fn run_suites(sh: &Shell, runner: &Path, webdriver_json: &Path) -> anyhow::Result<()> {
    for (package, test) in SUITES {
        run_one(sh, runner, webdriver_json, package, test)
            .with_context(|| format!("{package}'s `{test}` tests failed in Chromium"))?;
    }
    Ok(())
}

fn run_one(sh: &Shell, runner: &Path, webdriver_json: &Path, package: &str, test: &str) -> anyhow::Result<()> {
    let build = Instant::now();
    cmd!(sh, "cargo test --locked --target wasm32-unknown-unknown -p {package} --test {test} --no-run").run()?;
    let built = build.elapsed();

    let start = Instant::now();
    let mut command = cmd!(sh, "cargo test --locked --target wasm32-unknown-unknown -p {package} --test {test}")
        .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER", runner)
        .env("CHROMEDRIVER", chromedriver(sh))
        .env("WASM_BINDGEN_TEST_WEBDRIVER_JSON", webdriver_json)
        .env("WASM_BINDGEN_TEST_TIMEOUT", TEST_TIMEOUT_S)
        .env("WASM_BINDGEN_TEST_DRIVER_TIMEOUT", DRIVER_TIMEOUT_S);
    for var in RUNNER_OVERRIDES {
        command = command.env_remove(var);
    }
    command.run()?;
    eprintln!(
        "browser tests {package}/{test}: built in {:.1} s, ran in Chromium in {:.1} s",
        built.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `CHROMEDRIVER` if set (another install), else Debian's.
fn chromedriver(sh: &Shell) -> PathBuf {
    sh.var("CHROMEDRIVER").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(CHROMEDRIVER))
}

/// The WebDriver capabilities the runner sends chromedriver: Debian's Chromium with our flags.
fn capabilities(profile: &Path) -> String {
    let user_data_dir = format!("--user-data-dir={}", profile.display());
    let args: Vec<String> = CHROMIUM_FLAGS.iter().copied().chain([user_data_dir.as_str()]).map(json_string).collect();
    format!(
        "{{\n  \"goog:chromeOptions\": {{\n    \"binary\": {},\n    \"args\": [\n      {}\n    ]\n  }}\n}}\n",
        json_string(CHROMIUM),
        args.join(",\n      ")
    )
}

/// A JSON string literal (xtask carries no serde).
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_json_with_webgpu_and_the_profile() {
        let json = capabilities(Path::new("/tmp/a \"b\"\\c"));
        assert!(json.contains("\"binary\": \"/usr/bin/chromium\""), "{json}");
        assert!(json.contains("\"--enable-unsafe-webgpu\""), "{json}");
        assert!(json.contains("\"--user-data-dir=/tmp/a \\\"b\\\"\\\\c\""), "{json}");
        assert!(!json.contains("--disable-gpu"), "{json}");
    }
}
