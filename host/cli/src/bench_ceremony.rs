//! `kms bench-ceremony`: the CRS ceremony's costs as ratios against tfhe-rs generating the same
//! CRS alone in the same run (`CompactPkeCrs::from_config` through `kms_engine::generate_crs`:
//! `2n` G1 and `n` G2 scalar multiplications, the same count a contribution does).
//!
//! Timed regions, each on this machine with every core:
//! * `contribute`: one party's contribution (sample `τ`, raise the `3n` powers, prove knowledge);
//! * `verify`: one party's check of one contribution (decoding, group membership of every
//!   element, the proof, the batched pairing equations);
//! * `assemble`: the final CRS from the end state (tfhe's raw-parts constructor and its own
//!   `is_usable` check);
//! * `ceremony`: the critical path of a whole ceremony of `parties` contributions: every turn is
//!   a contribution then its check by the next party (in a deployment the other parties check
//!   in parallel, on their own machines), then the assembly.

use crate::bench::{median, time, Comparison};
use kms_ceremony::{contribute, verify_contribution, Contribution, CrsShape, CrsState};
use kms_types::{ParamSetName, RequestId};
use rand_core::OsRng;
use std::time::Duration;

/// What `run` measured besides the ratios.
#[derive(Clone, Debug, serde::Serialize)]
pub struct CeremonySizes {
    /// Powers in the CRS (`2n` G1, `n` G2).
    pub n: usize,
    /// Bytes of one contribution on the wire.
    pub contribution_bytes: usize,
    /// Bytes of the final CRS (tfhe's serialization).
    pub crs_bytes: usize,
}

/// Runs a ceremony of `parties` contributions for `params` and `max_bits`; `say` receives
/// progress lines.
pub fn run(
    params: ParamSetName,
    max_bits: u32,
    parties: u32,
    mut say: impl FnMut(&str),
) -> Result<(Vec<Comparison>, CeremonySizes), String> {
    let shape = CrsShape::for_request(params, max_bits).map_err(|e| e.to_string())?;
    say(&format!("CRS of n = {} powers", shape.n));
    let (reference, baseline) = time(|| kms_engine::generate_crs(params, max_bits));
    reference.map_err(|e| e.to_string())?;
    let session = RequestId::derive("bench-ceremony", &max_bits.to_be_bytes());
    let mut state = CrsState::initial(shape, session);
    let (mut contrib, mut verify, mut bytes) = (Vec::new(), Vec::new(), 0);
    for p in 1..=parties.max(1) {
        let (c, tc) = time(|| contribute(&state, p, &mut OsRng));
        let c = c.map_err(|e| e.to_string())?;
        let wire = c.to_bytes().map_err(|e| e.to_string())?;
        bytes = wire.len();
        let (next, tv) = time(|| {
            Contribution::from_bytes(&wire, &shape)
                .and_then(|c| verify_contribution(&state, &c, &mut OsRng))
        });
        state = next.map_err(|e| e.to_string())?;
        say(&format!(
            "party {p}: contribute {:.1} s, verify {:.1} s",
            tc.as_secs_f64(),
            tv.as_secs_f64()
        ));
        contrib.push(tc);
        verify.push(tv);
    }
    let (crs, assemble) = time(|| state.to_crs());
    let crs = crs.map_err(|e| e.to_string())?;
    let crs_bytes = kms_engine::serialize_public(&crs)
        .map_err(|e| e.to_string())?
        .len();
    let total: Duration = contrib.iter().chain(verify.iter()).sum::<Duration>() + assemble;
    let base = baseline.as_secs_f64();
    let cmp = |name: &str, kms_s: f64, runs: usize| Comparison {
        name: name.to_string(),
        kms_s,
        baseline_s: base,
        baseline: "tfhe-rs CompactPkeCrs::from_config, same request".to_string(),
        ratio: kms_s / base,
        runs,
    };
    let n = contrib.len();
    Ok((
        vec![
            cmp("contribute (median)", median(contrib), n),
            cmp("verify one contribution (median)", median(verify), n),
            cmp("assemble + tfhe is_usable", assemble.as_secs_f64(), 1),
            cmp(
                &format!("ceremony critical path, {n} parties"),
                total.as_secs_f64(),
                1,
            ),
        ],
        CeremonySizes {
            n: shape.n,
            contribution_bytes: bytes,
            crs_bytes,
        },
    ))
}
