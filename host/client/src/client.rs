//! The gRPC client with result verification.

use kms_convert::{self as convert, ConvertError};
use kms_eip712::{Address, DomainConfig};
use kms_engine::tfhe::zk::CompactPkeCrs;
use kms_engine::tfhe::{CompactPublicKey, CompressedServerKey};
use kms_engine::{
    deserialize_public, plaintexts_of, verify_public_material, MaterialError, Plaintext,
    SignedDecryption, SignedHandle,
};
use kms_grpc::v1 as pb;
use kms_grpc::v1::core_service_client::CoreServiceClient;
use kms_signcryption::{ClientKeyPair, SigncryptionError};
use kms_storage::S3Config;
use kms_types::{
    CanonicalRequest, CrsGenRequest, DataType, FheType, KeyGenRequest, ParamSetName,
    PublicDecryptionRequest, RequestId, StorageError, TypedCiphertext, UserDecryptionRequest,
};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::Code;

/// Why a client call failed. Verification failures are distinct from transport failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect.
    #[error("cannot connect to {0}: {1}")]
    Connect(String, String),
    /// The server answered with an error status.
    #[error("KMS refused: {0}")]
    Rpc(#[from] tonic::Status),
    /// The response is malformed.
    #[error("malformed response: {0}")]
    Malformed(#[from] ConvertError),
    /// A signature is not by the expected signer.
    #[error("signature check failed: {0}")]
    Signature(#[from] kms_eip712::Eip712Error),
    /// Downloaded public material failed verification.
    #[error("public material rejected: {0}")]
    Material(#[from] MaterialError),
    /// A user-decryption envelope failed.
    #[error("user decryption response rejected: {0}")]
    Signcryption(#[from] SigncryptionError),
    /// The response does not answer the request (other ID, key, digests or types).
    #[error("response does not match the request: {0}")]
    Mismatch(&'static str),
    /// Downloading failed.
    #[error("download failed: {0}")]
    Storage(#[from] StorageError),
    /// The result did not arrive in time.
    #[error("request {0} not done after {1:?}")]
    Timeout(RequestId, Duration),
    /// Other engine-level decoding failure.
    #[error("{0}")]
    Engine(#[from] kms_engine::EngineError),
}

/// Polling of `Get*` calls.
#[derive(Clone, Copy, Debug)]
pub struct PollConfig {
    /// First interval; doubles up to `max_interval`.
    pub interval: Duration,
    /// Largest interval.
    pub max_interval: Duration,
    /// Give up after this long.
    pub timeout: Duration,
}

impl Default for PollConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(20),
            max_interval: Duration::from_millis(500),
            timeout: Duration::from_secs(1800),
        }
    }
}

/// A verified key-generation result.
#[derive(Clone, Debug)]
pub struct KeyGenResult {
    /// The key ID (the keygen request ID).
    pub key_id: RequestId,
    /// Handles with their URIs, signatures verified.
    pub handles: Vec<(SignedHandle, String)>,
}

/// A public key whose bytes were verified against a signed handle.
pub struct VerifiedPublicKey {
    /// The key ID.
    pub key_id: RequestId,
    /// The compact public key.
    pub public_key: CompactPublicKey,
}

/// What a client trusts about the KMS it talks to, from its own configuration (in production:
/// the config contract and the deployment's storage location), never from the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pinned {
    /// The address every result must be signed by.
    pub signer: Address,
    /// The EIP-712 domain results must be signed under: a result signed for another deployment
    /// (another chain, contract, name or version) does not verify.
    pub domain: DomainConfig,
    /// Base URI of the public material (`file:///…` or `s3://bucket/prefix`). Download URIs
    /// are derived from a handle and this base; URIs the server sends are ignored.
    pub public_base_uri: String,
}

/// A client of one KMS core.
#[derive(Clone)]
pub struct KmsClient {
    rpc: CoreServiceClient<Channel>,
    trust: Pinned,
    s3: Option<S3Config>,
    poll: PollConfig,
}

impl KmsClient {
    /// Connects to `endpoint` (e.g. `http://127.0.0.1:50051`). With `pinned`, the server must
    /// report that signer and domain, and results are verified against the pinned values only.
    /// Without it (developer mode only) the signer, domain and public base URI the server reports
    /// in `Health` are trusted for the whole session.
    pub async fn connect(endpoint: &str, pinned: Option<Pinned>) -> Result<Self, ClientError> {
        let channel = Channel::from_shared(endpoint.to_string())
            .map_err(|e| ClientError::Connect(endpoint.into(), e.to_string()))?
            .connect()
            .await
            .map_err(|e| ClientError::Connect(endpoint.into(), e.to_string()))?;
        let mut rpc = CoreServiceClient::new(channel)
            .max_decoding_message_size(kms_grpc::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(kms_grpc::MAX_MESSAGE_BYTES);
        let h = rpc.health(pb::HealthRequest {}).await?.into_inner();
        let reported: Address = h
            .signer_address
            .as_slice()
            .try_into()
            .map_err(|_| ClientError::Mismatch("signer address length"))?;
        let reported_domain = convert::domain_from_pb(h.domain.as_ref())?;
        let trust = match pinned {
            Some(p) if p.signer != reported => {
                return Err(ClientError::Mismatch(
                    "server reports another signer than the pinned one",
                ))
            }
            Some(p) if p.domain != reported_domain => {
                return Err(ClientError::Mismatch(
                    "server reports another EIP-712 domain than the pinned one",
                ))
            }
            Some(p) => p,
            None => Pinned {
                signer: reported,
                domain: reported_domain,
                public_base_uri: h.storage_base_uri,
            },
        };
        Ok(Self {
            rpc,
            trust,
            s3: None,
            poll: PollConfig::default(),
        })
    }

    /// What this client verifies results against.
    pub fn trust(&self) -> &Pinned {
        &self.trust
    }

    /// Sets how `s3://` URIs are reached.
    pub fn with_s3(mut self, s3: S3Config) -> Self {
        self.s3 = Some(s3);
        self
    }

    /// Sets the polling behaviour.
    pub fn with_poll(mut self, poll: PollConfig) -> Self {
        self.poll = poll;
        self
    }

    /// The signer results are checked against.
    pub fn signer(&self) -> Address {
        self.trust.signer
    }

    /// The EIP-712 domain results are checked against.
    pub fn domain(&self) -> &DomainConfig {
        &self.trust.domain
    }

    /// The raw gRPC client, for calls this library does not wrap.
    pub fn rpc(&mut self) -> &mut CoreServiceClient<Channel> {
        &mut self.rpc
    }

    async fn poll<T, F, Fut>(
        &self,
        id: RequestId,
        mut f: F,
        mut on_pending: impl FnMut(&str),
    ) -> Result<T, ClientError>
    where
        F: FnMut(pb::RequestId) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let start = Instant::now();
        let mut wait = self.poll.interval;
        loop {
            match f(convert::id_to_pb(&id)).await {
                Ok(r) => return Ok(r.into_inner()),
                Err(s) if s.code() == Code::Unavailable => on_pending(s.message()),
                Err(s) => return Err(s.into()),
            }
            if start.elapsed() > self.poll.timeout {
                return Err(ClientError::Timeout(id, self.poll.timeout));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(self.poll.max_interval);
        }
    }

    /// Verifies handles; each comes with the URI derived from it and the pinned base (the URI
    /// the server sent is not used).
    fn verify_handles(
        &self,
        id: &RequestId,
        handles: &[pb::PublicMaterialHandle],
    ) -> Result<Vec<(SignedHandle, String)>, ClientError> {
        handles
            .iter()
            .map(|h| {
                let (h, _server_uri) = convert::handle_from_pb(h)?;
                if &h.request_id != id {
                    return Err(ClientError::Mismatch("handle for another request"));
                }
                h.verify_signature(self.domain(), &self.trust.signer)?;
                let uri = h.uri(&self.trust.public_base_uri);
                Ok((h, uri))
            })
            .collect()
    }

    /// Runs a key generation and waits for it; `progress` sees the server's stage messages.
    pub async fn keygen(
        &mut self,
        params: ParamSetName,
        label: &str,
        mut progress: impl FnMut(&str),
    ) -> Result<KeyGenResult, ClientError> {
        let req = KeyGenRequest {
            params,
            label: label.into(),
        };
        let id = req.request_id();
        self.rpc
            .key_gen(pb::KeyGenRequest {
                request_id: Some(convert::id_to_pb(&id)),
                params: params.as_str().into(),
                label: label.into(),
            })
            .await?;
        let rpc = self.rpc.clone();
        let mut last = String::new();
        let res = self
            .poll(
                id,
                |i| {
                    let mut r = rpc.clone();
                    async move { r.get_key_gen_result(i).await }
                },
                |m| {
                    // The server's message is "request … is not done yet: <stage>".
                    let stage = m.split_once("not done yet: ").map_or(m, |(_, s)| s);
                    if stage != last {
                        progress(stage);
                        last = stage.to_string();
                    }
                },
            )
            .await?;
        let handles = self.verify_handles(&id, &res.handles)?;
        let types: Vec<DataType> = handles.iter().map(|(h, _)| h.data_type).collect();
        if !types.contains(&DataType::ServerKey) || !types.contains(&DataType::PublicKey) {
            return Err(ClientError::Mismatch(
                "key generation result lacks a server or public key",
            ));
        }
        Ok(KeyGenResult {
            key_id: id,
            handles,
        })
    }

    /// Downloads one piece of public material from the URI derived from its handle and the
    /// pinned base, reading at most what its data type can take
    /// ([`DataType::max_public_bytes`]), and checks it against the signed handle.
    pub async fn download(&self, handle: &SignedHandle) -> Result<Vec<u8>, ClientError> {
        let limit = handle
            .data_type
            .max_public_bytes()
            .ok_or(ClientError::Mismatch("handle to private material"))?;
        let uri = handle.uri(&self.trust.public_base_uri);
        let bytes = kms_storage::fetch_uri(&uri, self.s3.as_ref(), limit).await?;
        verify_public_material(handle, &bytes, self.domain(), &self.trust.signer)?;
        Ok(bytes)
    }

    /// The verified handle of `data_type` for request `id`, from `GetPublicMaterial`.
    pub async fn handle(
        &mut self,
        id: &RequestId,
        data_type: DataType,
    ) -> Result<(SignedHandle, String), ClientError> {
        let list = self
            .rpc
            .get_public_material(pb::GetPublicMaterialRequest {})
            .await?
            .into_inner();
        let found = list
            .handles
            .iter()
            .filter(|h| {
                h.request_id.as_ref().map(|r| r.value.as_str()) == Some(id.to_string().as_str())
                    && h.data_type == data_type.as_str()
            })
            .cloned()
            .collect::<Vec<_>>();
        let mut v = self.verify_handles(id, &found)?;
        v.pop().ok_or_else(|| {
            ClientError::Rpc(tonic::Status::not_found(format!("no {data_type} for {id}")))
        })
    }

    /// Downloads and verifies the compact public key of a key set.
    pub async fn fetch_public_key(
        &mut self,
        key_id: &RequestId,
    ) -> Result<VerifiedPublicKey, ClientError> {
        let (h, _) = self.handle(key_id, DataType::PublicKey).await?;
        let bytes = self.download(&h).await?;
        Ok(VerifiedPublicKey {
            key_id: *key_id,
            public_key: deserialize_public(&bytes)?,
        })
    }

    /// Downloads and verifies the (compressed) server key of a key set.
    pub async fn fetch_server_key(
        &mut self,
        key_id: &RequestId,
    ) -> Result<CompressedServerKey, ClientError> {
        let (h, _) = self.handle(key_id, DataType::ServerKey).await?;
        let bytes = self.download(&h).await?;
        Ok(deserialize_public(&bytes)?)
    }

    /// Runs a CRS generation and returns the verified handle and URI.
    pub async fn crs_gen(
        &mut self,
        params: ParamSetName,
        max_num_bits: u32,
        label: &str,
    ) -> Result<(SignedHandle, String), ClientError> {
        let req = CrsGenRequest {
            params,
            max_num_bits,
            label: label.into(),
        };
        let id = req.request_id();
        self.rpc
            .crs_gen(pb::CrsGenRequest {
                request_id: Some(convert::id_to_pb(&id)),
                params: params.as_str().into(),
                max_num_bits,
                label: label.into(),
            })
            .await?;
        let rpc = self.rpc.clone();
        let res = self
            .poll(
                id,
                |i| {
                    let mut r = rpc.clone();
                    async move { r.get_crs_gen_result(i).await }
                },
                |_| {},
            )
            .await?;
        let h = res
            .handle
            .ok_or(ClientError::Mismatch("CRS result without handle"))?;
        let mut v = self.verify_handles(&id, std::slice::from_ref(&h))?;
        let (h, uri) = v
            .pop()
            .ok_or(ClientError::Mismatch("CRS result without handle"))?;
        if h.data_type != DataType::Crs {
            return Err(ClientError::Mismatch("CRS handle has another data type"));
        }
        Ok((h, uri))
    }

    /// Downloads and verifies a CRS.
    pub async fn fetch_crs(&self, handle: &SignedHandle) -> Result<CompactPkeCrs, ClientError> {
        let bytes = self.download(handle).await?;
        Ok(deserialize_public(&bytes)?)
    }

    /// Starts a public decryption under an explicit request ID (see [`Self::public_decrypt`]).
    pub async fn start_public_decrypt(
        &mut self,
        id: RequestId,
        req: &PublicDecryptionRequest,
    ) -> Result<(), ClientError> {
        self.rpc
            .public_decrypt(pb::PublicDecryptionRequest {
                request_id: Some(convert::id_to_pb(&id)),
                key_id: Some(convert::id_to_pb(&req.key_id)),
                ciphertexts: convert::cts_to_pb(&req.ciphertexts),
            })
            .await?;
        Ok(())
    }

    /// Waits for a public decryption and verifies it answers `req` and is signed by the KMS.
    pub async fn await_public_decrypt(
        &mut self,
        id: RequestId,
        req: &PublicDecryptionRequest,
    ) -> Result<SignedDecryption, ClientError> {
        let rpc = self.rpc.clone();
        let res = self
            .poll(
                id,
                |i| {
                    let mut r = rpc.clone();
                    async move { r.get_public_decryption_result(i).await }
                },
                |_| {},
            )
            .await?;
        let d = convert::decryption_from_pb(&res)?;
        if d.request_id != id || d.key_id != req.key_id {
            return Err(ClientError::Mismatch("request or key ID"));
        }
        let digests: Vec<[u8; 32]> = req
            .ciphertexts
            .iter()
            .map(TypedCiphertext::digest)
            .collect();
        if d.ciphertext_digests != digests {
            return Err(ClientError::Mismatch("ciphertext digests"));
        }
        let types: Vec<FheType> = req.ciphertexts.iter().map(|c| c.fhe_type).collect();
        if d.plaintexts.iter().map(|p| p.fhe_type).collect::<Vec<_>>() != types {
            return Err(ClientError::Mismatch("plaintext types"));
        }
        if d.signer != self.trust.signer {
            return Err(ClientError::Mismatch("signer"));
        }
        d.verify(self.domain(), &self.trust.signer)?;
        Ok(d)
    }

    /// Decrypts ciphertexts publicly and returns the verified, signed result.
    pub async fn public_decrypt(
        &mut self,
        key_id: RequestId,
        ciphertexts: Vec<TypedCiphertext>,
    ) -> Result<SignedDecryption, ClientError> {
        let req = PublicDecryptionRequest {
            key_id,
            ciphertexts,
        };
        let id = req.request_id();
        self.start_public_decrypt(id, &req).await?;
        self.await_public_decrypt(id, &req).await
    }

    /// User-decrypts ciphertexts: generates an ephemeral ML-KEM key, sends the request, opens and
    /// verifies the envelope, and returns the plaintexts.
    pub async fn user_decrypt(
        &mut self,
        key_id: RequestId,
        ciphertexts: Vec<TypedCiphertext>,
    ) -> Result<Vec<Plaintext>, ClientError> {
        let keys = ClientKeyPair::generate(&mut rand_core::OsRng);
        let req = UserDecryptionRequest {
            key_id,
            ciphertexts,
            client_encryption_key: keys.public().as_bytes().to_vec(),
        };
        let id = req.request_id();
        self.rpc
            .user_decrypt(pb::UserDecryptionRequest {
                request_id: Some(convert::id_to_pb(&id)),
                key_id: Some(convert::id_to_pb(&key_id)),
                ciphertexts: convert::cts_to_pb(&req.ciphertexts),
                client_encryption_key: req.client_encryption_key.clone(),
            })
            .await?;
        let rpc = self.rpc.clone();
        let res = self
            .poll(
                id,
                |i| {
                    let mut r = rpc.clone();
                    async move { r.get_user_decryption_result(i).await }
                },
                |_| {},
            )
            .await?;
        let (envelope, sig) = convert::user_response_from_pb(res)?;
        let sc = kms_signcryption::Signcrypted::from_parts(envelope, sig)?;
        let payload = kms_signcryption::open_and_verify::<kms_eip712::types::UserDecryptionPayload>(
            &keys,
            &self.trust.domain,
            &id,
            &self.trust.signer,
            &sc,
        )?;
        if payload.keyId.0 != *key_id.as_bytes() {
            return Err(ClientError::Mismatch("key ID"));
        }
        let digests: Vec<[u8; 32]> = req
            .ciphertexts
            .iter()
            .map(TypedCiphertext::digest)
            .collect();
        if payload
            .ciphertextDigests
            .iter()
            .map(|d| d.0)
            .collect::<Vec<_>>()
            != digests
        {
            return Err(ClientError::Mismatch("ciphertext digests"));
        }
        let pts = plaintexts_of(&payload)?;
        if pts
            .iter()
            .map(|p| p.fhe_type)
            .ne(req.ciphertexts.iter().map(|c| c.fhe_type))
        {
            return Err(ClientError::Mismatch("plaintext types"));
        }
        Ok(pts)
    }
}
