//! The request-processing core.

use crate::registry::{Admission, Failure, Output, Registry, RequestKind, State};
use kms_engine::{Backend, EngineError, SignedHandle};
use kms_types::{
    CanonicalRequest, CrsGenRequest, DataType, KeyGenRequest, PublicDecryptionRequest, RequestId,
    Sealer, Storage, StorageKey, UserDecryptionRequest, Visibility,
};
use std::sync::{Arc, Mutex};
use tokio::sync::Semaphore;
use tracing::{error, info, warn};

/// Why a call was refused or a result is not available.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// No request with this ID.
    #[error("no request {0}")]
    NotFound(RequestId),
    /// The request is still running.
    #[error("request {0} is not done yet: {1}")]
    Pending(RequestId, &'static str),
    /// The ID is already used by a different request.
    #[error("request ID {0} is already used by a different request")]
    Conflict(RequestId),
    /// The ID names a request of another kind.
    #[error("request {0} is not a {1:?} request")]
    WrongKind(RequestId, RequestKind),
    /// The request is invalid (bad ciphertext, bad client key, bad parameters, …).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The key set is unknown.
    #[error("unknown key: {0}")]
    UnknownKey(String),
    /// Storage, sealing or another internal failure.
    #[error("internal error: {0}")]
    Internal(String),
    /// Too many requests are running; retry later.
    #[error("too many requests in progress")]
    Busy,
}

impl From<Failure> for CoreError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Invalid(m) => CoreError::Invalid(m),
            Failure::UnknownKey(m) => CoreError::UnknownKey(m),
            Failure::Internal(m) => CoreError::Internal(m),
        }
    }
}

fn classify(e: &EngineError) -> Failure {
    match e {
        EngineError::UnknownKey(_) => Failure::UnknownKey(e.to_string()),
        EngineError::MalformedCiphertext { .. }
        | EngineError::KeyMismatch { .. }
        | EngineError::InvalidRequest(_)
        | EngineError::Signcryption(_) => Failure::Invalid(e.to_string()),
        EngineError::Signing(_) | EngineError::Tfhe(_) | EngineError::CorruptPrivate(_) => {
            Failure::Internal(e.to_string())
        }
    }
}

/// Private bookkeeping of a finished key or CRS generation, sealed and stored so the core can
/// restore it at start-up.
#[derive(serde::Serialize, serde::Deserialize)]
struct Record {
    fingerprint: String,
    handles: Vec<SignedHandle>,
}

/// A finished decryption, sealed and stored before it is reported done, so that it can leave
/// the bounded in-memory table and still be answered (the same result) later.
#[derive(serde::Serialize, serde::Deserialize)]
struct DecryptionRecord {
    user: bool,
    fingerprint: String,
    /// The protobuf encoding of the gRPC response.
    response: String,
}

fn encode_decryption(id: &RequestId, out: &Output, signer: &[u8; 20]) -> Option<(bool, Vec<u8>)> {
    use prost::Message;
    match out {
        Output::PublicDecrypt(d) => Some((false, kms_convert::decryption_to_pb(d).encode_to_vec())),
        Output::UserDecrypt(s) => Some((
            true,
            kms_convert::user_response_to_pb(
                id,
                s.envelope.as_bytes(),
                &s.response_signature,
                signer,
            )
            .encode_to_vec(),
        )),
        _ => None,
    }
}

fn decode_decryption(user: bool, bytes: &[u8]) -> Result<Output, CoreError> {
    use kms_grpc::v1 as pb;
    use prost::Message;
    if user {
        let m = pb::UserDecryptionResponse::decode(bytes).map_err(internal)?;
        let (envelope, sig) = kms_convert::user_response_from_pb(m).map_err(internal)?;
        Ok(Output::UserDecrypt(
            kms_signcryption::Signcrypted::from_parts(envelope, sig).map_err(internal)?,
        ))
    } else {
        let m = pb::PublicDecryptionResponse::decode(bytes).map_err(internal)?;
        Ok(Output::PublicDecrypt(
            kms_convert::decryption_from_pb(&m).map_err(internal)?,
        ))
    }
}

