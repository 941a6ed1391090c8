//! The embeddings service behind `POST /v1/embeddings`: tokenizes inputs on the relay, gathers
//! concurrent requests into batches, and runs each batch through the model's shards as a chain of
//! ordinary jobs — one single-task job per shard, each verified (redundancy, tolerance) like any
//! task before its activations feed the next shard. Workers are paid per verified shard: one
//! credit per GFLOP of the shard's work.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyphae_proto::api::{JobStatus, Tolerance};
use hyphae_proto::frame::{PeerSource, Source};
use hyphae_proto::tensor::{Bytes, f32s, to_bytes};
use hyphae_proto::{Address, Credits, JobId, TaskId};
use hyphae_shaders::model::{BertConfig, ShardPlan, shard_flops};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::ModelError;
use super::tokenizer::TextTokenizer;
use crate::job::{SelfCheck, ValidatedJob};
use crate::scheduler::Scheduler;
use crate::store::records::{JobWork, ModelRecord, TaskBody, TaskRecord};
use crate::store::{Batch, Op, Store, StoreError};

#[derive(Debug, Clone)]
pub struct EmbeddingConfig {
    /// Most inputs in one request.
    pub max_inputs: usize,
    /// Longest input accepted, in tokens before truncation to the model's `max_seq_length`.
    pub max_input_tokens: usize,
    /// Most sequences in one batch.
    pub max_batch: usize,
    /// Most tokens in one batch, padding included: long sequences go in smaller batches.
    pub max_batch_tokens: usize,
    /// How long the first request of a batch waits for others to join it.
    pub batch_window: Duration,
    /// Batches in flight through the pipeline at once, per model.
    pub max_in_flight: usize,
    pub redundancy: u32,
    /// How far replicas' activations may differ and still agree.
    pub tolerance: Tolerance,
    /// How long a request may wait for the grid before it is answered 503.
    pub timeout: Duration,
    /// Activations go from one shard's workers to the next shard's directly (the relay sees
    /// digests); otherwise they pass through the relay inline.
    pub hand_off: bool,
    /// Sequences of each shard result the relay recomputes on its CPU and compares
    /// (`verify::spot`); 0 for none. With spot checks one worker's result is enough when it
    /// passes, instead of `redundancy` agreeing ones (then only the room for disagreement).
    pub spot_check: u32,
}

