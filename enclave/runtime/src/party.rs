//! One party's runtime: the light client, the key share and the signing key, behind `serve`.

use crate::clock::{Clock, ClockError};
use kms_chain_types::state::RequestStatus;
use kms_chain_types::tx::{sign_tx, Fulfillment, KmsRequest, MaterialItem, Msg};
use kms_channel::{Enclave, Job, NonceError, NonceSource, Outcome, Skip};
use kms_engine::tfhe::ServerKey;
use kms_light_client::LightClient;
use kms_signcryption::ClientPublicKey;
use kms_threshold::{ThresholdError, ThresholdParty};
use kms_transport::Transport;
use kms_types::{CiphertextRef, RequestId, TypedCiphertext};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why the runtime refused or failed a job. The host logs it; a refusal never produces a
/// transaction.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The trusted clock cannot be read.
    #[error("trusted time: {0}")]
    Clock(#[from] ClockError),
    /// The evidence does not prove the request approved.
    #[error("light client refused the evidence: {0}")]
    NotProven(#[from] kms_light_client::Error),
    /// The ciphertexts handed over are not the approved ones.
    #[error("the ciphertexts handed over are not the approved ones")]
    CiphertextsNotApproved,
    /// The client key handed over is missing or is not the approved one.
    #[error("the client key handed over is missing or not the approved one")]
    ClientKeyNotApproved,
    /// No public material is held for a keygen or CRS request.
    #[error("no material for {0} (key sets and CRSs by the insecure dealer only)")]
    NoMaterial(RequestId),
    /// This runtime does not serve this kind of request yet.
    #[error("request kind {0} is not served by the party runtime")]
    Unsupported(&'static str),
    /// The threshold protocol failed or refused.
    #[error("threshold protocol: {0}")]
    Threshold(#[from] ThresholdError),
    /// Signing failed.
    #[error("signing: {0}")]
    Sign(String),
    /// The blocking squash task failed.
    #[error("squash task: {0}")]
    Task(String),
    /// The host gave no nonce for the fulfillment transaction.
    #[error(transparent)]
    Nonce(#[from] NonceError),
}

/// One party's enclave state and its `serve` entry point.
pub struct PartyRuntime {
    chain_id: String,
    light_client: Mutex<LightClient>,
    party: Arc<ThresholdParty>,
    server_key: ServerKey,
    /// Public material (data type, SHA3-256) of the key sets this party holds shares of and of
    /// the CRSs it holds.
    material: BTreeMap<RequestId, Vec<(String, [u8; 32])>>,
    clock: Arc<dyn Clock>,
    net: Arc<dyn Transport>,
    nonces: Arc<dyn NonceSource>,
    round_deadline: Duration,
}

impl std::fmt::Debug for PartyRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartyRuntime")
            .field("chain_id", &self.chain_id)
            .field("party", &self.net.me())
            .finish_non_exhaustive()
    }
}

/// What a party runtime is built from.
pub struct RuntimeParts {
    /// The KMS chain's ID (transactions are signed for it).
    pub chain_id: String,
    /// The light client, anchored at a trusted state (genesis or a sealed one).
    pub light_client: LightClient,
    /// The party's key share, PRSS state and signing key.
    pub party: Arc<ThresholdParty>,
    /// The key set's server key (squashing needs it).
    pub server_key: ServerKey,
    /// Public material of the key sets and CRSs held.
    pub material: BTreeMap<RequestId, Vec<(String, [u8; 32])>>,
    /// The trusted time source.
    pub clock: Arc<dyn Clock>,
    /// The party transport (attested TLS in production).
    pub net: Arc<dyn Transport>,
    /// Where fulfillment transactions get their nonces (the host, which leases them).
    pub nonces: Arc<dyn NonceSource>,
    /// Deadline of each protocol round.
    pub round_deadline: Duration,
}

fn refs(cts: &[TypedCiphertext]) -> Vec<CiphertextRef> {
    cts.iter().map(TypedCiphertext::to_ref).collect()
}

impl PartyRuntime {
    /// A runtime from its parts.
    pub fn new(parts: RuntimeParts) -> Self {
        Self {
            chain_id: parts.chain_id,
            light_client: Mutex::new(parts.light_client),
            party: parts.party,
            server_key: parts.server_key,
            material: parts.material,
            clock: parts.clock,
            net: parts.net,
            nonces: parts.nonces,
            round_deadline: parts.round_deadline,
        }
    }

    /// The party's signer address (as registered in the config contract).
    pub fn address(&self) -> [u8; 20] {
        self.party.signer.address()
    }

    /// The light client's trusted light block (sealed by the enclave process so a restart
    /// resumes from it instead of genesis).
    pub fn trusted_block(&self) -> kms_light_client::LightBlock {
        self.light_client
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .trusted()
            .clone()
    }

    /// Advances the light client to a newer light block (the enclave refreshes it while idle,
    /// so its trust never ages out between requests). An older or equal block is ignored.
    pub fn advance(&self, block: kms_light_client::LightBlock) -> Result<(), RuntimeError> {
        let now = self.clock.now()?;
        let mut lc = self.light_client.lock().unwrap_or_else(|p| p.into_inner());
        if block.signed_header.header.height <= lc.height() {
            return Ok(());
        }
        lc.update(block, now)?;
        Ok(())
    }

    /// Squashes on a blocking thread with the server key set there (tfhe keeps it per thread).
    async fn squash(
        &self,
        cts: Vec<TypedCiphertext>,
    ) -> Result<Vec<(TypedCiphertext, kms_threshold::SquashedCiphertext)>, RuntimeError> {
        let (party, key) = (self.party.clone(), self.server_key.clone());
        tokio::task::spawn_blocking(move || {
            kms_engine::tfhe::set_server_key(key);
            party.squash_all(&cts)
        })
        .await
        .map_err(|e| RuntimeError::Task(e.to_string()))?
        .map_err(RuntimeError::from)
    }

    /// Signs the fulfillment transaction, with the nonce the host leases for it now (not
    /// when the job was handed over: jobs of one party run concurrently).
    async fn fulfill(
        &self,
        request_id: RequestId,
        fulfillment: Fulfillment,
    ) -> Result<Outcome, RuntimeError> {
        let nonce = self.nonces.next_nonce().await?;
        Ok(Outcome::Broadcast(sign_tx(
            &self.party.signer,
            &self.chain_id,
            nonce,
            Msg::Fulfill {
                request_id,
                fulfillment,
            },
        )))
    }

    /// Serves one job: verify, act on the approved record only, sign.
    pub async fn serve_job(&self, job: Job) -> Result<Outcome, RuntimeError> {
        let started = std::time::Instant::now();
        let now = self.clock.now()?;
        let approved = {
            let mut lc = self.light_client.lock().unwrap_or_else(|p| p.into_inner());
            lc.verify_evidence(&job.evidence, now)?
        };
        let verified = started.elapsed();
        let record = approved.record;
        let me = self.address();
        if record.party_index(&me).is_none() {
            return Ok(Outcome::Skip(Skip::NotInPartySet));
        }
        if record.responded.contains(&me) {
            return Ok(Outcome::Skip(Skip::AlreadyAnswered));
        }
        let complete = matches!(record.status, RequestStatus::Completed { .. });
        // The request ID is the approved record's (the light client checked it hashes to it).
        let id = record.id;
        match record.request {
            // Key sets and CRSs: the public material this party holds, signed (dealt until the
            // DKG and the CRS ceremony land; the chain counts t + 1 agreeing parties).
            KmsRequest::KeyGen(_) | KmsRequest::CrsGen(_) => {
                if complete {
                    return Ok(Outcome::Skip(Skip::Complete));
                }
                let material = self.material.get(&id).ok_or(RuntimeError::NoMaterial(id))?;
                let items = material
                    .iter()
                    .map(|(dt, digest)| {
                        MaterialItem::signed(
                            &self.party.signer,
                            &self.party.domain,
                            &id,
                            dt,
                            *digest,
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| RuntimeError::Sign(e.to_string()))?;
                self.fulfill(id, Fulfillment::Material { items }).await
            }
            KmsRequest::PublicDecrypt(r) => {
                if complete {
                    return Ok(Outcome::Skip(Skip::Complete));
                }
                if refs(&job.ciphertexts) != r.ciphertexts {
                    return Err(RuntimeError::CiphertextsNotApproved);
                }
                let t = std::time::Instant::now();
                let squashed = self.squash(job.ciphertexts).await?;
                let squash = t.elapsed();
                let t = std::time::Instant::now();
                let d = self
                    .party
                    .decrypt_squashed(
                        self.net.as_ref(),
                        id,
                        r.key_id,
                        &squashed,
                        self.round_deadline,
                    )
                    .await?;
                let mpc = t.elapsed();
                if !d.cheaters.is_empty() || !d.absent.is_empty() {
                    tracing::warn!(request = %id, cheaters = ?d.cheaters, absent = ?d.absent, "decrypted despite faulty parties");
                }
                let plaintexts = d.signed.plaintexts.iter().flat_map(|p| p.word).collect();
                let t = std::time::Instant::now();
                let outcome = self
                    .fulfill(
                        id,
                        Fulfillment::PublicDecryption {
                            plaintexts,
                            signature: d.signed.signature.0.to_vec(),
                        },
                    )
                    .await?;
                // What `kms bench-runtime` splits a request's latency by: light-client and
                // approval verification (clock reading included), noise squashing, the
                // threshold round (sharing, exchange, robust opening, EIP-712 signing of the
                // plaintexts), signing the transaction.
                tracing::info!(
                    request = %id,
                    verify_us = verified.as_micros() as u64,
                    squash_us = squash.as_micros() as u64,
                    mpc_us = mpc.as_micros() as u64,
                    sign_us = t.elapsed().as_micros() as u64,
                    "phase timings"
                );
                Ok(outcome)
            }
            KmsRequest::UserDecrypt(r) => {
                if refs(&job.ciphertexts) != r.ciphertexts {
                    return Err(RuntimeError::CiphertextsNotApproved);
                }
                let client = job
                    .client_key
                    .as_deref()
                    .and_then(|k| ClientPublicKey::from_bytes(k).ok())
                    .filter(|k| k.digest() == r.client_key_digest)
                    .ok_or(RuntimeError::ClientKeyNotApproved)?;
                let squashed = self.squash(job.ciphertexts).await?;
                let s = self.party.user_decrypt_share(
                    id,
                    r.key_id,
                    &squashed,
                    &client,
                    &mut rand_core::OsRng,
                )?;
                self.fulfill(
                    id,
                    Fulfillment::UserDecryption {
                        envelope: s.envelope.as_bytes().to_vec(),
                        signature: s.response_signature.0.to_vec(),
                    },
                )
                .await
            }
            other => Err(RuntimeError::Unsupported(other.kind())),
        }
    }
}

#[async_trait::async_trait]
impl Enclave for PartyRuntime {
    type Error = RuntimeError;

    async fn serve(&self, job: Job) -> Result<Outcome, RuntimeError> {
        self.serve_job(job).await
    }

    fn unavailable(error: &RuntimeError) -> bool {
        // No nonce for the transaction (the host's chain link, or another job's lease): the
        // job is handed over again.
        matches!(error, RuntimeError::Nonce(_))
    }
}
