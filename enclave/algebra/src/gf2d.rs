//! GF(2^d) for 2 ≤ d ≤ 8: the residue field of the Galois ring.

/// Lower terms of the irreducible polynomial `X^d + f(X)` over GF(2) used for degree `d`
/// (bit `i` = coefficient of `X^i`). The same polynomial defines the Galois ring.
pub const fn reduction_poly(d: usize) -> u16 {
    match d {
        2 => 0b11,     // X^2 + X + 1
        3 => 0b11,     // X^3 + X + 1
        4 => 0b11,     // X^4 + X + 1
        5 => 0b101,    // X^5 + X^2 + 1
        6 => 0b11,     // X^6 + X + 1
        7 => 0b11,     // X^7 + X + 1
        8 => 0b1_1011, // X^8 + X^4 + X^3 + X + 1
        _ => 0,
    }
}

/// An element of GF(2^D): bit `i` is the coefficient of `X^i`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Gf2d<const D: usize>(pub u16);

impl<const D: usize> Gf2d<D> {
    const MASK: u16 = ((1u32 << D) - 1) as u16;
    /// 0.
    pub const ZERO: Self = Self(0);
    /// 1.
    pub const ONE: Self = Self(1);

    /// Reduces bits to the field (drops bits ≥ D).
    pub fn new(bits: u16) -> Self {
        Self(bits & Self::MASK)
    }

    /// Whether zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Sum (= difference).
    #[allow(clippy::should_implement_trait)]
    pub fn add(self, o: Self) -> Self {
        Self(self.0 ^ o.0)
    }

    /// Product.
    #[allow(clippy::should_implement_trait)]
    pub fn mul(self, o: Self) -> Self {
        let mut acc: u32 = 0;
        for i in 0..D {
            if (o.0 >> i) & 1 == 1 {
                acc ^= u32::from(self.0) << i;
            }
        }
        let f = u32::from(reduction_poly(D));
        for i in (D..2 * D - 1).rev() {
            if (acc >> i) & 1 == 1 {
                acc ^= (1 << i) | (f << (i - D));
            }
        }
        Self(acc as u16 & Self::MASK)
    }

    /// Inverse of a non-zero element (`None` for zero). The field has at most 256 elements.
    pub fn inv(self) -> Option<Self> {
        if self.is_zero() {
            return None;
        }
        (1..=Self::MASK)
            .map(Self)
            .find(|c| self.mul(*c) == Self::ONE)
    }
}

/// Solves `A x = b` over GF(2^D) (A is `rows × cols`, every row of length `cols`); returns one
/// solution (free variables 0) or `None` if inconsistent or malformed.
pub(crate) fn solve<const D: usize>(
    mut a: Vec<Vec<Gf2d<D>>>,
    mut b: Vec<Gf2d<D>>,
    cols: usize,
) -> Option<Vec<Gf2d<D>>> {
    let rows = a.len();
    if b.len() != rows || a.iter().any(|row| row.len() != cols) {
        return None;
    }
    let at = |a: &[Vec<Gf2d<D>>], i: usize, c: usize| -> Gf2d<D> {
        a.get(i)
            .and_then(|row| row.get(c))
            .copied()
            .unwrap_or(Gf2d::ZERO)
    };
    let mut pivots = Vec::new();
    let mut r = 0;
    for c in 0..cols {
        if r == rows {
            break;
        }
        let Some(p) = (r..rows).find(|&i| !at(&a, i, c).is_zero()) else {
            continue;
        };
        a.swap(r, p);
        b.swap(r, p);
        let inv = at(&a, r, c).inv()?;
        let pivot_row: Vec<Gf2d<D>> = a.get(r)?.iter().map(|x| x.mul(inv)).collect();
        let pivot_b = b.get(r)?.mul(inv);
        for (i, (row, bi)) in a.iter_mut().zip(b.iter_mut()).enumerate() {
            if i == r {
                row.clone_from(&pivot_row);
                *bi = pivot_b;
                continue;
            }
            let f = row.get(c).copied().unwrap_or(Gf2d::ZERO);
            if !f.is_zero() {
                for (x, p) in row.iter_mut().zip(&pivot_row) {
                    *x = x.add(p.mul(f));
                }
                *bi = bi.add(pivot_b.mul(f));
            }
        }
        pivots.push(c);
        r += 1;
    }
    if b.iter().skip(r).any(|v| !v.is_zero()) {
        return None;
    }
    let mut x = vec![Gf2d::ZERO; cols];
    for (&c, bi) in pivots.iter().zip(&b) {
        *x.get_mut(c)? = *bi;
    }
    Some(x)
}

/// Polynomial (coefficients low to high) evaluation.
pub(crate) fn eval<const D: usize>(p: &[Gf2d<D>], x: Gf2d<D>) -> Gf2d<D> {
    p.iter().rev().fold(Gf2d::ZERO, |acc, c| acc.mul(x).add(*c))
}

/// Exact division `num / den` (den's leading coefficient non-zero after trimming); `None` if
/// there is a remainder or `den` is zero.
pub(crate) fn div_exact<const D: usize>(num: &[Gf2d<D>], den: &[Gf2d<D>]) -> Option<Vec<Gf2d<D>>> {
    let mut den = den.to_vec();
    while den.last().is_some_and(|c| c.is_zero()) {
        den.pop();
    }
    let dl = den.len();
    let lead_inv = den.last()?.inv()?;
    let mut rem = num.to_vec();
    while rem.last().is_some_and(|c| c.is_zero()) {
        rem.pop();
    }
    if rem.len() < dl {
        return rem.iter().all(|c| c.is_zero()).then(Vec::new);
    }
    let mut q = vec![Gf2d::ZERO; rem.len() - dl + 1];
    for i in (0..q.len()).rev() {
        let c = rem.get(i + dl - 1)?.mul(lead_inv);
        *q.get_mut(i)? = c;
        for (j, d) in den.iter().enumerate() {
            let r = rem.get_mut(i + j)?;
            *r = r.add(c.mul(*d));
        }
    }
    rem.iter().all(|c| c.is_zero()).then_some(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_laws<const D: usize>() {
        let n = 1u16 << D;
        for a in 0..n {
            let a = Gf2d::<D>(a);
            if !a.is_zero() {
                assert_eq!(
                    a.mul(a.inv().unwrap()),
                    Gf2d::ONE,
                    "inverse of {a:?} in GF(2^{D})"
                );
            }
            for b in 0..n {
                let b = Gf2d::<D>(b);
                assert_eq!(a.mul(b), b.mul(a));
                if !a.is_zero() && !b.is_zero() {
                    assert!(
                        !a.mul(b).is_zero(),
                        "zero divisor: the polynomial for d={D} is reducible"
                    );
                }
            }
        }
    }

    #[test]
    fn reduction_polynomials_are_irreducible() {
        field_laws::<2>();
        field_laws::<3>();
        field_laws::<4>();
        field_laws::<5>();
        field_laws::<6>();
        field_laws::<7>();
        field_laws::<8>();
    }
}
