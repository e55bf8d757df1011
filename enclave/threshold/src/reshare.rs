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

use crate::{ComputeKeyShares, Share, Share64, SnsKeyShare, ThresholdError};
use kms_algebra::shamir::{reshare_combine, reshare_deal};

type Ring<Z> = kms_algebra::GaloisRing<Z, 4>;

fn check_new_set(new_n: usize, new_t: usize) -> Result<(), ThresholdError> {
    if new_n < 3 * new_t + 1 {
        return Err(ThresholdError::Params(format!(
            "new set needs n ≥ 3t + 1, got {new_n}, {new_t}"
        )));
    }
    Ok(())
}

/// Deals every coefficient: `out[j]` holds new party `j + 1`'s sub-shares, in order.
fn deal_all<'a, Z: kms_algebra::Z2k>(
    coefs: impl Iterator<Item = &'a Ring<Z>>,
    new_n: usize,
    new_t: usize,
    rng: &mut impl rand_core::RngCore,
) -> Result<Vec<Vec<Ring<Z>>>, ThresholdError> {
    check_new_set(new_n, new_t)?;
    let mut out: Vec<Vec<Ring<Z>>> = vec![Vec::new(); new_n];
    for c in coefs {
        let subs = reshare_deal(c, new_t, new_n, rng)
            .map_err(|e| ThresholdError::Params(e.to_string()))?;
        for (j, s) in subs.into_iter().enumerate() {
            out[j].push(s);
        }
    }
    Ok(out)
}

/// Combines the sub-shares `(dealer, coefficients)` of at least `old_t + 1` dealers.
fn combine_all<Z: kms_algebra::Z2k>(
    received: &[(usize, Vec<Ring<Z>>)],
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
            let subs: Vec<(usize, Ring<Z>)> = received.iter().map(|(p, v)| (*p, v[c])).collect();
            reshare_combine(&subs, old_t).map_err(|e| ThresholdError::Params(e.to_string()))
        })
        .collect()
}

/// Old party's side: `out[j][c]` is new party `j + 1`'s sub-share of coefficient `c`.
pub fn reshare_out(
    old: &SnsKeyShare,
    new_n: usize,
    new_t: usize,
    rng: &mut impl rand_core::RngCore,
) -> Result<Vec<Vec<Share>>, ThresholdError> {
    deal_all(old.key.iter(), new_n, new_t, rng)
}

/// New party's side: its key share from the sub-shares it received, `(old party, coefficients)`,
/// of at least `old_t + 1` old parties.
pub fn reshare_in(
    party: usize,
    new_n: usize,
    new_t: usize,
    old_t: usize,
    received: &[(usize, Vec<Share>)],
    message_modulus: u64,
    carry_modulus: u64,
) -> Result<SnsKeyShare, ThresholdError> {
    Ok(SnsKeyShare {
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
    rng: &mut impl rand_core::RngCore,
) -> Result<Vec<Vec<Share64>>, ThresholdError> {
    deal_all(old.lwe.iter().chain(&old.glwe), new_n, new_t, rng)
}

/// New party's side for the computation keys (`lwe_len` LWE coefficients, then GLWE).
pub fn reshare_compute_in(
    party: usize,
    new_n: usize,
    new_t: usize,
    old_t: usize,
    lwe_len: usize,
    received: &[(usize, Vec<Share64>)],
) -> Result<ComputeKeyShares, ThresholdError> {
    let mut all = combine_all(received, old_t)?;
    if all.len() <= lwe_len {
        return Err(ThresholdError::Params("sub-shares too short".into()));
    }
    let glwe = all.split_off(lwe_len);
    Ok(ComputeKeyShares {
        party,
        n: new_n,
        t: new_t,
        lwe: all,
        glwe,
    })
}
