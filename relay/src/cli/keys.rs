//! `hyphae keys create|list`: API keys for `POST /v1/jobs`. A key is shown once, when created;
//! the store keeps only its SHA-256.

use std::path::PathBuf;
use std::process::ExitCode;

use hyphae_proto::{Address, Credits, Sha256};

use crate::store::records::ApiKeyRecord;
use crate::store::{Batch, Op, SledStore, Store, key_account};

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Create an API key; prints it as the last line of standard output.
    Create {
        #[arg(long = "data", default_value = "hyphae-data")]
        data_dir: PathBuf,
        /// Who the key is for (shown in logs and on jobs).
        #[arg(long)]
        name: String,
        /// The account the key's jobs are paid from: your beneficiary address, to spend what
        /// your workers earn. Without it, an account of the key's own.
        #[arg(long)]
        account: Option<Address>,
        /// Credits to grant that account at once.
        #[arg(long)]
        grant: Option<Credits>,
    },
    /// List the names of existing keys.
    List {
        #[arg(long = "data", default_value = "hyphae-data")]
        data_dir: PathBuf,
    },
}

pub async fn run(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCommand::Create { data_dir, name, account, grant } => {
            std::fs::create_dir_all(&data_dir)?;
            let store = SledStore::open(&data_dir)?;
            let key = format!("hyk_{}", hex::encode(rand::random::<[u8; 32]>()));
            let hash = Sha256::of(key.as_bytes());
            let account = account.unwrap_or_else(|| key_account(&hash));
            let mut batch = Batch::new();
            batch.push(Op::PutApiKey {
                hash,
                record: ApiKeyRecord { name: name.clone(), created_at: crate::unix_ms() },
                account,
            });
            if let Some(amount) = grant {
                batch.push(Op::Grant { account, amount });
            }
            store.commit(batch).await?;
            let balance = store.account(account)?.unwrap_or_default().balance;
            eprintln!("its jobs are paid from account {account} (balance {balance})");
            eprintln!("created API key for {name:?}; it is shown only now:");
            println!("{key}");
        }
        KeysCommand::List { data_dir } => {
            let store = SledStore::open(&data_dir)?;
            for key in store.api_keys()? {
                println!("{}\tcreated {}", key.name, key.created_at);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
