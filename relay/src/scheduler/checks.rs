//! The relay's own checks of results ([`SelfCheck`]): gathering what each needs (inputs from the
//! job or from the workers holding them, a shard's weights, outputs kept on workers), then
//! running the pure check from `verify` on a blocking thread, off the lock. Each returns, per
//! result, whether it passed; [`checked`] turns that into a decision.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use hyphae_proto::BlobId;
use hyphae_proto::api::{MatmulCheck, Tolerance};
use hyphae_proto::frame::Source;
use hyphae_proto::tensor::{f32s, u32s};
use hyphae_shaders::model::{BertConfig, ShardInput, ShardPlan, ShardWeights};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::Scheduler;
use super::state::{Answer, JobShared, Replica};
use crate::job::SelfCheck;
use crate::store::records::{JobWork, TaskBody, TaskRecord};
use crate::verify::quorum::{self, Decision};
use crate::verify::{freivalds, spot};

/// Shards whose weights the relay keeps parsed for spot checks: a model's shards, a few models.
const WEIGHTS_KEPT: usize = 8;

/// Parsed weights of the shards checked lately, most recent first.
#[derive(Default)]
pub(super) struct WeightsCache(Mutex<VecDeque<(BlobId, Arc<ShardWeights>)>>);

impl WeightsCache {
    fn get(&self, id: &BlobId) -> Option<Arc<ShardWeights>> {
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let at = kept.iter().position(|(kept, _)| kept == id)?;
        let entry = kept.remove(at)?;
        let weights = entry.1.clone();
        kept.push_front(entry);
        Some(weights)
    }

    fn insert(&self, id: BlobId, weights: Arc<ShardWeights>) {
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|(kept, _)| *kept != id);
        kept.push_front((id, weights));
        kept.truncate(WEIGHTS_KEPT);
    }
}

/// The decision on results the relay checked itself: the first that passed is accepted with
/// every other that passed, and no replica needs to agree with it. As in a vote, workers with no
/// record failing the check may be liars, so they get more room; trusted workers all failing it
/// mean the check does not hold for this job.
pub(super) fn checked(
    passing: Result<Vec<bool>, String>,
    voters: &[quorum::Voter],
    rule: quorum::Rule,
    what: &str,
) -> Decision {
    let passing = match passing {
        Ok(passing) => passing,
        Err(reason) => return Decision::Fail { reason: format!("{what} could not run: {reason}") },
    };
    match passing.iter().position(|&p| p) {
        Some(canonical) => {
            Decision::Accept { canonical, agreeing: (0..passing.len()).filter(|&i| passing[i]).collect() }
        }
        None if !quorum::exhausted(voters, rule) => Decision::OneMore,
        None => Decision::Fail { reason: format!("none of {} results passed {what}", passing.len()) },
    }
}

impl Scheduler {
    /// Freivalds' check of each result of a matmul job, with vectors drawn now, unseen by any
    /// worker.
    pub(super) async fn check_matmul(
        &self,
        spec: &TaskRecord,
        results: &[Replica],
        check: MatmulCheck,
        tolerance: &Tolerance,
    ) -> Result<Vec<bool>, String> {
        let TaskBody::Kernel { bindings, .. } = &spec.body else {
            unreachable!("only kernel jobs carry a matmul check (checked when the job is made)")
        };
        let input = |n: u32| {
            let source = bindings.iter().find(|b| b.binding == n).and_then(|b| b.source.as_ref());
            async move {
                match source {
                    Some(source) => self.source_bytes(source, 0).await,
                    None => Err(format!("binding {n} has no input")),
                }
            }
        };
        let shape = crate::job::matmul_shape(&check, bindings)?;
        let (a, b) = (input(check.a).await?, input(check.b).await?);
        let c_index = spec.outputs().iter().position(|(binding, _, _)| *binding == check.c);
        let products: Vec<Option<Vec<f32>>> = results
            .iter()
            .map(|r| match (&r.answer, c_index) {
                (Answer::Outputs(outputs), Some(i)) => outputs.get(i).map(|c| f32s(&c.0).collect()),
                _ => None,
            })
            .collect();
        let tolerance = *tolerance;
        let passing = tokio::task::spawn_blocking(move || {
            let (a, b): (Vec<f32>, Vec<f32>) = (f32s(&a).collect(), f32s(&b).collect());
            let mut rng = StdRng::from_entropy();
            products
                .iter()
                .map(|c| c.as_ref().is_some_and(|c| freivalds::check(&a, &b, c, shape, &tolerance, &mut rng).is_ok()))
                .collect()
        });
        passing.await.map_err(|e| format!("the check's thread failed: {e}"))
    }

