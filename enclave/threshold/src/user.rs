//! Threshold user decryption: each party signcrypts its flooded partial decryptions to the
//! client's ML-KEM key; the client verifies every envelope, opens robustly and decodes. No
//! party sees the plaintext, and a party's share alone reveals nothing (flooding + threshold).

use crate::wire::{decode_partials, encode_partials};
use crate::{
    combine, partial_decrypt, session_id, BlockLayout, FloodingParams, SnsKeyShare,
    SquashedCiphertext, ThresholdError,
};
use kms_algebra::prss::Prss;
use kms_eip712::types::UserDecryptionShare;
use kms_eip712::{Address, DomainConfig, SigningKey};
use kms_engine::Plaintext;
use kms_signcryption::{open_and_verify, ClientKeyPair, ClientPublicKey, Signcrypted};
use kms_types::{FheType, RequestId};

const KIND: &str = "kms/user-decrypt-share/v1";

/// One party's signcrypted share for a user decryption of `cts` (digest, squashed ciphertext).
#[allow(clippy::too_many_arguments)]
pub fn user_share(
    key: &SnsKeyShare,
    prss: &Prss<u128, 4>,
    fp: &FloodingParams,
    signer: &SigningKey,
    domain: &DomainConfig,
    request_id: RequestId,
    key_id: RequestId,
    cts: &[([u8; 32], SquashedCiphertext)],
    client: &ClientPublicKey,
    rng: &mut impl rand_core::CryptoRngCore,
) -> Result<Signcrypted, ThresholdError> {
    let mut shares = Vec::new();
    for (i, (_, sq)) in cts.iter().enumerate() {
        let p = partial_decrypt(key, prss, fp, &session_id(KIND, &request_id, i), sq)?;
        shares.extend_from_slice(&encode_partials(&p));
    }
    let payload = UserDecryptionShare {
        requestId: (*request_id.as_bytes()).into(),
        keyId: (*key_id.as_bytes()).into(),
        clientKeyDigest: client.digest().into(),
        kmsSigner: signer.address().into(),
        party: u32::try_from(key.party).map_err(|e| ThresholdError::Params(e.to_string()))?,
        ciphertextDigests: cts.iter().map(|(d, _)| (*d).into()).collect(),
        fheTypes: cts.iter().map(|(_, s)| s.fhe_type.wire()).collect(),
        shares: shares.into(),
    };
    kms_signcryption::signcrypt(signer, domain, payload, client, rng)
        .map_err(|e| ThresholdError::Params(format!("signcryption: {e}")))
}

/// What the client received from one party (in party order, 1..=n).
#[derive(Clone, Debug)]
pub struct UserShareResponse {
    /// The party's index.
    pub party: usize,
    /// The party's signing address (from the configuration).
    pub signer: Address,
    /// Its response; `None` if it sent nothing.
    pub response: Option<Signcrypted>,
}

/// The client's side: verifies every envelope (outer and inner signature by that party, bound to
/// this request, client key, key ID, ciphertext digests and types), treats a bad one like a
/// silent party, then opens each ciphertext robustly. Returns the plaintexts, the parties whose
/// shares were wrong, and the parties whose envelopes were rejected.
#[allow(clippy::type_complexity)]
pub fn user_combine(
    keys: &ClientKeyPair,
    domain: &DomainConfig,
    request_id: &RequestId,
    key_id: &RequestId,
    cts: &[(FheType, [u8; 32])],
    responses: &[UserShareResponse],
    fp: &FloodingParams,
) -> Result<(Vec<Plaintext>, Vec<usize>, Vec<usize>), ThresholdError> {
    let layouts: Vec<BlockLayout> = cts
        .iter()
        .map(|(t, _)| BlockLayout::for_type(*t, fp.message_modulus))
        .collect();
    let mut rejected = Vec::new();
    // per_party[p] = Some(shares per ciphertext)
    let per_party: Vec<Option<Vec<Vec<crate::Share>>>> = responses
        .iter()
        .map(|r| {
            let parsed = r.response.as_ref().and_then(|sc| {
                let p: UserDecryptionShare =
                    open_and_verify(keys, domain, request_id, &r.signer, sc).ok()?;
                let ok = p.party as usize == r.party
                    && p.keyId.0 == *key_id.as_bytes()
                    && p.ciphertextDigests
                        .iter()
                        .map(|d| d.0)
                        .eq(cts.iter().map(|(_, d)| *d))
                    && p.fheTypes
                        .iter()
                        .copied()
                        .eq(cts.iter().map(|(t, _)| t.wire()));
                if !ok {
                    return None;
                }
                let mut rest: &[u8] = p.shares.as_ref();
                let mut out = Vec::with_capacity(layouts.len());
                for l in &layouts {
                    let len = l.blocks * 64;
                    if rest.len() < len {
                        return None;
                    }
                    out.push(decode_partials(&rest[..len], l.blocks)?);
                    rest = &rest[len..];
                }
                rest.is_empty().then_some(out)
            });
            if parsed.is_none() && r.response.is_some() {
                rejected.push(r.party);
            }
            parsed
        })
        .collect();
    let mut plaintexts = Vec::with_capacity(cts.len());
    let mut cheaters: Vec<usize> = Vec::new();
    for (i, l) in layouts.iter().enumerate() {
        let received: Vec<Option<Vec<crate::Share>>> = per_party
            .iter()
            .map(|p| p.as_ref().map(|v| v[i].clone()))
            .collect();
        let (pt, c) = combine(&received, fp, l)?;
        plaintexts.push(pt);
        for x in c {
            if !cheaters.contains(&x) {
                cheaters.push(x);
            }
        }
    }
    cheaters.sort_unstable();
    Ok((plaintexts, cheaters, rejected))
}
