//! `kms bench`: the engine's costs as ratios against tfhe-rs baselines doing the same work in
//! the same run (interleaved, medians).
//!
//! * key generation: `CentralizedEngine::keygen` vs tfhe-rs generating the same key set —
//!   `ClientKey::generate`, `generate_compressed_server_key` (with noise squashing) and
//!   `CompactPublicKey::new` on the same configuration. The KMS's timed region adds what it
//!   does on top: tagging, serializing the public material and the private blob, two EIP-712
//!   signatures.
//! * centralized public decryption: `CentralizedEngine::public_decrypt` of one ciphertext
//!   (strict deserialization, key-tag check, decryption, EIP-712 signature) vs tfhe-rs
//!   `safe_deserialize` + `decrypt` of the same bytes.
//! * threshold decryption: see [`threshold`].

use kms_eip712::{DomainConfig, SigningKey};
use kms_engine::tfhe::prelude::*;
use kms_engine::tfhe::{self, FheUint64, FheUint8};
use kms_engine::{config_for, serialize_public, Backend, CentralizedEngine};
use kms_types::{
    CanonicalRequest, FheType, KeyGenRequest, ParamSetName, PublicDecryptionRequest,
    TypedCiphertext,
};
use serde::Serialize;
use std::time::{Duration, Instant};

/// One measured comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    /// What is measured.
    pub name: String,
    /// Median of the KMS operation, seconds.
    pub kms_s: f64,
    /// Median of the baseline, seconds.
    pub baseline_s: f64,
    /// The baseline.
    pub baseline: String,
    /// kms / baseline.
    pub ratio: f64,
    /// Runs of each.
    pub runs: usize,
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64()
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed())
}

/// Runs the benchmark; `say` receives progress lines.
pub fn run(
    params: ParamSetName,
    keygen_runs: usize,
    decrypt_runs: usize,
    mut say: impl FnMut(&str),
) -> Result<Vec<Comparison>, String> {
    let keygen_runs = keygen_runs.max(1);
    let decrypt_runs = decrypt_runs.max(1);
    let engine = CentralizedEngine::new(
        SigningKey::random(&mut rand_core::OsRng),
        DomainConfig::default(),
    );
    let config = config_for(params);

    // Interleave the two so machine noise hits both alike.
    let (mut kms_t, mut base_t) = (Vec::new(), Vec::new());
    let mut pending = None;
    let mut key_id = None;
    for i in 0..keygen_runs {
        say(&format!("keygen run {}/{keygen_runs}", i + 1));
        let req = KeyGenRequest {
            params,
            label: format!("bench-{i}"),
        };
        let id = req.request_id();
        let (out, t) = time(|| engine.keygen(&req, &mut |_| {}));
        let out = out.map_err(|e| e.to_string())?;
        kms_t.push(t);
        pending = Some(out.pending);
        key_id = Some(id);
        let (_, t) = time(|| {
            let ck = tfhe::ClientKey::generate(config);
            let sk = ck.generate_compressed_server_key();
            let pk = tfhe::CompactPublicKey::new(&ck);
            (sk, pk)
        });
        base_t.push(t);
    }
    let mut results = vec![Comparison {
        name: format!("key generation ({})", params.as_str()),
        kms_s: median(kms_t),
        baseline_s: median(base_t),
        baseline: "tfhe ClientKey + compressed ServerKey + CompactPublicKey".into(),
        ratio: 0.0,
        runs: keygen_runs,
    }];

    let (pending, key_id) = match (pending, key_id) {
        (Some(p), Some(k)) => (p, k),
        _ => return Err("no key generated".into()),
    };
    // For the baseline we need the client key and a server key with noise squashing: generate a
    // tagged key set directly with the engine's generator so both paths decrypt the same bytes.
    say("preparing decryption inputs");
    let ks = kms_engine::generate_key_set(params, &key_id, &mut |_| {});
    let ck = ks.client_key;
    let sk = ks.server_key.decompress();
    tfhe::set_server_key(sk);
    // The engine must hold the same client key as the baseline.
    let blob = kms_engine::encode_private_key(params, &ck).map_err(|e| e.to_string())?;
    drop(pending);
    engine
        .load_key(key_id, &blob.0)
        .map_err(|e| e.to_string())?;

    for (fhe_type, bytes) in [
        (FheType::Uint8, {
            let ct = FheUint8::encrypt(171u8, &ck);
            serialize_public(&ct).map_err(|e| e.to_string())?
        }),
        (FheType::Uint64, {
            let ct = FheUint64::encrypt(0x0123_4567_89ab_cdefu64, &ck);
            serialize_public(&ct).map_err(|e| e.to_string())?
        }),
    ] {
        let req = PublicDecryptionRequest {
            key_id,
            ciphertexts: vec![TypedCiphertext {
                fhe_type,
                bytes: bytes.clone(),
            }],
        };
        let (mut kms_t, mut base_t) = (Vec::new(), Vec::new());
        for i in 0..decrypt_runs {
            say(&format!(
                "{fhe_type} decryption run {}/{decrypt_runs}",
                i + 1
            ));
            let (r, t) = time(|| engine.public_decrypt(&req));
            r.map_err(|e| e.to_string())?;
            kms_t.push(t);
            let (r, t) = time(|| baseline_decrypt(fhe_type, &bytes, &ck));
            r?;
            base_t.push(t);
        }
        results.push(Comparison {
            name: format!("public decryption, 1 × {fhe_type} ({})", params.as_str()),
            kms_s: median(kms_t),
            baseline_s: median(base_t),
            baseline: "tfhe safe_deserialize + decrypt".into(),
            ratio: 0.0,
            runs: decrypt_runs,
        });
    }
    results.extend(threshold(&ck, params, key_id, decrypt_runs, &mut say)?);
    for r in &mut results {
        r.ratio = r.kms_s / r.baseline_s;
    }
    Ok(results)
}

