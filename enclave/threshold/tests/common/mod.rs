//! Test helpers shared by the threshold crate's test binaries.

use kms_algebra::shamir::share;
use kms_threshold::{Share, SnsKeyShare};
use kms_types::RequestId;
use rand_core::OsRng;

/// A key of `coefs` random binary coefficients (no tfhe needed) shared with degree `t` among
/// `n` parties: the secret and each party's share.
pub fn shared_binary_key(
    key_id: RequestId,
    n: usize,
    t: usize,
    coefs: usize,
) -> (Vec<u128>, Vec<SnsKeyShare>) {
    let secret: Vec<u128> = (0..coefs)
        .map(|_| u128::from(rand_core::RngCore::next_u32(&mut OsRng) & 1))
        .collect();
    let mut per: Vec<Vec<Share>> = vec![Vec::new(); n];
    for &c in &secret {
        for (p, s) in share::<u128, 4>(c, t, n, &mut OsRng)
            .unwrap()
            .iter()
            .enumerate()
        {
            per[p].push(*s.value());
        }
    }
    let shares = per
        .into_iter()
        .enumerate()
        .map(|(i, key)| SnsKeyShare {
            key_id,
            party: i + 1,
            n,
            t,
            key,
            message_modulus: 4,
            carry_modulus: 4,
        })
        .collect();
    (secret, shares)
}
