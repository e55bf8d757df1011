//! Property tests: ring laws, the residue homomorphism onto GF(2^d), sharing and
//! reconstruction, secrecy of t shares (statistically), robust opening with up to t arbitrary
//! errors, and the opening rule (never a wrong value, whatever t corrupt parties send and
//! whichever shares a host drops).

use kms_algebra::shamir::{
    interpolate_at, reconstruct, robust_open, robust_open_degree, share, SecretShare, ShamirError,
};
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
/// Test-only: the xorshift generator is *not* cryptographic; marking it lets the sharing
/// functions (which take `CryptoRngCore`) run on reproducible seeds.
impl rand_core::CryptoRng for Rng {}
impl SeedableRng for Rng {
    type Seed = [u8; 8];
    fn from_seed(s: [u8; 8]) -> Self {
        Rng(u64::from_le_bytes(s) | 1)
    }
}

/// The values of dealt shares (party order).
fn vals<Z: Z2k, const D: usize>(shares: &[SecretShare<Z, D>]) -> Vec<GaloisRing<Z, D>> {
    shares.iter().map(|s| *s.value()).collect()
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
        let shares: Vec<GR64> = vals(&share(secret, t, n, &mut rng).unwrap());
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

    /// Up to t arbitrary wrong shares (including errors invisible in the low bits) and silent
    /// parties within the budget: the right value, and exactly the cheaters named.
    #[test]
    fn robust_open_corrects_up_to_t_errors(secret in any::<u64>(), seed in any::<u64>(), n in 4usize..16) {
        let mut rng = Rng::seed_from_u64(seed);
        let t = (n - 1) / 3;
        let shares: Vec<GR64> = vals(&share(secret, t, n, &mut rng).unwrap());
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
        let shares: Vec<GR128> = vals(&share(secret, t, n, &mut rng).unwrap());
        let mut received: Vec<Option<GR128>> = shares.iter().copied().map(Some).collect();
        // Party 3 is silent, party 6 lies with a value that is a valid share of another secret;
        // 6 present shares still correct min(2, (6-3)/2) = 1 error.
        received[2] = None;
        let other: Vec<GR128> = vals(&share(secret ^ 1, t, n, &mut rng).unwrap());
        received[5] = Some(other[5]);
        let opened = robust_open(&received, t).unwrap();
        prop_assert_eq!(opened.value.scalar(), secret);
        prop_assert_eq!(opened.cheaters, vec![6]);
    }
}

#[test]
fn two_cheaters_of_seven_are_corrected_and_named() {
    let mut rng = Rng::seed_from_u64(7);
    let shares: Vec<GR64d3> = vals(&share(0xdead_beef, 2, 7, &mut rng).unwrap());
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
    let shares: Vec<GR64> = vals(&share(5, 1, 4, &mut rng).unwrap());
    let r = vec![Some(shares[0]), None, None, None];
    assert_eq!(
        robust_open(&r, 1),
        Err(ShamirError::InsufficientAgreement {
            received: 1,
            agreeing: 0,
            need: 3,
            missing: vec![2, 3, 4],
            cheaters: vec![],
        })
    );
    // 4 present, t = 1: one error is corrected; two leave no polynomial with 3 agreements.
    let mut r: Vec<Option<GR64>> = shares.iter().copied().map(Some).collect();
    r[0] = Some(shares[0].add(&GR64::one()));
    r[1] = Some(shares[1].add(&GR64::one()));
    assert!(matches!(
        robust_open(&r, 1),
        Err(ShamirError::InsufficientAgreement {
            received: 4,
            need: 3,
            ..
        })
    ));
    assert!(GR64::point(16).is_err());
    assert!(GR64::point(0).is_err());
    // Interpolating two shares of a degree-1 sharing gives the secret.
    assert_eq!(
        interpolate_at(&[(1, shares[0]), (2, shares[1])], &GR64::ZERO).unwrap(),
        GR64::from_scalar(5)
    );
    assert_eq!(
        reconstruct(&[(4, shares[3])], 1),
        Err(ShamirError::NotEnoughShares { have: 1, need: 2 })
    );
    // An opening rule no set of parties can meet is a parameter error, not a refusal.
    assert!(matches!(
        robust_open_degree(&r, 2, 2),
        Err(ShamirError::BadParams(_))
    ));
    assert_eq!(Gf2d::<4>(0).inv(), None);
}

