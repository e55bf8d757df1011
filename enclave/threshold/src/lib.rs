//! Threshold decryption by noise flooding (after Zama's threshold KMS design, eprint 2023/815
//! and 2025/699; implemented here from the published description).
//!
//! Every party holds a degree-`t` Shamir share, in `GR(Z/2^128, 4)`, of each coefficient of the
//! noise-squashing LWE secret key `s` (binary, 4096 coefficients for the default parameters).
//! To decrypt, every party squashes the ciphertext with tfhe-rs (`squash_noise`: deterministic,
//! so all parties get the same 128-bit LWE ciphertexts `(a, b)`), and computes for each block
//!
//! ```text
//! [p]_i = b − Σ_j a_j·[s_j]_i + [r]_i        r: PRSS mask, |r| ≤ C(n,t)·2^(f−1)
//! ```
//!
//! Opening `p` robustly gives `Δ·m + e_sns + r`; rounding by `Δ` yields `m`. The mask `r` floods
//! the squashing noise `e_sns`, so the opened value reveals nothing about `s` beyond `m` up to
//! statistical distance `2^−stat`. The parameter constraint, checked in code
//! ([`FloodingParams::new`]), is `2·C(n,t)·2^stat·B_sns < Δ/2`, with `2^f = 2^stat·B_sns`.
//!
//! Adversarial soundness (issue 9):
//! * every opening follows `kms_algebra`'s opening rule (`2t + 1` agreeing shares or a typed
//!   refusal naming the missing parties), in public decryption, the user-decryption client,
//!   the resharing check and its consistency check;
//! * every flooding mask is bound to (kind, key ID, request ID, ciphertext index and digest,
//!   block) ([`DecryptionSession`]); key shares carry their key ID, checked against the
//!   request; [`ServedLog`] serves a request ID with one content only;
//! * key shares, sub-shares and PRSS keys are not `Copy`, print no values, zeroize on drop;
//! * resharing verdicts are agreed on ([`reshare_agree`]) and old shares erased only after
//!   the new sharing checked consistent;
//! * PRSS keys can be set up without a dealer ([`prss_setup`]): each set's members agree its
//!   key and check they hold the same one.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod decrypt;
mod keyshare;
mod party;
mod protocol;
pub mod prss_setup;
mod refresh;
mod reshare;
pub mod reshare_agree;
pub mod reshare_check;
mod served;
mod user;
mod wire;

pub use decrypt::{
    combine, partial_decrypt, sns_noise_bound_log2, sns_noise_std_log2, squash, BlockLayout,
    DecryptionSession, FloodingParams, SquashedCiphertext, ThresholdError, B_SNS_LOG2,
    NOISE_BOUND_KAPPA, STAT_SECURITY,
};
pub use keyshare::{compute_key_coefficients, ComputeKeyShares, Share64, SnsKeyShare};
/// The insecure dealers exist only in `insecure-dev` builds (tests, developer mode).
#[cfg(feature = "insecure-dev")]
pub use keyshare::{deal_coefficients_insecure, deal_compute_keys_insecure, deal_insecure};
pub use party::{EpochShare, HeldKey, PartyDecryption, ThresholdParty};
pub use protocol::{decrypt_round, RoundOutcome};
pub use refresh::{refresh, refresh_session, run_id, run_verdict_digest, Refreshed};
pub use reshare::{reshare_compute_in, reshare_compute_out, reshare_in, reshare_out, SubShares};
pub use served::{request_content_digest, MemoryServedStore, Served, ServedLog, ServedStore};
pub use user::{user_combine, user_share, UserDecryption, UserShareResponse};
pub use wire::{decode_partials, encode_partials};

/// Shares and ring used for the 128-bit (noise-squashed) domain.
pub type Share = kms_algebra::GR128;
