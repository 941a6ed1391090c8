//! Prometheus metrics (`GET /metrics`): what an operator graphs and alerts on. The dashboard's
//! numbers come from `GET /v1/stats` instead, computed from the scheduler's own counters.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub struct Metrics {
    registry: Registry,
    pub jobs_submitted: Counter,
    pub tasks_dispatched: Counter,
    pub tasks_verified: Counter,
    pub tasks_failed: Counter,
    pub results_accepted: Counter,
    pub results_rejected: Counter,
    pub leases_expired: Counter,
    /// Extra replicas given to idle workers because a replica straggled.
    pub tasks_hedged: Counter,
    pub worker_connections: Counter,
    pub worker_protocol_errors: Counter,
    pub workers_online: Gauge,
    /// Answers returned by workers and not yet judged (voted on, receipted and committed).
    pub answers_awaiting_verification: Gauge,
    /// Seconds a replica waited in the queue before a worker got it.
    pub dispatch_wait: Histogram,
    /// Data-plane bytes workers received over direct connections (as they report them).
    pub peer_direct_bytes: Counter,
    /// Data-plane bytes that went through the relay: relayed between workers or fetched by it.
    pub peer_relayed_bytes: Counter,
    /// Activation bytes carried inline in tasks and results.
    pub activation_bytes: Counter,
    pub peer_connections_up: Counter,
    pub peer_connections_failed: Counter,
    /// Canary answers that matched the known answer, and that did not.
    pub canaries_passed: Counter,
    pub canaries_failed: Counter,
    /// Settled tasks run again because the worker that alone vouched for them was caught.
    pub rechecks: Counter,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hyphae");
        let m = Metrics {
            jobs_submitted: Counter::default(),
            tasks_dispatched: Counter::default(),
            tasks_verified: Counter::default(),
            tasks_failed: Counter::default(),
            results_accepted: Counter::default(),
            results_rejected: Counter::default(),
            leases_expired: Counter::default(),
            tasks_hedged: Counter::default(),
            worker_connections: Counter::default(),
            worker_protocol_errors: Counter::default(),
            workers_online: Gauge::default(),
            answers_awaiting_verification: Gauge::default(),
            dispatch_wait: Histogram::new(exponential_buckets(0.0001, 4.0, 10)),
            peer_direct_bytes: Counter::default(),
            peer_relayed_bytes: Counter::default(),
            activation_bytes: Counter::default(),
            peer_connections_up: Counter::default(),
            peer_connections_failed: Counter::default(),
            canaries_passed: Counter::default(),
            canaries_failed: Counter::default(),
            rechecks: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("jobs_submitted", "Jobs accepted through POST /v1/jobs", m.jobs_submitted.clone());
        registry.register("tasks_dispatched", "Replicas handed to workers", m.tasks_dispatched.clone());
        registry.register("tasks_verified", "Tasks whose result reached a quorum", m.tasks_verified.clone());
        registry.register("tasks_failed", "Tasks that could not be settled", m.tasks_failed.clone());
        registry.register(
            "results_accepted",
            "Replica results that agreed with the accepted result",
            m.results_accepted.clone(),
        );
        registry.register(
            "results_rejected",
            "Replica results that disagreed with the accepted result",
            m.results_rejected.clone(),
        );
        registry.register("leases_expired", "Leases that passed their deadline", m.leases_expired.clone());
        registry.register(
            "tasks_hedged",
            "Extra replicas given to idle workers because a replica straggled",
            m.tasks_hedged.clone(),
        );
        registry.register("worker_connections", "Worker logins accepted", m.worker_connections.clone());
        registry.register(
            "worker_protocol_errors",
            "Worker connections closed for a protocol violation",
            m.worker_protocol_errors.clone(),
        );
        registry.register("workers_online", "Workers connected now", m.workers_online.clone());
        registry.register(
            "answers_awaiting_verification",
            "Answers returned by workers and not yet voted on, receipted and committed",
            m.answers_awaiting_verification.clone(),
        );
        registry.register("dispatch_wait_seconds", "Time a replica waited for a worker", m.dispatch_wait.clone());
        registry.register(
            "peer_direct_bytes",
            "Bytes workers received from each other over direct WebRTC connections",
            m.peer_direct_bytes.clone(),
        );
        registry.register(
            "peer_relayed_bytes",
            "Peer data-plane bytes that went through the relay",
            m.peer_relayed_bytes.clone(),
        );
        registry.register(
            "activation_bytes",
            "Shard activations carried inline in tasks and results",
            m.activation_bytes.clone(),
        );
        registry.register("peer_connections_up", "Direct worker connections opened", m.peer_connections_up.clone());
        registry.register(
            "peer_connections_failed",
            "Direct worker connections that did not come up",
            m.peer_connections_failed.clone(),
        );
        registry.register("canaries_passed", "Canary answers that matched the known answer", m.canaries_passed.clone());
        registry.register(
            "canaries_failed",
            "Canary answers that differed from the known answer",
            m.canaries_failed.clone(),
        );
        registry.register(
            "rechecks",
            "Settled tasks run again because the worker that alone vouched for them was caught",
            m.rechecks.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
