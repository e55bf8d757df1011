//! Test helpers shared by the threshold crate's test binaries.

use kms_threshold::{deal_coefficients_insecure, SnsKeyShare};
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
    let shares = deal_coefficients_insecure(&secret, key_id, n, t, (4, 4), &mut OsRng).unwrap();
    (secret, shares)
}
