//! The base rings Z/2^64 and Z/2^128 (wrapping machine arithmetic).

use std::fmt::Debug;

/// `Z/2^k` for k = 64 (`u64`) or k = 128 (`u128`).
pub trait Z2k: Copy + Eq + Default + Debug + Send + Sync + 'static {
    /// k.
    const BITS: u32;
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Sum mod 2^k.
    fn add(self, o: Self) -> Self;
    /// Difference mod 2^k.
    fn sub(self, o: Self) -> Self;
    /// Product mod 2^k.
    fn mul(self, o: Self) -> Self;
    /// Bit `j`.
    fn bit(self, j: u32) -> bool;
    /// `2^j` if `b`, else 0.
    fn pow2_if(b: bool, j: u32) -> Self;
    /// Uniformly random.
    fn random(rng: &mut impl rand_core::RngCore) -> Self;
    /// From a u64 (zero-extended).
    fn from_u64(v: u64) -> Self;
    /// From a u128, keeping the low k bits.
    fn from_u128_trunc(v: u128) -> Self;
}

impl Z2k for u64 {
    const BITS: u32 = 64;
    const ZERO: Self = 0;
    const ONE: Self = 1;
    fn add(self, o: Self) -> Self {
        self.wrapping_add(o)
    }
    fn sub(self, o: Self) -> Self {
        self.wrapping_sub(o)
    }
    fn mul(self, o: Self) -> Self {
        self.wrapping_mul(o)
    }
    fn bit(self, j: u32) -> bool {
        (self >> j) & 1 == 1
    }
    fn pow2_if(b: bool, j: u32) -> Self {
        u64::from(b) << j
    }
    fn random(rng: &mut impl rand_core::RngCore) -> Self {
        rng.next_u64()
    }
    fn from_u64(v: u64) -> Self {
        v
    }
    fn from_u128_trunc(v: u128) -> Self {
        v as u64
    }
}

impl Z2k for u128 {
    const BITS: u32 = 128;
    const ZERO: Self = 0;
    const ONE: Self = 1;
    fn add(self, o: Self) -> Self {
        self.wrapping_add(o)
    }
    fn sub(self, o: Self) -> Self {
        self.wrapping_sub(o)
    }
    fn mul(self, o: Self) -> Self {
        self.wrapping_mul(o)
    }
    fn bit(self, j: u32) -> bool {
        (self >> j) & 1 == 1
    }
    fn pow2_if(b: bool, j: u32) -> Self {
        u128::from(b) << j
    }
    fn random(rng: &mut impl rand_core::RngCore) -> Self {
        (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())
    }
    fn from_u64(v: u64) -> Self {
        u128::from(v)
    }
    fn from_u128_trunc(v: u128) -> Self {
        v
    }
}
