//! `hyphae-node`: a native GPU worker. Glue only: flags, the key file, the GPU, then
//! `hyphae_node::run` until Ctrl-C.

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    native::main()
}

// The browser worker is the library's wasm build; this binary only exists natively.
#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::path::PathBuf;
    use std::process::ExitCode;
    use std::time::Duration;

    use anyhow::Context as _;
    use clap::Parser;
    use hyphae_node::blobs::BlobCache;
    use hyphae_node::executor::{Execute as _, GpuExecutor};
    use hyphae_node::peer::rtc::RtcConfig;
    use hyphae_node::{Throttle, WorkerConfig, keystore};
    use hyphae_proto::Address;
    use hyphae_proto::frame::Platform;

    #[derive(Debug, Parser)]
    #[command(name = "hyphae-node", version, about = "Native GPU worker for a hyphae relay")]
    struct Args {
        /// The relay's URL.
        #[arg(long, env = "HYPHAE_RELAY", default_value = "http://127.0.0.1:8080")]
        relay: String,
        /// The worker's key file (created if missing).
        #[arg(long, default_value = "hyphae-node.key")]
        key: PathBuf,
        /// The address that earns this worker's credits (default: the worker's own address).
        #[arg(long)]
        beneficiary: Option<Address>,
        /// Tasks to hold at once.
        #[arg(long, default_value_t = 2)]
        max_in_flight: u32,
        /// Directory to cache input blobs in.
        #[arg(long)]
        blob_cache: Option<PathBuf>,
        /// Most of the time the GPU may spend on tasks, in (0, 1].
        #[arg(long, default_value_t = 1.0)]
        max_utilization: f64,
        /// Model shards to keep loaded at once (GPU memory); the relay sends other shards
        /// elsewhere while workers with room exist.
        #[arg(long, default_value_t = hyphae_node::executor::shard_capacity() as u32,
            value_parser = clap::value_parser!(u32).range(1..=hyphae_node::executor::shard_capacity() as i64))]
        max_shards: u32,
        /// Never connect to other workers directly: send every peer transfer through the relay.
        #[arg(long)]
        no_webrtc: bool,
        /// Local UDP address to gather WebRTC host candidates on; `0.0.0.0:0` is every
        /// non-loopback interface. Repeat for several.
        #[arg(long, env = "HYPHAE_WEBRTC_BIND", value_delimiter = ',', default_value = "0.0.0.0:0")]
        webrtc_bind: Vec<String>,
        /// Milliseconds a direct connection may take to open before the relay carries the transfer.
        #[arg(long, default_value_t = 5000)]
        webrtc_timeout_ms: u64,
    }

    pub fn main() -> ExitCode {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("info,wgpu_core=warn,wgpu_hal=warn,naga=warn")
                }),
            )
            .with_writer(std::io::stderr)
            .init();
        match run(Args::parse()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        }
    }

    fn run(args: Args) -> anyhow::Result<()> {
        let key = keystore::load_or_create(&args.key)?;
        let beneficiary = args.beneficiary.unwrap_or(key.address());
        let executor = GpuExecutor::new().context("opening the GPU")?;
        let adapter = executor.adapter();
        eprintln!(
            "worker {} (beneficiary {beneficiary}) on {} [{}, {}]",
            key.address(),
            adapter.name,
            adapter.backend,
            adapter.device_type
        );
        // The command line never changes the throttle after start; the handle lives as long as `run`.
        let (_throttle, control) =
            hyphae_node::control(Throttle { paused: false, max_utilization: args.max_utilization });
        let config = WorkerConfig {
            relay: args.relay,
            key,
            beneficiary,
            max_in_flight: args.max_in_flight,
            platform: Platform::Native,
            agent: format!("hyphae-node/{}", env!("CARGO_PKG_VERSION")),
            blob_cache: BlobCache::new(args.blob_cache),
            events: None,
            silence: Duration::from_secs(60),
            control,
            max_shards: args.max_shards,
            rtc: (!args.no_webrtc).then(|| RtcConfig {
                bind: args.webrtc_bind,
                connect_timeout: Duration::from_millis(args.webrtc_timeout_ms),
            }),
        };
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        runtime.block_on(async {
            let stop = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            hyphae_node::run(config, executor, stop).await
        })?;
        Ok(())
    }
}
