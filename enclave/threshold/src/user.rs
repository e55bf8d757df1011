//! Threshold user decryption: each party signcrypts its flooded partial decryptions to the
//! client's ML-KEM key; the client verifies every envelope, opens robustly and decodes. No
//! party sees the plaintext, and a party's share alone reveals nothing (flooding + threshold).
//!
//! The client combines from whatever envelopes it has: an envelope that does not parse or
//! verify counts as a silent party (it never aborts the combine), and decoding succeeds as soon
//! as `2t + 1` shares agree for every ciphertext (the opening rule). Otherwise
//! [`ThresholdError::NeedMoreShares`] names the missing, rejected and wrong parties, and the
//! client can call [`user_combine`] again when more envelopes arrive.

use crate::wire::{decode_partials, encode_partials};
use crate::{
    combine, partial_decrypt, BlockLayout, DecryptionSession, FloodingParams, SnsKeyShare,
    SquashedCiphertext, ThresholdError,
};
use kms_algebra::prss::Prss;
use kms_algebra::shamir::ShamirError;
use kms_eip712::types::UserDecryptionShare;
use kms_eip712::{Address, DomainConfig, SigningKey};
use kms_engine::Plaintext;
use kms_signcryption::{open_and_verify, ClientKeyPair, ClientPublicKey, Signcrypted};
use kms_types::{FheType, RequestId};

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
    for (i, (digest, sq)) in cts.iter().enumerate() {
        let session = DecryptionSession {
            kind: DecryptionSession::USER,
            key_id,
            request_id,
            index: i,
            ciphertext_digest: *digest,
        };
        let p = partial_decrypt(key, prss, fp, &session, sq)?;
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

/// What the client received from one party.
#[derive(Clone, Debug)]
pub struct UserShareResponse {
    /// The party's index (1-based).
    pub party: usize,
    /// The party's signing address (from the configuration).
    pub signer: Address,
    /// Its response; `None` if it sent nothing.
    pub response: Option<Signcrypted>,
}

/// A combined user decryption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserDecryption {
    /// The plaintexts, in request order.
    pub plaintexts: Vec<Plaintext>,
    /// Parties whose shares were wrong (in at least one ciphertext).
    pub cheaters: Vec<usize>,
    /// Parties whose envelopes did not parse or verify (treated as silent).
    pub rejected: Vec<usize>,
    /// Parties with no envelope among those given.
    pub missing: Vec<usize>,
}

/// Opens and checks one envelope: the party's shares per ciphertext, or `None` if anything is
/// wrong with it (bad signature or encryption, another request, key, client, ciphertext list,
/// party, or share encoding).
#[allow(clippy::too_many_arguments)]
fn parse_envelope(
    keys: &ClientKeyPair,
    domain: &DomainConfig,
    request_id: &RequestId,
    key_id: &RequestId,
    cts: &[(FheType, [u8; 32])],
    layouts: &[BlockLayout],
    r: &UserShareResponse,
    sc: &Signcrypted,
) -> Option<Vec<Vec<crate::Share>>> {
    let p: UserDecryptionShare = open_and_verify(keys, domain, request_id, &r.signer, sc).ok()?;
    let ok = usize::try_from(p.party).ok() == Some(r.party)
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
    for l in layouts {
        let (mine, tail) = rest.split_at_checked(l.blocks.checked_mul(64)?)?;
        out.push(decode_partials(mine, l.blocks)?);
        rest = tail;
    }
    rest.is_empty().then_some(out)
}

/// The client's side: verifies each envelope it has (outer and inner signature by that party,
/// bound to this request, client key, key ID, ciphertext digests and types), treats a bad one
/// like a silent party, then opens each ciphertext under the opening rule (`2t + 1` agreeing
/// shares; `fp.n` parties). `responses` may hold any subset of the parties, in any order; a
/// party's first verifying envelope counts.
///
/// Fails with [`ThresholdError::NeedMoreShares`] (naming missing, rejected and wrong parties)
/// when the envelopes given do not yet decode: call again with more envelopes.
pub fn user_combine(
    keys: &ClientKeyPair,
    domain: &DomainConfig,
    request_id: &RequestId,
    key_id: &RequestId,
    cts: &[(FheType, [u8; 32])],
    responses: &[UserShareResponse],
    fp: &FloodingParams,
) -> Result<UserDecryption, ThresholdError> {
    let layouts: Vec<BlockLayout> = cts
        .iter()
        .map(|(t, _)| BlockLayout::for_type(*t, fp.message_modulus))
        .collect();
    let n = fp.n;
    let mut rejected = Vec::new();
    // per_party[p − 1] = the shares per ciphertext of party p.
    let mut per_party: Vec<Option<Vec<Vec<crate::Share>>>> = vec![None; n];
    for r in responses {
        let Some(slot) = r.party.checked_sub(1).and_then(|i| per_party.get_mut(i)) else {
            continue; // not a party of this configuration
        };
        if slot.is_some() {
            continue;
        }
        let Some(sc) = r.response.as_ref() else {
            continue;
        };
        match parse_envelope(keys, domain, request_id, key_id, cts, &layouts, r, sc) {
            Some(shares) => *slot = Some(shares),
            None => rejected.push(r.party),
        }
    }
    rejected.sort_unstable();
    rejected.dedup();
    // A party whose later envelope verified is not rejected.
    rejected.retain(|p| per_party.get(p - 1).is_some_and(Option::is_none));
    let missing: Vec<usize> = (1..=n)
        .filter(|p| per_party.get(p - 1).is_some_and(Option::is_none) && !rejected.contains(p))
        .collect();
    let mut plaintexts = Vec::with_capacity(cts.len());
    let mut cheaters: Vec<usize> = Vec::new();
    for (i, l) in layouts.iter().enumerate() {
        let received: Vec<Option<Vec<crate::Share>>> = per_party
            .iter()
            .map(|p| p.as_ref().and_then(|v| v.get(i).cloned()))
            .collect();
        let (pt, c) = combine(&received, fp, l).map_err(|e| match e {
            ThresholdError::Open {
                source:
                    ShamirError::InsufficientAgreement {
                        agreeing,
                        need,
                        cheaters: wrong,
                        ..
                    },
                ..
            } => ThresholdError::NeedMoreShares {
                ciphertext: i,
                missing: missing.clone(),
                rejected: rejected.clone(),
                cheaters: wrong,
                agreeing,
                need,
            },
            other => other,
        })?;
        plaintexts.push(pt);
        for x in c {
            if !cheaters.contains(&x) {
                cheaters.push(x);
            }
        }
    }
    cheaters.sort_unstable();
    Ok(UserDecryption {
        plaintexts,
        cheaters,
        rejected,
        missing,
    })
}
