//! Shares of the noise-squashing secret key.

use crate::{Share, ThresholdError};
use kms_algebra::shamir::share;
use tfhe::ClientKey;
use zeroize::Zeroize;

/// One party's share of the noise-squashing LWE secret key.
pub struct SnsKeyShare {
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
            "SnsKeyShare(party {}/{}, t {}, {} coefficients)",
            self.party,
            self.n,
            self.t,
            self.key.len()
        )
    }
}

impl Drop for SnsKeyShare {
    fn drop(&mut self) {
        for s in self.key.iter_mut() {
            s.zeroize();
        }
    }
}

/// **Insecure trusted dealer**: splits the noise-squashing key of a centrally generated key set
/// into `n` shares with threshold `t`. Whoever runs it sees the whole key. For tests and
/// developer mode only, until the DKG issue lands.
pub fn deal_insecure(
    ck: &ClientKey,
    n: usize,
    t: usize,
    rng: &mut impl rand_core::RngCore,
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
    let coefs: &[u128] = lwe.as_ref();
    let mut per_party: Vec<Vec<Share>> = (0..n).map(|_| Vec::with_capacity(coefs.len())).collect();
    for &c in coefs {
        let shares =
            share::<u128, 4>(c, t, n, rng).map_err(|e| ThresholdError::Params(e.to_string()))?;
        for (p, s) in shares.into_iter().enumerate() {
            per_party[p].push(s);
        }
    }
    Ok(per_party
        .into_iter()
        .enumerate()
        .map(|(i, key)| SnsKeyShare {
            party: i + 1,
            n,
            t,
            key,
            message_modulus: nsk.noise_squashing_parameters().message_modulus().0,
            carry_modulus: nsk.noise_squashing_parameters().carry_modulus().0,
        })
        .collect())
}
