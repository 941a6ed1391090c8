//! `hyphae credits grant|show`: the operator's side of credits as a commons. Workers earn credits
//! with verified work; submitting jobs spends them; the operator grants starting balances.

use std::path::PathBuf;
use std::process::ExitCode;

use hyphae_proto::{Address, Credits};

use crate::store::{Batch, Op, SledStore, Store};

#[derive(Debug, clap::Subcommand)]
pub enum CreditsCommand {
    /// Add credits to an account's balance (needs the data directory; stop the relay first).
    Grant {
        #[arg(long = "data", default_value = "hyphae-data")]
        data_dir: PathBuf,
        #[arg(long)]
        account: Address,
        /// Credits, in decimal (e.g. 100 or 2.5).
        #[arg(long)]
        amount: Credits,
    },
    /// An account's balance, and what it earned, was granted and spent.
    Show {
        #[arg(long = "data", default_value = "hyphae-data")]
        data_dir: PathBuf,
        #[arg(long)]
        account: Address,
    },
}

pub async fn run(cmd: CreditsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CreditsCommand::Grant { data_dir, account, amount } => {
            let store = SledStore::open(&data_dir)?;
            let mut batch = Batch::new();
            batch.push(Op::Grant { account, amount });
            store.commit(batch).await?;
            let balance = store.account(account)?.unwrap_or_default().balance;
            println!("granted {amount} credits to {account}; its balance is {balance}");
        }
        CreditsCommand::Show { data_dir, account } => {
            let store = SledStore::open(&data_dir)?;
            let record = store.account(account)?.unwrap_or_default();
            let ledger = store.ledger(account)?;
            println!(
                "{account}: balance {}, earned {} ({} verified tasks), granted {}, spent {}",
                record.balance, record.earned, record.verified_tasks, ledger.granted, ledger.spent
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
