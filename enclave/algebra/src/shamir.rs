//! Shamir sharing over the Galois ring, reconstruction, and robust opening.
//!
//! A degree-`t` sharing of `s` gives party `i` the value `P(α_i)` of a random polynomial `P`
//! with `P(0) = s` (embedded as a constant). Any `t + 1` shares determine `s`; `t` reveal
//! nothing (each share is masked by `t` uniformly random coefficients).
//!
//! [`robust_open`] tolerates up to `e = min(t, ⌊(N − t − 1)/2⌋)` wrong shares among the `N` it
//! receives (so all `t` when `N ≥ 3t + 1`) and names the parties that sent them. It first checks
//! whether all shares lie on one polynomial (the honest case, `O(N·t)`); otherwise it decodes
//! bit by bit: mod 2 the shares form a Reed–Solomon codeword over `GF(2^d)` with at most `e`
//! errors, decoded with Berlekamp–Welch; subtracting the polynomial found so far and looking at
//! the next bit gives the next codeword, `k` times in all. Two different polynomials of degree
//! `≤ t` agree on at most `t` exceptional points (their difference is `2^m·q` with `q` non-zero
//! mod 2), which is what makes the decoded polynomial unique.

use crate::gf2d::{div_exact, eval as gf_eval, solve};
use crate::{GaloisRing, Gf2d, RingError, Z2k};

/// Sharing and opening failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShamirError {
    /// Parameters out of range.
    #[error("bad parameters: {0}")]
    BadParams(String),
    /// Fewer shares than needed.
    #[error("{have} shares, at least {need} needed")]
    NotEnoughShares {
        /// Received.
        have: usize,
        /// Needed.
        need: usize,
    },
    /// More wrong shares than can be corrected.
    #[error("more wrong shares than can be corrected (at most {0})")]
    TooManyErrors(usize),
    /// Ring arithmetic failed.
    #[error("ring: {0}")]
    Ring(#[from] RingError),
}

/// Evaluates `Σ coefs[k]·x^k`.
pub fn eval_poly<Z: Z2k, const D: usize>(
    coefs: &[GaloisRing<Z, D>],
    x: &GaloisRing<Z, D>,
) -> GaloisRing<Z, D> {
    coefs
        .iter()
        .rev()
        .fold(GaloisRing::ZERO, |acc, c| acc.mul(x).add(c))
}

fn check_params<const D: usize>(t: usize, n: usize) -> Result<(), ShamirError> {
    if n == 0 || t >= n || n >= (1usize << D) {
        return Err(ShamirError::BadParams(format!(
            "need t < n < 2^{D} = {}, got t = {t}, n = {n}",
            1usize << D
        )));
    }
    Ok(())
}

/// Shares `secret` among `n` parties with threshold `t`; element `i` goes to party `i + 1`.
pub fn share<Z: Z2k, const D: usize>(
    secret: Z,
    t: usize,
    n: usize,
    rng: &mut impl rand_core::RngCore,
) -> Result<Vec<GaloisRing<Z, D>>, ShamirError> {
    share_element(GaloisRing::from_scalar(secret), t, n, rng)
}

/// Shares a ring element (used by resharing, where the secret is itself a share).
pub fn share_element<Z: Z2k, const D: usize>(
    secret: GaloisRing<Z, D>,
    t: usize,
    n: usize,
    rng: &mut impl rand_core::RngCore,
) -> Result<Vec<GaloisRing<Z, D>>, ShamirError> {
    check_params::<D>(t, n)?;
    let mut coefs = Vec::with_capacity(t + 1);
    coefs.push(secret);
    for _ in 0..t {
        coefs.push(GaloisRing::random(rng));
    }
    let shares = (1..=n)
        .map(|i| Ok(eval_poly(&coefs, &GaloisRing::point(i)?)))
        .collect::<Result<Vec<_>, RingError>>()?;
    for c in coefs.iter_mut() {
        zeroize::Zeroize::zeroize(c);
    }
    Ok(shares)
}

