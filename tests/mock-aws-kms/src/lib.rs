//! A local AWS KMS endpoint for tests.
//!
//! It speaks the KMS JSON protocol (`X-Amz-Target: TrentService.GenerateDataKey` and
//! `TrentService.Decrypt`) over HTTPS with a certificate from its own CA, and enforces what a
//! production key policy with `kms:RecipientAttestation` conditions enforces: a request without
//! a `Recipient` is denied, and the `Recipient`'s attestation document must verify (signature
//! chain to the configured root, freshness, not debug mode) with PCR0/1/2 equal to the
//! policy's. Ciphertext blobs are bound to the request's `EncryptionContext`, as KMS binds
//! them. The data key then leaves only as `CiphertextForRecipient` ([`cms::envelope`]),
//! never in the clear. The `Authorization` header must name the configured access key ID (the
//! SigV4 signature itself is not checked).
//!
//! moto ignores `Recipient` and LocalStack does not check the document, so neither can test
//! this path.

pub mod cms;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use kms_attestation::{PinnedRoot, Policy, Release};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The host name the endpoint's certificate is for.
pub const HOST_NAME: &str = "kms.mock-region.amazonaws.test";

/// One KMS key and its key policy.
#[derive(Clone, Debug)]
pub struct MockKey {
    /// Its ARN.
    pub arn: String,
    /// The PCR0/1/2 the policy requires of the recipient's attestation document.
    pub pcrs: [[u8; 48]; 3],
}

/// What the endpoint counts.
#[derive(Debug, Default)]
pub struct Counters {
    /// Data keys released (as CiphertextForRecipient).
    pub released: AtomicUsize,
    /// Requests denied by the key policy.
    pub denied: AtomicUsize,
}

struct State {
    keys: Vec<(MockKey, Aes256Gcm)>,
    root: PinnedRoot,
    access_key_id: String,
    now: Box<dyn Fn() -> Duration + Send + Sync>,
    counters: Arc<Counters>,
    last_error: Mutex<Option<String>>,
}

