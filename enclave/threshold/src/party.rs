//! One party of the threshold KMS: its key share, PRSS state and signing key, and the public
//! decryption of a whole request (every ciphertext, in order) ending in the party's own EIP-712
//! signature of the agreed plaintexts. Each party signs independently; a verifier (the ASC, an
//! EVM contract) accepts a result once t + 1 parties signed the same plaintexts.

use crate::served::{request_content_digest, Served};
use crate::{
    decrypt_round, squash, DecryptionSession, FloodingParams, ServedLog, SnsKeyShare,
    SquashedCiphertext, ThresholdError,
};
use kms_algebra::prss::Prss;
use kms_eip712::{DomainConfig, SigningKey};
use kms_engine::{public_decryption_struct, Plaintext, SignedDecryption};
use kms_party_net::Transport;
use kms_types::{FheType, KeyEpoch, ParamSetName, RequestId, TypedCiphertext};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// A key share with the epoch of the sharing it belongs to.
pub struct EpochShare {
    /// The epoch (0 from key generation, one more per completed resharing).
    pub epoch: KeyEpoch,
    /// The share.
    pub share: SnsKeyShare,
}

/// The key share a party holds now, replaced whole when a resharing completes. Readers take an
/// `Arc` of the current share, so a replacement never changes a share under a running round;
/// the old share is zeroized when its last reader drops it.
pub struct HeldKey {
    current: RwLock<Arc<EpochShare>>,
}

impl HeldKey {
    /// Holds `share` of `epoch`.
    pub fn new(epoch: KeyEpoch, share: SnsKeyShare) -> Self {
        Self {
            current: RwLock::new(Arc::new(EpochShare { epoch, share })),
        }
    }

    /// The share held now.
    pub fn current(&self) -> Arc<EpochShare> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the share (the old one is dropped, and zeroized once no round uses it).
    pub fn replace(&self, epoch: KeyEpoch, share: SnsKeyShare) {
        let new = Arc::new(EpochShare { epoch, share });
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = new;
    }
}

/// What one party needs to take part in decryptions.
pub struct ThresholdParty {
    /// Its key share and the epoch it belongs to.
    pub key: HeldKey,
    /// Its PRSS state.
    pub prss: Prss<u128, 4>,
    /// Flooding parameters.
    pub flooding: FloodingParams,
    /// Parameter set of the key.
    pub params: ParamSetName,
    /// The party's own signing key (its address is registered in the config contract).
    pub signer: SigningKey,
    /// EIP-712 domain.
    pub domain: DomainConfig,
    /// What this party has served (a request ID is served with one content only).
    pub served: ServedLog,
}

/// Encodes plaintexts for the served log: `(type ‖ 32-byte word)…`.
fn encode_plaintexts(p: &[Plaintext]) -> Vec<u8> {
    p.iter()
        .flat_map(|p| std::iter::once(p.fhe_type.wire()).chain(p.word))
        .collect()
}

fn decode_plaintexts(b: &[u8]) -> Option<Vec<Plaintext>> {
    if !b.len().is_multiple_of(33) {
        return None;
    }
    b.chunks_exact(33)
        .map(|c| {
            let (t, w) = c.split_first()?;
            Some(Plaintext {
                fhe_type: FheType::from_wire(i64::from(*t)).ok()?,
                word: w.try_into().ok()?,
            })
        })
        .collect()
}

/// A signed result and what the party observed about the others.
#[derive(Clone, Debug)]
pub struct PartyDecryption {
    /// The plaintexts, signed by this party.
    pub signed: SignedDecryption,
    /// Parties whose shares were wrong in at least one ciphertext.
    pub cheaters: Vec<usize>,
    /// Parties absent in at least one ciphertext.
    pub absent: Vec<usize>,
}

impl ThresholdParty {
    /// Decrypts every ciphertext of a request with the other parties over `net` and signs the
    /// result. `deadline` bounds each round. Needs the server key (with its squashing key) set
    /// on the calling thread: all ciphertexts are squashed before the first network round, so
    /// the future may then move between threads.
    pub async fn public_decrypt(
        &self,
        net: &dyn Transport,
        request_id: RequestId,
        key_id: RequestId,
        epoch: KeyEpoch,
        ciphertexts: &[TypedCiphertext],
        deadline: Duration,
    ) -> Result<PartyDecryption, ThresholdError> {
        let squashed = self.squash_all(ciphertexts)?;
        self.decrypt_squashed(net, request_id, key_id, epoch, &squashed, deadline)
            .await
    }

    /// Squashes every ciphertext (strict deserialization first). Needs the server key set on
    /// the calling thread. Deterministic: every party gets the same blocks.
    pub fn squash_all(
        &self,
        ciphertexts: &[TypedCiphertext],
    ) -> Result<Vec<(TypedCiphertext, SquashedCiphertext)>, ThresholdError> {
        ciphertexts
            .iter()
            .map(|ct| Ok((ct.clone(), squash(ct, self.params)?)))
            .collect()
    }

