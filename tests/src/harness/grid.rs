//! The usual test setup in one call: a relay process, native worker processes, all connected, and
//! a client.

use std::time::Duration;

use hyphae_proto::Address;

use super::{Client, NodeProcess, RelayProcess};

pub struct Grid {
    pub relay: RelayProcess,
    pub nodes: Vec<NodeProcess>,
    pub client: Client,
    /// Worker key files and logs.
    pub dir: tempfile::TempDir,
}

impl Grid {
    /// A relay started with `args` and `n` workers that earn for themselves.
    pub async fn start(args: &[&str], n: usize) -> Grid {
        Grid::start_paying(args, &vec![None; n]).await
    }

    /// A relay started with `args` and one worker per entry, paying that beneficiary (or itself).
    pub async fn start_paying(args: &[&str], beneficiaries: &[Option<Address>]) -> Grid {
        let relay = RelayProcess::start(args);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let nodes: Vec<NodeProcess> = beneficiaries
            .iter()
            .enumerate()
            .map(|(i, b)| NodeProcess::start(&relay, dir.path(), &format!("worker-{i}"), *b))
            .collect();
        let client = Client::new(&relay.url, &relay.api_key);
        client.wait_for_workers(nodes.len(), Duration::from_secs(60)).await;
        Grid { relay, nodes, client, dir }
    }
}
