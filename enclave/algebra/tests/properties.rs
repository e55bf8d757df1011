//! Property tests: ring laws, the residue homomorphism onto GF(2^d), sharing and
//! reconstruction, secrecy of t shares, and robust opening with up to t arbitrary errors.

use kms_algebra::shamir::{interpolate_at, reconstruct, robust_open, share, ShamirError};
use kms_algebra::{GaloisRing, Gf2d, RingError, Z2k, GR128, GR64};
use proptest::prelude::*;
use rand_core::{RngCore, SeedableRng};

type GR64d3 = GaloisRing<u64, 3>;
type GR128d8 = GaloisRing<u128, 8>;

/// A small seedable RNG for reproducible cases (xorshift; test-only).
struct Rng(u64);
impl RngCore for Rng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill_bytes(&mut self, d: &mut [u8]) {
        for b in d.iter_mut() {
            *b = self.next_u64() as u8;
        }
    }
    fn try_fill_bytes(&mut self, d: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(d);
        Ok(())
    }
}
impl SeedableRng for Rng {
    type Seed = [u8; 8];
    fn from_seed(s: [u8; 8]) -> Self {
        Rng(u64::from_le_bytes(s) | 1)
    }
}

fn laws<Z: Z2k, const D: usize>(seed: u64) {
    let mut rng = Rng::seed_from_u64(seed);
    let a = GaloisRing::<Z, D>::random(&mut rng);
    let b = GaloisRing::<Z, D>::random(&mut rng);
    let c = GaloisRing::<Z, D>::random(&mut rng);
    assert_eq!(a.mul(&b), b.mul(&a));
    assert_eq!(a.mul(&b).mul(&c), a.mul(&b.mul(&c)));
    assert_eq!(a.mul(&b.add(&c)), a.mul(&b).add(&a.mul(&c)));
    assert_eq!(a.add(&b).sub(&b), a);
    assert_eq!(a.mul(&GaloisRing::one()), a);
    assert_eq!(a.add(&a.neg()), GaloisRing::ZERO);
    // Reduction mod 2 is a ring homomorphism onto GF(2^D): checks the reduction polynomial and
    // the multiplication against the independent field implementation.
    assert_eq!(a.mul(&b).residue(), a.residue().mul(b.residue()));
    assert_eq!(a.add(&b).residue(), a.residue().add(b.residue()));
    match a.inv() {
        Ok(i) => {
            assert!(a.is_unit());
            assert_eq!(a.mul(&i), GaloisRing::one());
        }
        Err(e) => {
            assert_eq!(e, RingError::NotUnit);
            assert!(a.residue().is_zero());
        }
    }
    // 2·a is never a unit.
    assert!(a.add(&a).inv().is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn ring_laws(seed in any::<u64>()) {
        laws::<u64, 4>(seed);
        laws::<u128, 4>(seed);
        laws::<u64, 3>(seed);
        laws::<u128, 8>(seed);
    }

    #[test]
    fn exceptional_points_differ_by_units(i in 1usize..16, j in 1usize..16) {
        prop_assume!(i != j);
        let d = GR64::point(i).unwrap().sub(&GR64::point(j).unwrap());
        prop_assert!(d.inv().is_ok());
        prop_assert!(GR64::point(i).unwrap().inv().is_ok()); // differs from the secret's point 0
    }

    #[test]
    fn any_t_plus_1_shares_reconstruct(secret in any::<u64>(), n in 2usize..16, seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let t = (rng.next_u64() as usize) % n;
        let shares: Vec<GR64> = share(secret, t, n, &mut rng).unwrap();
        // A random subset of t + 1 parties.
        let mut parties: Vec<usize> = (1..=n).collect();
        for i in (1..parties.len()).rev() {
            parties.swap(i, (rng.next_u64() as usize) % (i + 1));
        }
        let subset: Vec<(usize, GR64)> = parties[..=t].iter().map(|&p| (p, shares[p - 1])).collect();
        let v = reconstruct(&subset, t).unwrap();
        prop_assert!(v.is_scalar());
        prop_assert_eq!(v.scalar(), secret);
    }

    /// t shares are consistent with every secret: for any other secret, the degree-t polynomial
    /// through those t shares and (0, other) exists and gives the same t shares back, so the
    /// shares do not rule any secret out.
    #[test]
    fn t_shares_fit_every_secret(secret in any::<u128>(), other in any::<u128>(), seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let shares: Vec<GR128> = share(secret, 2, 7, &mut rng).unwrap();
        let xs = [GR128::ZERO, GR128::point(1).unwrap(), GR128::point(4).unwrap()];
        let ys = [GR128::from_scalar(other), shares[0], shares[3]];
        let interpolant = |x: &GR128| -> GR128 {
            let mut acc = GR128::ZERO;
            for i in 0..3 {
                let (mut num, mut den) = (GR128::one(), GR128::one());
                for j in 0..3 {
                    if i != j {
                        num = num.mul(&x.sub(&xs[j]));
                        den = den.mul(&xs[i].sub(&xs[j]));
                    }
                }
                acc = acc.add(&ys[i].mul(&num).mul(&den.inv().unwrap()));
            }
            acc
        };
        prop_assert_eq!(interpolant(&xs[1]), shares[0]);
        prop_assert_eq!(interpolant(&xs[2]), shares[3]);
        prop_assert_eq!(interpolant(&GR128::ZERO), ys[0]);
    }

    /// Up to t arbitrary wrong shares (including errors invisible in the low bits) and silent
    /// parties within the budget: the right value, and exactly the cheaters named.
    #[test]
    fn robust_open_corrects_up_to_t_errors(secret in any::<u64>(), seed in any::<u64>(), n in 4usize..16) {
        let mut rng = Rng::seed_from_u64(seed);
        let t = (n - 1) / 3;
        let shares: Vec<GR64> = share(secret, t, n, &mut rng).unwrap();
        let mut received: Vec<Option<GR64>> = shares.iter().copied().map(Some).collect();
        let errors = (rng.next_u64() as usize) % (t + 1);
        let mut cheaters = Vec::new();
        while cheaters.len() < errors {
            let p = 1 + (rng.next_u64() as usize) % n;
            if cheaters.contains(&p) {
                continue;
            }
            // An error e·2^s with s random: many errors vanish mod 2, or mod 2^32.
            let mut e = GR64::random(&mut rng);
            let s = (rng.next_u64() % 64) as u32;
            for c in e.coefs.iter_mut() {
                *c <<= s;
            }
            if e == GR64::ZERO {
                e = GR64::one();
            }
            received[p - 1] = Some(shares[p - 1].add(&e));
            cheaters.push(p);
        }
        cheaters.sort();
        let opened = robust_open(&received, t).unwrap();
        prop_assert_eq!(opened.value, GR64::from_scalar(secret));
        prop_assert_eq!(opened.cheaters, cheaters);
    }

    #[test]
    fn robust_open_128_with_a_silent_party(secret in any::<u128>(), seed in any::<u64>()) {
        let mut rng = Rng::seed_from_u64(seed);
        let (t, n) = (2, 7);
        let shares: Vec<GR128> = share(secret, t, n, &mut rng).unwrap();
        let mut received: Vec<Option<GR128>> = shares.iter().copied().map(Some).collect();
        // Party 3 is silent, party 6 lies with a value that is a valid share of another secret;
        // 6 present shares still correct min(2, (6-3)/2) = 1 error.
        received[2] = None;
        let other: Vec<GR128> = share(secret ^ 1, t, n, &mut rng).unwrap();
        received[5] = Some(other[5]);
        let opened = robust_open(&received, t).unwrap();
        prop_assert_eq!(opened.value.scalar(), secret);
        prop_assert_eq!(opened.cheaters, vec![6]);
    }
}

#[test]
fn two_cheaters_of_seven_are_corrected_and_named() {
    let mut rng = Rng::seed_from_u64(7);
    let shares: Vec<GR64d3> = share(0xdead_beef, 2, 7, &mut rng).unwrap();
    let mut r: Vec<Option<GR64d3>> = shares.iter().copied().map(Some).collect();
    r[1] = Some(GR64d3::random(&mut rng)); // random garbage
    r[4] = Some(shares[4].add(&GR64d3::from_scalar(1 << 63))); // top bit only
    let o = robust_open(&r, 2).unwrap();
    assert_eq!(o.value.scalar(), 0xdead_beef);
    assert_eq!(o.cheaters, vec![2, 5]);
}

#[test]
fn parameter_and_budget_errors_are_typed() {
    let mut rng = Rng::seed_from_u64(1);
    assert!(matches!(
        share::<u64, 4>(1, 4, 4, &mut rng),
        Err(ShamirError::BadParams(_))
    ));
    assert!(matches!(
        share::<u64, 2>(1, 1, 4, &mut rng),
        Err(ShamirError::BadParams(_))
    )); // 2^2 ≤ 4
    let shares: Vec<GR64> = share(5, 1, 4, &mut rng).unwrap();
    let r = vec![Some(shares[0]), None, None, None];
    assert_eq!(
        robust_open(&r, 1),
        Err(ShamirError::NotEnoughShares { have: 1, need: 2 })
    );
    // 4 present, t = 1: one error is corrected; two are detected as too many.
    let mut r: Vec<Option<GR64>> = shares.iter().copied().map(Some).collect();
    r[0] = Some(shares[0].add(&GR64::one()));
    r[1] = Some(shares[1].add(&GR64::one()));
    assert_eq!(robust_open(&r, 1), Err(ShamirError::TooManyErrors(1)));
    assert!(GR64::point(16).is_err());
    assert!(GR64::point(0).is_err());
    let _ = interpolate_at(&[(1, shares[0]), (2, shares[1])], &GR64::ZERO).unwrap();
    assert_eq!(Gf2d::<4>(0).inv(), None);
}

#[test]
fn gr128d8_supports_many_parties() {
    let mut rng = Rng::seed_from_u64(3);
    let (t, n) = (10, 31);
    let shares: Vec<GR128d8> = share(u128::MAX, t, n, &mut rng).unwrap();
    let mut r: Vec<Option<GR128d8>> = shares.iter().copied().map(Some).collect();
    for p in [3, 9, 12, 20, 21, 22, 25, 27, 29, 30] {
        r[p - 1] = Some(GR128d8::random(&mut rng));
    }
    let o = robust_open(&r, t).unwrap();
    assert_eq!(o.value.scalar(), u128::MAX);
    assert_eq!(o.cheaters, vec![3, 9, 12, 20, 21, 22, 25, 27, 29, 30]);
}

mod prss_tests {
    use super::*;
    use kms_algebra::prss::{binomial, deal_keys, mask_value, maximal_sets, Prss};

    #[test]
    fn prss_masks_open_to_the_bounded_sum() {
        for (n, t) in [(4usize, 1usize), (7, 2)] {
            assert_eq!(maximal_sets(n, t).len() as u128, binomial(n, t));
            let mut rng = Rng::seed_from_u64(n as u64);
            let keys = deal_keys(n, t, &mut rng);
            let parties: Vec<Prss<u128, 4>> = (1..=n)
                .map(|p| Prss::new(p, n, t, &keys).unwrap())
                .collect();
            let bits = 80;
            let mut seen_negative = false;
            for ctr in 0..20u64 {
                let shares: Vec<Option<GR128>> = parties
                    .iter()
                    .map(|p| Some(p.mask(b"sid-1", ctr, bits)))
                    .collect();
                let opened = robust_open(&shares, t).unwrap();
                assert!(opened.cheaters.is_empty());
                let want: u128 = mask_value(&keys, b"sid-1", ctr, bits);
                assert_eq!(opened.value, GR128::from_scalar(want));
                // Bounded: |r| ≤ C(n,t)·2^(bits−1), as a signed value.
                let signed = want as i128;
                seen_negative |= signed < 0;
                assert!(signed.unsigned_abs() <= binomial(n, t) << (bits - 1));
            }
            assert!(seen_negative, "masks are centred");
            // Another session gives another value.
            let a: u128 = mask_value(&keys, b"sid-1", 0, bits);
            let b: u128 = mask_value(&keys, b"sid-2", 0, bits);
            assert_ne!(a, b);
        }
    }

    #[test]
    fn przs_shares_zero_with_degree_two_t() {
        use kms_algebra::shamir::interpolate_at;
        for (n, t) in [(4usize, 1usize), (7, 2)] {
            let mut rng = Rng::seed_from_u64(100 + n as u64);
            let keys = deal_keys(n, t, &mut rng);
            let parties: Vec<Prss<u128, 4>> = (1..=n)
                .map(|p| Prss::new(p, n, t, &keys).unwrap())
                .collect();
            for ctr in 0..5u64 {
                let shares: Vec<(usize, GR128)> = parties
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (i + 1, p.zero_share(b"przs", ctr)))
                    .collect();
                // Any 2t + 1 shares interpolate to zero...
                for start in 0..=(n - (2 * t + 1)) {
                    let sub = &shares[start..start + 2 * t + 1];
                    assert_eq!(interpolate_at(sub, &GR128::ZERO).unwrap(), GR128::ZERO);
                }
                // ...and so do all n (the polynomial has degree 2t < n).
                assert_eq!(interpolate_at(&shares, &GR128::ZERO).unwrap(), GR128::ZERO);
                // t + 1 shares do not: the sharing really has degree 2t (it would otherwise
                // leak nothing to randomize), and the shares themselves are not zero.
                assert_ne!(
                    interpolate_at(&shares[..=t], &GR128::ZERO).unwrap(),
                    GR128::ZERO
                );
                assert!(shares.iter().all(|(_, s)| *s != GR128::ZERO));
                // Robust opening at degree 2t gives zero too.
                let opt: Vec<Option<GR128>> = shares.iter().map(|(_, s)| Some(*s)).collect();
                assert_eq!(robust_open(&opt, 2 * t).unwrap().value, GR128::ZERO);
            }
            // Sessions differ.
            assert_ne!(
                parties[0].zero_share(b"a", 0),
                parties[0].zero_share(b"b", 0)
            );
        }
    }

    #[test]
    fn t_parties_miss_a_key() {
        // Every set of t parties is excluded from exactly one PRSS set, whose key it never sees.
        let (n, t) = (7, 2);
        for set in maximal_sets(n, t) {
            let excluded: Vec<usize> = (1..=n).filter(|p| !set.contains(p)).collect();
            assert_eq!(excluded.len(), t);
        }
    }
}