    /// Checks that the request is on this party's key and epoch and returns the share with the
    /// (type, digest) of each ciphertext, the content the served log binds the request ID to.
    #[allow(clippy::type_complexity)]
    fn request_refs(
        &self,
        key_id: &RequestId,
        epoch: &KeyEpoch,
        squashed: &[(TypedCiphertext, SquashedCiphertext)],
    ) -> Result<(Arc<EpochShare>, Vec<(FheType, [u8; 32])>), ThresholdError> {
        let held = self.key.current();
        if held.share.key_id != *key_id {
            return Err(ThresholdError::WrongKey {
                share_key: held.share.key_id,
                request_key: *key_id,
            });
        }
        if held.epoch != *epoch {
            return Err(ThresholdError::WrongEpoch {
                held: Box::new(held.epoch),
                asked: Box::new(*epoch),
            });
        }
        let refs = squashed
            .iter()
            .map(|(c, _)| (c.fhe_type, c.digest()))
            .collect();
        Ok((held, refs))
    }

    /// [`Self::public_decrypt`] of ciphertexts this party already squashed (no tfhe key needed,
    /// so the future may run on any thread).
    ///
    /// Refuses a request on another key than the party's share ([`ThresholdError::WrongKey`]),
    /// on another epoch of its sharing ([`ThresholdError::WrongEpoch`]), and a request ID already served with other ciphertexts
    /// ([`ThresholdError::RequestReplayed`]); for one already served with the same ciphertexts,
    /// returns the stored plaintexts, signed again, without any network round.
    pub async fn decrypt_squashed(
        &self,
        net: &dyn Transport,
        request_id: RequestId,
        key_id: RequestId,
        epoch: KeyEpoch,
        squashed: &[(TypedCiphertext, SquashedCiphertext)],
        deadline: Duration,
    ) -> Result<PartyDecryption, ThresholdError> {
        let (held, refs) = self.request_refs(&key_id, &epoch, squashed)?;
        let content =
            request_content_digest(DecryptionSession::PUBLIC, &key_id, &request_id, &refs, &[]);
        if let Served::Done(stored) = self.served.begin(&key_id, &request_id, &content)? {
            let plaintexts = decode_plaintexts(&stored)
                .ok_or_else(|| ThresholdError::Storage("bad stored plaintexts".into()))?;
            return self.sign(request_id, key_id, squashed, plaintexts, vec![], vec![]);
        }
        let mut plaintexts = Vec::with_capacity(squashed.len());
        let mut cheaters = Vec::new();
        let mut absent = Vec::new();
        for (i, (c, sq)) in squashed.iter().enumerate() {
            let session = DecryptionSession {
                kind: DecryptionSession::PUBLIC,
                key_id,
                request_id,
                index: i,
                ciphertext_digest: c.digest(),
            };
            let out = decrypt_round(
                net,
                &held.share,
                &self.prss,
                &self.flooding,
                &session,
                sq,
                deadline,
            )
            .await?;
            if !out.cheaters.is_empty() {
                tracing::warn!(request = %request_id, ciphertext = i, cheaters = ?out.cheaters, "wrong shares corrected");
            }
            cheaters.extend(out.cheaters);
            absent.extend(out.absent);
            plaintexts.push(out.plaintext);
        }
        cheaters.sort_unstable();
        cheaters.dedup();
        absent.sort_unstable();
        absent.dedup();
        self.served.finish(
            &key_id,
            &request_id,
            &content,
            &encode_plaintexts(&plaintexts),
        )?;
        self.sign(request_id, key_id, squashed, plaintexts, cheaters, absent)
    }

    fn sign(
        &self,
        request_id: RequestId,
        key_id: RequestId,
        squashed: &[(TypedCiphertext, SquashedCiphertext)],
        plaintexts: Vec<Plaintext>,
        cheaters: Vec<usize>,
        absent: Vec<usize>,
    ) -> Result<PartyDecryption, ThresholdError> {
        let digests: Vec<[u8; 32]> = squashed.iter().map(|(c, _)| c.digest()).collect();
        let value = public_decryption_struct(&request_id, &key_id, &digests, &plaintexts);
        let signature = self
            .signer
            .sign(&self.domain, &value)
            .map_err(|e| ThresholdError::Params(format!("signing: {e}")))?;
        Ok(PartyDecryption {
            signed: SignedDecryption {
                request_id,
                key_id,
                ciphertext_digests: digests,
                plaintexts,
                signature,
                signer: self.signer.address(),
            },
            cheaters,
            absent,
        })
    }

    /// This party's answer to a user decryption: its flooded shares of every ciphertext,
    /// signcrypted to the client's ML-KEM key, with its signature of the public
    /// `UserDecryptionResponse`. Refuses a request ID already served with other content
    /// (ciphertexts or client key); the same content gives the same shares again (a fresh
    /// envelope around them).
    pub fn user_decrypt_share(
        &self,
        request_id: RequestId,
        key_id: RequestId,
        epoch: KeyEpoch,
        squashed: &[(TypedCiphertext, SquashedCiphertext)],
        client: &kms_signcryption::ClientPublicKey,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Result<kms_signcryption::Signcrypted, ThresholdError> {
        let (held, refs) = self.request_refs(&key_id, &epoch, squashed)?;
        let content = request_content_digest(
            DecryptionSession::USER,
            &key_id,
            &request_id,
            &refs,
            &client.digest(),
        );
        self.served.begin(&key_id, &request_id, &content)?;
        let cts: Vec<([u8; 32], SquashedCiphertext)> = squashed
            .iter()
            .map(|(c, s)| (c.digest(), s.clone()))
            .collect();
        let out = crate::user_share(
            &held.share,
            &self.prss,
            &self.flooding,
            &self.signer,
            &self.domain,
            request_id,
            key_id,
            &cts,
            client,
            rng,
        )?;
        self.served.finish(&key_id, &request_id, &content, &[])?;
        Ok(out)
    }
}