/// Lagrange coefficients `λ_i(x) = Π_{j≠i} (x − α_j)/(α_i − α_j)` for the given parties.
pub fn lagrange_at<Z: Z2k, const D: usize>(
    parties: &[usize],
    x: &GaloisRing<Z, D>,
) -> Result<Vec<GaloisRing<Z, D>>, ShamirError> {
    let pts = parties
        .iter()
        .map(|&p| GaloisRing::point(p))
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = Vec::with_capacity(pts.len());
    for (i, ai) in pts.iter().enumerate() {
        let mut num = GaloisRing::one();
        let mut den = GaloisRing::one();
        for (j, aj) in pts.iter().enumerate() {
            if i != j {
                num = num.mul(&x.sub(aj));
                den = den.mul(&ai.sub(aj));
            }
        }
        out.push(num.mul(&den.inv()?));
    }
    Ok(out)
}

/// The value at `x` of the polynomial through `shares` (party, value); the parties must be
/// distinct, and the polynomial has degree below `shares.len()`.
pub fn interpolate_at<Z: Z2k, const D: usize>(
    shares: &[(usize, GaloisRing<Z, D>)],
    x: &GaloisRing<Z, D>,
) -> Result<GaloisRing<Z, D>, ShamirError> {
    let parties: Vec<usize> = shares.iter().map(|(p, _)| *p).collect();
    let lambdas = lagrange_at(&parties, x)?;
    Ok(lambdas
        .iter()
        .zip(shares)
        .fold(GaloisRing::ZERO, |acc, (l, (_, v))| acc.add(&l.mul(v))))
}

/// Reconstructs from the first `t + 1` shares, trusting them (no error detection).
pub fn reconstruct<Z: Z2k, const D: usize>(
    shares: &[(usize, GaloisRing<Z, D>)],
    t: usize,
) -> Result<GaloisRing<Z, D>, ShamirError> {
    if shares.len() < t + 1 {
        return Err(ShamirError::NotEnoughShares {
            have: shares.len(),
            need: t + 1,
        });
    }
    interpolate_at(&shares[..=t], &GaloisRing::ZERO)
}

/// The result of a robust opening.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened<Z: Z2k, const D: usize> {
    /// The shared value (`P(0)`).
    pub value: GaloisRing<Z, D>,
    /// Parties (1-based) whose shares were wrong.
    pub cheaters: Vec<usize>,
}

/// Berlekamp–Welch over GF(2^D): the polynomial of degree ≤ `t` through all but at most `e`
/// of the points.
fn berlekamp_welch<const D: usize>(
    xs: &[Gf2d<D>],
    zs: &[Gf2d<D>],
    t: usize,
    e: usize,
) -> Option<Vec<Gf2d<D>>> {
    let nq = t + e + 1;
    let cols = nq + e;
    let mut a = Vec::with_capacity(xs.len());
    let mut b = Vec::with_capacity(xs.len());
    for (&x, &z) in xs.iter().zip(zs) {
        let mut row = Vec::with_capacity(cols);
        let mut p = Gf2d::ONE;
        for _ in 0..nq {
            row.push(p);
            p = p.mul(x);
        }
        let mut p = Gf2d::ONE;
        for _ in 0..e {
            row.push(z.mul(p)); // −z·x^k = z·x^k in characteristic 2
            p = p.mul(x);
        }
        a.push(row);
        b.push(z.mul(p)); // z·x^e (E is monic)
    }
    let sol = solve(a, b, cols)?;
    let q = &sol[..nq];
    let mut ep = sol[nq..].to_vec();
    ep.push(Gf2d::ONE);
    let mut f = div_exact(q, &ep)?;
    if f.len() > t + 1 {
        return None;
    }
    f.resize(t + 1, Gf2d::ZERO);
    // Accept only if at most e points disagree.
    let wrong = xs
        .iter()
        .zip(zs)
        .filter(|(x, z)| gf_eval(&f, **x) != **z)
        .count();
    (wrong <= e).then_some(f)
}