#[test]
fn gr128d8_supports_many_parties() {
    let mut rng = Rng::seed_from_u64(3);
    let (t, n) = (10, 31);
    let shares: Vec<GR128d8> = vals(&share(u128::MAX, t, n, &mut rng).unwrap());
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
                // (degree 2t, t corrupt: 3t + 1 agreeing shares needed, i.e. all of them here.)
                assert_eq!(
                    robust_open_degree(&opt, 2 * t, t).unwrap().value,
                    GR128::ZERO
                );
                let mut one_missing = opt.clone();
                one_missing[0] = None;
                assert!(robust_open_degree(&one_missing, 2 * t, t).is_err());
            }
            // Sessions differ.
            assert_ne!(
                parties[0].zero_share(b"a", 0),
                parties[0].zero_share(b"b", 0)
            );
        }
    }

    /// All `t`-subsets of `1..=n`.
    fn subsets(n: usize, t: usize) -> Vec<Vec<usize>> {
        // The complements of the maximal sets, computed independently of `maximal_sets`.
        (0u32..(1 << n))
            .filter(|m| m.count_ones() as usize == t)
            .map(|m| (1..=n).filter(|p| (m >> (p - 1)) & 1 == 1).collect())
            .collect()
    }

    /// The PRSS structure is right: every coalition of t parties misses exactly one set key
    /// (the set of the other n − t parties), so the mask is uniform to it, and every coalition
    /// of t + 1 parties misses none (each party holds exactly the keys of its own sets).
    /// Counted on the parties' actual PRSS states, and checked on the mask values: what t
    /// parties can compute from their keys differs from the opened mask.
    #[test]
    fn every_t_coalition_misses_exactly_one_key() {
        for (n, t) in [(4usize, 1usize), (7, 2), (10, 3)] {
            let sets = maximal_sets(n, t);
            assert_eq!(sets.len() as u128, binomial(n, t));
            let mut distinct = sets.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), sets.len(), "sets are distinct");
            assert!(sets.iter().all(|s| s.len() == n - t));
            let mut rng = Rng::seed_from_u64(42 + n as u64);
            let keys = deal_keys(n, t, &mut rng);
            let parties: Vec<Prss<u128, 4>> = (1..=n)
                .map(|p| Prss::new(p, n, t, &keys).unwrap())
                .collect();
            for p in &parties {
                // C(n − 1, t) sets contain a given party.
                assert_eq!(p.sets().count() as u128, binomial(n - 1, t));
                assert!(p.sets().all(|s| s.contains(&p.party())));
            }
            let held_by = |coalition: &[usize]| -> Vec<Vec<usize>> {
                let mut held: Vec<Vec<usize>> = coalition
                    .iter()
                    .flat_map(|&c| parties[c - 1].sets().cloned().collect::<Vec<_>>())
                    .collect();
                held.sort();
                held.dedup();
                held
            };
            let want = mask_value::<u128>(&keys, b"coalition", 0, 80);
            for coalition in subsets(n, t) {
                let held = held_by(&coalition);
                let missed: Vec<&Vec<usize>> = sets.iter().filter(|s| !held.contains(s)).collect();
                let complement: Vec<usize> = (1..=n).filter(|p| !coalition.contains(p)).collect();
                assert_eq!(missed, vec![&complement], "coalition {coalition:?}");
                // What the coalition can compute of the mask misses that key's term.
                let known: std::collections::BTreeMap<_, _> = keys
                    .iter()
                    .filter(|(s, _)| held.contains(s))
                    .map(|(s, k)| (s.clone(), k.clone()))
                    .collect();
                assert_ne!(mask_value::<u128>(&known, b"coalition", 0, 80), want);
            }
            for coalition in subsets(n, t + 1) {
                assert_eq!(held_by(&coalition).len(), sets.len(), "{coalition:?}");
            }
        }
    }
}

/// Pearson's chi-square statistic of `counts` against the uniform distribution.
fn chi_square(counts: &[u64]) -> f64 {
    let total: u64 = counts.iter().sum();
    let expected = total as f64 / counts.len() as f64;
    counts
        .iter()
        .map(|&c| (c as f64 - expected).powi(2) / expected)
        .sum()
}

