//! The Galois ring GR(Z/2^k, d).

use crate::gf2d::reduction_poly;
use crate::{Gf2d, Z2k};

/// Ring errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// The element is not a unit (its reduction mod 2 is zero).
    #[error("not a unit")]
    NotUnit,
    /// The party index has no exceptional point in this ring (needs `1 ≤ i < 2^d`).
    #[error("party index {0} out of range for this ring")]
    BadIndex(usize),
}

/// An element of `(Z/2^k)[X] / (X^D + f(X))`: coefficients low to high.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct GaloisRing<Z: Z2k, const D: usize> {
    /// Coefficients of `1, X, …, X^(D-1)`.
    pub coefs: [Z; D],
}

impl<Z: Z2k, const D: usize> std::fmt::Debug for GaloisRing<Z, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GR{:?}", self.coefs)
    }
}

impl<Z: Z2k, const D: usize> Default for GaloisRing<Z, D> {
    fn default() -> Self {
        Self::ZERO
    }
}

impl<Z: Z2k, const D: usize> zeroize::Zeroize for GaloisRing<Z, D> {
    fn zeroize(&mut self) {
        // Volatile writes (zeroize's implementation for u64/u128), which the compiler keeps.
        self.coefs.zeroize();
    }
}

impl<Z: Z2k, const D: usize> GaloisRing<Z, D> {
    /// 0.
    pub const ZERO: Self = Self {
        coefs: [Z::ZERO; D],
    };

    /// 1.
    pub fn one() -> Self {
        Self::from_scalar(Z::ONE)
    }

    /// The constant `s` (how secrets of `Z/2^k` are embedded).
    pub fn from_scalar(s: Z) -> Self {
        let mut coefs = [Z::ZERO; D];
        if let Some(c) = coefs.first_mut() {
            *c = s;
        }
        Self { coefs }
    }

    /// The constant coefficient.
    pub fn scalar(&self) -> Z {
        self.coefs.first().copied().unwrap_or(Z::ZERO)
    }

    /// Whether all non-constant coefficients are zero.
    pub fn is_scalar(&self) -> bool {
        self.coefs.iter().skip(1).all(|c| *c == Z::ZERO)
    }

    /// The exceptional point of party `i` (1-based): coefficients are the bits of `i`.
    /// Point 0 (the secret's) is [`Self::ZERO`].
    pub fn point(i: usize) -> Result<Self, RingError> {
        if i == 0 || i >= (1usize << D) {
            return Err(RingError::BadIndex(i));
        }
        let mut coefs = [Z::ZERO; D];
        for (j, c) in coefs.iter_mut().enumerate() {
            if (i >> j) & 1 == 1 {
                *c = Z::ONE;
            }
        }
        Ok(Self { coefs })
    }

    /// A uniformly random element.
    pub fn random(rng: &mut impl rand_core::RngCore) -> Self {
        let mut coefs = [Z::ZERO; D];
        for c in coefs.iter_mut() {
            *c = Z::random(rng);
        }
        Self { coefs }
    }

    /// Sum.
    #[allow(clippy::should_implement_trait)]
    pub fn add(&self, o: &Self) -> Self {
        let mut coefs = self.coefs;
        for (c, d) in coefs.iter_mut().zip(o.coefs) {
            *c = c.add(d);
        }
        Self { coefs }
    }

    /// Difference.
    #[allow(clippy::should_implement_trait)]
    pub fn sub(&self, o: &Self) -> Self {
        let mut coefs = self.coefs;
        for (c, d) in coefs.iter_mut().zip(o.coefs) {
            *c = c.sub(d);
        }
        Self { coefs }
    }

    /// Negation.
    #[allow(clippy::should_implement_trait)]
    pub fn neg(&self) -> Self {
        Self::ZERO.sub(self)
    }

    /// Product, reduced by `X^D = -f(X)`.
    #[allow(clippy::should_implement_trait)]
    pub fn mul(&self, o: &Self) -> Self {
        // Schoolbook product (degree ≤ 2D − 2), then reduction from the top term down. All
        // indices are in range by construction; `get_mut` keeps the code free of panics.
        let mut prod = vec![Z::ZERO; 2 * D];
        for (i, a) in self.coefs.iter().enumerate() {
            for (j, b) in o.coefs.iter().enumerate() {
                if let Some(p) = prod.get_mut(i + j) {
                    *p = p.add(a.mul(*b));
                }
            }
        }
        let f = reduction_poly(D);
        for i in (D..2 * D).rev() {
            let c = prod.get(i).copied().unwrap_or(Z::ZERO);
            if c == Z::ZERO {
                continue;
            }
            for b in 0..D {
                if (f >> b) & 1 == 1 {
                    if let Some(p) = prod.get_mut(i - D + b) {
                        *p = p.sub(c);
                    }
                }
            }
        }
        let mut coefs = [Z::ZERO; D];
        for (c, p) in coefs.iter_mut().zip(&prod) {
            *c = *p;
        }
        Self { coefs }
    }

    /// Multiplication by a base-ring scalar.
    pub fn scale(&self, s: Z) -> Self {
        let mut coefs = self.coefs;
        for c in coefs.iter_mut() {
            *c = c.mul(s);
        }
        Self { coefs }
    }

    /// Reduction mod 2 into the residue field.
    pub fn residue(&self) -> Gf2d<D> {
        self.bit_slice(0)
    }

    /// Bit `j` of every coefficient, as an element of GF(2^D).
    pub fn bit_slice(&self, j: u32) -> Gf2d<D> {
        let mut bits = 0u16;
        for (i, c) in self.coefs.iter().enumerate() {
            if c.bit(j) {
                bits |= 1 << i;
            }
        }
        Gf2d::new(bits)
    }

    /// `2^j · lift(g)`: the element whose coefficient `i` is `2^j` times bit `i` of `g`.
    pub fn lift_shifted(g: Gf2d<D>, j: u32) -> Self {
        let mut coefs = [Z::ZERO; D];
        for (i, c) in coefs.iter_mut().enumerate() {
            *c = Z::pow2_if((g.0 >> i) & 1 == 1, j);
        }
        Self { coefs }
    }

    /// Whether a unit (invertible): its residue mod 2 is non-zero.
    pub fn is_unit(&self) -> bool {
        !self.residue().is_zero()
    }

    /// The inverse of a unit: invert mod 2 in GF(2^D), then Hensel/Newton lifting
    /// `y ← y·(2 − a·y)`, which doubles the number of correct bits each step.
    pub fn inv(&self) -> Result<Self, RingError> {
        let r = self.residue().inv().ok_or(RingError::NotUnit)?;
        let mut y = Self::lift_shifted(r, 0);
        let two = Self::from_scalar(Z::ONE.add(Z::ONE));
        let mut correct = 1;
        while correct < Z::BITS {
            y = y.mul(&two.sub(&self.mul(&y)));
            correct *= 2;
        }
        Ok(y)
    }
}
