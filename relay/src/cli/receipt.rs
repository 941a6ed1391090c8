//! `hyphae receipt verify FILE`: checks a receipt offline — the EIP-191 signature recovers to the
//! signer, and the signer is the relay the receipt names (or the one given with `--relay`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use hyphae_proto::{Address, SignedReceipt};

#[derive(Debug, clap::Subcommand)]
pub enum ReceiptCommand {
    /// Verify a receipt file (the JSON of GET /v1/receipts/{id}).
    Verify {
        file: PathBuf,
        /// Only accept receipts signed by this relay address.
        #[arg(long)]
        relay: Option<Address>,
    },
}

pub fn run(cmd: ReceiptCommand) -> anyhow::Result<ExitCode> {
    let ReceiptCommand::Verify { file, relay } = cmd;
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let receipt: SignedReceipt =
        serde_json::from_str(&text).with_context(|| format!("{} is not a receipt", file.display()))?;
    match receipt.verify(relay) {
        Ok(()) => {
            let p = &receipt.payload;
            println!(
                "valid: {} credits to {} for task {} (worker {}), signed by relay {}",
                p.credits, p.beneficiary, p.task, p.worker, receipt.signer
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("invalid: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
