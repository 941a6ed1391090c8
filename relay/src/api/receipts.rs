//! `GET /v1/receipts?account=0x…` (paged, oldest first) and `GET /v1/receipts/{id}`. Receipts are
//! served exactly as signed, ready for `hyphae receipt verify` or any Ethereum library.

use axum::extract::{Path, State};
use hyphae_proto::api::ReceiptPage;
use hyphae_proto::{Address, ReceiptId, SignedReceipt};
use serde::Deserialize;

use super::error::ApiError;
use super::extract::{Query, parse_id};
use crate::app::AppState;

#[derive(Deserialize)]
pub struct ListQuery {
    account: String,
    after: Option<u64>,
    limit: Option<usize>,
}

pub async fn list(
    State(app): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<axum::Json<ReceiptPage>, ApiError> {
    let account: Address = parse_id(&q.account)?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let (receipts, next) = app.store.receipts_of(account, q.after, limit)?;
    Ok(axum::Json(ReceiptPage { receipts, next: next.map(|n| n.to_string()) }))
}

pub async fn one(State(app): State<AppState>, Path(id): Path<String>) -> Result<axum::Json<SignedReceipt>, ApiError> {
    let id: ReceiptId = parse_id(&id)?;
    let receipt = app.store.receipt(id)?.ok_or_else(|| ApiError::not_found(format!("no receipt {id}")))?;
    Ok(axum::Json(receipt))
}
