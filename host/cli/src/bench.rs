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

/// The median of `v`, seconds (`v` not empty).
pub(crate) fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64()
}

/// `f`'s result and how long it took.
pub(crate) fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
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

/// The four parties' key shares and PRSS states of the threshold benchmarks.
struct Parties {
    keys: Vec<std::sync::Arc<kms_threshold::SnsKeyShare>>,
    prss: Vec<std::sync::Arc<kms_algebra::prss::Prss<u128, 4>>>,
    fp: kms_threshold::FloodingParams,
    params: ParamSetName,
    key_id: kms_types::RequestId,
}

impl Parties {
    /// One threshold public decryption of `cts` by all n parties, each a task on one
    /// single-threaded runtime over the in-process transport (so the timed region is the total
    /// work of every party, not parallelism across parties): per ciphertext, each party squashes
    /// it, computes its flooded partial decryption, broadcasts it and opens robustly once 2t + 1
    /// shares agree. Returns every party's plaintexts.
    fn decrypt_all(&self, run: &str, cts: &[TypedCiphertext]) -> Result<Vec<Vec<u128>>, String> {
        use kms_threshold::{decrypt_round, squash, DecryptionSession};
        let n = self.keys.len();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| e.to_string())?;
        let net = kms_transport::InProcessNetwork::new(n);
        let request_id = kms_types::RequestId::derive("kms/bench", run.as_bytes());
        rt.block_on(async {
            let mut tasks = Vec::new();
            for p in 0..n {
                let (key, prss) = (self.keys[p].clone(), self.prss[p].clone());
                let (fp, params, key_id) = (self.fp, self.params, self.key_id);
                let (transport, cts) = (net.party(p + 1), cts.to_vec());
                tasks.push(tokio::spawn(async move {
                    let mut out = Vec::with_capacity(cts.len());
                    for (index, ct) in cts.iter().enumerate() {
                        let sq = squash(ct, params).map_err(|e| e.to_string())?;
                        let session = DecryptionSession {
                            kind: DecryptionSession::PUBLIC,
                            key_id,
                            request_id,
                            index,
                            ciphertext_digest: ct.digest(),
                        };
                        let r = decrypt_round(
                            &transport,
                            &key,
                            &prss,
                            &fp,
                            &session,
                            &sq,
                            Duration::from_secs(600),
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                        out.push(r.plaintext.as_u128().ok_or("value out of range")?);
                    }
                    Ok::<_, String>(out)
                }));
            }
            let mut all = Vec::new();
            for t in tasks {
                all.push(t.await.map_err(|e| e.to_string())??);
            }
            Ok(all)
        })
    }
}

/// Threshold public decryption, n = 4, t = 1, all four parties in this process (see
/// [`Parties::decrypt_all`] for the timed region), against tfhe-rs deserializing, squashing and
/// decrypting the same ciphertexts n times (the same squashing work every party does, the same
/// single process): the ratio is the cost of the MPC and the transport on top of squashing.
/// One FheUint64, then a batch of `BATCH` FheUint8 (median of the runs, per ciphertext).
fn threshold(
    ck: &tfhe::ClientKey,
    params: ParamSetName,
    key_id: kms_types::RequestId,
    runs: usize,
    say: &mut impl FnMut(&str),
) -> Result<Vec<Comparison>, String> {
    use kms_algebra::prss::{deal_keys, Prss};
    use kms_threshold::{deal_insecure, FloodingParams};
    use std::sync::Arc;
    const BATCH: usize = 16;
    let (n, t) = (4, 1);
    let keys = deal_insecure(ck, key_id, n, t, &mut rand_core::OsRng).map_err(|e| e.to_string())?;
    let fp =
        FloodingParams::for_param_set(params, n, t, keys[0].message_modulus, keys[0].carry_modulus)
            .map_err(|e| e.to_string())?;
    let pk = deal_keys(n, t, &mut rand_core::OsRng);
    let parties = Parties {
        prss: (1..=n)
            .map(|p| Prss::new(p, n, t, &pk).map(Arc::new))
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?,
        keys: keys.into_iter().map(Arc::new).collect(),
        fp,
        params,
        key_id,
    };
    let encrypt = |v: u64, t: FheType| -> Result<TypedCiphertext, String> {
        let bytes = match t {
            FheType::Uint8 => serialize_public(&FheUint8::encrypt(v as u8, ck)),
            _ => serialize_public(&FheUint64::encrypt(v, ck)),
        }
        .map_err(|e| e.to_string())?;
        Ok(TypedCiphertext { fhe_type: t, bytes })
    };
    let baseline = |cts: &[TypedCiphertext]| -> Result<(), String> {
        for _ in 0..n {
            for c in cts {
                baseline_squash_decrypt(c.fhe_type, &c.bytes, ck)?;
            }
        }
        Ok(())
    };
    let mut out = Vec::new();
    let one = vec![encrypt(0x0123_4567_89ab_cdef, FheType::Uint64)?];
    let batch: Vec<TypedCiphertext> = (0..BATCH as u64)
        .map(|v| encrypt(v * 13 % 256, FheType::Uint8))
        .collect::<Result<_, _>>()?;
    for (name, cts, per) in [
        ("threshold public decryption n=4, 1 × FheUint64", &one, 1.0),
        (
            "threshold public decryption n=4, batch 16 × FheUint8, per ciphertext",
            &batch,
            BATCH as f64,
        ),
    ] {
        let want: Vec<u128> = cts
            .iter()
            .map(|c| baseline_decrypt(c.fhe_type, &c.bytes, ck))
            .collect::<Result<_, _>>()?;
        let (mut kms_t, mut base_t) = (Vec::new(), Vec::new());
        for i in 0..runs {
            say(&format!("{name}: run {}/{runs}", i + 1));
            let (r, d) = time(|| parties.decrypt_all(&format!("{name}/{i}"), cts));
            if r?.iter().any(|got| *got != want) {
                return Err("threshold decryption gave a wrong value".into());
            }
            kms_t.push(d);
            let (r, d) = time(|| baseline(cts));
            r?;
            base_t.push(d);
        }
        out.push(Comparison {
            name: name.into(),
            kms_s: median(kms_t) / per,
            baseline_s: median(base_t) / per,
            baseline: format!("{n} × (deserialize + squash_noise + decrypt)"),
            ratio: 0.0,
            runs,
        });
    }
    Ok(out)
}
