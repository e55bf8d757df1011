//! This party's step in a CRS ceremony the chain sequences (`kms_app::ceremony`).
//!
//! Each job carries the approved record, whose ceremony part says which turns were decided
//! (and the accepted contributions' digests), whose turn it is, and the proposal under vote.
//! The enclave keeps nothing between jobs: it resumes the transcript from the agreed list and
//! the last accepted contribution's bytes (handed over by the host, checked against the digest
//! the chain holds), then does the one thing the record asks of this party:
//!
//! * its own turn without a proposal yet: contribute (a secret derived from its signing key, the
//!   request, the turn and the transcript, forgotten at once: a replayed job gives the same
//!   contribution, so a host cannot collect several and pick one), hand the bytes to the host to
//!   publish, and propose their digest;
//! * another party's proposal it has not voted on: check the bytes on top of the transcript and
//!   vote valid (publishing the bytes again, so they stay available) or invalid;
//! * a turn past its deadline (by the verified header's height, not the host's word): skip it;
//! * the ceremony ended with `t + 1` accepted contributions: assemble the CRS, publish it, and
//!   report its digest signed as material.
//!
//! A restarted or replayed job is harmless: the chain takes one proposal per turn and one vote
//! per party, and a second contribution (another secret) is simply refused there.

use super::{blocking, PartyRuntime, RuntimeError};
use kms_ceremony::{contribute, verify_contribution_bytes, Accepted, CrsShape, CrsState};
use kms_chain_types::state::{CrsCeremony, RequestRecord, CRS_TURN_BLOCKS};
use kms_chain_types::tx::{Fulfillment, Msg};
use kms_channel::{Outcome, Skip};
use kms_types::{sha3_256, CrsGenRequest, DataType, RequestId};

/// Bytes of the transcript a step needs, found among what the host handed over.
fn blob<'a>(blobs: &'a [Vec<u8>], digest: &[u8; 32]) -> Result<&'a [u8], RuntimeError> {
    blobs
        .iter()
        .find(|b| sha3_256(b) == *digest)
        .map(Vec::as_slice)
        .ok_or(RuntimeError::BlobMissing(*digest))
}

/// The transcript the chain decided: the state after its accepted contributions.
fn resume(
    shape: CrsShape,
    id: RequestId,
    ceremony: &CrsCeremony,
    blobs: &[Vec<u8>],
) -> Result<CrsState, RuntimeError> {
    let accepted: Vec<Accepted> = ceremony
        .accepted()
        .map(|(contributor, digest)| Accepted {
            contributor,
            digest,
        })
        .collect();
    let last = accepted
        .last()
        .map(|a| blob(blobs, &a.digest))
        .transpose()?;
    Ok(CrsState::resume(shape, id, &accepted, last)?)
}

/// The randomness of this party's contribution to a turn: a stream keyed by its signing key and
/// bound to the request, the turn and the transcript it builds on (as RFC 6979 derives ECDSA
/// nonces). The secret is as unpredictable as the key, and a job handed over again for the same
/// turn (a host replaying a record to collect several contributions and publish the one it
/// likes) gets the same contribution back.
fn turn_rng(signing_key: &[u8], prev: &CrsState, turn: u32) -> rand_chacha::ChaCha20Rng {
    use rand_core::SeedableRng;
    use sha3::Digest;
    let mut h = sha3::Sha3_256::new();
    h.update(b"kms-crs-ceremony/v1/contribution-randomness");
    h.update(signing_key);
    h.update(prev.session().as_bytes());
    h.update(turn.to_be_bytes());
    h.update(prev.digest());
    let mut seed: [u8; 32] = h.finalize().into();
    let rng = rand_chacha::ChaCha20Rng::from_seed(seed);
    zeroize::Zeroize::zeroize(&mut seed);
    rng
}

