//! `hyphae job submit|status|results`: a command-line client of the relay's HTTP API.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use hyphae_proto::api::{
    BindingSpec, BlobCreated, Check, ErrorBody, JobCreated, JobInfo, JobRequest, JobResults, JobStatus, MatmulCheck,
    TaskSpec, Tolerance, WgslJob, Workgroups,
};
use hyphae_proto::tensor::{Bytes, Data};
use hyphae_proto::{Credits, Dtype, JobId};
use indicatif::{ProgressBar, ProgressStyle};

/// Inputs at least this big are uploaded as blobs rather than inlined as base64.
const BLOB_THRESHOLD: usize = 256 << 10;

/// Where the relay is, and the API key to speak to it with.
#[derive(Debug, clap::Args)]
pub struct RelayArgs {
    /// Relay URL.
    #[arg(long, env = "HYPHAE_RELAY", default_value = "http://127.0.0.1:8080")]
    relay: String,
    /// API key (create one with `hyphae keys create`). A job is read with a key of the account
    /// that paid for it.
    #[arg(long, env = "HYPHAE_API_KEY", hide_env_values = true)]
    api_key: String,
}

#[derive(Debug, clap::Subcommand)]
pub enum JobCommand {
    /// Submit a WGSL kernel job.
    Submit(Box<SubmitArgs>),
    /// Show a job's status.
    Status {
        id: JobId,
        #[command(flatten)]
        relay: RelayArgs,
    },
    /// Write a job's verified outputs to a directory: <out>/<task>/<binding>.bin and results.json.
    Results {
        id: JobId,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        relay: RelayArgs,
    },
}

#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    relay: RelayArgs,
    /// The WGSL file.
    #[arg(long)]
    shader: PathBuf,
    #[arg(long, default_value = "main")]
    entry_point: String,
    /// An input buffer: BINDING[:DTYPE]=FILE (dtype read from the shader when omitted).
    #[arg(long = "input", value_name = "BINDING[:DTYPE]=FILE")]
    inputs: Vec<String>,
    /// An output buffer: BINDING:DTYPE:BYTES.
    #[arg(long = "output", value_name = "BINDING:DTYPE:BYTES")]
    outputs: Vec<String>,
    /// Dispatch size X[,Y[,Z]].
    #[arg(long)]
    workgroups: Option<String>,
    /// A JSON file with the job's "tasks" array (each task's workgroups and bindings).
    #[arg(long)]
    tasks: Option<PathBuf>,
    /// Distinct workers that must agree on each task.
    #[arg(long)]
    redundancy: Option<u32>,
    #[arg(long)]
    tolerance_rel: Option<f64>,
    #[arg(long)]
    tolerance_abs: Option<f64>,
    /// Credits paid per verified replica.
    #[arg(long)]
    credits_per_task: Option<Credits>,
    /// Have the relay check each result as a matrix product C = A·B (Freivalds), so one worker's
    /// result is enough: the bindings and the shape, `a=1,b=2,c=3,m=64,k=64,n=64`, or with
    /// `dims=0` for an input holding each task's [M, N, K].
    #[arg(long, value_name = "a=A,b=B,c=C,(m=M,k=K,n=N|dims=D)", value_parser = parse_matmul_check)]
    matmul_check: Option<MatmulCheck>,
    /// Wait for the job to finish, showing progress.
    #[arg(long)]
    wait: bool,
}

pub async fn run(cmd: JobCommand) -> anyhow::Result<ExitCode> {
    let http = reqwest::Client::builder().build()?;
    match cmd {
        JobCommand::Submit(args) => submit(&http, *args).await,
        JobCommand::Status { id, relay } => {
            let info: JobInfo = get_json(&http, &relay, &format!("/v1/jobs/{id}")).await?;
            println!("{}", serde_json::to_string_pretty(&info)?);
            Ok(ExitCode::SUCCESS)
        }
        JobCommand::Results { id, out, relay } => results(&http, &relay, id, &out).await,
    }
}

fn base(relay: &str) -> String {
    relay.trim_end_matches('/').to_owned()
}