/// tfhe-rs's own deserialization and decryption of one ciphertext.
fn baseline_decrypt(t: FheType, bytes: &[u8], ck: &tfhe::ClientKey) -> Result<u128, String> {
    let lim = 1 << 30;
    match t {
        FheType::Uint8 => {
            let ct: FheUint8 = tfhe::safe_serialization::safe_deserialize(bytes, lim)?;
            let v: u8 = ct.decrypt(ck);
            Ok(v.into())
        }
        FheType::Uint64 => {
            let ct: FheUint64 = tfhe::safe_serialization::safe_deserialize(bytes, lim)?;
            let v: u64 = ct.decrypt(ck);
            Ok(v.into())
        }
        _ => Err("unsupported in bench".into()),
    }
}

/// tfhe-rs's deserialization, noise squashing and decryption of one ciphertext: the work the
/// threshold path is built on.
fn baseline_squash_decrypt(t: FheType, bytes: &[u8], ck: &tfhe::ClientKey) -> Result<u128, String> {
    let lim = 1 << 30;
    match t {
        FheType::Uint8 => {
            let ct: FheUint8 = tfhe::safe_serialization::safe_deserialize(bytes, lim)?;
            let sq = ct.squash_noise().map_err(|e| e.to_string())?;
            let v: u8 = sq.decrypt(ck);
            Ok(v.into())
        }
        FheType::Uint64 => {
            let ct: FheUint64 = tfhe::safe_serialization::safe_deserialize(bytes, lim)?;
            let sq = ct.squash_noise().map_err(|e| e.to_string())?;
            let v: u64 = sq.decrypt(ck);
            Ok(v.into())
        }
        _ => Err("unsupported in bench".into()),
    }
}

/// The decryption session of a benchmark run: its own request ID per run, so no two runs
/// share a flooding mask.
fn bench_session(
    key_id: kms_types::RequestId,
    tag: &str,
    ct: &TypedCiphertext,
) -> kms_threshold::DecryptionSession {
    kms_threshold::DecryptionSession {
        kind: kms_threshold::DecryptionSession::PUBLIC,
        key_id,
        request_id: kms_types::RequestId::derive("bench", tag.as_bytes()),
        index: 0,
        ciphertext_digest: ct.digest(),
    }
}

