//! Shares of the noise-squashing secret key.
//!
//! Key shares are secrets: not `Copy` (nor `Clone`), `Debug` without coefficients, zeroized on
//! drop. Each carries the ID of the key it is a share of; decryption refuses a request naming
//! another key ([`ThresholdError::WrongKey`]).

use crate::{Share, ThresholdError};
#[cfg(feature = "insecure-dev")]
use kms_algebra::shamir::share;
use kms_types::RequestId;
use tfhe::ClientKey;
use zeroize::Zeroize;

/// One party's share of the noise-squashing LWE secret key.
pub struct SnsKeyShare {
    /// The key (its key-generation request ID).
    pub key_id: RequestId,
    /// Party index (1-based).
    pub party: usize,
    /// Number of parties.
    pub n: usize,
    /// Threshold.
    pub t: usize,
    /// Share of each LWE key coefficient.
    pub key: Vec<Share>,
    /// Message modulus of the squashed blocks.
    pub message_modulus: u64,
    /// Carry modulus of the squashed blocks.
    pub carry_modulus: u64,
}

impl std::fmt::Debug for SnsKeyShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SnsKeyShare(key {}, party {}/{}, t {}, {} coefficients)",
            self.key_id,
            self.party,
            self.n,
            self.t,
            self.key.len()
        )
    }
}

impl Drop for SnsKeyShare {
    fn drop(&mut self) {
        self.key.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for SnsKeyShare {}

/// Bytes of one encoded share coefficient (4 little-endian `u128`).
const SHARE_BYTES: usize = 64;

impl SnsKeyShare {
    /// The share as bytes, for sealing: key ID (20 bytes), party, n, t, moduli (big-endian), then each
    /// coefficient's four `u128` limbs (little-endian). Zeroized on drop.
    pub fn to_sealing_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut out = zeroize::Zeroizing::new(Vec::with_capacity(
            20 + 8 * 5 + self.key.len() * SHARE_BYTES,
        ));
        out.extend_from_slice(self.key_id.as_bytes());
        for v in [
            self.party as u64,
            self.n as u64,
            self.t as u64,
            self.message_modulus,
            self.carry_modulus,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        for s in &self.key {
            for c in s.coefs {
                out.extend_from_slice(&c.to_le_bytes());
            }
        }
        out
    }

    /// Reads [`SnsKeyShare::to_sealing_bytes`].
    pub fn from_sealing_bytes(b: &[u8]) -> Result<Self, ThresholdError> {
        let bad = |what: &str| ThresholdError::Params(format!("sealed key share: {what}"));
        let (id, rest) = b.split_first_chunk::<20>().ok_or_else(|| bad("short"))?;
        let mut header = [0u64; 5];
        let mut rest = rest;
        for h in &mut header {
            let (v, r) = rest.split_first_chunk::<8>().ok_or_else(|| bad("short"))?;
            *h = u64::from_be_bytes(*v);
            rest = r;
        }
        let [party, n, t, message_modulus, carry_modulus] = header;
        if !rest.len().is_multiple_of(SHARE_BYTES) {
            return Err(bad("length"));
        }
        let key = rest
            .chunks_exact(SHARE_BYTES)
            .map(|c| {
                let mut coefs = [0u128; 4];
                for (dst, limb) in coefs.iter_mut().zip(c.chunks_exact(16)) {
                    let mut l = [0u8; 16];
                    l.copy_from_slice(limb);
                    *dst = u128::from_le_bytes(l);
                    l.zeroize();
                }
                Share { coefs }
            })
            .collect();
        let to_usize = |v: u64| usize::try_from(v).map_err(|_| bad("index"));
        Ok(Self {
            key_id: RequestId::from_bytes(*id),
            party: to_usize(party)?,
            n: to_usize(n)?,
            t: to_usize(t)?,
            key,
            message_modulus,
            carry_modulus,
        })
    }
}

/// Shares every coefficient: `out[p]` holds party `p + 1`'s shares, in order (the dealers').
#[cfg(feature = "insecure-dev")]
fn share_all<Z: kms_algebra::Z2k>(
    coefs: &[Z],
    n: usize,
    t: usize,
    rng: &mut impl rand_core::CryptoRngCore,
) -> Result<Vec<Vec<kms_algebra::GaloisRing<Z, 4>>>, ThresholdError> {
    let mut per_party: Vec<Vec<_>> = (0..n).map(|_| Vec::with_capacity(coefs.len())).collect();
    for &c in coefs {
        let shares =
            share::<Z, 4>(c, t, n, rng).map_err(|e| ThresholdError::Params(e.to_string()))?;
        for (dst, s) in per_party.iter_mut().zip(&shares) {
            dst.push(*s.value());
        }
    }
    Ok(per_party)
}

/// **Insecure trusted dealer**: splits the noise-squashing key of a centrally generated key set
/// into `n` shares with threshold `t`. Whoever runs it sees the whole key. For tests and
/// developer mode only, until the DKG issue lands: only in `insecure-dev` builds.
#[cfg(feature = "insecure-dev")]
pub fn deal_insecure(
    ck: &ClientKey,
    key_id: RequestId,
    n: usize,
    t: usize,
    rng: &mut impl rand_core::CryptoRngCore,
) -> Result<Vec<SnsKeyShare>, ThresholdError> {
    if n < 3 * t + 1 {
        return Err(ThresholdError::Params(format!(
            "robust decryption needs n ≥ 3t + 1, got n = {n}, t = {t}"
        )));
    }
    let (_, _, _, nsk, _, _, _, _, _) = ck.clone().into_raw_parts();
    let nsk = nsk
        .ok_or_else(|| ThresholdError::Params("the key set has no noise-squashing key".into()))?
        .into_raw_parts();
    let lwe = nsk.post_noise_squashing_secret_key().as_lwe_secret_key();
    let params = nsk.noise_squashing_parameters();
    deal_coefficients_insecure(
        lwe.as_ref(),
        key_id,
        n,
        t,
        (params.message_modulus().0, params.carry_modulus().0),
        rng,
    )
}

/// **Insecure trusted dealer** of given key coefficients: each party's [`SnsKeyShare`] of
/// `coefs` (degree `t`, `n` parties), with the key's (message, carry) moduli. What
/// [`deal_insecure`] does with a key set's noise-squashing key; tests of the protocols on
/// shares use it directly with keys of their own. Only in `insecure-dev` builds.
#[cfg(feature = "insecure-dev")]
pub fn deal_coefficients_insecure(
    coefs: &[u128],
    key_id: RequestId,
    n: usize,
    t: usize,
    (message_modulus, carry_modulus): (u64, u64),
    rng: &mut impl rand_core::CryptoRngCore,
) -> Result<Vec<SnsKeyShare>, ThresholdError> {
    Ok(share_all::<u128>(coefs, n, t, rng)?
        .into_iter()
        .enumerate()
        .map(|(i, key)| SnsKeyShare {
            key_id,
            party: i + 1,
            n,
            t,
            key,
            message_modulus,
            carry_modulus,
        })
        .collect())
}

/// Shares used for the 64-bit (computation) domain.
pub type Share64 = kms_algebra::GR64;

/// One party's shares of the computation secret keys, in `GR(Z/2^64, 4)`: the small LWE key
/// (key switching target, `n_lwe` coefficients) and the GLWE key (`k·N` coefficients, whose
/// flattening is the large LWE key). These are what a DKG leaves each party with, and what later
/// MPC (bootstrapping-key generation, key refresh) consumes; decryption uses the 128-bit
/// noise-squashing key ([`SnsKeyShare`]).
pub struct ComputeKeyShares {
    /// The key (its key-generation request ID).
    pub key_id: RequestId,
    /// Party index (1-based).
    pub party: usize,
    /// Number of parties.
    pub n: usize,
    /// Threshold.
    pub t: usize,
    /// Shares of the small LWE key's coefficients.
    pub lwe: Vec<Share64>,
    /// Shares of the GLWE key's coefficients (polynomial after polynomial).
    pub glwe: Vec<Share64>,
}

impl std::fmt::Debug for ComputeKeyShares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ComputeKeyShares(key {}, party {}/{}, t {}, {} LWE + {} GLWE coefficients)",
            self.key_id,
            self.party,
            self.n,
            self.t,
            self.lwe.len(),
            self.glwe.len()
        )
    }
}

