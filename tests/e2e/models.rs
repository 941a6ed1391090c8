//! Model shards on the grid: OpenAI-compatible `POST /v1/embeddings` answered by
//! all-MiniLM-L6-v2 split into pipeline shards run by native and browser workers, each shard's
//! activations verified before they feed the next, checked against sentence-transformers'
//! own output (tests/data/minilm-reference.json, made by tests/models/minilm_reference.py).

use std::time::Duration;

use hyphae_node::Event;
use hyphae_node::executor::GpuExecutor;
use hyphae_proto::openai::{EmbeddingVector, EmbeddingsResponse, ErrorBody, ModelList};
use hyphae_tests::harness::browser::site_dir;
use hyphae_tests::harness::{Browser, Client, InProcessWorker, Lying, NodeProcess, RelayProcess};
use serde::Deserialize;

const MODEL: &str = "all-MiniLM-L6-v2";

#[derive(Deserialize)]
pub(crate) struct Reference {
    pub dimensions: usize,
    pub items: Vec<Item>,
}

#[derive(Deserialize, Clone)]
pub(crate) struct Item {
    pub text: String,
    pub tokens: u32,
    pub embedding: Vec<f32>,
}

pub(crate) fn reference() -> Reference {
    let path = hyphae_tests::harness::crate_dir().join("data").join("minilm-reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("the reference file")).expect("reference JSON")
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

async fn embed(client: &Client, body: serde_json::Value) -> reqwest::Response {
    client
        .http
        .post(format!("{}/v1/embeddings", client.url))
        .bearer_auth(&client.api_key)
        .json(&body)
        .timeout(Duration::from_secs(600))
        .send()
        .await
        .expect("POST /v1/embeddings")
}

/// Posts `items` and checks every vector against the reference; returns the response.
pub(crate) async fn embed_and_check(client: &Client, items: &[&Item], dimensions: usize) -> EmbeddingsResponse {
    let texts: Vec<&str> = items.iter().map(|i| i.text.as_str()).collect();
    let response = embed(client, serde_json::json!({"model": MODEL, "input": texts})).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    let body: EmbeddingsResponse = response.json().await.unwrap();
    assert_eq!((body.object.as_str(), body.model.as_str()), ("list", MODEL));
    assert_eq!(body.data.len(), items.len());
    for (i, (data, item)) in body.data.iter().zip(items).enumerate() {
        assert_eq!(data.index as usize, i);
        let EmbeddingVector::Float(vector) = &data.embedding else { panic!("float vectors were asked for") };
        assert_eq!(vector.len(), dimensions);
        let c = cosine(vector, &item.embedding);
        assert!(c >= 0.9999, "cosine {c:.6} for {:?}", item.text);
    }
    let tokens: u32 = items.iter().map(|i| i.tokens).sum();
    assert_eq!((body.usage.prompt_tokens, body.usage.total_tokens), (tokens, tokens));
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embeddings_of_varied_sentences_match_sentence_transformers() {
    let site = site_dir().display().to_string();
    let relay = RelayProcess::start_with_model(3, &["--site", &site]);
    let client = Client::new(&relay.url, &relay.api_key);
    let dir = tempfile::tempdir().unwrap();
    let _nodes: Vec<NodeProcess> =
        (0..3).map(|i| NodeProcess::start(&relay, dir.path(), &format!("worker-{i}"), None)).collect();
    let mut browser = Browser::launch().await;
    browser.goto(&relay.url).await;
    browser.wait_for("window.hyphaeGrid !== undefined", Duration::from_secs(20)).await;
    browser.click("#contribute").await;
    browser.wait_for("document.querySelector('#consent-yes') !== null", Duration::from_secs(10)).await;
    browser.click("#consent-yes").await;
    browser.wait_for("window.hyphaeGrid.state === 'running'", Duration::from_secs(60)).await;
    client.wait_for_workers(4, Duration::from_secs(60)).await;

    let models: ModelList = client.get("/v1/models").await;
    assert_eq!(models.data.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), vec![MODEL]);

    // Two requests at once: the relay batches them into shared shard tasks.
    let reference = reference();
    let items: Vec<&Item> = reference.items.iter().collect();
    let (first, second) = items.split_at(items.len() / 2);
    let (a, b) = tokio::join!(
        embed_and_check(&client, first, reference.dimensions),
        embed_and_check(&client, second, reference.dimensions)
    );
    assert_eq!(a.data.len() + b.data.len(), reference.items.len());

    // base64, as OpenAI's clients ask by default.
    let response = embed(
        &client,
        serde_json::json!({"model": MODEL, "input": "A man is eating food.", "encoding_format": "base64"}),
    )
    .await;
    let body: EmbeddingsResponse = response.json().await.unwrap();
    let EmbeddingVector::Base64(encoded) = &body.data[0].embedding else { panic!("base64 was asked for") };
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
    let vector: Vec<f32> = hyphae_proto::tensor::f32s(&bytes).collect();
    assert!(cosine(&vector, &reference.items[1].embedding) >= 0.9999);

    // The shards were spread over the grid, and the work shows on the dashboard's feed.
    let workers = client.workers().await.workers;
    let holding: Vec<_> = workers.iter().filter(|w| !w.shards.is_empty()).collect();
    assert!(holding.len() >= 2, "shards ran on {} workers: {workers:?}", holding.len());
    let mut shards: Vec<&String> = holding.iter().flat_map(|w| &w.shards).collect();
    shards.sort();
    shards.dedup();
    assert_eq!(shards.len(), 3, "{shards:?}");
    let stats: hyphae_proto::api::Stats = client.get("/v1/stats").await;
    assert_eq!(stats.models.served, vec![MODEL.to_owned()]);
    assert!(stats.models.tokens > 0 && stats.models.requests == 3, "{:?}", stats.models);
    browser.screenshot("donate-model-work").await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_worker_on_a_shard_is_caught_and_the_request_still_succeeds() {
    let relay = RelayProcess::start_with_model(2, &[]);
    let client = Client::new(&relay.url, &relay.api_key);
    let dir = tempfile::tempdir().unwrap();
    // With only the liar and one honest worker on the grid, redundancy 2 must give the liar a
    // replica of the first shard; the disagreement then waits for a third opinion, which arrives
    // when the second honest worker joins.
    let honest = NodeProcess::start(&relay, dir.path(), "honest-0", None);
    let mut liar = InProcessWorker::start(&relay.url, Lying(GpuExecutor::new().unwrap()));
    client.wait_for_workers(2, Duration::from_secs(60)).await;

    let reference = reference();
    let items: Vec<Item> = reference.items.iter().filter(|i| i.tokens <= 40).take(6).cloned().collect();
    let request = {
        let client = client.clone();
        tokio::spawn(
            async move { embed_and_check(&client, &items.iter().collect::<Vec<_>>(), reference.dimensions).await },
        )
    };
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(event) = liar.events.recv().await {
            if matches!(event, Event::TaskStarted { .. }) {
                return;
            }
        }
        panic!("the liar disconnected");
    })
    .await
    .expect("the liar is given a shard");
    let _nodes = [honest, NodeProcess::start(&relay, dir.path(), "honest-1", None)];
    request.await.expect("the request succeeds");

    let workers = client.workers().await.workers;
    let liar_info = workers.iter().find(|w| w.address == liar.address).expect("the liar is connected");
    assert!(liar_info.rejected > 0, "the liar was never given a shard: {liar_info:?}");
    assert_eq!(liar_info.accepted, 0);
    assert!(client.receipts(liar.beneficiary).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_spot_checks_one_worker_per_shard_is_enough_and_a_liar_is_caught() {
    let relay = RelayProcess::start_with_model(2, &["--spot-check-sequences", "2"]);
    let client = Client::new(&relay.url, &relay.api_key);
    let dir = tempfile::tempdir().unwrap();
    // The liar is alone on the grid when the request comes, so it runs the first shard on its
    // own word; only the relay's recomputation of two of the batch's sequences stands between
    // its activations and the next shard.
    let mut liar = InProcessWorker::start(&relay.url, Lying(GpuExecutor::new().unwrap()));
    client.wait_for_workers(1, Duration::from_secs(60)).await;

    let reference = reference();
    let items: Vec<Item> = reference.items.iter().filter(|i| i.tokens <= 24).take(4).cloned().collect();
    let request = {
        let client = client.clone();
        tokio::spawn(
            async move { embed_and_check(&client, &items.iter().collect::<Vec<_>>(), reference.dimensions).await },
        )
    };
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(event) = liar.events.recv().await {
            if matches!(event, Event::TaskStarted { .. }) {
                return;
            }
        }
        panic!("the liar disconnected");
    })
    .await
    .expect("the liar is given a shard");
    let _honest = NodeProcess::start(&relay, dir.path(), "honest", None);
    request.await.expect("the request succeeds with sentence-transformers' embeddings");

    let workers = client.workers().await.workers;
    let liar_info = workers.iter().find(|w| w.address == liar.address).expect("the liar is connected");
    assert!(liar_info.rejected > 0, "the liar's shard result was not rejected: {liar_info:?}");
    assert_eq!(liar_info.accepted, 0);
    assert!(client.receipts(liar.beneficiary).await.is_empty());
    // Every shard was verified on one result: one receipt per verified task.
    let stats: hyphae_proto::api::Stats = client.get("/v1/stats").await;
    assert!(stats.tasks.completed >= 2, "{:?}", stats.tasks);
    assert_eq!(stats.results_accepted, u64::from(stats.tasks.completed), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_embedding_requests_get_openai_errors() {
    let relay = RelayProcess::start_with_model(3, &[]);
    let client = Client::new(&relay.url, &relay.api_key);
    let cases = [
        (serde_json::json!({"model": "gpt-nope", "input": "hi"}), 404, Some("model_not_found"), Some("model")),
        (serde_json::json!({"model": MODEL, "input": vec!["x"; 257]}), 400, None, Some("input")),
        (serde_json::json!({"model": MODEL, "input": "word ".repeat(9000)}), 400, None, Some("input")),
        (serde_json::json!({"model": MODEL, "input": [1, 2, 3]}), 400, None, Some("input")),
        (serde_json::json!({"model": MODEL, "input": []}), 400, None, Some("input")),
        (serde_json::json!({"model": MODEL, "input": "hi", "dimensions": 100}), 400, None, Some("dimensions")),
        (serde_json::json!({"input": "no model"}), 400, None, None),
    ];
    for (body, status, code, param) in cases {
        let response = embed(&client, body.clone()).await;
        assert_eq!(response.status().as_u16(), status, "{body}");
        let error: ErrorBody = response.json().await.unwrap_or_else(|e| panic!("{body}: not OpenAI's shape: {e}"));
        assert_eq!(error.error.code.as_deref(), code, "{body}");
        assert_eq!(error.error.param.as_deref(), param, "{body}");
        assert!(!error.error.message.is_empty());
        assert_eq!(error.error.kind, "invalid_request_error");
    }
    let unauthorized = client
        .http
        .post(format!("{}/v1/embeddings", relay.url))
        .json(&serde_json::json!({"model": MODEL, "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    let error: ErrorBody = unauthorized.json().await.unwrap();
    assert_eq!(error.error.code.as_deref(), Some("invalid_api_key"));
}