/// Bucket of a tuple of shares: the residues mod 2 (4 bits each in GR(·, 4)) and bit 1 of the
/// constant coefficient, which depend on the secret's low bits if anything leaks.
fn bucket(shares: &[GR64]) -> usize {
    shares.iter().fold(0usize, |acc, s| {
        (acc << 5) | (usize::from(s.residue().0) << 1) | usize::from(s.coefs[0] & 2 != 0)
    })
}

/// Secrecy of t shares, checked statistically (this can fail, unlike a consistency check):
/// for several fixed secrets, the joint distribution of the t shares of a fixed coalition,
/// projected to 10 bits, passes a chi-square test against uniform at a 10^-9 level. The same
/// statistic on t + 1 shares, which determine the secret, is far outside the bound, so the test
/// does detect dependence on the secret.
#[test]
fn t_shares_are_uniform_whatever_the_secret() {
    let (t, n) = (2usize, 7usize);
    let coalition = [2usize, 5];
    let samples = 40_000;
    // df = 1023: mean 1023, standard deviation sqrt(2046) ≈ 45; 1023 + 6.5·45 ≈ 1316 is beyond a
    // 10^-9 tail (the chi-square tail is lighter than this normal bound at that df).
    let bound = 1316.0;
    let mut rng = Rng::seed_from_u64(0x5ec2e7);
    for secret in [0u64, 1, 3, u64::MAX, 0x8000_0000_0000_0000] {
        let mut counts = vec![0u64; 1 << 10];
        let mut counts_t1 = vec![0u64; 1 << 15];
        for _ in 0..samples {
            let shares = vals(&share::<u64, 4>(secret, t, n, &mut rng).unwrap());
            let picked: Vec<GR64> = coalition.iter().map(|&p| shares[p - 1]).collect();
            counts[bucket(&picked)] += 1;
            let picked: Vec<GR64> = [2usize, 5, 7].iter().map(|&p| shares[p - 1]).collect();
            counts_t1[bucket(&picked)] += 1;
        }
        let x2 = chi_square(&counts);
        assert!(
            x2 < bound,
            "secret {secret:#x}: chi-square {x2:.0} ≥ {bound}"
        );
        // t + 1 shares: the residues satisfy one linear relation given the secret's residue, so
        // only 1/16 of the buckets can occur.
        let x2_t1 = chi_square(&counts_t1);
        let occupied = counts_t1.iter().filter(|&&c| c > 0).count();
        assert!(occupied <= (1 << 15) / 16, "{occupied} buckets");
        assert!(
            x2_t1 > 10.0 * bound,
            "t + 1 shares look uniform: {x2_t1:.0}"
        );
    }
}

