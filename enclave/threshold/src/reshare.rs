//! Resharing of the key shares (proactive refresh, or a move to a new party set).
//!
//! Every old party reshares each of its key-share coefficients with a fresh degree-`t'` sharing
//! to the `n'` new parties; each new party combines the sub-shares of `t + 1` old parties with
//! the old Lagrange coefficients. The secret key, and so every public key, is unchanged; the old
//! shares become useless, because old and new shares lie on unrelated polynomials.
//!
//! On its own this core is only passively secure (a malicious old party could reshare a wrong
//! value and corrupt the key for good); the new parties therefore verify the dealing with
//! [`crate::reshare_check`] and combine only the dealers it keeps.

use crate::{ComputeKeyShares, SnsKeyShare, ThresholdError};
use kms_algebra::shamir::{reshare_combine, reshare_deal};
use kms_algebra::Z2k;
use kms_types::RequestId;
use zeroize::Zeroize;

type Ring<Z> = kms_algebra::GaloisRing<Z, 4>;

/// One dealer's sub-shares, for one new party, of every key coefficient: a secret (not `Copy`,
/// `Debug` without values, zeroized on drop).
#[derive(Clone, PartialEq, Eq)]
pub struct SubShares<Z: Z2k> {
    values: Vec<Ring<Z>>,
}

impl<Z: Z2k> SubShares<Z> {
    /// Wraps sub-shares (one per coefficient).
    pub fn new(values: Vec<Ring<Z>>) -> Self {
        Self { values }
    }
    /// The sub-shares, one per coefficient.
    pub fn values(&self) -> &[Ring<Z>] {
        &self.values
    }
    /// Mutable access (tests of malicious dealers).
    pub fn values_mut(&mut self) -> &mut [Ring<Z>] {
        &mut self.values
    }
    /// Number of coefficients.
    pub fn len(&self) -> usize {
        self.values.len()
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

impl<Z: Z2k> std::fmt::Debug for SubShares<Z> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SubShares({} coefficients, <redacted>)",
            self.values.len()
        )
    }
}

impl<Z: Z2k> Drop for SubShares<Z> {
    fn drop(&mut self) {
        self.values.zeroize();
    }
}

impl<Z: Z2k> zeroize::ZeroizeOnDrop for SubShares<Z> {}

fn check_new_set(new_n: usize, new_t: usize) -> Result<(), ThresholdError> {
    if new_n < 3 * new_t + 1 {
        return Err(ThresholdError::Params(format!(
            "new set needs n ≥ 3t + 1, got {new_n}, {new_t}"
        )));
    }
    Ok(())
}

/// Deals every coefficient: `out[j]` holds new party `j + 1`'s sub-shares, in order.
fn deal_all<'a, Z: Z2k>(
    coefs: impl Iterator<Item = &'a Ring<Z>>,
    new_n: usize,
    new_t: usize,
    rng: &mut impl rand_core::CryptoRngCore,
) -> Result<Vec<SubShares<Z>>, ThresholdError> {
    check_new_set(new_n, new_t)?;
    let mut out: Vec<SubShares<Z>> = (0..new_n).map(|_| SubShares::new(Vec::new())).collect();
    for c in coefs {
        let subs = reshare_deal(c, new_t, new_n, rng)
            .map_err(|e| ThresholdError::Params(e.to_string()))?;
        for (dst, s) in out.iter_mut().zip(&subs) {
            dst.values.push(*s.value());
        }
    }
    Ok(out)
}

/// Combines the sub-shares `(dealer, sub-shares)` of at least `old_t + 1` dealers.
fn combine_all<Z: Z2k>(
    received: &[(usize, SubShares<Z>)],
    old_t: usize,
) -> Result<Vec<Ring<Z>>, ThresholdError> {
    let len = received.first().map(|(_, v)| v.len()).unwrap_or(0);
    if received.iter().any(|(_, v)| v.len() != len) || len == 0 {
        return Err(ThresholdError::Params(
            "sub-shares of different lengths".into(),
        ));
    }
    (0..len)
        .map(|c| {
            let mut subs: Vec<(usize, Ring<Z>)> = received
                .iter()
                .filter_map(|(p, v)| v.values.get(c).map(|x| (*p, *x)))
                .collect();
            let out =
                reshare_combine(&subs, old_t).map_err(|e| ThresholdError::Params(e.to_string()));
            for (_, v) in subs.iter_mut() {
                v.zeroize();
            }
            out
        })
        .collect()
}

/// Old party's side: `out[j]` holds new party `j + 1`'s sub-shares of every coefficient.
pub fn reshare_out(
    old: &SnsKeyShare,
    new_n: usize,
    new_t: usize,
    rng: &mut impl rand_core::CryptoRngCore,
) -> Result<Vec<SubShares<u128>>, ThresholdError> {
    deal_all(old.key.iter(), new_n, new_t, rng)
}

/// New party's side: its share of key `key_id` from the sub-shares it received,
/// `(old party, sub-shares)`, of at least `old_t + 1` old parties (those the agreed verdict
/// keeps: [`crate::reshare_check`], [`crate::reshare_agree`]).
#[allow(clippy::too_many_arguments)]
pub fn reshare_in(
    party: usize,
    key_id: RequestId,
    new_n: usize,
    new_t: usize,
    old_t: usize,
    received: &[(usize, SubShares<u128>)],
    message_modulus: u64,
    carry_modulus: u64,
) -> Result<SnsKeyShare, ThresholdError> {
    Ok(SnsKeyShare {
        key_id,
        party,
        n: new_n,
        t: new_t,
        key: combine_all(received, old_t)?,
        message_modulus,
        carry_modulus,
    })
}

/// Old party's side for the computation keys: `out[j]` is new party `j + 1`'s sub-shares,
/// LWE coefficients first, then GLWE.
pub fn reshare_compute_out(
    old: &ComputeKeyShares,
    new_n: usize,
    new_t: usize,
    rng: &mut impl rand_core::CryptoRngCore,
) -> Result<Vec<SubShares<u64>>, ThresholdError> {
    deal_all(old.lwe.iter().chain(&old.glwe), new_n, new_t, rng)
}

/// New party's side for the computation keys (`lwe_len` LWE coefficients, then GLWE).
#[allow(clippy::too_many_arguments)]
pub fn reshare_compute_in(
    party: usize,
    key_id: RequestId,
    new_n: usize,
    new_t: usize,
    old_t: usize,
    lwe_len: usize,
    received: &[(usize, SubShares<u64>)],
) -> Result<ComputeKeyShares, ThresholdError> {
    let mut all = combine_all(received, old_t)?;
    if all.len() <= lwe_len {
        all.zeroize();
        return Err(ThresholdError::Params("sub-shares too short".into()));
    }
    let glwe = all.split_off(lwe_len);
    Ok(ComputeKeyShares {
        key_id,
        party,
        n: new_n,
        t: new_t,
        lwe: all,
        glwe,
    })
}
