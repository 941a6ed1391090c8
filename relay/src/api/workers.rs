//! The grid's live state: `GET /v1/workers` and `GET /v1/stats`.

use axum::extract::State;
use hyphae_proto::api::{ModelStats, Stats, WorkerList};

use crate::app::AppState;

pub async fn list(State(app): State<AppState>) -> axum::Json<WorkerList> {
    axum::Json(WorkerList { workers: app.scheduler.workers() })
}

pub async fn stats(State(app): State<AppState>) -> axum::Json<Stats> {
    let mut stats = app.scheduler.stats();
    let (counters, uptime_s) = app.embeddings.counters();
    let len = Stats::HISTORY;
    let mut tokens_history = vec![0u32; len];
    for &(second, tokens) in &counters.tokens_by_second {
        if second < uptime_s && second + len as u64 >= uptime_s {
            tokens_history[len - (uptime_s - second) as usize] = tokens as u32;
        }
    }
    let window = 10.min(uptime_s.max(1)) as usize;
    let recent: u32 = tokens_history[len - window..].iter().sum();
    stats.models = ModelStats {
        served: app.embeddings.models().into_iter().map(|m| m.name.clone()).collect(),
        requests: counters.requests,
        inputs: counters.inputs,
        tokens: counters.tokens,
        tokens_per_s: f64::from(recent) / window as f64,
        tokens_history,
    };
    axum::Json(stats)
}
