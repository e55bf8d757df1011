//! The algebra of the threshold engine.
//!
//! Secrets live in `Z/2^k` (k = 64 or 128: tfhe-rs's native moduli), so threshold decryption can
//! compute `b - <a, s>` on shares with exactly the ciphertext's arithmetic and no carries to
//! hide. Shamir sharing needs interpolation points whose pairwise differences are invertible;
//! `Z/2^k` has only two such points, so shares live in the Galois ring
//! `GR(Z/2^k, d) = (Z/2^k)[X] / (F(X))`, `F` monic of degree `d` and irreducible mod 2, whose
//! *exceptional sequence* (lifts of the `2^d` elements of `GF(2^d)`) provides up to `2^d`
//! points. A secret `s ∈ Z/2^k` is embedded as the constant `s + 0·X + …`; party `i` (1-based)
//! evaluates at the point whose coefficients are the bits of `i`, the secret sits at 0, so
//! `2^d > n` is required.
//!
//! * [`Z2k`]: the base rings `Z/2^64` and `Z/2^128`.
//! * [`Gf2d`]: the residue field `GF(2^d)`.
//! * [`GaloisRing`]: `GR(Z/2^k, d)`, with inversion of units by Hensel lifting.
//! * [`shamir`]: sharing, Lagrange reconstruction, and [`shamir::robust_open`]: error
//!   correction of up to `t` wrong shares when `n ≥ 3t + 1`, decoding Reed–Solomon mod 2 with
//!   Berlekamp–Welch and lifting one bit of `Z/2^k` at a time, with the parties whose shares were
//!   wrong identified, under the **opening rule**: a value is output only if at least `2t + 1`
//!   received shares agree with one degree-`t` polynomial (see [`shamir`] for the rule and why
//!   it is sound; every opening in the KMS goes through it).
//! * [`prss`]: pseudo-random secret sharing of bounded masks and of zero.
//!
//! Secrets ([`shamir::SecretShare`], [`prss::PrssKey`]) are not `Copy`, print no value and
//! zeroize on drop; sharing functions take a `CryptoRngCore`.

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

mod gf2d;
pub mod prss;
mod ring;
pub mod shamir;
mod z2k;

pub use gf2d::Gf2d;
pub use ring::{GaloisRing, RingError};
pub use z2k::Z2k;

/// `GR(Z/2^64, 4)`: up to 15 parties.
pub type GR64 = GaloisRing<u64, 4>;
/// `GR(Z/2^128, 4)`: up to 15 parties (noise-squashed ciphertexts are mod 2^128).
pub type GR128 = GaloisRing<u128, 4>;
