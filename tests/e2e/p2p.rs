//! Activations between workers: a shard's output stays with the workers that computed it and
//! goes straight to the next shard's worker, over WebRTC when the two can connect, relayed over
//! their sockets when not. The relay's counters tell which path the bytes took.

use std::time::Duration;

use hyphae_proto::api::{Stats, TransportStats};
use hyphae_tests::harness::{Client, Lan, NodeProcess, RelayProcess};

use crate::models::{Item, embed_and_check, reference};

fn short_items(n: usize) -> Vec<Item> {
    reference().items.into_iter().filter(|i| i.tokens <= 40).take(n).collect()
}

async fn transport(client: &Client) -> TransportStats {
    client.get::<Stats>("/v1/stats").await.transport
}

/// Each worker holds one shard (`--max-shards 1`) and the relay asks one worker per shard, so
/// every batch crosses from one worker to the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activations_cross_between_workers_in_separate_network_namespaces() {
    let lan = Lan::new(2);
    let relay = RelayProcess::start_with_model_on(lan.gateway().into(), 2, &["--model-redundancy", "1"]);
    let client = Client::new(&relay.url, &relay.api_key);
    let dir = tempfile::tempdir().unwrap();
    let _nodes: Vec<NodeProcess> = (0..2)
        .map(|h| {
            NodeProcess::start_in_namespace(
                &relay,
                dir.path(),
                &format!("host-{h}"),
                lan.namespace(h),
                &["--max-shards", "1"],
            )
        })
        .collect();
    client.wait_for_workers(2, Duration::from_secs(60)).await;

    let items = short_items(6);
    let reference = reference();
    for pair in items.chunks(3) {
        embed_and_check(&client, &pair.iter().collect::<Vec<_>>(), reference.dimensions).await;
    }

    let workers = client.workers().await.workers;
    assert!(workers.iter().all(|w| w.shards.len() == 1), "each worker ran one shard: {workers:?}");
    let t = transport(&client).await;
    assert_eq!(
        (t.activation_bytes, t.relayed_bytes, t.fetched_bytes),
        (0, 0, 0),
        "activations passed the relay: {t:?}"
    );
    assert!(t.direct_bytes > 0 && t.connections_up >= 1, "nothing moved directly: {t:?}");
    assert!(t.signals >= 2, "the connection was set up through the relay: {t:?}");
}

/// Two local workers holding one shard each, with `node_args`, and one request through them.
async fn embed_across_two_workers(relay_args: &[&str], node_args: &[&str]) -> TransportStats {
    let relay = RelayProcess::start_with_model(2, &[&["--model-redundancy", "1"], relay_args].concat());
    let client = Client::new(&relay.url, &relay.api_key);
    let dir = tempfile::tempdir().unwrap();
    let args = [&["--max-shards", "1"], node_args].concat();
    let _nodes: Vec<NodeProcess> =
        (0..2).map(|i| NodeProcess::start_with_args(&relay, dir.path(), &format!("node-{i}"), &args)).collect();
    client.wait_for_workers(2, Duration::from_secs(60)).await;
    let items = short_items(3);
    embed_and_check(&client, &items.iter().collect::<Vec<_>>(), reference().dimensions).await;
    transport(&client).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_direct_connections_activations_are_relayed_between_sockets() {
    let t = embed_across_two_workers(&[], &["--no-webrtc"]).await;
    assert!(t.relayed_bytes > 0, "{t:?}");
    assert_eq!((t.activation_bytes, t.direct_bytes, t.connections_up), (0, 0, 0), "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_activations_via_relay_the_relay_carries_them_inline() {
    let t = embed_across_two_workers(&["--activations-via-relay"], &[]).await;
    assert!(t.activation_bytes > 0, "{t:?}");
    assert_eq!((t.relayed_bytes, t.direct_bytes), (0, 0), "{t:?}");
}