async fn submit(http: &reqwest::Client, args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let relay = base(&args.relay.relay);
    let shader = std::fs::read_to_string(&args.shader).with_context(|| format!("reading {}", args.shader.display()))?;
    let info = hyphae_shaders::validate(&shader).map_err(|e| anyhow!("{}: {e}", args.shader.display()))?;
    let element_of =
        |binding: u32| info.bindings.iter().find(|b| b.group == 0 && b.binding == binding).and_then(|b| b.element);

    let mut bindings = Vec::new();
    for input in &args.inputs {
        let (spec, file) =
            input.split_once('=').ok_or_else(|| anyhow!("--input {input}: expected BINDING[:DTYPE]=FILE"))?;
        let (binding, dtype) = match spec.split_once(':') {
            Some((b, d)) => (b.parse::<u32>()?, Some(parse_dtype(d)?)),
            None => (spec.parse::<u32>().with_context(|| format!("--input {input}: bad binding"))?, None),
        };
        let dtype = dtype.or_else(|| element_of(binding)).ok_or_else(|| {
            anyhow!(
                "--input {input}: the shader does not say binding {binding}'s element type; write {binding}:u32=FILE"
            )
        })?;
        let data = load_input(http, &relay, &args.relay.api_key, Path::new(file)).await?;
        bindings.push(BindingSpec { binding, dtype, data: Some(data), output: false, size: None });
    }
    for output in &args.outputs {
        let parts: Vec<&str> = output.split(':').collect();
        let [binding, dtype, size] = parts[..] else { bail!("--output {output}: expected BINDING:DTYPE:BYTES") };
        bindings.push(BindingSpec {
            binding: binding.parse()?,
            dtype: parse_dtype(dtype)?,
            data: None,
            output: true,
            size: Some(size.parse().with_context(|| format!("--output {output}: bad size"))?),
        });
    }
    let workgroups = args.workgroups.as_deref().map(parse_workgroups).transpose()?;
    let tasks: Vec<TaskSpec> = match &args.tasks {
        Some(path) => serde_json::from_str(&std::fs::read_to_string(path)?)
            .with_context(|| format!("{} is not a JSON array of tasks", path.display()))?,
        None => Vec::new(),
    };
    let tolerance = match (args.tolerance_rel, args.tolerance_abs) {
        (None, None) => None,
        (rel, abs) => {
            let d = Tolerance::default();
            Some(Tolerance { rel: rel.unwrap_or(d.rel), abs: abs.unwrap_or(d.abs) })
        }
    };
    let request = JobRequest::Wgsl(WgslJob {
        shader,
        entry_point: args.entry_point,
        workgroups,
        bindings,
        tasks,
        redundancy: args.redundancy,
        tolerance,
        credits_per_task: args.credits_per_task,
        verify: args.matmul_check.map(Check::Matmul),
    });
    let response = http.post(format!("{relay}/v1/jobs")).bearer_auth(&args.relay.api_key).json(&request).send().await?;
    let created: JobCreated = parse(response).await?;
    eprintln!("submitted {} ({} tasks)", created.id, created.tasks);
    println!("{}", created.id);
    if !args.wait {
        return Ok(ExitCode::SUCCESS);
    }
    let bar = ProgressBar::new(u64::from(created.tasks));
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} tasks verified {msg}")
            .expect("valid template"),
    );
    loop {
        let info: JobInfo = get_json(http, &args.relay, &format!("/v1/jobs/{}", created.id)).await?;
        bar.set_position(u64::from(info.tasks.completed));
        bar.set_message(format!("({} running)", info.tasks.running));
        if info.status.is_finished() {
            bar.finish_and_clear();
            return Ok(match info.status {
                JobStatus::Completed => {
                    eprintln!("{} completed: {} tasks verified", info.id, info.tasks.completed);
                    ExitCode::SUCCESS
                }
                _ => {
                    eprintln!("{} failed: {}", info.id, info.error.unwrap_or_default());
                    ExitCode::from(1)
                }
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn load_input(http: &reqwest::Client, relay: &str, api_key: &str, file: &Path) -> anyhow::Result<Data> {
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    if bytes.len() < BLOB_THRESHOLD {
        return Ok(Data::Inline(Bytes(bytes)));
    }
    let response = http.post(format!("{relay}/v1/blobs")).bearer_auth(api_key).body(bytes).send().await?;
    let blob: BlobCreated = parse(response).await?;
    eprintln!("uploaded {} as {}", file.display(), blob.id);
    Ok(Data::Blob { blob: blob.id })
}

async fn results(http: &reqwest::Client, relay: &RelayArgs, id: JobId, out: &Path) -> anyhow::Result<ExitCode> {
    let mut offset = 0;
    let mut summary = BTreeMap::new();
    let mut status;
    loop {
        let page: JobResults =
            get_json(http, relay, &format!("/v1/jobs/{id}/results?offset={offset}&limit=500")).await?;
        status = page.status;
        for task in &page.tasks {
            let dir = out.join(task.index.to_string());
            for output in &task.outputs {
                std::fs::create_dir_all(&dir)?;
                std::fs::write(dir.join(format!("{}.bin", output.binding)), &output.data.0)?;
            }
            summary.insert(
                task.index,
                serde_json::json!({
                    "status": task.status,
                    "output_sha256": task.output_sha256,
                    "verified_by": task.verified_by,
                    "receipts": task.receipts,
                    "error": task.error,
                }),
            );
        }
        offset += page.tasks.len() as u32;
        if page.tasks.is_empty() || offset >= page.total {
            break;
        }
    }
    std::fs::create_dir_all(out)?;
    let json = serde_json::json!({ "id": id, "status": status, "tasks": summary });
    std::fs::write(out.join("results.json"), serde_json::to_string_pretty(&json)?)?;
    eprintln!("wrote {} tasks of {id} ({status:?}) to {}", summary.len(), out.display());
    Ok(ExitCode::SUCCESS)
}

fn parse_dtype(s: &str) -> anyhow::Result<Dtype> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| anyhow!("unknown dtype {s:?}; expected u32, i32 or f32"))
}

fn parse_workgroups(s: &str) -> anyhow::Result<Workgroups> {
    let dims: Vec<u32> = s
        .split(',')
        .map(|d| d.trim().parse())
        .collect::<Result<_, _>>()
        .with_context(|| format!("--workgroups {s}"))?;
    serde_json::from_value(serde_json::json!(dims)).map_err(|e| anyhow!("--workgroups {s}: {e}"))
}

/// `a=1,b=2,c=3,m=64,k=64,n=64` or `a=1,b=2,c=3,dims=0`; the relay checks the rest (that the
/// bindings exist and are f32, that the shape fits them).
fn parse_matmul_check(text: &str) -> Result<MatmulCheck, String> {
    let mut fields = BTreeMap::new();
    for part in text.split(',') {
        let (name, value) = part.split_once('=').ok_or_else(|| format!("expected name=value, got {part:?}"))?;
        let value: u32 = value.trim().parse().map_err(|_| format!("{name}: {value:?} is not a number"))?;
        if !["a", "b", "c", "m", "k", "n", "dims"].contains(&name.trim()) {
            return Err(format!("unknown field {name:?}; expected a, b, c and m, k, n or dims"));
        }
        if fields.insert(name.trim().to_owned(), value).is_some() {
            return Err(format!("{name} given twice"));
        }
    }
    let field = |name: &str| fields.get(name).copied();
    let binding =
        |name: &str| field(name).ok_or_else(|| format!("missing {name}= (the binding of {})", name.to_uppercase()));
    let check = MatmulCheck {
        a: binding("a")?,
        b: binding("b")?,
        c: binding("c")?,
        dims: field("dims"),
        m: field("m"),
        k: field("k"),
        n: field("n"),
    };
    match (check.dims, check.m, check.k, check.n) {
        (Some(_), None, None, None) | (None, Some(_), Some(_), Some(_)) => Ok(check),
        _ => Err("give the shape as m=,k=,n= or as dims= (not both)".into()),
    }
}

/// `GET` of `path` on the relay, with the API key.
async fn get_json<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    relay: &RelayArgs,
    path: &str,
) -> anyhow::Result<T> {
    let url = format!("{}{path}", base(&relay.relay));
    parse(http.get(&url).bearer_auth(&relay.api_key).send().await.with_context(|| format!("GET {url}"))?).await
}

/// Decodes a success body, or turns the API's error body into a readable error.
async fn parse<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> anyhow::Result<T> {
    let status = response.status();
    let bytes = response.bytes().await?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).with_context(|| format!("unexpected response body ({status})"));
    }
    match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(body) => bail!("{status} {:?}: {}", body.error.code, body.error.message),
        Err(_) => bail!("{status}: {}", String::from_utf8_lossy(&bytes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_checks_are_read_from_the_command_line_with_one_shape() {
        let fixed = parse_matmul_check("a=1,b=2,c=3,m=64,k=32,n=16").unwrap();
        assert_eq!(fixed, MatmulCheck { a: 1, b: 2, c: 3, dims: None, m: Some(64), k: Some(32), n: Some(16) });
        let per_task = parse_matmul_check("a=1, b=2, c=3, dims=0").unwrap();
        assert_eq!(per_task.dims, Some(0));
        for bad in ["a=1,b=2,c=3", "a=1,b=2,c=3,m=4,dims=0", "a=1,b=2,m=4,k=4,n=4", "a=x,b=2,c=3,dims=0", "a=1,a=2"] {
            assert!(parse_matmul_check(bad).is_err(), "{bad}");
        }
    }
}
