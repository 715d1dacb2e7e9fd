//! The operator console: a web page that `clarify node` serves, where operators answer
//! preference queries from a laptop, tablet or phone.
//!
//! The HTTP server (axum) runs on its own thread with a single-threaded tokio runtime.
//! Store work runs on tokio's blocking threads: answers and undos go through the node's
//! [`AnswerDesk`], so an answer is on disk before its HTTP response says so, and reads use
//! a second store connection.
//!
//! - `GET /`, `/console.js`, `/console.css`: the page, embedded in the binary.
//! - `GET /api/session`: whether a token is required and whether this client has one.
//! - `POST /api/login`: checks a token and sets a session cookie.
//! - `POST /api/next`: leases the next open query to an operator.
//! - `POST /api/answer`, `POST /api/undo`: commit or undo an answer.
//! - `GET /api/status`: answer counts, training, the deployed model, recent answers.
//! - `GET /api/segments/{episode_id}/{start}/{length}/steps`: a segment's step arrays.
//! - `GET /api/segments/{episode_id}/{start}/{length}/media`: camera media of a segment;
//!   `{"kind": "none"}` until a media source is attached.
//! - `GET /api/events`: server-sent events `queries`, `answers`, `training` and `model`.
//!
//! With an access token, which a non-loopback address requires, every state-changing
//! request (next, answer, undo) needs it as `Authorization: Bearer` header or as the
//! cookie that `/api/login` sets. Reads stay open.

mod api;
mod assets;
mod auth;
mod events;
mod leases;
mod settings;
mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use thiserror::Error;
use tokio::sync::{broadcast, oneshot, watch};
use tracing::{info, warn};

pub use api::{MAX_OPERATOR_LENGTH, check_operator};
pub use settings::{ConsoleSettings, InvalidSetting, MIN_TOKEN_LENGTH, TOKEN_ENV};

use crate::deploy::DeploySnapshot;
use crate::media::MediaService;
use crate::node::{AnswerDesk, ChannelInfo};
use crate::store::{DatasetId, Store, StoreError};

/// Returns the deployment state on demand; the node passes the model manager's snapshot.
pub type SnapshotSource = Arc<dyn Fn() -> DeploySnapshot + Send + Sync>;

/// Errors of starting or stopping the console.
#[derive(Debug, Error)]
pub enum ConsoleError {
    /// A console parameter is invalid.
    #[error("invalid node parameter console.{}: {} (expected {})", .0.field, .0.value, .0.expected)]
    Config(InvalidSetting),
    /// The address is in use or not available.
    #[error("failed to listen on {address} for the operator console: {source}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The runtime or the thread could not start.
    #[error("failed to start the operator console: {0}")]
    Start(#[source] std::io::Error),
    /// The read connection to the store failed to open.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The server thread panicked.
    #[error("the operator console's thread panicked")]
    Panicked,
}

/// Inputs of the console: the node's answer desk, its store and models, and the
/// recording's channels.
pub struct ConsoleContext {
    /// The node's answer desk, shared with the answer topic and the SubmitAnswer service.
    pub desk: Arc<Mutex<AnswerDesk>>,
    /// Segment store path, opened once more for reads.
    pub store_path: PathBuf,
    /// Model registry folder, for the manifest of the deployed version.
    pub models_dir: PathBuf,
    /// The deployment state.
    pub snapshot: SnapshotSource,
    /// Dataset whose segments the queries compare.
    pub dataset: DatasetId,
    /// Channel names of the recording; unnamed channels are shown by index.
    pub channels: ChannelInfo,
    /// Answers after which a training run starts; 0 when retraining is manual.
    pub retrain_after_answers: u64,
    /// Camera frames and rendered clips of the segments; `None` shows plots only.
    pub media: Option<Arc<MediaService>>,
}

/// State shared by the request handlers.
pub(crate) struct Shared {
    pub(crate) context: ConsoleContext,
    pub(crate) settings: ConsoleSettings,
    pub(crate) token: Option<String>,
    /// Read connection to the store.
    pub(crate) reader: Mutex<Store>,
    pub(crate) leases: Mutex<leases::Leases>,
    pub(crate) events: broadcast::Sender<events::ConsoleEvent>,
    /// Set to `true` at shutdown; event streams and the store poller end on it.
    pub(crate) closing: watch::Sender<bool>,
}

/// Locks a mutex, taking the data of a poisoned one: each value behind these mutexes is
/// consistent at every unlock, and a store transaction is all or nothing.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The running console; [`Console::stop`] or dropping it stops the server.
pub struct Console {
    address: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("address", &self.address)
            .finish()
    }
}

impl Console {
    /// Checks `settings`, listens on their address and serves the console on a new
    /// thread. `token_from_env` is the value of `CLARIFY_CONSOLE_TOKEN`, used when the
    /// `token` parameter is empty. Fails before serving anything when the settings are
    /// invalid, the address cannot be bound or the store cannot be opened.
    pub fn start(
        settings: &ConsoleSettings,
        token_from_env: Option<String>,
        context: ConsoleContext,
    ) -> Result<Self, ConsoleError> {
        let token = settings.resolve_token(token_from_env);
        settings
            .validate(token.as_deref())
            .map_err(ConsoleError::Config)?;
        let address = settings.address().map_err(ConsoleError::Config)?;
        let listener = std::net::TcpListener::bind(address)
            .map_err(|source| ConsoleError::Bind { address, source })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| ConsoleError::Bind { address, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| ConsoleError::Bind { address, source })?;
        let reader = Store::open(&context.store_path)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .max_blocking_threads(4)
            .build()
            .map_err(ConsoleError::Start)?;

        let (events, _) = broadcast::channel(64);
        let (closing, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            leases: Mutex::new(leases::Leases::new(settings.lease_secs)),
            settings: settings.clone(),
            token,
            reader: Mutex::new(reader),
            events,
            closing,
            context,
        });
        let (shutdown, shutdown_signal) = oneshot::channel::<()>();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("console".to_owned())
            .spawn(move || runtime.block_on(serve(listener, thread_shared, shutdown_signal)))
            .map_err(ConsoleError::Start)?;
        info!(
            address = %local,
            url = %format!("http://{local}/"),
            token_required = shared.token.is_some(),
            "operator console started"
        );
        Ok(Self {
            address: local,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// Returns the address the console listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops the server: open event streams are closed and the thread joined.
    pub fn stop(mut self) -> Result<(), ConsoleError> {
        self.shut_down()
    }

    fn shut_down(&mut self) -> Result<(), ConsoleError> {
        if let Some(shutdown) = self.shutdown.take() {
            // An error means the server has stopped already.
            let _ = shutdown.send(());
        }
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| ConsoleError::Panicked),
            None => Ok(()),
        }
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Err(error) = self.shut_down() {
            warn!(%error, "the operator console did not stop cleanly");
        }
    }
}

/// Serves requests until `shutdown` fires, with the store poller beside them.
async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    shutdown: oneshot::Receiver<()>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(error) => {
            warn!(%error, "the operator console cannot use its socket");
            return;
        }
    };
    let poller = tokio::spawn(events::poll_store(Arc::clone(&shared)));
    let router = api::router(Arc::clone(&shared));
    let closing = shared.closing.clone();
    let result = axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            // A dropped sender stops the server as well.
            let _ = shutdown.await;
            closing.send_replace(true);
        })
        .await;
    shared.closing.send_replace(true);
    if let Err(error) = poller.await {
        warn!(%error, "the operator console's store poller failed");
    }
    match result {
        Ok(()) => info!("operator console stopped"),
        Err(error) => warn!(%error, "the operator console stopped with an error"),
    }
}
