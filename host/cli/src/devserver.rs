//! A developer-mode core server: centralized engine, filesystem or S3 storage, plaintext sealing.

use kms_eip712::DomainConfig;
use kms_engine::CentralizedEngine;
use kms_server::dev::{load_or_create_signing_key, PlaintextSealer};
use kms_server::service::CoreServiceImpl;
use kms_server::Core;
use kms_storage::{FileStorage, S3Config, S3Storage};
use kms_types::{Sealer, Storage};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::{info, warn};

/// Where public material goes.
#[derive(Clone, Debug)]
pub enum PublicStore {
    /// `<data_dir>/public`.
    File,
    /// An S3 bucket.
    S3(S3Config),
}

/// Settings of a developer-mode server.
#[derive(Clone, Debug)]
pub struct DevServerConfig {
    /// Folder for private (and, with [`PublicStore::File`], public) storage.
    pub data_dir: PathBuf,
    /// Address to listen on (`127.0.0.1:0` for an ephemeral port).
    pub listen: SocketAddr,
    /// Public storage.
    pub public: PublicStore,
    /// EIP-712 domain.
    pub domain: DomainConfig,
    /// CPU-heavy jobs at once.
    pub parallel_jobs: usize,
}

/// A running server.
pub struct DevServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// The core, for in-process inspection.
    pub core: Arc<Core>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

impl DevServer {
    /// `http://<addr>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and waits for the server task.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Errors starting a server.
#[derive(Debug, thiserror::Error)]
pub enum DevServerError {
    /// Storage setup failed.
    #[error("storage: {0}")]
    Storage(#[from] kms_types::StorageError),
    /// The core failed to start.
    #[error("core: {0}")]
    Core(#[from] kms_server::CoreError),
    /// Binding the port failed.
    #[error("listen: {0}")]
    Io(#[from] std::io::Error),
}

/// Starts a developer-mode server and returns once it is listening.
pub async fn start(cfg: DevServerConfig) -> Result<DevServer, DevServerError> {
    let private_dir = cfg.data_dir.join("private");
    let private = Arc::new(FileStorage::new(&private_dir)?);
    restrict_permissions(&private_dir);
    let public: Arc<dyn Storage> = match &cfg.public {
        PublicStore::File => Arc::new(FileStorage::new(cfg.data_dir.join("public"))?),
        PublicStore::S3(s3) => {
            let st = S3Storage::new(s3.clone()).await;
            st.ensure_bucket().await?;
            Arc::new(st)
        }
    };
    let sealer: Arc<dyn Sealer> = Arc::new(PlaintextSealer::new());
    let signer = load_or_create_signing_key(private.as_ref(), sealer.as_ref()).await?;
    info!(
        mode = "centralized-dev",
        attestation = "not used by the centralized core yet (kms-nsm mock/device providers exist; attested TLS joins with the party transport)",
        transport = "TCP gRPC",
        sealing = sealer.name(),
        public_storage = %public.base_uri(),
        private_storage = %private.base_uri(),
        signer = %format!("0x{}", hex::encode(signer.address())),
        "starting KMS core in DEVELOPER MODE"
    );
    let backend = Arc::new(CentralizedEngine::new(signer, cfg.domain.clone()));
    let core = Core::start(backend, public, private, sealer, cfg.parallel_jobs).await?;
    let listener = TcpListener::bind(cfg.listen).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let svc = CoreServiceImpl::new(core.clone(), "centralized-dev").into_server();
    let task = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(
                tokio_stream::wrappers::TcpListenerStream::new(listener),
                async {
                    let _ = rx.await;
                },
            ),
    );
    info!(%addr, "listening");
    Ok(DevServer {
        addr,
        core,
        shutdown: Some(tx),
        task,
    })
}

fn restrict_permissions(dir: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Err(e) = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)) {
            warn!(dir = %dir.display(), error = %e, "could not restrict the private folder to its owner");
        }
    }
}

/// **Developer mode only**: reads the client key of `key_id` from a developer-mode core's data
/// folder (sealed with the plaintext sealer). Used by the insecure dealer that stands in for the
/// DKG, and by tests that need tfhe-rs's own decryption as the truth.
pub async fn dev_client_key(
    data_dir: &std::path::Path,
    key_id: &kms_types::RequestId,
) -> Result<kms_engine::tfhe::ClientKey, String> {
    use kms_types::{DataType, StorageKey};
    let st = FileStorage::new(data_dir.join("private")).map_err(|e| e.to_string())?;
    let key = StorageKey::private(DataType::FheKeyInfo, *key_id);
    let sealed = st
        .get(&key)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no sealed key {key_id}"))?;
    let raw = PlaintextSealer::new()
        .unseal(&key.path(), &sealed)
        .await
        .map_err(|e| e.to_string())?;
    kms_engine::decode_private_key(&raw)
        .map(|(_, ck)| ck)
        .map_err(|e| e.to_string())
}
