//! One party of the threshold KMS: its key share, PRSS state and signing key, and the public
//! decryption of a whole request (every ciphertext, in order) ending in the party's own EIP-712
//! signature of the agreed plaintexts. Each party signs independently; a verifier (the ASC, an
//! EVM contract) accepts a result once t + 1 parties signed the same plaintexts.

use crate::{
    decrypt_round, session_id, squash, FloodingParams, SnsKeyShare, SquashedCiphertext,
    ThresholdError,
};
use kms_algebra::prss::Prss;
use kms_eip712::{DomainConfig, SigningKey};
use kms_engine::{public_decryption_struct, SignedDecryption};
use kms_transport::Transport;
use kms_types::{ParamSetName, RequestId, TypedCiphertext};
use std::time::Duration;

/// What one party needs to take part in decryptions.
pub struct ThresholdParty {
    /// Its key share.
    pub key: SnsKeyShare,
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
        ciphertexts: &[TypedCiphertext],
        deadline: Duration,
    ) -> Result<PartyDecryption, ThresholdError> {
        let squashed = self.squash_all(ciphertexts)?;
        self.decrypt_squashed(net, request_id, key_id, &squashed, deadline)
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

    /// [`Self::public_decrypt`] of ciphertexts this party already squashed (no tfhe key needed,
    /// so the future may run on any thread).
    pub async fn decrypt_squashed(
        &self,
        net: &dyn Transport,
        request_id: RequestId,
        key_id: RequestId,
        squashed: &[(TypedCiphertext, SquashedCiphertext)],
        deadline: Duration,
    ) -> Result<PartyDecryption, ThresholdError> {
        let mut plaintexts = Vec::with_capacity(squashed.len());
        let mut cheaters = Vec::new();
        let mut absent = Vec::new();
        for (i, (_, sq)) in squashed.iter().enumerate() {
            let session = session_id("public", &request_id, i);
            let out = decrypt_round(
                net,
                &self.key,
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
    /// `UserDecryptionResponse`.
    pub fn user_decrypt_share(
        &self,
        request_id: RequestId,
        key_id: RequestId,
        squashed: &[(TypedCiphertext, SquashedCiphertext)],
        client: &kms_signcryption::ClientPublicKey,
        rng: &mut impl rand_core::CryptoRngCore,
    ) -> Result<kms_signcryption::Signcrypted, ThresholdError> {
        let cts: Vec<([u8; 32], SquashedCiphertext)> = squashed
            .iter()
            .map(|(c, s)| (c.digest(), s.clone()))
            .collect();
        crate::user_share(
            &self.key,
            &self.prss,
            &self.flooding,
            &self.signer,
            &self.domain,
            request_id,
            key_id,
            &cts,
            client,
            rng,
        )
    }
}