impl Default for EmbeddingConfig {
    fn default() -> Self {
        EmbeddingConfig {
            max_inputs: 256,
            max_input_tokens: 8192,
            max_batch: 32,
            max_batch_tokens: 4096,
            batch_window: Duration::from_millis(10),
            max_in_flight: 8,
            redundancy: 2,
            tolerance: Tolerance { rel: 1e-3, abs: 1e-4 },
            timeout: Duration::from_secs(300),
            hand_off: true,
            spot_check: 0,
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum EmbeddingError {
    #[error("the model `{0}` does not exist")]
    UnknownModel(String),
    #[error("{message}")]
    Invalid { message: String, param: Option<&'static str> },
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Failed(String),
    #[error(
        "account {account} has {balance} credits and this request costs {needed} (1 credit = 1 GFLOP): earn \
         credits by contributing compute, or ask the relay's operator for a grant"
    )]
    InsufficientCredits { account: Address, balance: Credits, needed: Credits },
    #[error("{0}")]
    Internal(String),
}

impl From<ModelError> for EmbeddingError {
    fn from(e: ModelError) -> EmbeddingError {
        match e {
            ModelError::Invalid(message) => EmbeddingError::Invalid { message, param: Some("input") },
            ModelError::Io(message) => EmbeddingError::Internal(message),
        }
    }
}

/// Embeddings of one request, in input order, and the tokens they took.
#[derive(Debug)]
pub struct Embedded {
    pub model: String,
    pub vectors: Vec<Vec<f32>>,
    pub tokens: usize,
}

/// One input waiting for its embedding.
struct Item {
    ids: Vec<u32>,
    reply: oneshot::Sender<Result<Vec<f32>, EmbeddingError>>,
}

struct Served {
    record: ModelRecord,
    config: BertConfig,
    tokenizer: TextTokenizer,
    queue: mpsc::UnboundedSender<Item>,
}

/// Counters for the dashboard.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub requests: u64,
    pub inputs: u64,
    /// Real (not padding) tokens embedded.
    pub tokens: u64,
    pub batches: u64,
    /// (second since start, tokens embedded in it), newest last.
    pub tokens_by_second: std::collections::VecDeque<(u64, u64)>,
}

pub struct EmbeddingService {
    models: HashMap<String, Arc<Served>>,
    /// Where requests are paid.
    store: Arc<dyn Store>,
    started: Instant,
    counters: Arc<Mutex<Counters>>,
    config: EmbeddingConfig,
}

impl EmbeddingService {
    /// Serves every model in the store, each with a batcher of its own.
    pub fn start(
        records: Vec<ModelRecord>,
        scheduler: Arc<Scheduler>,
        store: Arc<dyn Store>,
        config: EmbeddingConfig,
    ) -> Result<EmbeddingService, ModelError> {
        let counters = Arc::new(Mutex::new(Counters::default()));
        let started = Instant::now();
        let mut models = HashMap::new();
        for record in records {
            let model_config = BertConfig::from_json(&record.config)
                .map_err(|e| ModelError::Invalid(format!("{}: config.json: {e}", record.name)))?;
            let tokenizer = TextTokenizer::new(&record.tokenizer, record.max_seq_length)?;
            let (queue, incoming) = mpsc::unbounded_channel();
            let served = Arc::new(Served { record, config: model_config, tokenizer, queue });
            let pipeline = Pipeline {
                model: served.clone(),
                scheduler: scheduler.clone(),
                store: store.clone(),
                config: config.clone(),
                counters: counters.clone(),
                started,
            };
            tokio::spawn(pipeline.batch(incoming));
            for name in std::iter::once(&served.record.name).chain(&served.record.aliases) {
                models.insert(name.to_lowercase(), served.clone());
            }
        }
        Ok(EmbeddingService { models, store, started, counters, config })
    }

    /// The models served, by their main name.
    pub fn models(&self) -> Vec<&ModelRecord> {
        let mut records: Vec<&ModelRecord> = self.models.values().map(|m| &m.record).collect();
        records.sort_by(|a, b| a.name.cmp(&b.name));
        records.dedup_by(|a, b| a.name == b.name);
        records
    }

    pub fn counters(&self) -> (Counters, u64) {
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner()).clone();
        (counters, self.started.elapsed().as_secs())
    }

