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
    let audit = audit(&store, relay)?;
    println!("relay {}: {} receipts, {} accounts", audit.relay, audit.receipts, audit.accounts);
    if audit.problems.is_empty() {
        println!("ok: every receipt verifies and every balance equals receipts + grants - spending");
        return Ok(ExitCode::SUCCESS);
    }
    for problem in &audit.problems {
        println!("MISMATCH {problem}");
    }
    Ok(ExitCode::from(1))
}

struct Audit {
    relay: Address,
    receipts: usize,
    accounts: usize,
    problems: Vec<String>,
}

fn audit(store: &dyn Store, relay: Address) -> anyhow::Result<Audit> {
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
    Ok(Audit { relay, receipts: receipts.len(), accounts: accounts.len(), problems })
}

#[cfg(test)]
mod tests {
    use hyphae_proto::{JobId, ReceiptPayload, SecretKey, Sha256, TaskId};

    use super::*;
    use crate::store::{Batch, Op};

    fn receipt(signer: &Signer, beneficiary: Address, index: u32) -> hyphae_proto::SignedReceipt {
        signer.sign(ReceiptPayload {
            beneficiary,
            credits: Credits::whole(2),
            issued_at: 0,
            job: JobId([1; 12]),
            output_sha256: Sha256::of(b"out"),
            relay: signer.address(),
            task: TaskId { job: JobId([1; 12]), index },
            v: ReceiptPayload::VERSION,
            worker: beneficiary,
        })
    }

    #[tokio::test]
    async fn balances_that_add_up_pass_and_credits_without_receipts_or_forged_receipts_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::load_or_create(dir.path()).unwrap();
        let worker = SecretKey::random(&mut rand::thread_rng()).address();
        let store = SledStore::open(dir.path()).unwrap();
        {
            let mut batch = Batch::new();
            let receipt = receipt(&signer, worker, 0);
            batch.push(Op::PutReceipt(Box::new(hyphae_proto::Issued { id: receipt.id(), receipt })));
            batch.push(Op::Credit { account: worker, amount: Credits::whole(2), tasks: 1 });
            batch.push(Op::Grant { account: worker, amount: Credits::whole(5) });
            batch.push(Op::Spend { account: worker, amount: Credits::whole(4) });
            store.commit(batch).await.unwrap();
        }
        assert_eq!(audit(&store, signer.address()).unwrap().problems, Vec::<String>::new());
        {
            // Credits nobody signed for, and a receipt from another relay.
            let mut batch = Batch::new();
            batch.push(Op::Credit { account: worker, amount: Credits::whole(1), tasks: 1 });
            let impostor = Signer::new(SecretKey::random(&mut rand::thread_rng()));
            let receipt = receipt(&impostor, worker, 1);
            batch.push(Op::PutReceipt(Box::new(hyphae_proto::Issued { id: receipt.id(), receipt })));
            store.commit(batch).await.unwrap();
        }
        let problems = audit(&store, signer.address()).unwrap().problems;
        assert_eq!(problems.len(), 3, "{problems:#?}");
    }
}