/// Hole 1 (issue 9): n = 4, t = 1. A host drops the shares of honest parties 2 and 3, so party
/// 1 holds its own share and corrupt party 4's, which is a share of another value. The old rule
/// ("t + 1 shares interpolate") output the corrupt party's value; the opening rule refuses and
/// names the missing parties.
#[test]
fn two_shares_of_four_never_open() {
    let mut rng = Rng::seed_from_u64(9);
    let (t, n) = (1, 4);
    let honest = vals(&share::<u64, 4>(1000, t, n, &mut rng).unwrap());
    // Party 4 picks the value it wants (7) and sends the share that puts it there: the
    // degree-1 polynomial through (0, 7) and (α_1, share_1), evaluated at α_4.
    let a1 = GR64::point(1).unwrap();
    let a4 = GR64::point(4).unwrap();
    let slope = honest[0].sub(&GR64::from_scalar(7)).mul(&a1.inv().unwrap());
    let forged = GR64::from_scalar(7).add(&slope.mul(&a4));
    let received = vec![Some(honest[0]), None, None, Some(forged)];
    // What the old rule would have output: the two shares interpolate to 7.
    assert_eq!(
        interpolate_at(&[(1, honest[0]), (4, forged)], &GR64::ZERO).unwrap(),
        GR64::from_scalar(7)
    );
    assert_eq!(
        robust_open(&received, t),
        Err(ShamirError::InsufficientAgreement {
            received: 2,
            agreeing: 0,
            need: 3,
            missing: vec![2, 3],
            cheaters: vec![],
        })
    );
    // With one honest share more, the lie is corrected and named.
    let received = vec![Some(honest[0]), Some(honest[1]), None, Some(forged)];
    assert!(robust_open(&received, t).is_err()); // 3 received, 1 wrong: 2 agree < 3
    let received = vec![
        Some(honest[0]),
        Some(honest[1]),
        Some(honest[2]),
        Some(forged),
    ];
    let o = robust_open(&received, t).unwrap();
    assert_eq!(o.value, GR64::from_scalar(1000));
    assert_eq!(o.cheaters, vec![4]);
    assert_eq!(o.agreeing, 3);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The opening rule never outputs a wrong value: any subset of the shares arrives (a host
    /// drops the rest), up to t corrupt parties send shares of another value (consistent among
    /// themselves, the worst case) or garbage. The opening gives the secret or refuses; it
    /// refuses only when fewer than 2t + 1 honest shares arrived.
    #[test]
    fn opening_never_outputs_a_wrong_value(secret in any::<u64>(), seed in any::<u64>(), n in 4usize..16) {
        let mut rng = Rng::seed_from_u64(seed);
        let t = (n - 1) / 3;
        let shares = vals(&share::<u64, 4>(secret, t, n, &mut rng).unwrap());
        let other = vals(&share::<u64, 4>(secret.wrapping_add(1), t, n, &mut rng).unwrap());
        let corrupt = (rng.next_u64() as usize) % (t + 1);
        let garbage = rng.next_u64() & 1 == 1;
        let mut received: Vec<Option<GR64>> = shares.iter().copied().map(Some).collect();
        for p in 0..corrupt {
            received[p] = Some(if garbage { GR64::random(&mut rng) } else { other[p] });
        }
        let mut honest_arrived = n - corrupt;
        for (i, r) in received.iter_mut().enumerate() {
            if rng.next_u64() % 3 == 0 {
                *r = None;
                if i >= corrupt {
                    honest_arrived -= 1;
                }
            }
        }
        match robust_open(&received, t) {
            Ok(o) => {
                prop_assert_eq!(o.value, GR64::from_scalar(secret));
                prop_assert!(o.agreeing > 2 * t);
            }
            Err(ShamirError::InsufficientAgreement { missing, .. }) => {
                let want: Vec<usize> = (1..=n).filter(|p| received[p - 1].is_none()).collect();
                prop_assert_eq!(missing, want);
                // Refused only if the honest shares alone could not meet the rule: with
                // h ≥ 2t + 1 honest and c ≤ t wrong shares, k = h + c ≥ t + 1 + 2c decodes.
                prop_assert!(honest_arrived < 2 * t + 1, "refused with {} honest shares", honest_arrived);
            }
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
    }
}

/// Hole 9: secret wrappers are not `Copy` (compile-time: the call below is ambiguous, so does
/// not compile, for a `Copy` type), print no value, and zeroize.
#[test]
fn secrets_are_not_copy_print_nothing_and_zeroize() {
    use kms_algebra::prss::{deal_keys, PrssKey};
    use zeroize::Zeroize;
    trait AmbiguousIfCopy<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfCopy<()> for T {}
    impl<T: Copy> AmbiguousIfCopy<u8> for T {}
    <SecretShare<u64, 4> as AmbiguousIfCopy<_>>::check();
    <PrssKey as AmbiguousIfCopy<_>>::check();

    let mut rng = Rng::seed_from_u64(11);
    let mut shares = share::<u64, 4>(0x1234_5678, 1, 4, &mut rng).unwrap();
    let s = &mut shares[2];
    let v = *s.value();
    assert_ne!(v, GR64::ZERO);
    let printed = format!("{s:?}");
    for c in v.coefs {
        assert!(!printed.contains(&c.to_string()), "{printed}");
        assert!(!printed.contains(&format!("{c:x}")), "{printed}");
    }
    assert!(printed.contains("redacted"));
    s.zeroize();
    assert_eq!(*s.value(), GR64::ZERO);

    let keys = deal_keys(4, 1, &mut rng);
    let printed = format!("{keys:?}");
    assert!(
        printed.contains("redacted") && !printed.contains("0x"),
        "{printed}"
    );
    let mut k = keys.values().next().unwrap().clone();
    let before = k.clone();
    k.zeroize();
    assert_ne!(k, before);
    assert_eq!(k, PrssKey::from_bytes([0; 32]));
}