/// Threshold decryption, n = 4, t = 1, of one FheUint64: the CPU time of one party (squash,
/// partial decryption, robust combination of the four partials; the other parties' partials are
/// computed outside the timed region, as they run on their own machines) and the wall-clock of
/// the whole run in one process, each against squash_noise + decrypt.
fn threshold(
    ck: &tfhe::ClientKey,
    params: ParamSetName,
    key_id: kms_types::RequestId,
    runs: usize,
    say: &mut impl FnMut(&str),
) -> Result<Vec<Comparison>, String> {
    use kms_algebra::prss::{deal_keys, Prss};
    use kms_threshold::{combine, deal_insecure, partial_decrypt, squash, FloodingParams};
    let (n, t) = (4, 1);
    let keys = deal_insecure(ck, key_id, n, t, &mut rand_core::OsRng).map_err(|e| e.to_string())?;
    let pk = deal_keys(n, t, &mut rand_core::OsRng);
    let prss: Vec<Prss<u128, 4>> = (1..=n)
        .map(|p| Prss::new(p, n, t, &pk))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let fp = FloodingParams::new(n, t, keys[0].message_modulus, keys[0].carry_modulus)
        .map_err(|e| e.to_string())?;
    let bytes = serialize_public(&FheUint64::encrypt(0x0123_4567_89ab_cdefu64, ck))
        .map_err(|e| e.to_string())?;
    let ct = TypedCiphertext {
        fhe_type: FheType::Uint64,
        bytes: bytes.clone(),
    };
    let (mut party_t, mut whole_t, mut base_t) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        say(&format!(
            "threshold FheUint64 decryption run {}/{runs}",
            i + 1
        ));
        let sid = bench_session(key_id, &format!("bench-{i}"), &ct);
        // Other parties' partials (not timed: their own machines).
        let sq = squash(&ct, params).map_err(|e| e.to_string())?;
        let others: Vec<_> = (1..n)
            .map(|p| partial_decrypt(&keys[p], &prss[p], &fp, &sid, &sq).map(Some))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        // Party 1.
        let (r, d) = time(|| -> Result<u128, String> {
            let sq = squash(&ct, params).map_err(|e| e.to_string())?;
            let mine =
                partial_decrypt(&keys[0], &prss[0], &fp, &sid, &sq).map_err(|e| e.to_string())?;
            let mut all = vec![Some(mine)];
            all.extend(others.iter().cloned());
            let (pt, _) = combine(&all, &fp, &sq.layout()).map_err(|e| e.to_string())?;
            pt.as_u128().ok_or_else(|| "value out of range".to_string())
        });
        if r? != 0x0123_4567_89ab_cdef {
            return Err("threshold decryption gave a wrong value".into());
        }
        party_t.push(d);
        // Whole run in one process (4 squashes, 4 partials, 4 combinations).
        let (r, d) = time(|| -> Result<(), String> {
            let sqs: Vec<_> = (0..n)
                .map(|_| squash(&ct, params))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            let partials: Vec<_> = (0..n)
                .map(|p| partial_decrypt(&keys[p], &prss[p], &fp, &sid, &sqs[p]).map(Some))
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?;
            for sq in &sqs {
                combine(&partials, &fp, &sq.layout()).map_err(|e| e.to_string())?;
            }
            Ok(())
        });
        r?;
        whole_t.push(d);
        let (r, d) = time(|| baseline_squash_decrypt(FheType::Uint64, &bytes, ck));
        r?;
        base_t.push(d);
    }
    let base = median(base_t);

    // Batch of 64 FheUint8: squash time vs MPC time (partials of 4 parties + one combination),
    // per ciphertext, for one party's view.
    say("threshold batch of 64 × FheUint8");
    let batch: Vec<TypedCiphertext> = (0..64u8)
        .map(|v| {
            serialize_public(&FheUint8::encrypt(v, ck))
                .map(|bytes| TypedCiphertext {
                    fhe_type: FheType::Uint8,
                    bytes,
                })
                .map_err(|e| e.to_string())
        })
        .collect::<Result<_, _>>()?;
    let (sqs, squash_d) = time(|| {
        batch
            .iter()
            .map(|c| squash(c, params))
            .collect::<Result<Vec<_>, _>>()
    });
    let sqs = sqs.map_err(|e| e.to_string())?;
    let (others, _) = time(|| -> Result<Vec<Vec<_>>, String> {
        sqs.iter()
            .enumerate()
            .map(|(i, sq)| {
                let sid = bench_session(key_id, &format!("batch-{i}"), &batch[i]);
                (1..n)
                    .map(|p| {
                        partial_decrypt(&keys[p], &prss[p], &fp, &sid, sq)
                            .map(Some)
                            .map_err(|e| e.to_string())
                    })
                    .collect()
            })
            .collect()
    });
    let others = others?;
    let (ok, mpc_d) = time(|| -> Result<bool, String> {
        let mut all_ok = true;
        for (i, sq) in sqs.iter().enumerate() {
            let sid = bench_session(key_id, &format!("batch-{i}"), &batch[i]);
            let mine =
                partial_decrypt(&keys[0], &prss[0], &fp, &sid, sq).map_err(|e| e.to_string())?;
            let mut all = vec![Some(mine)];
            all.extend(others[i].iter().cloned());
            let (pt, _) = combine(&all, &fp, &sq.layout()).map_err(|e| e.to_string())?;
            all_ok &= pt.as_u128() == Some(i as u128);
        }
        Ok(all_ok)
    });
    if !ok? {
        return Err("threshold batch decryption gave a wrong value".into());
    }
    let per = |d: std::time::Duration| d.as_secs_f64() / 64.0;
    Ok(vec![
        Comparison {
            name: "batch 64×FheUint8, MPC part per ciphertext".into(),
            kms_s: per(mpc_d),
            baseline_s: per(squash_d),
            baseline: format!(
                "squash_noise per ciphertext; batch throughput {:.2}/s",
                64.0 / (squash_d + mpc_d).as_secs_f64()
            ),
            ratio: 0.0,
            runs: 1,
        },
        Comparison {
            name: "threshold decryption n=4, one party (FheUint64)".into(),
            kms_s: median(party_t),
            baseline_s: base,
            baseline: "deserialize + squash_noise + decrypt".into(),
            ratio: 0.0,
            runs,
        },
        Comparison {
            name: "threshold decryption n=4, whole run in 1 process".into(),
            kms_s: median(whole_t),
            baseline_s: base,
            baseline: "deserialize + squash_noise + decrypt".into(),
            ratio: 0.0,
            runs,
        },
    ])
}