/// Opens a degree-`t` sharing from the shares received (`shares[i]` from party `i + 1`, `None`
/// if it sent nothing or something unparsable), correcting wrong shares and naming their senders.
pub fn robust_open<Z: Z2k, const D: usize>(
    shares: &[Option<GaloisRing<Z, D>>],
    t: usize,
) -> Result<Opened<Z, D>, ShamirError> {
    check_params::<D>(t, shares.len())?;
    let present: Vec<(usize, GaloisRing<Z, D>)> = shares
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.map(|s| (i + 1, s)))
        .collect();
    let n = present.len();
    if n < t + 1 {
        return Err(ShamirError::NotEnoughShares {
            have: n,
            need: t + 1,
        });
    }
    let e = t.min((n - t - 1) / 2);

    // Honest case: everything lies on the polynomial through the first t + 1 shares.
    let base = &present[..=t];
    let mut consistent = true;
    for (p, v) in &present[t + 1..] {
        if interpolate_at(base, &GaloisRing::point(*p)?)? != *v {
            consistent = false;
            break;
        }
    }
    if consistent {
        return Ok(Opened {
            value: interpolate_at(base, &GaloisRing::ZERO)?,
            cheaters: vec![],
        });
    }

    // Decode bit by bit.
    let points: Vec<GaloisRing<Z, D>> = present
        .iter()
        .map(|(p, _)| GaloisRing::point(*p))
        .collect::<Result<_, _>>()?;
    let xs: Vec<Gf2d<D>> = points.iter().map(GaloisRing::residue).collect();
    let mut poly = vec![GaloisRing::<Z, D>::ZERO; t + 1];
    for j in 0..Z::BITS {
        let zs: Vec<Gf2d<D>> = present
            .iter()
            .zip(&points)
            .map(|((_, y), x)| y.sub(&eval_poly(&poly, x)).bit_slice(j))
            .collect();
        let g = berlekamp_welch(&xs, &zs, t, e).ok_or(ShamirError::TooManyErrors(e))?;
        for (c, gc) in poly.iter_mut().zip(g) {
            *c = c.add(&GaloisRing::lift_shifted(gc, j));
        }
    }
    let cheaters: Vec<usize> = present
        .iter()
        .zip(&points)
        .filter(|((_, y), x)| eval_poly(&poly, x) != *y)
        .map(|((p, _), _)| *p)
        .collect();
    if cheaters.len() > e {
        return Err(ShamirError::TooManyErrors(e));
    }
    Ok(Opened {
        value: poly[0],
        cheaters,
    })
}

/// Resharing, dealer side: old party's share → a fresh degree-`new_t` sharing of it for `new_n`
/// parties (element `j` goes to new party `j + 1`).
pub fn reshare_deal<Z: Z2k, const D: usize>(
    my_share: &GaloisRing<Z, D>,
    new_t: usize,
    new_n: usize,
    rng: &mut impl rand_core::RngCore,
) -> Result<Vec<GaloisRing<Z, D>>, ShamirError> {
    share_element(*my_share, new_t, new_n, rng)
}

/// Resharing, receiver side: from the sub-shares `(old party, sub-share)` of `old_t + 1` old
/// parties, this new party's share of the same secret: `Σ λ_i(0)·σ_i`. The result is a
/// degree-`new_t` sharing with fresh randomness: old shares and new shares do not combine.
pub fn reshare_combine<Z: Z2k, const D: usize>(
    subshares: &[(usize, GaloisRing<Z, D>)],
    old_t: usize,
) -> Result<GaloisRing<Z, D>, ShamirError> {
    if subshares.len() < old_t + 1 {
        return Err(ShamirError::NotEnoughShares {
            have: subshares.len(),
            need: old_t + 1,
        });
    }
    interpolate_at(&subshares[..=old_t], &GaloisRing::ZERO)
}
