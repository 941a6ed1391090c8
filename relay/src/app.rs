//! Assembling the relay: state shared by handlers, the router with its layers, and the server's
//! lifecycle (`Relay::start`, graceful shutdown).

use axum::serve::ListenerExt as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use hyphae_proto::api::ErrorCode;
use tower_http::cors::CorsLayer;
use tower_http::trace::TraceLayer;

use crate::api::error::{ApiError, InternalDetail};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::models::EmbeddingService;
use crate::scheduler::Scheduler;
use crate::signer::Signer;
use crate::store::blobs::BlobStore;
use crate::store::{SledStore, Store};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub scheduler: Arc<Scheduler>,
    pub store: Arc<dyn Store>,
    pub blobs: Arc<BlobStore>,
    pub metrics: Arc<Metrics>,
    pub embeddings: Arc<EmbeddingService>,
}

/// The whole HTTP surface, for a server or for `tower::ServiceExt::oneshot` in tests.
pub fn app(state: AppState) -> Router {
    let mut router = crate::api::router()
        .fallback(|| async { ApiError::not_found("no such endpoint; see GET /v1/relay and the API guide") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(ErrorCode::MethodNotAllowed, "method not allowed on this endpoint")
        });
    if let Some(site) = &state.config.site_dir {
        router = router.fallback_service(
            tower_http::services::ServeDir::new(site)
                .append_index_html_on_directories(true)
                .fallback(axum::routing::any(|| async { ApiError::not_found("no such page or endpoint") })),
        );
    }
    router
        .layer(DefaultBodyLimit::max(state.config.max_request_bytes as usize))
        .layer(middleware::from_fn(log_internal_errors))
        .layer(CorsLayer::permissive())
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Logs the hidden cause of every `500`, once, here rather than where the error was made.
async fn log_internal_errors(request: Request, next: Next) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let response = next.run(request).await;
    if let Some(InternalDetail(detail)) = response.extensions().get::<InternalDetail>() {
        tracing::error!(%method, %path, %detail, "internal error");
    }
    response
}

/// A relay bound to its port, its state restored from the data directory.
pub struct Relay {
    listener: tokio::net::TcpListener,
    state: AppState,
}

impl Relay {
    /// Opens the store (refusing a data directory another relay holds), loads or creates the
    /// relay key, re-queues unsettled work and binds the port.
    pub async fn start(config: Config) -> anyhow::Result<Relay> {
        std::fs::create_dir_all(&config.data_dir)?;
        let store: Arc<dyn Store> = Arc::new(SledStore::open(&config.data_dir)?);
        let signer = Arc::new(Signer::load_or_create(&config.data_dir)?);
        let blobs = Arc::new(BlobStore::open(&config.data_dir)?);
        let metrics = Arc::new(Metrics::new());
        let scheduler =
            Arc::new(Scheduler::new(store.clone(), blobs.clone(), signer, metrics.clone(), config.scheduler.clone()));
        let restored = scheduler.restore().await?;
        if restored > 0 {
            tracing::info!(tasks = restored, "re-queued unsettled tasks from the store");
        }
        let embeddings = Arc::new(EmbeddingService::start(
            store.models()?,
            scheduler.clone(),
            store.clone(),
            config.embeddings.clone(),
        )?);
        for model in embeddings.models() {
            tracing::info!(model = %model.name, shards = model.shards.len(), "serving embeddings");
        }
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let state = AppState { config: Arc::new(config), scheduler, store, blobs, metrics, embeddings };
        Ok(Relay { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves.
    pub async fn serve(self, shutdown: impl std::future::Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let reaper = tokio::spawn(self.state.scheduler.clone().reap_expired_leases());
        let app = app(self.state);
        // Worker frames are small and answered at once: Nagle's algorithm would hold a frame
        // written while the previous one is unacknowledged for the peer's delayed ACK (40 ms).
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::warn!(error = %e, "could not set TCP_NODELAY on a connection");
            }
        });
        let served = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(shutdown)
            .await;
        // It holds the scheduler, and with it the store: a relay that stopped lets both go.
        reaper.abort();
        served?;
        Ok(())
    }
}
