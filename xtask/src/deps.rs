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