/// The core: one per KMS party.
pub struct Core {
    backend: Arc<dyn Backend>,
    public: Arc<dyn Storage>,
    private: Arc<dyn Storage>,
    sealer: Arc<dyn Sealer>,
    registry: Mutex<Registry>,
    jobs: Semaphore,
}

fn internal_failure(e: impl std::fmt::Display) -> Failure {
    Failure::Internal(e.to_string())
}

fn internal(e: impl std::fmt::Display) -> CoreError {
    CoreError::Internal(e.to_string())
}

impl Core {
    /// Builds a core and restores every finished key set and CRS found in storage.
    /// `parallel_jobs` bounds the CPU-heavy jobs running at once.
    pub async fn start(
        backend: Arc<dyn Backend>,
        public: Arc<dyn Storage>,
        private: Arc<dyn Storage>,
        sealer: Arc<dyn Sealer>,
        parallel_jobs: usize,
    ) -> Result<Arc<Self>, CoreError> {
        Self::start_with_limits(
            backend,
            public,
            private,
            sealer,
            parallel_jobs,
            crate::registry::MAX_PENDING,
            crate::registry::MAX_FINISHED_DECRYPTIONS,
        )
        .await
    }

    /// Like [`Self::start`], with the request table's bounds: at most `max_pending` requests
    /// running or queued, at most `max_finished` finished decryptions in memory (the rest are
    /// reloaded from storage when asked for).
    pub async fn start_with_limits(
        backend: Arc<dyn Backend>,
        public: Arc<dyn Storage>,
        private: Arc<dyn Storage>,
        sealer: Arc<dyn Sealer>,
        parallel_jobs: usize,
        max_pending: usize,
        max_finished: usize,
    ) -> Result<Arc<Self>, CoreError> {
        let core = Arc::new(Self {
            backend,
            public,
            private,
            sealer,
            registry: Mutex::new(Registry::with_limits(max_pending, max_finished)),
            jobs: Semaphore::new(parallel_jobs.max(1)),
        });
        core.restore().await?;
        Ok(core)
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    /// Base URI of public material.
    pub fn public_base_uri(&self) -> String {
        self.public.base_uri()
    }

    async fn read_sealed(&self, key: StorageKey) -> Result<zeroize::Zeroizing<Vec<u8>>, CoreError> {
        let sealed = self
            .private
            .get(&key)
            .await
            .map_err(internal)?
            .ok_or_else(|| CoreError::Internal(format!("missing {}", key.path())))?;
        self.sealer
            .unseal(&key.path(), &sealed)
            .await
            .map_err(internal)
    }

    async fn write_sealed(&self, key: StorageKey, data: &[u8]) -> Result<(), CoreError> {
        let sealed = self
            .sealer
            .seal(&key.path(), data)
            .await
            .map_err(internal)?;
        self.private.put(&key, &sealed).await.map_err(internal)
    }

    async fn restore(&self) -> Result<(), CoreError> {
        for (record_type, kind) in [
            (DataType::KeyGenRecord, RequestKind::KeyGen),
            (DataType::CrsRecord, RequestKind::CrsGen),
        ] {
            let ids = self
                .private
                .list(Visibility::Private, record_type)
                .await
                .map_err(internal)?;
            for id in ids {
                match self.restore_one(id, record_type, kind).await {
                    Ok(()) => info!(request_id = %id, ?kind, "restored"),
                    Err(e) => {
                        error!(request_id = %id, ?kind, error = %e, "could not restore; skipping")
                    }
                }
            }
        }
        Ok(())
    }

    async fn restore_one(
        &self,
        id: RequestId,
        record_type: DataType,
        kind: RequestKind,
    ) -> Result<(), CoreError> {
        let raw = self
            .read_sealed(StorageKey::private(record_type, id))
            .await?;
        let record: Record = serde_json::from_slice(&raw).map_err(internal)?;
        let mut fp = [0u8; 32];
        hex::decode_to_slice(&record.fingerprint, &mut fp).map_err(internal)?;
        let out = match kind {
            RequestKind::KeyGen => {
                let blob = self
                    .read_sealed(StorageKey::private(DataType::FheKeyInfo, id))
                    .await?;
                let backend = self.backend.clone();
                tokio::task::spawn_blocking(move || backend.load_key(id, &blob))
                    .await
                    .map_err(internal)?
                    .map_err(internal)?;
                Output::KeyGen(record.handles)
            }
            _ => Output::CrsGen(
                record
                    .handles
                    .into_iter()
                    .next()
                    .ok_or_else(|| CoreError::Internal("empty CRS record".into()))?,
            ),
        };
        self.lock().insert_done(id, kind, fp, out);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A poisoned lock only means a panic elsewhere while holding it; the table itself is
        // always consistent (every update is a single insert or assignment).
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn admit(&self, id: RequestId, kind: RequestKind, fp: [u8; 32]) -> Result<bool, CoreError> {
        match self.lock().admit(id, kind, fp) {
            Admission::Start => Ok(true),
            Admission::Duplicate => Ok(false),
            Admission::Conflict => Err(CoreError::Conflict(id)),
            Admission::Busy => Err(CoreError::Busy),
        }
    }

    /// Brings a finished decryption evicted from memory back from storage, if there is one.
    async fn reload_decryption(&self, id: &RequestId) -> Result<(), CoreError> {
        if self.lock().get(id).is_some() {
            return Ok(());
        }
        let key = StorageKey::private(DataType::DecryptionRecord, *id);
        let Some(sealed) = self.private.get(&key).await.map_err(internal)? else {
            return Ok(());
        };
        let raw = self
            .sealer
            .unseal(&key.path(), &sealed)
            .await
            .map_err(internal)?;
        let record: DecryptionRecord = serde_json::from_slice(&raw).map_err(internal)?;
        let mut fp = [0u8; 32];
        hex::decode_to_slice(&record.fingerprint, &mut fp).map_err(internal)?;
        let out = decode_decryption(
            record.user,
            &hex::decode(&record.response).map_err(internal)?,
        )?;
        let kind = if record.user {
            RequestKind::UserDecrypt
        } else {
            RequestKind::PublicDecrypt
        };
        self.lock().insert_done(*id, kind, fp, out);
        Ok(())
    }

    async fn store_decryption(
        &self,
        id: RequestId,
        fingerprint: [u8; 32],
        out: &Output,
    ) -> Result<(), CoreError> {
        let (user, response) = encode_decryption(&id, out, &self.backend.signer_address())
            .ok_or_else(|| CoreError::Internal("not a decryption".into()))?;
        let record = DecryptionRecord {
            user,
            fingerprint: hex::encode(fingerprint),
            response: hex::encode(response),
        };
        let raw = serde_json::to_vec(&record).map_err(internal)?;
        self.write_sealed(StorageKey::private(DataType::DecryptionRecord, id), &raw)
            .await
    }

    fn set(&self, id: RequestId, state: State) {
        self.lock().set(id, state);
    }

    fn check_key(&self, key_id: &RequestId) -> Result<(), CoreError> {
        if self.backend.has_key(key_id) {
            Ok(())
        } else {
            Err(CoreError::UnknownKey(format!("no key set {key_id}")))
        }
    }

    /// Starts a key generation. Returns its ID (derived from the request) at once.
    pub fn keygen(self: &Arc<Self>, req: KeyGenRequest) -> Result<RequestId, CoreError> {
        let id = req.request_id();
        if !self.admit(id, RequestKind::KeyGen, req.fingerprint())? {
            return Ok(id);
        }
        let core = self.clone();
        tokio::spawn(async move {
            let state = match core.run_keygen(id, &req).await {
                Ok(handles) => {
                    info!(request_id = %id, "key generation done");
                    State::Done(Arc::new(Output::KeyGen(handles)))
                }
                Err(f) => {
                    error!(request_id = %id, failure = ?f, "key generation failed");
                    State::Failed(f)
                }
            };
            core.set(id, state);
        });
        Ok(id)
    }

    async fn run_keygen(
        self: &Arc<Self>,
        id: RequestId,
        req: &KeyGenRequest,
    ) -> Result<Vec<SignedHandle>, Failure> {
        let _permit = self.jobs.acquire().await.map_err(internal_failure)?;
        let (core, r) = (self.clone(), req.clone());
        let out = tokio::task::spawn_blocking(move || {
            core.backend.keygen(&r, &mut |stage| {
                info!(request_id = %id, "keygen: {}", stage.describe());
                core.set(id, State::Running(stage.describe()));
            })
        })
        .await
        .map_err(internal_failure)?
        .map_err(|e| classify(&e))?;
        self.set(
            id,
            State::Running("storing public and sealed private material"),
        );
        for (handle, bytes) in &out.public {
            self.public
                .put(&handle.storage_key(), bytes)
                .await
                .map_err(internal_failure)?;
        }
        self.write_sealed(
            StorageKey::private(DataType::FheKeyInfo, id),
            &out.private.0,
        )
        .await
        .map_err(internal_failure)?;
        let handles: Vec<SignedHandle> = out.public.iter().map(|(h, _)| h.clone()).collect();
        let record = Record {
            fingerprint: hex::encode(req.fingerprint()),
            handles: handles.clone(),
        };
        let raw = serde_json::to_vec(&record).map_err(internal_failure)?;
        self.write_sealed(StorageKey::private(DataType::KeyGenRecord, id), &raw)
            .await
            .map_err(internal_failure)?;
        self.backend.activate(out.pending);
        Ok(handles)
    }

    /// Starts a CRS generation. Returns its ID (derived from the request) at once.
    pub fn crs_gen(self: &Arc<Self>, req: CrsGenRequest) -> Result<RequestId, CoreError> {
        let id = req.request_id();
        if req.max_num_bits == 0 || req.max_num_bits > kms_engine::MAX_CRS_BITS {
            return Err(CoreError::Invalid(format!(
                "max_num_bits must be in 1..={}",
                kms_engine::MAX_CRS_BITS
            )));
        }
        if !self.admit(id, RequestKind::CrsGen, req.fingerprint())? {
            return Ok(id);
        }
        let core = self.clone();
        tokio::spawn(async move {
            let state = match core.run_crs(id, &req).await {
                Ok(h) => State::Done(Arc::new(Output::CrsGen(h))),
                Err(f) => {
                    error!(request_id = %id, failure = ?f, "CRS generation failed");
                    State::Failed(f)
                }
            };
            core.set(id, state);
        });
        Ok(id)
    }

    async fn run_crs(
        self: &Arc<Self>,
        id: RequestId,
        req: &CrsGenRequest,
    ) -> Result<SignedHandle, Failure> {
        let _permit = self.jobs.acquire().await.map_err(internal_failure)?;
        self.set(id, State::Running("generating CRS"));
        let (core, r) = (self.clone(), req.clone());
        let out = tokio::task::spawn_blocking(move || core.backend.crs_gen(&r))
            .await
            .map_err(internal_failure)?
            .map_err(|e| classify(&e))?;
        self.set(id, State::Running("storing CRS"));
        self.public
            .put(&out.handle.storage_key(), &out.bytes)
            .await
            .map_err(internal_failure)?;
        let record = Record {
            fingerprint: hex::encode(req.fingerprint()),
            handles: vec![out.handle.clone()],
        };
        let raw = serde_json::to_vec(&record).map_err(internal_failure)?;
        self.write_sealed(StorageKey::private(DataType::CrsRecord, id), &raw)
            .await
            .map_err(internal_failure)?;
        Ok(out.handle)
    }

    fn check_batch(n: usize) -> Result<(), CoreError> {
        if n == 0 || n > kms_engine::MAX_BATCH {
            return Err(CoreError::Invalid(format!(
                "a request holds 1..={} ciphertexts, got {n}",
                kms_engine::MAX_BATCH
            )));
        }
        Ok(())
    }

    /// Starts a public decryption. Returns its ID (derived from the request) at once.
    pub async fn public_decrypt(
        self: &Arc<Self>,
        req: PublicDecryptionRequest,
    ) -> Result<RequestId, CoreError> {
        let id = req.request_id();
        Self::check_batch(req.ciphertexts.len())?;
        self.check_key(&req.key_id)?;
        let fp = req.fingerprint();
        self.start_decryption(id, RequestKind::PublicDecrypt, fp, move |b| {
            b.public_decrypt(&req).map(Output::PublicDecrypt)
        })
        .await
    }

    /// Starts a user decryption. Returns its ID (derived from the request) at once.
    pub async fn user_decrypt(
        self: &Arc<Self>,
        req: UserDecryptionRequest,
    ) -> Result<RequestId, CoreError> {
        let id = req.request_id();
        Self::check_batch(req.ciphertexts.len())?;
        kms_signcryption::ClientPublicKey::from_bytes(&req.client_encryption_key)
            .map_err(|e| CoreError::Invalid(e.to_string()))?;
        self.check_key(&req.key_id)?;
        let fp = req.fingerprint();
        self.start_decryption(id, RequestKind::UserDecrypt, fp, move |b| {
            b.user_decrypt(&req).map(Output::UserDecrypt)
        })
        .await
    }

    /// Admits a decryption (after bringing back a stored result of the same ID, so that a repeat
    /// of an evicted request is a duplicate, not a new job) and starts it if it is new.
    async fn start_decryption(
        self: &Arc<Self>,
        id: RequestId,
        kind: RequestKind,
        fingerprint: [u8; 32],
        job: impl FnOnce(&dyn Backend) -> Result<Output, EngineError> + Send + 'static,
    ) -> Result<RequestId, CoreError> {
        self.reload_decryption(&id).await?;
        if self.admit(id, kind, fingerprint)? {
            self.spawn_decryption(id, fingerprint, job);
        }
        Ok(id)
    }

    fn spawn_decryption(
        self: &Arc<Self>,
        id: RequestId,
        fingerprint: [u8; 32],
        job: impl FnOnce(&dyn Backend) -> Result<Output, EngineError> + Send + 'static,
    ) {
        let core = self.clone();
        tokio::spawn(async move {
            let state = match core.jobs.acquire().await {
                Err(e) => State::Failed(Failure::Internal(e.to_string())),
                Ok(_permit) => {
                    core.set(id, State::Running("decrypting"));
                    let c2 = core.clone();
                    match tokio::task::spawn_blocking(move || job(c2.backend.as_ref())).await {
                        Ok(Ok(out)) => match core.store_decryption(id, fingerprint, &out).await {
                            Ok(()) => State::Done(Arc::new(out)),
                            Err(e) => State::Failed(Failure::Internal(e.to_string())),
                        },
                        Ok(Err(e)) => {
                            warn!(request_id = %id, error = %e, "decryption refused");
                            State::Failed(classify(&e))
                        }
                        Err(e) => State::Failed(Failure::Internal(e.to_string())),
                    }
                }
            };
            core.set(id, state);
        });
    }

    /// The result of request `id`, which must be of kind `kind`.
    pub async fn result(
        &self,
        id: &RequestId,
        kind: RequestKind,
    ) -> Result<Arc<Output>, CoreError> {
        if matches!(kind, RequestKind::PublicDecrypt | RequestKind::UserDecrypt) {
            self.reload_decryption(id).await?;
        }
        let reg = self.lock();
        let entry = reg.get(id).ok_or(CoreError::NotFound(*id))?;
        if entry.kind != kind {
            return Err(CoreError::WrongKind(*id, kind));
        }
        match &entry.state {
            State::Running(stage) => Err(CoreError::Pending(*id, stage)),
            State::Done(out) => Ok(out.clone()),
            State::Failed(f) => Err(f.clone().into()),
        }
    }

    /// Handles of every finished key set and CRS, ordered by request ID and type.
    pub fn public_handles(&self) -> Vec<SignedHandle> {
        let mut out: Vec<SignedHandle> = self
            .lock()
            .done_outputs()
            .iter()
            .flat_map(|o| match o.as_ref() {
                Output::KeyGen(h) => h.clone(),
                Output::CrsGen(h) => vec![h.clone()],
                _ => vec![],
            })
            .collect();
        out.sort_by(|a, b| {
            (a.request_id, a.data_type.as_str()).cmp(&(b.request_id, b.data_type.as_str()))
        });
        out
    }
}
