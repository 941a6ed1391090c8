//! A typed client of the relay's HTTP API, as an outside developer would write one with the
//! proto crate's bodies.

use std::time::{Duration, Instant};

use hyphae_proto::api::{Account, ErrorBody, JobCreated, JobInfo, JobRequest, JobResults, ReceiptPage, WorkerList};
use hyphae_proto::{Address, JobId, SignedReceipt};

#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub url: String,
    pub api_key: String,
}

impl Client {
    pub fn new(url: &str, api_key: &str) -> Client {
        Client { http: reqwest::Client::new(), url: url.to_owned(), api_key: api_key.to_owned() }
    }

    pub async fn submit(&self, job: &JobRequest) -> JobCreated {
        let response =
            self.http.post(format!("{}/v1/jobs", self.url)).bearer_auth(&self.api_key).json(job).send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 201, "submitting a job: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Sends a raw request body to `POST /v1/jobs` and returns the status and error body.
    pub async fn submit_raw(&self, body: &str, api_key: Option<&str>) -> (u16, Option<ErrorBody>) {
        let mut request = self
            .http
            .post(format!("{}/v1/jobs", self.url))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(key) = api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.ok())
    }

    /// `GET` of `path` with the client's API key (which the public endpoints do not need).
    pub async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let response = self.http.get(format!("{}{path}", self.url)).bearer_auth(&self.api_key).send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(status.is_success(), "GET {path}: {status}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
    }

    /// The Prometheus exposition of `GET /metrics`.
    pub async fn metrics(&self) -> String {
        let response = self.http.get(format!("{}/metrics", self.url)).send().await.unwrap();
        assert!(response.status().is_success(), "GET /metrics: {}", response.status());
        response.text().await.unwrap()
    }

    pub async fn job(&self, id: JobId) -> JobInfo {
        self.get(&format!("/v1/jobs/{id}")).await
    }

    /// Polls until the job finishes; panics after `timeout`.
    pub async fn wait(&self, id: JobId, timeout: Duration) -> JobInfo {
        let deadline = Instant::now() + timeout;
        loop {
            let info = self.job(id).await;
            if info.status.is_finished() {
                return info;
            }
            assert!(Instant::now() < deadline, "job {id} did not finish within {timeout:?}: {info:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for the job to finish, asserts it completed, and returns its results.
    pub async fn completed_results(&self, id: JobId, timeout: Duration) -> JobResults {
        let info = self.wait(id, timeout).await;
        assert_eq!(info.status, hyphae_proto::api::JobStatus::Completed, "{info:?}");
        self.results(id).await
    }

    pub async fn results(&self, id: JobId) -> JobResults {
        self.get(&format!("/v1/jobs/{id}/results?limit=10000")).await
    }

    pub async fn account(&self, address: Address) -> Account {
        self.get(&format!("/v1/accounts/{address}")).await
    }

    /// Every receipt earned by `account`, following pages.
    pub async fn receipts(&self, account: Address) -> Vec<SignedReceipt> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let path = match &after {
                Some(a) => format!("/v1/receipts?account={account}&after={a}&limit=100"),
                None => format!("/v1/receipts?account={account}&limit=100"),
            };
            let page: ReceiptPage = self.get(&path).await;
            all.extend(page.receipts);
            match page.next {
                Some(next) => after = Some(next),
                None => return all,
            }
        }
    }

    pub async fn workers(&self) -> WorkerList {
        self.get("/v1/workers").await
    }

    /// Waits until at least `n` workers are connected.
    pub async fn wait_for_workers(&self, n: usize, timeout: Duration) -> WorkerList {
        let deadline = Instant::now() + timeout;
        loop {
            let list = self.workers().await;
            if list.workers.len() >= n {
                return list;
            }
            assert!(Instant::now() < deadline, "only {} of {n} workers connected", list.workers.len());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
