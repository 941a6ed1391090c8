//! `POST /v1/jobs`, `GET /v1/jobs/{id}`, `GET /v1/jobs/{id}/results`.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use hyphae_proto::api::{JobCreated, JobInfo, JobRequest, JobResults, TaskResult, TaskStatus};
use hyphae_proto::{JobId, TaskId};
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{ApiKey, Json, Query, parse_id};
use crate::app::AppState;
use crate::job;
use crate::store::records::{JobWork, Outcome};

pub async fn submit(
    State(app): State<AppState>,
    key: ApiKey,
    Json(request): Json<JobRequest>,
) -> Result<(StatusCode, axum::Json<JobCreated>), ApiError> {
    let JobRequest::Wgsl(request) = request;
    let mut blob_sizes = HashMap::new();
    for blob in job::referenced_blobs(&request) {
        if let Some(size) = app.blobs.size(&blob).await? {
            blob_sizes.insert(blob, size);
        }
    }
    let limits = app.config.job_limits.clone();
    // naga validation of a large shader is real CPU work: keep it off the async workers.
    let validated = tokio::task::spawn_blocking(move || job::validate(request, &limits, &blob_sizes))
        .await
        .map_err(ApiError::internal)??;
    let id = JobId(rand::random());
    let record = app.scheduler.submit(validated, id, key.name, Some(key.account)).await?;
    Ok((StatusCode::CREATED, axum::Json(JobCreated { id, status: record.status, tasks: record.task_count })))
}

pub async fn status(
    State(app): State<AppState>,
    key: ApiKey,
    Path(id): Path<String>,
) -> Result<axum::Json<JobInfo>, ApiError> {
    let id: JobId = parse_id(&id)?;
    Ok(axum::Json(readable(&app, &key, id)?))
}

/// A job's status and results belong to the account that paid for it: any other key is told
/// there is no such job. Its outputs are its submitter's data, and a worker sent a task again
/// (a canary, a check of a caught worker's results) must not find the accepted answer here.
/// Jobs stored before payers were stay readable by any key; the relay's own are nobody's.
fn readable(app: &AppState, key: &ApiKey, id: JobId) -> Result<JobInfo, ApiError> {
    let missing = || ApiError::not_found(format!("no job {id}"));
    let info = app.scheduler.job_info(id)?.ok_or_else(missing)?;
    match app.store.payer(id)? {
        Some(payer) if payer.account == key.account => Ok(info),
        None if info.kind == JobWork::KERNEL_KIND => Ok(info),
        _ => Err(missing()),
    }
}

#[derive(Deserialize)]
pub struct ResultsQuery {
    #[serde(default)]
    offset: u32,
    limit: Option<u32>,
}

pub async fn results(
    State(app): State<AppState>,
    key: ApiKey,
    Path(id): Path<String>,
    Query(q): Query<ResultsQuery>,
) -> Result<axum::Json<JobResults>, ApiError> {
    let id: JobId = parse_id(&id)?;
    let info = readable(&app, &key, id)?;
    let limit = q.limit.unwrap_or(1000).clamp(1, 10_000);
    let settled: HashMap<u32, _> = app.store.results(id, q.offset, limit)?.into_iter().collect();
    let end = q.offset.saturating_add(limit).min(info.tasks.total);
    let started = app.scheduler.started_tasks(id, q.offset..end);
    let tasks = (q.offset..end)
        .map(|index| {
            let task = TaskId { job: id, index };
            match settled.get(&index) {
                Some(r) => TaskResult {
                    index,
                    task,
                    status: match r.outcome {
                        Outcome::Completed => TaskStatus::Completed,
                        Outcome::Failed => TaskStatus::Failed,
                    },
                    outputs: r.outputs.clone(),
                    output_sha256: r.output_sha256,
                    verified_by: r.verified_by.clone(),
                    receipts: r.receipts.clone(),
                    error: r.error.clone(),
                },
                None => TaskResult {
                    index,
                    task,
                    status: if started.contains(&index) { TaskStatus::Running } else { TaskStatus::Queued },
                    outputs: Vec::new(),
                    output_sha256: None,
                    verified_by: Vec::new(),
                    receipts: Vec::new(),
                    error: None,
                },
            }
        })
        .collect();
    Ok(axum::Json(JobResults { id, status: info.status, total: info.tasks.total, offset: q.offset, tasks }))
}
