//! The multi-party CRS ceremony for tfhe's zero-knowledge proofs of encryption (PKE v2).
//!
//! tfhe's CRS (`tfhe_zk_pok::proofs::pke_v2::PublicParams` over BLS12-446) is, besides public
//! sizes, the powers of one secret `α`:
//!
//! ```text
//! g1 = [g^α, g^α², …, g^αⁿ, 0, g^αⁿ⁺², …, g^α²ⁿ]      (the (n+1)-th power is left out)
//! g2 = [ĥ^α, ĥ^α², …, ĥ^αⁿ]
//! ```
//!
//! Whoever knows `α` can forge proofs. So nobody samples it: the ceremony starts from `α = 1`
//! (every element a generator, publicly checkable) and the parties contribute in turn. A
//! contribution with a fresh secret `τ` raises the i-th element to `τ^i`, so the new secret is
//! `α·τ`, and carries a Schnorr proof of knowledge of `τ` relative to the previous first element
//! (the challenge binds the session, the transcript so far and the contributor). Every party
//! checks every contribution before it contributes itself ([`verify_contribution`]):
//!
//! * lengths, the left-out element, and every point on the curve and in the prime-order subgroup;
//! * the proof of knowledge: the new first element is the previous one raised to a `τ` the
//!   contributor knows, so a contribution cannot discard the earlier ones (a "reset" to an `α'`
//!   of its own choosing would need `α'/α`);
//! * the powers structure, by pairings batched with the verifier's own random weights:
//!   `e(g1₁, ĥ) = e(g, g2₁)`, `e(g1ᵢ₊₁, ĥ) = e(g1ᵢ, g2₁)` on both sides of the gap,
//!   `e(g1ₙ₊₂, ĥ) = e(g1ₙ, g2₂)` across it, and `e(g, g2ᵢ₊₁) = e(g1₁, g2ᵢ)`.
//!
//! A contribution that fails any check is rejected and skipped: the state stays as it was and
//! the next party contributes on top of it. The final CRS is secure if at least one accepted
//! contributor was honest (sampled `τ` at random and forgot it), which [`Ceremony::finish`]
//! guarantees by requiring `t + 1` accepted contributions out of the `n` parties, of which at
//! most `t` are corrupt. The domain separators and session ID tfhe puts in the CRS are derived
//! from the whole transcript, and the CRS is assembled with tfhe's own raw-parts constructor
//! and checked with its own `is_usable` before it is returned.
//!
//! The sizes (`n`, the LWE dimension, the message count, the noise bound, the moduli) are those
//! tfhe computes for the parameter set and `max_num_bits` ([`CrsShape::for_request`]), so the
//! result is exactly the CRS tfhe would generate, with an `α` nobody knows.
//!
//! How the parties agree on each turn (the KMS chain orders one digest per turn and decides it by
//! the parties' votes) is the ASC's (`kms_app::ceremony`); a party resumes the agreed transcript
//! with [`CrsState::resume`].
//!
//! The same protocol shape as Zama's ceremony (sequential contributions checked by pairing
//! equations, eprint 2025/699 §9.7); written here from that description.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod ceremony;
mod contribution;
mod shape;
mod state;

pub use ceremony::{Ceremony, CeremonyOutcome};
pub use contribution::{
    contribute, verify_contribution, verify_contribution_bytes, Contribution, KnowledgeProof,
};
pub use shape::{CrsShape, ProofBound};
pub use state::{Accepted, CrsState};

/// Why a contribution was rejected or the ceremony could not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CeremonyError {
    /// tfhe has no CRS for this parameter set and size.
    #[error("no CRS for this request: {0}")]
    Unsupported(String),
    /// The contribution's bytes do not decode (or exceed the bound for this shape).
    #[error("malformed contribution: {0}")]
    Malformed(String),
    /// The contribution claims another contributor than the party it came from.
    #[error("contribution from party {got}, expected party {expected}")]
    WrongContributor {
        /// The contributor it names.
        got: u32,
        /// The party whose turn it is.
        expected: u32,
    },
    /// A party contributed twice, or out of turn.
    #[error("party {0} may not contribute now")]
    OutOfTurn(u32),
    /// The element lists do not have the shape's lengths.
    #[error("wrong lengths: {g1} G1 and {g2} G2 elements, expected {want_g1} and {want_g2}")]
    WrongLength {
        /// G1 elements received.
        g1: usize,
        /// G2 elements received.
        g2: usize,
        /// G1 elements expected (2n).
        want_g1: usize,
        /// G2 elements expected (n).
        want_g2: usize,
    },
    /// An element is not on the curve or not in the prime-order subgroup.
    #[error("element {index} of {group} is not a valid group element")]
    InvalidPoint {
        /// "G1" or "G2".
        group: &'static str,
        /// Its position (0-based).
        index: usize,
    },
    /// The (n+1)-th G1 element is not the identity, or the first one is.
    #[error("degenerate contribution: {0}")]
    Degenerate(&'static str),
    /// The proof of knowledge of the contribution's secret does not verify.
    #[error("the proof of knowledge does not verify")]
    BadProof,
    /// The elements are not successive powers of one secret.
    #[error("the elements are not powers of one secret ({0})")]
    NotPowers(&'static str),
    /// Fewer contributions were accepted than the ceremony needs to contain an honest one.
    #[error("only {accepted} contributions accepted, at least {needed} needed")]
    TooFewContributions {
        /// Accepted so far.
        accepted: usize,
        /// t + 1.
        needed: usize,
    },
    /// tfhe refused the assembled CRS.
    #[error("tfhe refuses the assembled CRS")]
    Unusable,
}
