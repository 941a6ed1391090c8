//! `GET /v1/accounts/{address}`: what an address has earned, been granted and spent. Every address has an account; one
//! that never earned anything has a zero balance.

use axum::extract::{Path, State};
use hyphae_proto::Address;
use hyphae_proto::api::Account;

use super::error::ApiError;
use super::extract::parse_id;
use crate::app::AppState;

pub async fn account(
    State(app): State<AppState>,
    Path(address): Path<String>,
) -> Result<axum::Json<Account>, ApiError> {
    let address: Address = parse_id(&address)?;
    let record = app.store.account(address)?.unwrap_or_default();
    let ledger = app.store.ledger(address)?;
    Ok(axum::Json(Account {
        address,
        balance: record.balance,
        earned: record.earned,
        verified_tasks: record.verified_tasks,
        granted: ledger.granted,
        spent: ledger.spent,
    }))
}
