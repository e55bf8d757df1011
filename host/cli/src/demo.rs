//! The main job of developer mode, end to end through gRPC: key generation, verified download
//! of public material, encryption, public decryption, user decryption, CRS generation with a
//! proven encryption, and rejection of tampered material.

use crate::devserver::{self, DevServerConfig, PublicStore};
use kms_client::{encrypt_value, ClearValue, KmsClient};
use kms_eip712::DomainConfig;
use kms_engine::tfhe::zk::{ZkComputeLoad, ZkVerificationOutcome};
use kms_engine::tfhe::{self, ProvenCompactCiphertextList};
use kms_engine::{verify_public_material, Plaintext};
use kms_types::{DataType, FheType, ParamSetName, RequestId, TypedCiphertext};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// Demo settings.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// Parameter set of the key set and CRS.
    pub params: ParamSetName,
    /// Data folder; `None` uses a temporary one removed at the end.
    pub data_dir: Option<PathBuf>,
    /// `max_num_bits` of the CRS.
    pub crs_bits: u32,
    /// Label making the keygen request unique.
    pub label: String,
    /// The `kms` binary: the multi-party stage runs each party as `kms host` and `kms enclave`
    /// processes.
    pub kms: PathBuf,
}

/// One value through the pipeline.
#[derive(Clone, Debug, Serialize)]
pub struct DemoValue {
    /// Type.
    pub fhe_type: String,
    /// What was encrypted.
    pub expected: String,
    /// Public decryption result (signature verified).
    pub public_decryption: String,
    /// User decryption result (envelope and signatures verified).
    pub user_decryption: String,
}

/// What the demo did and verified.
#[derive(Clone, Debug, Serialize)]
pub struct DemoReport {
    /// Parameter set.
    pub params: String,
    /// KMS signer address.
    pub signer: String,
    /// Key ID.
    pub key_id: String,
    /// Public material URIs with their SHA3-256 digests.
    pub public_material: Vec<(String, String, String)>,
    /// Values.
    pub values: Vec<DemoValue>,
    /// CRS ID.
    pub crs_id: String,
    /// Whether a proof made with the CRS verified.
    pub proof_verified: bool,
    /// The error a tampered public key was rejected with.
    pub tamper_rejected_with: String,
    /// The multi-party stage.
    pub threshold: crate::demo_threshold::ThresholdReport,
    /// Seconds per step.
    pub timings: Vec<(String, f64)>,
}

pub use crate::demo_error::{fail, DemoError};

fn values() -> Vec<(FheType, ClearValue)> {
    vec![
        (FheType::Bool, ClearValue::Bool(true)),
        (FheType::Uint8, ClearValue::Unsigned(42)),
        (FheType::Uint64, ClearValue::Unsigned(0xdead_beef_cafe_f00d)),
        (FheType::Int32, ClearValue::Signed(-1_234_567)),
        (
            FheType::Uint160,
            ClearValue::Unsigned(0x1234_5678_9abc_def0_1122_3344_5566_7788),
        ),
    ]
}

fn render(v: ClearValue) -> String {
    match v {
        ClearValue::Bool(b) => b.to_string(),
        ClearValue::Unsigned(u) => u.to_string(),
        ClearValue::Signed(s) => s.to_string(),
    }
}