/// A running endpoint.
pub struct MockKms {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its CA certificate (DER): what a client must trust.
    pub ca_der: Vec<u8>,
    /// What it counted.
    pub counters: Arc<Counters>,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockKms {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// Certificate generation or TLS setup.
    #[error("TLS: {0}")]
    Tls(String),
    /// Binding the port.
    #[error("bind: {0}")]
    Io(#[from] std::io::Error),
}

impl MockKms {
    /// Starts an endpoint on 127.0.0.1 holding `keys`, verifying documents against `root` at
    /// the time `now` gives, and accepting requests signed for `access_key_id`.
    pub async fn start(
        keys: Vec<MockKey>,
        root: PinnedRoot,
        access_key_id: &str,
        now: impl Fn() -> Duration + Send + Sync + 'static,
    ) -> Result<Self, MockError> {
        let tls_err = |e: rcgen::Error| MockError::Tls(e.to_string());
        let ca_key = rcgen::KeyPair::generate().map_err(tls_err)?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).map_err(tls_err)?;
        let leaf_key = rcgen::KeyPair::generate().map_err(tls_err)?;
        let leaf = rcgen::CertificateParams::new(vec![HOST_NAME.to_string()])
            .map_err(tls_err)?
            .signed_by(&leaf_key, &rcgen::Issuer::new(ca_params, &ca_key))
            .map_err(tls_err)?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| MockError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .map_err(|e| MockError::Tls(e.to_string()))?;
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let state = Arc::new(State {
            keys: keys
                .into_iter()
                .map(|k| {
                    let mut master = [0u8; 32];
                    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut master);
                    (k, Aes256Gcm::new(&master.into()))
                })
                .collect(),
            root,
            access_key_id: access_key_id.into(),
            now: Box::new(now),
            counters: counters.clone(),
            last_error: Mutex::new(None),
        });
        let serving = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (acceptor, state) = (acceptor.clone(), serving.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(state.answer(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Ok(Self {
            addr,
            ca_der: ca_cert.der().to_vec(),
            counters,
            state,
            task,
        })
    }

    /// The last error the endpoint answered with (`"Code: message"`).
    pub fn last_error(&self) -> Option<String> {
        self.state
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

type Reply = http::Response<Full<Bytes>>;

fn reply(status: u16, body: Value) -> Reply {
    let mut r = http::Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    r
}

struct Refusal(&'static str, String);

fn b64(v: &Value, field: &'static str) -> Result<Vec<u8>, Refusal> {
    let s = v
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| Refusal("ValidationException", format!("{field} missing")))?;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .map_err(|_| Refusal("ValidationException", format!("{field} is not base64")))
}

/// The encryption context as bound into a blob: `key=value` pairs sorted, `;`-joined.
fn context(input: &Value) -> Result<String, Refusal> {
    let Some(ctx) = input.get("EncryptionContext") else {
        return Ok(String::new());
    };
    let map = ctx
        .as_object()
        .ok_or_else(|| Refusal("ValidationException", "EncryptionContext".into()))?;
    let mut pairs: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    Ok(pairs.join(";"))
}

impl State {
    async fn answer(&self, req: http::Request<hyper::body::Incoming>) -> Reply {
        let result = self.handle(req).await;
        match result {
            Ok(body) => reply(200, body),
            Err(Refusal(code, message)) => {
                if code == "AccessDeniedException" {
                    self.counters.denied.fetch_add(1, Ordering::SeqCst);
                }
                tracing::info!(code, message, "mock KMS refused");
                *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some(format!("{code}: {message}"));
                reply(400, json!({"__type": code, "message": message}))
            }
        }
    }

    async fn handle(&self, req: http::Request<hyper::body::Incoming>) -> Result<Value, Refusal> {
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let target = header("x-amz-target");
        let auth = header("authorization");
        if !auth.contains(&format!("Credential={}/", self.access_key_id)) {
            return Err(Refusal(
                "UnrecognizedClientException",
                "the request is not signed with a known access key".into(),
            ));
        }
        let body = Limited::new(req.into_body(), 1 << 20)
            .collect()
            .await
            .map_err(|_| Refusal("ValidationException", "body".into()))?
            .to_bytes();
        let input: Value = serde_json::from_slice(&body)
            .map_err(|_| Refusal("SerializationException", "not JSON".into()))?;
        match target.as_str() {
            "TrentService.GenerateDataKey" => self.generate_data_key(&input),
            "TrentService.Decrypt" => self.decrypt(&input),
            other => Err(Refusal(
                "UnknownOperationException",
                format!("{other} is not served here"),
            )),
        }
    }

    fn key(&self, id: Option<&str>) -> Result<&(MockKey, Aes256Gcm), Refusal> {
        let id = id.ok_or_else(|| Refusal("ValidationException", "KeyId missing".into()))?;
        self.keys
            .iter()
            .find(|(k, _)| k.arn == id)
            .ok_or_else(|| Refusal("NotFoundException", format!("key {id} does not exist")))
    }

    /// The key policy: a Recipient whose document verifies with the key's PCRs; returns the
    /// recipient's public key.
    fn admit(&self, key: &MockKey, input: &Value) -> Result<Vec<u8>, Refusal> {
        let recipient = input.get("Recipient").ok_or_else(|| {
            Refusal(
                "AccessDeniedException",
                "the key policy requires kms:RecipientAttestation".into(),
            )
        })?;
        if recipient
            .get("KeyEncryptionAlgorithm")
            .and_then(Value::as_str)
            != Some("RSAES_OAEP_SHA_256")
        {
            return Err(Refusal(
                "ValidationException",
                "KeyEncryptionAlgorithm must be RSAES_OAEP_SHA_256".into(),
            ));
        }
        let document = b64(recipient, "AttestationDocument")?;
        let policy = Policy::production(vec![Release::from_image("key policy", key.pcrs)], 300);
        let verified =
            kms_attestation::verify_document(&document, &self.root, &policy, (self.now)())
                .map_err(|e| Refusal("AccessDeniedException", format!("attestation: {e}")))?;
        verified.document.public_key.ok_or_else(|| {
            Refusal(
                "ValidationException",
                "the attestation document binds no public key".into(),
            )
        })
    }

    fn release(&self, public_key: &[u8], data_key: &[u8]) -> Result<String, Refusal> {
        let cms = cms::envelope(public_key, data_key)
            .map_err(|e| Refusal("ValidationException", e.to_string()))?;
        self.counters.released.fetch_add(1, Ordering::SeqCst);
        Ok(base64::engine::general_purpose::STANDARD.encode(cms))
    }

    fn generate_data_key(&self, input: &Value) -> Result<Value, Refusal> {
        let (key, master) = self.key(input.get("KeyId").and_then(Value::as_str))?;
        if input.get("KeySpec").and_then(Value::as_str) != Some("AES_256") {
            return Err(Refusal(
                "ValidationException",
                "KeySpec must be AES_256".into(),
            ));
        }
        let public_key = self.admit(key, input)?;
        let mut data_key = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut data_key);
        let mut nonce = [0u8; 12];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        let aad = format!("{}|{}", key.arn, context(input)?);
        let ct = master
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &data_key,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| Refusal("KMSInternalException", "encrypt".into()))?;
        let blob = [&nonce[..], &ct].concat();
        Ok(json!({
            "KeyId": key.arn,
            "CiphertextBlob": base64::engine::general_purpose::STANDARD.encode(blob),
            "CiphertextForRecipient": self.release(&public_key, &data_key)?,
        }))
    }

    fn decrypt(&self, input: &Value) -> Result<Value, Refusal> {
        let (key, master) = self.key(input.get("KeyId").and_then(Value::as_str))?;
        let blob = b64(input, "CiphertextBlob")?;
        let public_key = self.admit(key, input)?;
        let (nonce, ct) = blob
            .split_first_chunk::<12>()
            .ok_or_else(|| Refusal("InvalidCiphertextException", "too short".into()))?;
        let aad = format!("{}|{}", key.arn, context(input)?);
        let data_key = master
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| {
                Refusal(
                    "InvalidCiphertextException",
                    "not a blob of this key".into(),
                )
            })?;
        Ok(json!({
            "KeyId": key.arn,
            "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
            "CiphertextForRecipient": self.release(&public_key, &data_key)?,
        }))
    }
}