impl PartyRuntime {
    /// This party's step in the ceremony of CRS request `record` (pending, verified at header
    /// height `proven_at`), with the bytes the host handed over.
    pub(super) async fn crs_step(
        &self,
        record: &RequestRecord,
        request: &CrsGenRequest,
        proven_at: u64,
        blobs: Vec<Vec<u8>>,
    ) -> Result<Outcome, RuntimeError> {
        let id = record.id;
        let me = self.address();
        let Some(index) = record.party_index(&me) else {
            return Ok(Outcome::Skip(Skip::NotInPartySet));
        };
        let ceremony = record
            .ceremony
            .as_ref()
            .ok_or(RuntimeError::NoCeremony(id))?;
        let n = record.parties.len();
        let turn = ceremony.turn;
        let contributor = turn.saturating_add(1);
        // The header proves the state after block `proven_at − 1`; the skip executes later. (No
        // shape needed: a request whose shape tfhe refuses is skipped turn by turn, then fails.)
        if !ceremony.finished(n) && proven_at.saturating_sub(1) >= ceremony.deadline() {
            tracing::warn!(request = %id, turn, contributor, "ceremony turn past its deadline of {CRS_TURN_BLOCKS} blocks; skipping it");
            return self
                .sign(Msg::CrsSkipTurn {
                    request_id: id,
                    turn,
                })
                .await
                .map(Outcome::Broadcast);
        }
        let shape = CrsShape::for_request(request.params, request.max_num_bits)?;
        if ceremony.finished(n) {
            return self.crs_publish(record, shape, ceremony, blobs).await;
        }
        if contributor == index {
            if ceremony.proposal.is_some() {
                return Ok(Outcome::Skip(Skip::AlreadyAnswered));
            }
            let agreed = ceremony.clone();
            let secret = self.party.signer.to_bytes();
            let bytes = blocking(move || {
                let prev = resume(shape, id, &agreed, &blobs)?;
                let mut rng = turn_rng(&secret, &prev, turn);
                Ok(contribute(&prev, index, &mut rng)?.to_bytes()?)
            })
            .await?;
            let digest = sha3_256(&bytes);
            tracing::info!(request = %id, turn, digest = %hex::encode(digest), "contributed to the CRS ceremony");
            let tx = self
                .fulfill_tx(id, Fulfillment::CrsContribution { turn, digest })
                .await?;
            return Ok(Outcome::Publish {
                blobs: vec![bytes],
                tx,
            });
        }
        let Some(proposal) = ceremony.proposal else {
            return Ok(Outcome::Skip(Skip::Waiting));
        };
        if ceremony.votes.iter().any(|(a, _)| *a == me) {
            return Ok(Outcome::Skip(Skip::AlreadyAnswered));
        }
        let agreed = ceremony.clone();
        let (verdict, bytes) = blocking(move || {
            let prev = resume(shape, id, &agreed, &blobs)?;
            let bytes = blob(&blobs, &proposal)?;
            let verdict =
                verify_contribution_bytes(&prev, contributor, bytes, &mut rand_core::OsRng);
            Ok((verdict.err(), bytes.to_vec()))
        })
        .await?;
        match &verdict {
            None => {
                tracing::info!(request = %id, turn, contributor, "ceremony contribution checked: valid")
            }
            Some(e) => {
                tracing::warn!(request = %id, turn, contributor, reason = %e, "ceremony contribution rejected")
            }
        }
        let tx = self
            .fulfill_tx(
                id,
                Fulfillment::CrsVote {
                    turn,
                    digest: proposal,
                    valid: verdict.is_none(),
                },
            )
            .await?;
        Ok(match verdict {
            // A valid vote publishes the bytes too: every party that voted valid serves them,
            // so the 2t + 1 votes that accept a contribution make it available from t + 1
            // honest parties at least, whatever its contributor does next.
            None => Outcome::Publish {
                blobs: vec![bytes],
                tx,
            },
            Some(_) => Outcome::Broadcast(tx),
        })
    }

    /// The ceremony ended: assemble the CRS from the agreed transcript, publish it, report it.
    async fn crs_publish(
        &self,
        record: &RequestRecord,
        shape: CrsShape,
        ceremony: &CrsCeremony,
        blobs: Vec<Vec<u8>>,
    ) -> Result<Outcome, RuntimeError> {
        let id = record.id;
        if record.responded.contains(&self.address()) {
            return Ok(Outcome::Skip(Skip::AlreadyAnswered));
        }
        if ceremony.accepted().count() <= record.threshold as usize {
            // The chain failed the request; nothing to report.
            return Ok(Outcome::Skip(Skip::Expired));
        }
        let ceremony = ceremony.clone();
        let bytes = blocking(move || {
            let crs = resume(shape, id, &ceremony, &blobs)?.to_crs()?;
            kms_engine::serialize_public(&crs).map_err(|e| RuntimeError::Serialize(e.to_string()))
        })
        .await?;
        let digest = sha3_256(&bytes);
        let report = self.material_report(&id, &[(DataType::Crs.as_str().to_string(), digest)])?;
        tracing::info!(request = %id, digest = %hex::encode(digest), "CRS assembled from the ceremony");
        let tx = self.fulfill_tx(id, report).await?;
        Ok(Outcome::Publish {
            blobs: vec![bytes],
            tx,
        })
    }
}