    /// Spot checks of each result of a shard task (`outputs`: each result's bytes, `None` where
    /// a worker could not produce bytes matching its digest): the same `sequences` drawn for
    /// all, recomputed once.
    pub(super) async fn check_shard(
        &self,
        job: &JobShared,
        spec: &TaskRecord,
        outputs: Vec<Option<Vec<u8>>>,
        sequences: u32,
    ) -> Result<Vec<bool>, String> {
        let JobWork::Shard { config, shard, weights, .. } = &job.work else {
            unreachable!("only shard jobs carry a shard check (set by the embeddings pipeline)")
        };
        let TaskBody::Shard { batch, seq, mask, input, input_size, .. } = &spec.body else {
            unreachable!("a shard job's tasks are shard tasks")
        };
        let config = BertConfig::from_json(config).map_err(|e| e.to_string())?;
        let plan = ShardPlan::from(shard);
        let input = self.source_bytes(input, *input_size).await?;
        let weights = self.shard_weights(&config, &plan, weights).await?;
        let (batch, seq, mask) = (*batch, *seq, u32s(&mask.0).collect::<Vec<u32>>());
        let tolerance = job.tolerance;
        let passing = tokio::task::spawn_blocking(move || {
            let (tokens, hidden): (Vec<u32>, Vec<f32>) = if plan.embeddings {
                (u32s(&input).collect(), Vec::new())
            } else {
                (Vec::new(), f32s(&input).collect())
            };
            let input = if plan.embeddings { ShardInput::Tokens(&tokens) } else { ShardInput::Hidden(&hidden) };
            let batch = spot::Batch { batch, seq, mask: &mask, input };
            let drawn = spot::draw(&batch, sequences as usize, &mut StdRng::from_entropy());
            let expected = spot::expected(&config, &plan, &weights, &batch, &drawn).map_err(|e| e.to_string())?;
            Ok(outputs
                .iter()
                .map(|output| {
                    output.as_ref().is_some_and(|bytes| {
                        let floats: Vec<f32> = f32s(bytes).collect();
                        spot::check(&expected, &floats, &tolerance).is_ok()
                    })
                })
                .collect())
        });
        passing.await.map_err(|e| format!("the check's thread failed: {e}"))?
    }

    /// The bytes of a task's input as the relay handed it out: inline, a stored blob, or a
    /// previous shard's verified output fetched from a worker holding it (`size` bytes).
    async fn source_bytes(&self, source: &Source, size: u64) -> Result<Vec<u8>, String> {
        match source {
            Source::Inline(bytes) => Ok(bytes.0.clone()),
            Source::Blob(id) => self.blob(id).await,
            Source::Peer(peer) => {
                let mut last = format!("no worker holds {}", peer.sha256);
                for holder in &peer.holders {
                    match self.fetch_from(*holder, peer.sha256, size).await {
                        Ok(bytes) => return Ok(bytes),
                        Err(e) => last = e.to_string(),
                    }
                }
                Err(last)
            }
        }
    }

    async fn blob(&self, id: &BlobId) -> Result<Vec<u8>, String> {
        match self.blobs.get(id).await {
            Ok(Some(bytes)) => Ok(bytes),
            Ok(None) => Err(format!("blob {id} is gone")),
            Err(e) => Err(format!("reading blob {id}: {e}")),
        }
    }

    async fn shard_weights(
        &self,
        config: &BertConfig,
        plan: &ShardPlan,
        id: &BlobId,
    ) -> Result<Arc<ShardWeights>, String> {
        if let Some(weights) = self.shard_weights.get(id) {
            return Ok(weights);
        }
        let bytes = self.blob(id).await?;
        let (config, plan) = (config.clone(), plan.clone());
        let parsed = tokio::task::spawn_blocking(move || ShardWeights::parse(&config, &plan, &bytes))
            .await
            .map_err(|e| format!("the check's thread failed: {e}"))?
            .map_err(|e| format!("weights {id}: {e}"))?;
        let weights = Arc::new(parsed);
        self.shard_weights.insert(*id, weights.clone());
        Ok(weights)
    }
}

impl SelfCheck {
    /// How the check is named in a failed task's reason.
    pub(super) fn name(&self) -> &'static str {
        match self {
            SelfCheck::Matmul(_) => "the matmul check",
            SelfCheck::Shard { .. } => "the spot check",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voter(trusted: bool) -> quorum::Voter {
        quorum::Voter { suspect: false, trusted }
    }

    #[test]
    fn every_passing_result_is_accepted_with_the_first() {
        let decision = checked(Ok(vec![false, true, true]), &[voter(false); 3], quorum::Rule::for_redundancy(2), "x");
        assert_eq!(decision, Decision::Accept { canonical: 1, agreeing: vec![1, 2] });
    }

    #[test]
    fn a_check_that_cannot_run_fails_the_task_with_its_reason() {
        let decision =
            checked(Err("blob gone".into()), &[voter(true)], quorum::Rule::for_redundancy(2), "the spot check");
        assert_eq!(decision, Decision::Fail { reason: "the spot check could not run: blob gone".into() });
    }

    #[test]
    fn newcomers_failing_get_another_replica_and_trusted_workers_failing_fail_the_task() {
        let rule = quorum::Rule::for_redundancy(2);
        assert_eq!(checked(Ok(vec![false]), &[voter(false)], rule, "x"), Decision::OneMore);
        let trusted = vec![voter(true); rule.max_replicas as usize];
        let failing = vec![false; trusted.len()];
        assert!(matches!(checked(Ok(failing), &trusted, rule, "x"), Decision::Fail { .. }));
    }
}
