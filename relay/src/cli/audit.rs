//! `hyphae audit --data DIR`: re-verifies the whole ledger offline. Every receipt must carry a
//! valid signature by this relay's key, and every account's balance must equal what its receipts
//! pay plus what the operator granted minus what it spent. Exits 1 on any discrepancy.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use hyphae_proto::{Address, Credits};

use crate::signer::Signer;
use crate::store::{SledStore, Store};

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[arg(long = "data", default_value = "hyphae-data")]
    pub data_dir: PathBuf,
}

/// What one account's receipts add up to.
#[derive(Default)]
struct Earned {
    credits: Credits,
    receipts: u64,
}

pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let relay = Signer::load_or_create(&args.data_dir)?.address();
    let store = SledStore::open(&args.data_dir)?;
    let mut problems = Vec::new();
    let mut earned: BTreeMap<Address, Earned> = BTreeMap::new();
    let receipts = store.all_receipts()?;
    for receipt in &receipts {
        if let Err(e) = receipt.verify(Some(relay)) {
            problems.push(format!("receipt {}: {e}", receipt.id()));
            continue;
        }
        let e = earned.entry(receipt.payload.beneficiary).or_default();
        e.credits += receipt.payload.credits;
        e.receipts += 1;
    }
    let accounts = store.accounts()?;
    for (address, account) in &accounts {
        let ledger = store.ledger(*address)?;
        let paid = earned.remove(address).unwrap_or_default();
        if account.earned != paid.credits || account.verified_tasks != paid.receipts {
            problems.push(format!(
                "{address}: earned {} over {} tasks, but its receipts pay {} over {}",
                account.earned, account.verified_tasks, paid.credits, paid.receipts
            ));
        }
        let expected = (paid.credits + ledger.granted).checked_sub(ledger.spent);
        if expected != Some(account.balance) {
            problems.push(format!(
                "{address}: balance {} is not receipts {} + granted {} - spent {}",
                account.balance, paid.credits, ledger.granted, ledger.spent
            ));
        }
    }
    for (address, paid) in earned {
        problems.push(format!("{address}: {} receipts pay it {} but it has no account", paid.receipts, paid.credits));
    }
    println!("relay {relay}: {} receipts, {} accounts", receipts.len(), accounts.len());
    if problems.is_empty() {
        println!("ok: every receipt verifies and every balance equals receipts + grants - spending");
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &problems {
        println!("MISMATCH {problem}");
    }
    Ok(ExitCode::from(1))
}
