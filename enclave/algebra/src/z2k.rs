//! The base rings Z/2^64 and Z/2^128 (wrapping machine arithmetic).

use std::fmt::Debug;

/// `Z/2^k` for k = 64 (`u64`) or k = 128 (`u128`).
pub trait Z2k: Copy + Eq + Default + Debug + Send + Sync + zeroize::Zeroize + 'static {
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
    /// As a u128 (zero-extended).
    fn to_u128(self) -> u128;
}

macro_rules! impl_z2k {
    ($t:ty, $bits:expr, $random:expr) => {
        impl Z2k for $t {
            const BITS: u32 = $bits;
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
                <$t>::from(b) << j
            }
            fn random(rng: &mut impl rand_core::RngCore) -> Self {
                $random(rng)
            }
            fn from_u64(v: u64) -> Self {
                <$t>::from(v)
            }
            fn from_u128_trunc(v: u128) -> Self {
                v as $t
            }
            fn to_u128(self) -> u128 {
                self as u128
            }
        }
    };
}

impl_z2k!(u64, 64, |r: &mut dyn rand_core::RngCore| r.next_u64());
impl_z2k!(u128, 128, |r: &mut dyn rand_core::RngCore| (u128::from(
    r.next_u64()
) << 64)
    | u128::from(r.next_u64()));
