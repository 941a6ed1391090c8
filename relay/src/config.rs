//! The relay's resolved configuration: built once from the command line (`cli`), then passed
//! down. Nothing downstream reads the environment or the command line again.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::job::JobLimits;
use crate::models::embeddings::EmbeddingConfig;
use crate::scheduler::SchedulerConfig;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Largest `POST /v1/blobs` body.
    pub max_blob_bytes: u64,
    /// Largest JSON request body (jobs with inline data).
    pub max_request_bytes: u64,
    /// Largest worker frame (a result carries every output buffer of a task).
    pub max_frame_bytes: usize,
    pub job_limits: JobLimits,
    pub scheduler: SchedulerConfig,
    /// How often the relay pings each worker; three silent periods drop the worker.
    pub heartbeat: Duration,
    /// Static site served at `/` (the donate page and dashboard), when present.
    pub site_dir: Option<PathBuf>,
    pub embeddings: EmbeddingConfig,
    /// Reverse proxies whose `X-Forwarded-For` is believed: a worker connecting through one is
    /// known by the address it forwarded for (replicas go to workers of distinct addresses).
    pub trusted_proxies: Vec<IpAddr>,
}

impl Config {
    /// Defaults for a relay on `listen` keeping its state in `data_dir`.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Config {
        let job_limits = JobLimits::default();
        Config {
            listen,
            data_dir,
            max_blob_bytes: 256 << 20,
            max_request_bytes: 64 << 20,
            max_frame_bytes: (job_limits.max_binding_bytes as usize) * 4 + (1 << 20),
            job_limits,
            scheduler: SchedulerConfig::default(),
            heartbeat: Duration::from_secs(15),
            site_dir: None,
            embeddings: EmbeddingConfig::default(),
            trusted_proxies: Vec::new(),
        }
    }
}