impl Drop for ComputeKeyShares {
    fn drop(&mut self) {
        self.lwe.zeroize();
        self.glwe.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for ComputeKeyShares {}

/// The computation keys of a tfhe client key: (small LWE key, GLWE key) coefficients. Only the
/// standard atomic pattern (KS-PBS, the default parameters) is supported.
pub fn compute_key_coefficients(ck: &ClientKey) -> Result<(Vec<u64>, Vec<u64>), ThresholdError> {
    use tfhe::shortint::client_key::atomic_pattern::AtomicPatternClientKey;
    let (int_ck, ..) = ck.clone().into_raw_parts();
    match int_ck.into_raw_parts().atomic_pattern {
        AtomicPatternClientKey::Standard(ap) => {
            let (glwe, lwe, _, _) = ap.into_raw_parts();
            Ok((lwe.as_ref().to_vec(), glwe.as_ref().to_vec()))
        }
        AtomicPatternClientKey::KeySwitch32(_) => Err(ThresholdError::Params(
            "the KS32 atomic pattern is not supported".into(),
        )),
    }
}

/// **Insecure trusted dealer** of the computation keys (see [`deal_insecure`]); only in
/// `insecure-dev` builds.
#[cfg(feature = "insecure-dev")]
pub fn deal_compute_keys_insecure(
    ck: &ClientKey,
    key_id: RequestId,
    n: usize,
    t: usize,
    rng: &mut impl rand_core::CryptoRngCore,
) -> Result<Vec<ComputeKeyShares>, ThresholdError> {
    if n < 3 * t + 1 {
        return Err(ThresholdError::Params(format!(
            "robust protocols need n ≥ 3t + 1, got n = {n}, t = {t}"
        )));
    }
    let (mut lwe, mut glwe) = compute_key_coefficients(ck)?;
    let lwe_shares = share_all::<u64>(&lwe, n, t, rng);
    let glwe_shares = share_all::<u64>(&glwe, n, t, rng);
    lwe.zeroize();
    glwe.zeroize();
    Ok(lwe_shares?
        .into_iter()
        .zip(glwe_shares?)
        .enumerate()
        .map(|(i, (lwe, glwe))| ComputeKeyShares {
            key_id,
            party: i + 1,
            n,
            t,
            lwe,
            glwe,
        })
        .collect())
}
