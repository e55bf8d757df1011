//! One party's runtime: the light client, the key share and the signing key, behind `serve`.

use crate::clock::{Clock, ClockError};
use crate::share_store::{PendingReshare, ShareStore, ShareStoreError};
use kms_chain_types::state::RequestStatus;
use kms_chain_types::tx::{sign_tx, Fulfillment, KmsRequest, MaterialItem, Msg};
use kms_channel::{Enclave, Job, NonceError, NonceSource, Outcome, Skip};
use kms_engine::tfhe::ServerKey;
use kms_light_client::LightClient;
use kms_signcryption::ClientPublicKey;
use kms_threshold::{ThresholdError, ThresholdParty};
use kms_transport::Transport;
use kms_types::{CiphertextRef, KeyEpoch, RequestId, Reshared, TypedCiphertext};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod crs;

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
    /// The sealed share or pending resharing could not be read or written.
    #[error("sealed share: {0}")]
    ShareStore(#[from] ShareStoreError),
    /// The CRS ceremony's step could not be taken (the shape, the agreed transcript, or this
    /// party's own contribution); a bad proposal is not an error but an invalid vote.
    #[error("CRS ceremony: {0}")]
    Ceremony(#[from] kms_ceremony::CeremonyError),
    /// The approved record of a CRS request carries no ceremony.
    #[error("CRS request {0} carries no ceremony")]
    NoCeremony(RequestId),
    /// The host did not hand over bytes the approved record names.
    #[error("the host did not hand over the bytes with SHA3-256 {}", hex::encode(.0))]
    BlobMissing([u8; 32]),
    /// The CRS could not be serialized.
    #[error("CRS serialization: {0}")]
    Serialize(String),
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
    shares: Arc<dyn ShareStore>,
    /// Serializes this enclave's taking up of a new share (read, commit, swap); the party's
    /// other enclaves may commit the same share meanwhile, which writes the same state.
    take_up: tokio::sync::Mutex<()>,
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
    /// The sealed share and pending resharing (shared by the party's enclaves).
    pub shares: Arc<dyn ShareStore>,
    /// Deadline of each protocol round.
    pub round_deadline: Duration,
}

/// Runs CPU-heavy work (squashing, the ceremony's curve arithmetic) off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RuntimeError> + Send + 'static,
) -> Result<T, RuntimeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RuntimeError::Task(e.to_string()))?
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
            shares: parts.shares,
            take_up: tokio::sync::Mutex::new(()),
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
        blocking(move || {
            kms_engine::tfhe::set_server_key(key);
            party.squash_all(&cts).map_err(RuntimeError::from)
        })
        .await
    }

    /// Signs `msg` with the party's key and the nonce the host leases for it now (not when the
    /// job was handed over: jobs of one party run concurrently).
    async fn sign(&self, msg: Msg) -> Result<Vec<u8>, RuntimeError> {
        let nonce = self.nonces.next_nonce().await?;
        Ok(sign_tx(&self.party.signer, &self.chain_id, nonce, msg))
    }

    /// The fulfillment transaction of `request_id`, signed.
    async fn fulfill_tx(
        &self,
        request_id: RequestId,
        fulfillment: Fulfillment,
    ) -> Result<Vec<u8>, RuntimeError> {
        self.sign(Msg::Fulfill {
            request_id,
            fulfillment,
        })
        .await
    }

    /// Signs the fulfillment transaction, to broadcast.
    async fn fulfill(
        &self,
        request_id: RequestId,
        fulfillment: Fulfillment,
    ) -> Result<Outcome, RuntimeError> {
        self.fulfill_tx(request_id, fulfillment)
            .await
            .map(Outcome::Broadcast)
    }

    /// A material report for `request_id`: each (data type, SHA3-256) signed as EIP-712
    /// `PublicMaterial`.
    fn material_report(
        &self,
        request_id: &RequestId,
        material: &[(String, [u8; 32])],
    ) -> Result<Fulfillment, RuntimeError> {
        let items = material
            .iter()
            .map(|(dt, digest)| {
                MaterialItem::signed(
                    &self.party.signer,
                    &self.party.domain,
                    request_id,
                    dt,
                    *digest,
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RuntimeError::Sign(e.to_string()))?;
        Ok(Fulfillment::Material { items })
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
        // A completed resharing is handed over once more so the party takes its new share up:
        // every party has answered it by then, so this comes before the answered check.
        if let (
            KmsRequest::Reshare { key_id, .. },
            RequestStatus::Completed { result_digest, .. },
        ) = (&record.request, &record.status)
        {
            return self
                .reshare_completed(record.id, *key_id, record.key_epoch, *result_digest)
                .await;
        }
        if let RequestStatus::Expired { .. } = record.status {
            return Ok(Outcome::Skip(Skip::Expired));
        }
        if record.responded.contains(&me) {
            return Ok(Outcome::Skip(Skip::AlreadyAnswered));
        }
        let complete = matches!(record.status, RequestStatus::Completed { .. });
        if let KmsRequest::CrsGen(r) = &record.request {
            if complete {
                return Ok(Outcome::Skip(Skip::Complete));
            }
            return self
                .crs_step(&record, r, approved.proven_at, job.blobs)
                .await;
        }
        // The request ID is the approved record's (the light client checked it hashes to it).
        let id = record.id;
        match record.request {
            // Handled above.
            KmsRequest::CrsGen(_) => Ok(Outcome::Skip(Skip::Complete)),
            // Key sets: the public material this party holds, signed (dealt until the DKG
            // lands; the chain counts t + 1 agreeing parties).
            KmsRequest::KeyGen(_) => {
                if complete {
                    return Ok(Outcome::Skip(Skip::Complete));
                }
                let material = self.material.get(&id).ok_or(RuntimeError::NoMaterial(id))?;
                let report = self.material_report(&id, material)?;
                self.fulfill(id, report).await
            }
            KmsRequest::PublicDecrypt(r) => {
                if complete {
                    return Ok(Outcome::Skip(Skip::Complete));
                }
                if refs(&job.ciphertexts) != r.ciphertexts {
                    return Err(RuntimeError::CiphertextsNotApproved);
                }
                self.ensure_epoch(&r.key_id, &record.key_epoch).await?;
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
                        record.key_epoch,
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
                self.ensure_epoch(&r.key_id, &record.key_epoch).await?;
                let squashed = self.squash(job.ciphertexts).await?;
                let s = self.party.user_decrypt_share(
                    id,
                    r.key_id,
                    record.key_epoch,
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
            KmsRequest::Reshare { key_id, .. } => match record.status {
                // Handled above.
                RequestStatus::Completed { .. } => Ok(Outcome::Skip(Skip::Complete)),
                RequestStatus::Expired { .. } => Ok(Outcome::Skip(Skip::Expired)),
                RequestStatus::Pending => self.reshare(id, key_id, record.key_epoch).await,
            },
        }
    }

    /// Makes sure the share held is of `want`, the epoch a verified record names. A newer
    /// epoch than the one held is reached by reloading the sealed state (another enclave of
    /// this party took the new share up) or by taking up this party's sealed pending share of
    /// the resharing that started `want`; an older one is gone (its shares were erased).
    async fn ensure_epoch(&self, key_id: &RequestId, want: &KeyEpoch) -> Result<(), RuntimeError> {
        let held = self.party.key.current();
        if held.share.key_id != *key_id || held.epoch == *want {
            // Another key is refused by the threshold layer; the epoch matches.
            return Ok(());
        }
        if want.number > held.epoch.number {
            self.take_up(key_id, want).await?;
        }
        let held = self.party.key.current();
        if held.epoch != *want {
            return Err(ThresholdError::WrongEpoch {
                held: Box::new(held.epoch),
                asked: Box::new(*want),
            }
            .into());
        }
        Ok(())
    }

    /// Reaches epoch `want` if this party can (see [`Self::ensure_epoch`]); a no-op otherwise.
    async fn take_up(&self, key_id: &RequestId, want: &KeyEpoch) -> Result<(), RuntimeError> {
        let _one = self.take_up.lock().await;
        if self.party.key.current().epoch == *want {
            return Ok(());
        }
        let (epoch, share) = self.shares.share(key_id).await?;
        if epoch == *want {
            self.party.key.replace(epoch, share);
            tracing::info!(key = %key_id, %epoch, "took up the share another enclave of this party committed");
            return Ok(());
        }
        drop(share);
        let Some(by) = want.by else {
            return Ok(());
        };
        let Some(pending) = self.shares.pending(&by.request).await? else {
            return Ok(());
        };
        // The record names `want`, which the chain starts only when every party reported the
        // same verdict digest for that resharing: if it is this party's pending one (same
        // resharing, same digest, from the epoch held), the new sharing is complete and checked.
        let held = self.party.key.current().epoch;
        if pending.share.key_id != *key_id
            || pending.from != held
            || pending.epoch().as_ref() != Some(want)
        {
            return Ok(());
        }
        self.shares.commit(key_id, *want, &pending.share).await?;
        self.party.key.replace(*want, pending.share);
        tracing::info!(key = %key_id, epoch = %want, "resharing taken up: new share sealed and in use, old share erased");
        Ok(())
    }

    /// This party's part in resharing `id` of `key_id` (approved at epoch `from`): refresh the
    /// share with the other parties, seal the new share as pending, report the agreed verdict.
    async fn reshare(
        &self,
        id: RequestId,
        key_id: RequestId,
        from: KeyEpoch,
    ) -> Result<Outcome, RuntimeError> {
        self.ensure_epoch(&key_id, &from).await?;
        if let Some(p) = self.shares.pending(&id).await? {
            if p.from == from && p.share.key_id == key_id {
                // Done before a restart: the same report again, never a second run's.
                return self
                    .fulfill(
                        id,
                        Fulfillment::ReshareDone {
                            verdict_digest: p.verdict_digest,
                        },
                    )
                    .await;
            }
            // Never overwritten: the record fixes the epoch a resharing reshares.
            return Err(ThresholdError::ReshareAborted(
                "a pending share of this resharing from another epoch or key".into(),
            )
            .into());
        }
        let held = self.party.key.current();
        if held.share.key_id != key_id {
            return Err(ThresholdError::WrongKey {
                share_key: held.share.key_id,
                request_key: key_id,
            }
            .into());
        }
        let r = kms_threshold::refresh(
            self.net.as_ref(),
            &self.party.prss,
            &id,
            &held.share,
            self.round_deadline,
        )
        .await?;
        drop(held);
        tracing::info!(reshare = %id, dealers = ?r.agreed.dealers, grade = ?r.agreed.grade, "new sharing checked; sealing it as pending");
        let verdict_digest = r.agreed.digest;
        self.shares
            .put_pending(&PendingReshare {
                reshare_id: id,
                from,
                verdict_digest,
                share: r.share,
            })
            .await?;
        self.fulfill(id, Fulfillment::ReshareDone { verdict_digest })
            .await
    }

    /// The chain completed resharing `id` with `result_digest`: take the new share up now
    /// (the old one is erased), if this party holds it.
    async fn reshare_completed(
        &self,
        id: RequestId,
        key_id: RequestId,
        from: KeyEpoch,
        result_digest: [u8; 32],
    ) -> Result<Outcome, RuntimeError> {
        let next = from
            .next(Reshared {
                request: id,
                verdict_digest: result_digest,
            })
            .ok_or_else(|| ThresholdError::Params("key epoch overflow".into()))?;
        let held = self.party.key.current().epoch;
        if held.number < next.number {
            self.ensure_epoch(&key_id, &next).await?;
        }
        Ok(Outcome::Skip(Skip::Complete))
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