/// Runs the demo; `say` receives progress lines for humans.
pub async fn run(cfg: DemoConfig, mut say: impl FnMut(&str)) -> Result<DemoReport, DemoError> {
    let tmp;
    let data_dir = match &cfg.data_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().map_err(|e| fail("setup")(&e))?;
            tmp.path().to_path_buf()
        }
    };
    let mut timings = Vec::new();
    let mut clock = Instant::now();
    let mut lap = |name: &str, timings: &mut Vec<(String, f64)>| {
        timings.push((name.to_string(), clock.elapsed().as_secs_f64()));
        clock = Instant::now();
    };

    let server = devserver::start(DevServerConfig {
        data_dir: data_dir.clone(),
        listen: ([127, 0, 0, 1], 0).into(),
        public: PublicStore::File,
        domain: DomainConfig::default(),
        parallel_jobs: 2,
    })
    .await
    .map_err(|e| fail("start server")(&e))?;
    say(&format!(
        "KMS core (developer mode) listening on {}",
        server.endpoint()
    ));
    let mut client = KmsClient::connect(&server.endpoint(), None)
        .await
        .map_err(|e| fail("connect")(&e))?;
    let signer = format!("0x{}", hex::encode(client.signer()));
    say(&format!("KMS signer address: {signer}"));

    say(&format!(
        "key generation ({} parameters)…",
        cfg.params.as_str()
    ));
    let kg = client
        .keygen(cfg.params, &cfg.label, |m| say(&format!("  … {m}")))
        .await
        .map_err(|e| fail("keygen")(&e))?;
    lap("keygen", &mut timings);
    say(&format!(
        "key ID {} (handles signed by the KMS, signatures verified)",
        kg.key_id
    ));
    let mut material = Vec::new();
    for (h, uri) in &kg.handles {
        say(&format!(
            "  {:<10} sha3-256 {}  {}",
            h.data_type.as_str(),
            hex::encode(h.digest),
            uri
        ));
        material.push((
            h.data_type.as_str().to_string(),
            uri.clone(),
            hex::encode(h.digest),
        ));
    }

    let pk = client
        .fetch_public_key(&kg.key_id)
        .await
        .map_err(|e| fail("fetch public key")(&e))?;
    let sk = client
        .fetch_server_key(&kg.key_id)
        .await
        .map_err(|e| fail("fetch server key")(&e))?;
    say("downloaded public key and server key; digests and signatures verified");
    let server_key_bytes =
        kms_engine::serialize_public(&sk).map_err(|e| fail("fetch server key")(&e))?;
    let sk = sk.decompress();
    tfhe::set_server_key(sk);
    lap("fetch+verify public material", &mut timings);

    let inputs = values();
    let mut cts: Vec<TypedCiphertext> = Vec::new();
    for (t, v) in &inputs {
        cts.push(encrypt_value(&pk.public_key, *t, *v).map_err(|e| fail("encrypt")(&e))?);
    }
    say(&format!(
        "encrypted {} values with the compact public key",
        cts.len()
    ));
    lap("encrypt", &mut timings);

    let pub_res = client
        .public_decrypt(kg.key_id, cts.clone())
        .await
        .map_err(|e| fail("public decrypt")(&e))?;
    lap("public decrypt", &mut timings);
    say(&format!(
        "public decryption: EIP-712 signature 0x{}… verified",
        &hex::encode(pub_res.signature.0)[..16]
    ));
    let user_res = client
        .user_decrypt(kg.key_id, cts.clone())
        .await
        .map_err(|e| fail("user decrypt")(&e))?;
    lap("user decrypt", &mut timings);
    say("user decryption: ML-KEM envelope opened, inner and outer signatures verified");

    let mut out_values = Vec::new();
    for (((t, v), p), u) in inputs.iter().zip(&pub_res.plaintexts).zip(&user_res) {
        let expected = render(*v);
        let (pd, ud) = (p.to_decimal(), u.to_decimal());
        say(&format!(
            "  {:<11} encrypted {expected:>40}  public {pd:>40}  user {ud:>40}",
            t.name()
        ));
        if pd != expected || ud != expected {
            return Err(DemoError {
                step: "compare",
                message: format!("{t}: expected {expected}, public {pd}, user {ud}"),
            });
        }
        out_values.push(DemoValue {
            fhe_type: t.name().into(),
            expected,
            public_decryption: pd,
            user_decryption: ud,
        });
    }

    // The same requests, now through the KMS chain to 4 threshold parties.
    say("multi-party: n = 4, t = 1, requests through the KMS chain");
    let keygen = kms_types::KeyGenRequest {
        params: cfg.params,
        label: cfg.label.clone(),
    };
    if kms_types::CanonicalRequest::request_id(&keygen) != kg.key_id {
        return Err(fail("threshold")(&"keygen request ID mismatch"));
    }
    let ck = devserver::dev_client_key(&data_dir, &kg.key_id)
        .await
        .map_err(|e| fail("read key")(&e))?;
    let threshold = crate::demo_threshold::run(
        crate::demo_threshold::Inputs {
            params: cfg.params,
            keygen,
            material: kg
                .handles
                .iter()
                .map(|(h, _)| (h.data_type.as_str().to_string(), h.digest))
                .collect(),
            client_key: &ck,
            server_key: server_key_bytes,
            ciphertexts: cts.clone(),
            kms: &cfg.kms,
            dir: &data_dir.join("multi-party"),
        },
        &mut say,
    )
    .await?;
    drop(ck);
    for ((v, p), u) in out_values
        .iter()
        .zip(&threshold.public)
        .zip(&threshold.user)
    {
        say(&format!(
            "  {:<11} threshold public {p:>40}  threshold user {u:>40}",
            v.fhe_type
        ));
        if p != &v.expected || u != &v.expected {
            return Err(DemoError {
                step: "threshold compare",
                message: format!(
                    "{}: expected {}, public {p}, user {u}",
                    v.fhe_type, v.expected
                ),
            });
        }
    }
    lap("threshold (chain + 4 parties)", &mut timings);

    say(&format!("CRS generation (max {} bits)…", cfg.crs_bits));
    let (crs_handle, _) = client
        .crs_gen(cfg.params, cfg.crs_bits, &cfg.label)
        .await
        .map_err(|e| fail("crs gen")(&e))?;
    let crs = client
        .fetch_crs(&crs_handle)
        .await
        .map_err(|e| fail("fetch crs")(&e))?;
    lap("crs gen + fetch", &mut timings);
    let metadata = kg.key_id.as_bytes();
    let proven = ProvenCompactCiphertextList::builder(&pk.public_key)
        .push(7u8)
        .push(true)
        .build_with_proof_packed(&crs, metadata, ZkComputeLoad::Proof)
        .map_err(|e| fail("prove")(&e))?;
    let proof_verified = matches!(
        proven.verify(&crs, &pk.public_key, metadata),
        ZkVerificationOutcome::Valid
    );
    lap("prove + verify", &mut timings);
    say(&format!(
        "CRS {} verified; proven encryption of (7u8, true) {}",
        crs_handle.request_id,
        if proof_verified {
            "verifies"
        } else {
            "DOES NOT verify"
        }
    ));
    if !proof_verified {
        return Err(DemoError {
            step: "proof",
            message: "proof did not verify".into(),
        });
    }

    // Tampering: one flipped byte in the downloaded public key must be rejected.
    let (pk_handle, _) = kg
        .handles
        .iter()
        .find(|(h, _)| h.data_type == DataType::PublicKey)
        .cloned()
        .ok_or_else(|| fail("tamper")(&"no public key handle"))?;
    let mut bytes = client
        .download(&pk_handle)
        .await
        .map_err(|e| fail("tamper")(&e))?;
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x01;
    let tamper_rejected_with =
        match verify_public_material(&pk_handle, &bytes, client.domain(), &client.signer()) {
            Err(e) => e.to_string(),
            Ok(()) => {
                return Err(DemoError {
                    step: "tamper",
                    message: "a tampered public key was accepted".into(),
                })
            }
        };
    say(&format!(
        "tampered public key rejected: {tamper_rejected_with}"
    ));
    server.stop().await;
    say("all results verified");

    Ok(DemoReport {
        params: cfg.params.as_str().into(),
        signer,
        key_id: kg.key_id.to_string(),
        public_material: material,
        values: out_values,
        crs_id: crs_handle.request_id.to_string(),
        proof_verified,
        tamper_rejected_with,
        threshold,
        timings,
    })
}

/// Renders plaintexts for output.
pub fn render_plaintexts(pts: &[Plaintext]) -> Vec<String> {
    pts.iter().map(Plaintext::to_decimal).collect()
}

/// Parses a request ID argument.
pub fn parse_id(s: &str) -> Result<RequestId, String> {
    RequestId::parse(s).map_err(|e| e.to_string())
}
