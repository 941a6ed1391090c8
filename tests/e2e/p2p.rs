//! Activations between workers: a shard's output stays with the workers that computed it and
//! goes straight to the next shard's worker, over WebRTC when the two can connect, relayed over
//! their sockets when not. The relay's counters tell which path the bytes took.

use std::time::{Duration, Instant};

use hyphae_proto::api::{Stats, TransportStats};
use hyphae_tests::harness::browser::site_dir;
use hyphae_tests::harness::{Browser, Client, Lan, NodeProcess, RelayProcess};

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

/// Embeds through two workers holding one shard each, and checks from the relay's counters that
/// the activations went directly from one to the other.
async fn assert_activations_crossed_directly(client: &Client) {
    let items = short_items(3);
    embed_and_check(client, &items.iter().collect::<Vec<_>>(), reference().dimensions).await;
    let workers = client.workers().await.workers;
    assert!(workers.iter().all(|w| w.shards.len() == 1), "each worker ran one shard: {workers:?}");
    let t = transport(client).await;
    assert_eq!(
        (t.activation_bytes, t.relayed_bytes, t.fetched_bytes),
        (0, 0, 0),
        "activations passed the relay: {t:?}"
    );
    assert!(t.direct_bytes > 0 && t.connections_up >= 1, "nothing moved directly: {t:?}");
}

/// Each browser is its own Chromium process; the pages hold the peer connections and hand the
/// data channels to their Web Workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activations_cross_between_two_browsers_over_webrtc() {
    let site = site_dir().display().to_string();
    let relay = RelayProcess::start_with_model(2, &["--model-redundancy", "1", "--site", &site]);
    let client = Client::new(&relay.url, &relay.api_key);
    let mut browsers = Vec::new();
    for _ in 0..2 {
        let mut browser = Browser::launch().await;
        browser.join_grid(&relay.url, serde_json::json!({"maxShards": 1})).await;
        browsers.push(browser);
    }
    client.wait_for_workers(2, Duration::from_secs(60)).await;
    assert_activations_crossed_directly(&client).await;
    for browser in browsers {
        browser.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activations_cross_between_a_browser_and_a_native_worker_over_webrtc() {
    let site = site_dir().display().to_string();
    let relay = RelayProcess::start_with_model(2, &["--model-redundancy", "1", "--site", &site]);
    let client = Client::new(&relay.url, &relay.api_key);
    let mut browser = Browser::launch().await;
    browser.join_grid(&relay.url, serde_json::json!({"maxShards": 1})).await;
    let dir = tempfile::tempdir().unwrap();
    let _node = NodeProcess::start_with_args(&relay, dir.path(), "native", &["--max-shards", "1"]);
    client.wait_for_workers(2, Duration::from_secs(60)).await;
    assert_activations_crossed_directly(&client).await;
    browser.close().await;
}

/// The worker holding the first shard's output is killed while the second shard's worker fetches
/// it over the holder's uplink, slowed to 2 Mbit/s so the transfer lasts seconds: the fetch
/// fails, the relay runs the first shard again with its output inline, and the request succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_killed_mid_transfer_is_planned_around_and_the_request_succeeds() {
    let lan = Lan::new(2);
    let relay = RelayProcess::start_with_model_on(lan.gateway().into(), 2, &["--model-redundancy", "1"]);
    let client = Client::new(&relay.url, &relay.api_key);
    let dir = tempfile::tempdir().unwrap();
    let mut nodes: Vec<NodeProcess> = (0..2)
        .map(|h| {
            let ns = lan.namespace(h);
            NodeProcess::start_in_namespace(&relay, dir.path(), &format!("host-{h}"), ns, &["--max-shards", "1"])
        })
        .collect();
    client.wait_for_workers(2, Duration::from_secs(60)).await;
    let dimensions = reference().dimensions;

    // Each worker loads its shard, and the two connect.
    let warm = short_items(2);
    embed_and_check(&client, &warm.iter().collect::<Vec<_>>(), dimensions).await;

    // Both uplinks slowed, since which worker will hold the first shard's output is not known
    // before the request: the four longest sentences make about 1.5 MB of activations, some
    // six seconds at that rate.
    for h in 0..2 {
        lan.limit_upload(h, "2mbit");
    }
    let mut long = reference().items;
    long.sort_by_key(|item| std::cmp::Reverse(item.tokens));
    long.truncate(4);
    const FETCHING: &str = "fetching a task's input from the workers holding it";
    let fetches_before: Vec<usize> = nodes.iter().map(|n| n.log().matches(FETCHING).count()).collect();
    let kill = async {
        // The worker of the second shard says when it starts fetching the first shard's output;
        // the other one holds it.
        let started = Instant::now();
        let fetcher = loop {
            if let Some(h) = (0..2).find(|&h| nodes[h].log().matches(FETCHING).count() > fetches_before[h]) {
                break h;
            }
            assert!(started.elapsed() < Duration::from_secs(180), "no worker fetched the second shard's input");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let holder = 1 - fetcher;
        tokio::time::sleep(Duration::from_secs(1)).await;
        nodes[holder].kill();
        holder
    };
    let long: Vec<&Item> = long.iter().collect();
    let (holder, _) = tokio::join!(kill, embed_and_check(&client, &long, dimensions));

    let fetcher = 1 - holder;
    let log = nodes[fetcher].log();
    let fetch_at = log.match_indices(FETCHING).nth(fetches_before[fetcher]).map_or(0, |(at, _)| at);
    let since_the_fetch = &log[fetch_at..];
    assert!(
        since_the_fetch.contains("direct transfer failed"),
        "the fetcher's direct transfer did not fail mid-way; its log:\n{log}"
    );
}