    /// Embeds `inputs` with `model`, paid from `payer`'s balance before any work starts: the
    /// FLOPs of every input's own tokens through every shard (padding is the grid's cost).
    pub async fn embed(&self, model: &str, inputs: Vec<String>, payer: Address) -> Result<Embedded, EmbeddingError> {
        let served =
            self.models.get(&model.to_lowercase()).ok_or_else(|| EmbeddingError::UnknownModel(model.to_owned()))?;
        if inputs.is_empty() {
            return Err(EmbeddingError::Invalid { message: "input must not be empty".into(), param: Some("input") });
        }
        if inputs.len() > self.config.max_inputs {
            return Err(EmbeddingError::Invalid {
                message: format!("{} inputs; at most {} per request", inputs.len(), self.config.max_inputs),
                param: Some("input"),
            });
        }
        let mut waiting = Vec::with_capacity(inputs.len());
        let mut tokens = 0;
        let mut encoded = Vec::with_capacity(inputs.len());
        for (i, text) in inputs.iter().enumerate() {
            let t = served.tokenizer.encode(text)?;
            if t.untruncated > self.config.max_input_tokens {
                return Err(EmbeddingError::Invalid {
                    message: format!(
                        "input {i} is {} tokens long; this relay accepts at most {} tokens per input \
                         (the model reads the first {})",
                        t.untruncated, self.config.max_input_tokens, served.record.max_seq_length
                    ),
                    param: Some("input"),
                });
            }
            tokens += t.ids.len();
            encoded.push(t.ids);
        }
        let cost = request_cost(served, encoded.iter().map(Vec::len));
        let mut payment = Batch::new();
        payment.push(Op::Spend { account: payer, amount: cost });
        self.store.commit(payment).await.map_err(|e| match e {
            StoreError::InsufficientCredits { account, balance, needed } => {
                EmbeddingError::InsufficientCredits { account, balance, needed }
            }
            e => EmbeddingError::Internal(format!("charging the request: {e}")),
        })?;
        for ids in encoded {
            let (reply, answer) = oneshot::channel();
            served
                .queue
                .send(Item { ids, reply })
                .map_err(|_| EmbeddingError::Internal("the model's batcher has stopped".into()))?;
            waiting.push(answer);
        }
        {
            let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
            c.requests += 1;
            c.inputs += inputs.len() as u64;
        }
        let all = futures::future::join_all(waiting);
        let answers = tokio::time::timeout(self.config.timeout, all).await.map_err(|_| {
            EmbeddingError::Unavailable(format!(
                "the grid did not answer within {} s; are workers connected?",
                self.config.timeout.as_secs()
            ))
        })?;
        let vectors = answers
            .into_iter()
            .map(|a| a.map_err(|_| EmbeddingError::Internal("the batch was dropped".into()))?)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Embedded { model: served.record.name.clone(), vectors, tokens })
    }
}

/// What embedding sequences of these lengths costs: 1 credit per GFLOP, a micro-credit per
/// 1,000 FLOP, as the workers are paid.
fn request_cost(served: &Served, lengths: impl Iterator<Item = usize>) -> Credits {
    let flops: u64 = lengths
        .map(|len| {
            served
                .record
                .shards
                .iter()
                .map(|shard| shard_flops(&served.config, &ShardPlan::from(&shard.spec), 1, len as u32))
                .sum::<u64>()
        })
        .sum();
    Credits::from_micros(flops / 1_000)
}

/// Runs one model's batches.
struct Pipeline {
    model: Arc<Served>,
    scheduler: Arc<Scheduler>,
    store: Arc<dyn Store>,
    config: EmbeddingConfig,
    counters: Arc<Mutex<Counters>>,
    started: Instant,
}

/// How many of the items (lengths sorted shortest first) go in the next batch: at most `rows`,
/// and at most `max_tokens` once padded to the longest of them, but always at least one.
fn next_batch(lengths: impl Iterator<Item = usize>, rows: usize, max_tokens: usize) -> usize {
    // Sorted by length, so the last item taken sets the batch's padded length.
    lengths.enumerate().take_while(|&(n, len)| n < rows && (n + 1) * len <= max_tokens).count().max(1)
}

impl Pipeline {
    /// Gathers items into batches: the first waits `batch_window` for company, then the window's
    /// items, shortest first (less padding), go out in batches of at most `max_batch` sequences
    /// and `max_batch_tokens` padded tokens, and split further so that every group of
    /// `redundancy` workers gets a batch of its own: one big batch would leave all but one group
    /// idle while it crosses the shards one after another.
    async fn batch(self, mut incoming: mpsc::UnboundedReceiver<Item>) {
        let this = Arc::new(self);
        let in_flight = Arc::new(Semaphore::new(this.config.max_in_flight));
        while let Some(first) = incoming.recv().await {
            let mut items = vec![first];
            let deadline = tokio::time::Instant::now() + this.config.batch_window;
            while let Ok(Some(item)) = tokio::time::timeout_at(deadline, incoming.recv()).await {
                items.push(item);
            }
            items.sort_by_key(|i| i.ids.len());
            let lanes = (this.scheduler.worker_count() / this.config.redundancy.max(1) as usize)
                .clamp(1, this.config.max_in_flight);
            let rows = items.len().div_ceil(lanes).min(this.config.max_batch);
            while !items.is_empty() {
                let lengths = items.iter().map(|i| i.ids.len());
                let rest = items.split_off(next_batch(lengths, rows, this.config.max_batch_tokens));
                let batch = std::mem::replace(&mut items, rest);
                let permit = in_flight.clone().acquire_owned().await.expect("the semaphore is never closed");
                let this = this.clone();
                tokio::spawn(async move {
                    this.run(batch).await;
                    drop(permit);
                });
            }
        }
    }

