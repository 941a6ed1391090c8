//! Bad input gets a clear, typed error and the relay keeps serving: malformed requests, invalid
//! WGSL, oversized uploads, missing keys, unknown ids, garbage on the worker socket.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use hyphae_node::executor::GpuExecutor;
use hyphae_proto::api::{ErrorBody, ErrorCode};
use hyphae_proto::frame::{AdapterInfo, Hello, Platform, ToRelay, ToWorker};
use hyphae_proto::{PROTOCOL_VERSION, SecretKey};
use hyphae_tests::harness::{Client, InProcessWorker, RelayProcess, collatz_job};
use tokio_tungstenite::tungstenite::Message;

const DOUBLE: &str = "@group(0) @binding(0) var<storage, read> a: array<u32>;
@group(0) @binding(1) var<storage, read_write> b: array<u32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < arrayLength(&a)) { b[id.x] = a[id.x] * 2u; }
}";

fn job_json(shader: &str, output: bool) -> String {
    serde_json::json!({
        "kind": "wgsl", "shader": shader, "workgroups": [1],
        "bindings": [{"binding": 0, "dtype": "u32", "data": "AQAAAAIAAAA="},
                     {"binding": 1, "dtype": "u32", "output": output, "size": 8}]
    })
    .to_string()
}

fn code(body: Option<ErrorBody>) -> ErrorCode {
    body.expect("an error body in the API's shape").error.code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_typed_errors_with_the_right_status() {
    let relay = RelayProcess::start(&["--max-blob-bytes", "1024", "--max-request-bytes", "65536"]);
    let client = Client::new(&relay.url, &relay.api_key);
    let key = Some(relay.api_key.as_str());

    let bad_wgsl = "@group(0) @binding(0) var<storage, read> a: array<u32>;\nfn main() { let x = ; }";
    let (status, body) = client.submit_raw(&job_json(bad_wgsl, true), key).await;
    let body = body.expect("error body");
    assert_eq!((status, body.error.code), (400, ErrorCode::InvalidWgsl));
    assert!(body.error.message.contains("line 2, column"), "{}", body.error.message);

    let (status, body) = client.submit_raw(&job_json(DOUBLE, false), key).await;
    assert_eq!((status, code(body)), (400, ErrorCode::BindingMismatch));

    let (status, body) = client.submit_raw("{\"kind\":\"wgsl\",", key).await;
    assert_eq!((status, code(body)), (400, ErrorCode::InvalidJson));

    let (status, body) = client.submit_raw(&job_json(DOUBLE, true), None).await;
    assert_eq!((status, code(body)), (401, ErrorCode::Unauthorized));
    let (status, body) = client.submit_raw(&job_json(DOUBLE, true), Some("hyk_not_a_key")).await;
    assert_eq!((status, code(body)), (401, ErrorCode::Unauthorized));

    let huge = job_json(&format!("{DOUBLE}\n//{}", "x".repeat(70_000)), true);
    let (status, body) = client.submit_raw(&huge, key).await;
    assert_eq!((status, code(body)), (413, ErrorCode::PayloadTooLarge));

    let upload = |bytes: Vec<u8>| {
        client.http.post(format!("{}/v1/blobs", relay.url)).bearer_auth(&relay.api_key).body(bytes).send()
    };
    let response = upload(vec![7; 2048]).await.unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(code(response.json().await.ok()), ErrorCode::PayloadTooLarge);
    let response = upload(vec![7; 1024]).await.unwrap();
    assert_eq!(response.status(), 201);

    for (path, status, expected) in [
        ("/v1/jobs/job_000000000000000000000000", 404, ErrorCode::NotFound),
        ("/v1/jobs/not-a-job", 400, ErrorCode::InvalidRequest),
        ("/v1/receipts/rcpt_00000000000000000000000000000000", 404, ErrorCode::NotFound),
        ("/v1/accounts/0xnope", 400, ErrorCode::InvalidRequest),
        ("/v1/no-such-thing", 404, ErrorCode::NotFound),
    ] {
        let response =
            client.http.get(format!("{}{path}", relay.url)).bearer_auth(&relay.api_key).send().await.unwrap();
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(code(response.json().await.ok()), expected, "{path}");
    }

    // After all that, the relay still accepts a good job.
    let (status, _) = client.submit_raw(&job_json(DOUBLE, true), key).await;
    assert_eq!(status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_worker_socket_closes_that_connection_only() {
    let relay = RelayProcess::start(&[]);
    let client = Client::new(&relay.url, &relay.api_key);
    let honest = InProcessWorker::start(&relay.url, GpuExecutor::new().unwrap());
    client.wait_for_workers(1, Duration::from_secs(60)).await;
    let url = format!("ws://{}/v1/workers/ws", relay.addr);

    // Garbage instead of a hello: refused and closed.
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let challenge = socket.next().await.unwrap().unwrap();
    assert!(matches!(ToWorker::decode(&challenge.into_data()), Ok(ToWorker::Challenge { .. })));
    socket.send(Message::Binary(vec![0xff, 0x00, 0x13, 0x37].into())).await.unwrap();
    assert!(closes(&mut socket).await, "the relay kept a connection that sent garbage");

    // A hello signed by someone else: refused.
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let Ok(ToWorker::Challenge { relay: relay_address, nonce, .. }) =
        ToWorker::decode(&socket.next().await.unwrap().unwrap().into_data())
    else {
        panic!("no challenge")
    };
    let (me, impostor) = (SecretKey::random(&mut rand::thread_rng()), SecretKey::random(&mut rand::thread_rng()));
    let message = hyphae_proto::frame::login_message(&relay_address, &nonce);
    let hello = Hello {
        protocol: PROTOCOL_VERSION,
        worker: me.address(),
        signature: impostor.sign_message(message.as_bytes()),
        beneficiary: me.address(),
        platform: Platform::Native,
        adapter: AdapterInfo::default(),
        agent: "impostor".into(),
        max_in_flight: 1,
        max_shards: 0,
    };
    socket.send(Message::Binary(ToRelay::Hello(Box::new(hello)).encode().into())).await.unwrap();
    let refused = socket.next().await.unwrap().unwrap();
    assert!(matches!(ToWorker::decode(&refused.into_data()), Ok(ToWorker::Refused { .. })));
    assert!(closes(&mut socket).await);

    // A worker that logs in properly and then sends garbage is dropped too.
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let Ok(ToWorker::Challenge { relay: relay_address, nonce, .. }) =
        ToWorker::decode(&socket.next().await.unwrap().unwrap().into_data())
    else {
        panic!("no challenge")
    };
    let message = hyphae_proto::frame::login_message(&relay_address, &nonce);
    let hello = Hello {
        protocol: PROTOCOL_VERSION,
        worker: me.address(),
        signature: me.sign_message(message.as_bytes()),
        beneficiary: me.address(),
        platform: Platform::Native,
        adapter: AdapterInfo::default(),
        agent: "garbage".into(),
        max_in_flight: 1,
        max_shards: 0,
    };
    socket.send(Message::Binary(ToRelay::Hello(Box::new(hello)).encode().into())).await.unwrap();
    let welcome = socket.next().await.unwrap().unwrap();
    assert!(matches!(ToWorker::decode(&welcome.into_data()), Ok(ToWorker::Welcome { .. })));
    assert_eq!(client.workers().await.workers.len(), 2);
    socket.send(Message::Binary(vec![0xde, 0xad, 0xbe, 0xef, 0x01].into())).await.unwrap();
    assert!(closes(&mut socket).await, "the relay kept a logged-in connection that sent garbage");

    // The honest worker keeps working.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let workers = client.workers().await.workers;
    assert_eq!(workers.len(), 1, "{workers:?}");
    assert_eq!(workers[0].address, honest.address);
    let (job, inputs) = collatz_job(4, 64, 1, 9);
    let created = client.submit(&job).await;
    crate::support::assert_collatz_results(
        &client.completed_results(created.id, Duration::from_secs(60)).await,
        &inputs,
    );
}

/// True when the server closes the socket within a few seconds.
async fn closes<S>(socket: &mut tokio_tungstenite::WebSocketStream<S>) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let wait = async {
        while let Some(message) = socket.next().await {
            match message {
                Ok(Message::Close(_)) | Err(_) => return true,
                Ok(_) => continue,
            }
        }
        true
    };
    tokio::time::timeout(Duration::from_secs(5), wait).await.unwrap_or(false)
}

/// A job's status and results are read with a key of the account that paid for it; another
/// account's key is told there is no such job (a worker sent a task again must not find its
/// accepted answer there), and no key at all is asked for one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_read_only_with_a_key_of_the_account_that_paid_for_it() {
    let mut relay = RelayProcess::start(&[]);
    let owner = Client::new(&relay.url, &relay.api_key);
    let (job, _) = collatz_job(2, 10, 2, 7);
    let created = owner.submit(&job).await;
    assert_eq!(owner.job(created.id).await.tasks.total, 2);
    assert_eq!(owner.results(created.id).await.tasks.len(), 2);

    // Keys are made while the relay is stopped (it holds its data directory).
    relay.kill();
    let output = std::process::Command::new(hyphae_tests::harness::bin("hyphae"))
        .args(["keys", "create", "--name", "other", "--data"])
        .arg(&relay.data)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let other_key = String::from_utf8_lossy(&output.stdout).lines().last().unwrap().trim().to_owned();
    relay.restart();

    let http = reqwest::Client::new();
    for path in [format!("/v1/jobs/{}", created.id), format!("/v1/jobs/{}/results", created.id)] {
        let url = format!("{}{path}", relay.url);
        let as_other = http.get(&url).bearer_auth(&other_key).send().await.unwrap();
        assert_eq!(as_other.status(), 404, "{path} with another account's key");
        assert_eq!(code(as_other.json().await.ok()), ErrorCode::NotFound);
        let anonymous = http.get(&url).send().await.unwrap();
        assert_eq!(anonymous.status(), 401, "{path} without a key");
        let as_owner = http.get(&url).bearer_auth(&relay.api_key).send().await.unwrap();
        assert_eq!(as_owner.status(), 200, "{path} with the payer's key");
    }
}