    async fn run(&self, batch: Vec<Item>) {
        let (ids, replies): (Vec<Vec<u32>>, Vec<_>) = batch.into_iter().map(|i| (i.ids, i.reply)).unzip();
        match self.embed(&ids).await {
            Ok(vectors) => {
                let real: usize = ids.iter().map(Vec::len).sum();
                self.count(real as u64);
                for (reply, vector) in replies.into_iter().zip(vectors) {
                    let _ = reply.send(Ok(vector));
                }
            }
            Err(e) => {
                tracing::warn!(model = %self.model.record.name, error = %e, "embedding batch failed");
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }

    fn count(&self, tokens: u64) {
        let second = self.started.elapsed().as_secs();
        let mut c = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        c.tokens += tokens;
        c.batches += 1;
        match c.tokens_by_second.back_mut() {
            Some((s, n)) if *s == second => *n += tokens,
            _ => {
                c.tokens_by_second.push_back((second, tokens));
                while c.tokens_by_second.len() > 61 {
                    c.tokens_by_second.pop_front();
                }
            }
        }
    }

    /// Runs one batch through every shard; returns one normalized embedding per sequence.
    ///
    /// Each shard but the last hands its output off: the next shard's workers fetch it from the
    /// workers that computed it. If they cannot (those workers left), the previous shard runs
    /// again with its output sent to the relay, once, before the batch fails.
    async fn embed(&self, ids: &[Vec<u32>]) -> Result<Vec<Vec<f32>>, EmbeddingError> {
        let model = &self.model;
        let batch = ids.len() as u32;
        let seq = ids.iter().map(Vec::len).max().unwrap_or(0).max(1) as u32;
        let mut tokens = vec![0u32; (batch * seq) as usize];
        let mut mask = vec![0u32; (batch * seq) as usize];
        for (b, row) in ids.iter().enumerate() {
            let at = b * seq as usize;
            tokens[at..at + row.len()].copy_from_slice(row);
            mask[at..at + row.len()].fill(1);
        }
        let mask = Bytes(to_bytes(&mask, u32::to_le_bytes));
        let hidden = u64::from(model.config.hidden_size);
        let shards = &model.record.shards;
        let tokens = to_bytes(&tokens, u32::to_le_bytes);
        let mut inputs: Vec<(Source, u64)> = vec![(Source::Inline(Bytes(tokens.clone())), tokens.len() as u64)];
        let mut hand_off: Vec<bool> = shards.iter().map(|s| self.config.hand_off && !s.spec.pooling).collect();
        let mut k = 0;
        while k < shards.len() {
            let (input, input_size) = inputs[k].clone();
            let from_peers = matches!(input, Source::Peer(_));
            let result = self.run_shard(k, batch, seq, &mask, input, input_size, hand_off[k]).await;
            let record = match result {
                Ok(record) => record,
                Err(e) if from_peers && hand_off[k - 1] => {
                    tracing::warn!(model = %model.record.name, shard = k, error = %e,
                        "the next shard could not get its input from peers; running the previous shard again through the relay");
                    hand_off[k - 1] = false;
                    inputs.truncate(k);
                    k -= 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let next = match record.outputs.into_iter().next() {
                Some(output) => Source::Inline(output.data),
                None => {
                    let sha256 = record
                        .output_sha256
                        .ok_or_else(|| EmbeddingError::Internal("a handed-off shard result has no digest".into()))?;
                    Source::Peer(PeerSource { sha256, holders: record.verified_by })
                }
            };
            inputs.push((next, self.output_size(k, batch, seq)));
            k += 1;
        }
        let Some((Source::Inline(output), _)) = inputs.pop() else {
            return Err(EmbeddingError::Internal("the last shard's output stayed with its workers".into()));
        };
        let floats: Vec<f32> = f32s(&output.0).collect();
        if floats.len() != (batch as usize) * hidden as usize {
            return Err(EmbeddingError::Internal(format!(
                "the last shard returned {} floats for {batch} sequences",
                floats.len()
            )));
        }
        Ok(floats.chunks(hidden as usize).map(<[f32]>::to_vec).collect())
    }

    /// Bytes of shard `k`'s output: hidden states `[batch, seq, hidden]` f32, or for the pooling
    /// shard one embedding per sequence.
    fn output_size(&self, k: usize, batch: u32, seq: u32) -> u64 {
        let rows = if self.model.record.shards[k].spec.pooling { u64::from(batch) } else { u64::from(batch * seq) };
        rows * u64::from(self.model.config.hidden_size) * 4
    }

    /// Runs shard `k` on one batch as a single-task job and returns its verified result.
    #[allow(clippy::too_many_arguments)]
    async fn run_shard(
        &self,
        k: usize,
        batch: u32,
        seq: u32,
        mask: &Bytes,
        input: Source,
        input_size: u64,
        hand_off: bool,
    ) -> Result<crate::store::records::ResultRecord, EmbeddingError> {
        let model = &self.model;
        let shard = &model.record.shards[k];
        let flops = shard_flops(&model.config, &ShardPlan::from(&shard.spec), batch, seq);
        let job = ValidatedJob {
            work: JobWork::Shard {
                model: model.record.name.clone(),
                config: model.record.config.clone(),
                shard: shard.spec,
                weights: shard.weights,
                weights_size: shard.weights_size,
                largest_tensor: shard.largest_tensor,
            },
            redundancy: self.config.redundancy,
            tolerance: self.config.tolerance,
            // 1 credit = 1 GFLOP of verified work; a micro-credit is 1,000 FLOP.
            credits_per_task: Credits::from_micros(flops / 1_000),
            tasks: vec![TaskRecord {
                index: 0,
                body: TaskBody::Shard {
                    batch,
                    seq,
                    mask: mask.clone(),
                    input_size,
                    input,
                    output_size: self.output_size(k, batch, seq),
                },
            }],
            hand_off,
            check: (self.config.spot_check > 0).then_some(SelfCheck::Shard { sequences: self.config.spot_check }),
        };
        let id = JobId(rand::random());
        let finished = self.scheduler.watch(id);
        self.scheduler
            .submit(job, id, format!("embeddings:{}", model.record.name), None)
            .await
            .map_err(|e| EmbeddingError::Internal(e.to_string()))?;
        let record = finished.await.map_err(|_| EmbeddingError::Internal("the scheduler dropped a job".into()))?;
        if record.status != JobStatus::Completed {
            return Err(EmbeddingError::Failed(format!(
                "shard {}/{} could not be verified: {}",
                shard.spec.index + 1,
                shard.spec.count,
                record.error.unwrap_or_default()
            )));
        }
        self.store
            .result(TaskId { job: id, index: 0 })
            .map_err(|e| EmbeddingError::Internal(e.to_string()))?
            .ok_or_else(|| EmbeddingError::Internal(format!("{id} completed without a result")))
    }
}

#[cfg(test)]
mod tests {
    use super::next_batch;

    #[test]
    fn batches_stop_at_their_row_limit() {
        assert_eq!(next_batch([3, 4, 5, 6, 7].into_iter(), 2, 4096), 2);
        assert_eq!(next_batch([3, 4, 5].into_iter(), 32, 4096), 3);
    }

    #[test]
    fn batches_stop_before_padding_passes_the_token_budget() {
        // 3 rows padded to 100 tokens fit in 300; a 4th of 120 would make 480.
        assert_eq!(next_batch([10, 50, 100, 120].into_iter(), 32, 300), 3);
    }

    #[test]
    fn an_input_longer_than_the_budget_still_goes_alone() {
        assert_eq!(next_batch([512, 512].into_iter(), 32, 256), 1);
    }
}
