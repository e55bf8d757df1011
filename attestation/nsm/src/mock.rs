//! The mock NSM: AWS-format documents under a developer root CA.

use crate::{AttestationRequest, Nsm, NsmError, PcrState};
use kms_attestation::document::{encode_cose_sign1, encode_payload, es384_protected_header, Pcrs};
use kms_attestation::{sig_structure, AttestationDocument, PinnedRoot};
use p384::ecdsa::signature::Signer;
use p384::pkcs8::DecodePrivateKey;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P384_SHA384,
};
use sha2::{Digest, Sha384};
use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;
use zeroize::Zeroizing;

const PCR_COUNT: usize = 32;
/// PCRs in each document (the device reports 16).
const REPORTED_PCRS: u8 = 16;
/// PCRs 0..16 are measured at boot and locked, as on the device; 16..32 are for the application.
const FIRST_USER_PCR: u16 = 16;

fn mock_err(e: impl std::fmt::Display) -> NsmError {
    NsmError::Mock(e.to_string())
}

fn at(t: Duration) -> Result<OffsetDateTime, NsmError> {
    OffsetDateTime::from_unix_timestamp(i64::try_from(t.as_secs()).map_err(mock_err)?)
        .map_err(mock_err)
}

fn name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "KMS developer mode");
    dn.push(DnType::CommonName, cn);
    dn
}

fn ca_params(cn: &str, from: Duration, to: Duration) -> Result<CertificateParams, NsmError> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(mock_err)?;
    p.distinguished_name = name(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_before = at(from)?;
    p.not_after = at(to)?;
    Ok(p)
}

const ROOT_CN: &str = "kms-dev-nitro-root";
const DAY: Duration = Duration::from_secs(86_400);

/// The developer root CA. Persist it with [`MockRootCa::cert_der`] and
/// [`MockRootCa::key_pkcs8_der`] and reload it with [`MockRootCa::from_parts`] so that
/// verifiers can pin it across restarts.
pub struct MockRootCa {
    key: KeyPair,
    cert_der: Vec<u8>,
    params: CertificateParams,
}

impl std::fmt::Debug for MockRootCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "MockRootCa({})",
            self.pinned()
                .map(|p| p.fingerprint_hex())
                .unwrap_or_default()
        )
    }
}

impl MockRootCa {
    /// A new root valid from a day before `now` for 30 years.
    pub fn generate(now: Duration) -> Result<Self, NsmError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).map_err(mock_err)?;
        let params = ca_params(ROOT_CN, now.saturating_sub(DAY), now + DAY * 365 * 30)?;
        let cert_der = params.self_signed(&key).map_err(mock_err)?.der().to_vec();
        Ok(Self {
            key,
            cert_der,
            params,
        })
    }

    /// Reloads a persisted root.
    pub fn from_parts(cert_der: &[u8], key_pkcs8_der: &[u8]) -> Result<Self, NsmError> {
        let key = KeyPair::try_from(key_pkcs8_der).map_err(mock_err)?;
        if key.algorithm() != &PKCS_ECDSA_P384_SHA384 {
            return Err(NsmError::Mock("the root key must be ECDSA P-384".into()));
        }
        // The issuer name is all a child needs from the parameters; it must match the stored cert.
        let params = ca_params(ROOT_CN, Duration::ZERO, Duration::ZERO)?;
        let root = Self {
            key,
            cert_der: cert_der.to_vec(),
            params,
        };
        PinnedRoot::from_der(cert_der).map_err(mock_err)?;
        Ok(root)
    }

    /// The root certificate (DER).
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The root key (PKCS#8 DER), for persisting in developer mode.
    pub fn key_pkcs8_der(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.key.serialize_der())
    }

    /// The root as verifiers pin it.
    pub fn pinned(&self) -> Result<PinnedRoot, NsmError> {
        PinnedRoot::from_der(&self.cert_der).map_err(mock_err)
    }
}

type Clock = Box<dyn Fn() -> Duration + Send + Sync>;

/// A mock NSM: keeps PCR state like the device and signs AWS-format documents with a fresh
/// 3-hour leaf certificate under `root → intermediate`.
pub struct MockNsm {
    root: MockRootCa,
    root_pinned: PinnedRoot,
    intermediate_key: KeyPair,
    intermediate_params: CertificateParams,
    intermediate_der: Vec<u8>,
    module_id: String,
    pcrs: Mutex<Vec<PcrState>>,
    clock: Clock,
}

impl std::fmt::Debug for MockNsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MockNsm({})", self.module_id)
    }
}

impl MockNsm {
    /// A mock enclave with image measurements `pcr0..=2` (48 bytes each; all zero = debug mode),
    /// using `clock` for document timestamps and certificate validity.
    pub fn new(
        root: MockRootCa,
        module_id: &str,
        image_pcrs: [[u8; 48]; 3],
        clock: impl Fn() -> Duration + Send + Sync + 'static,
    ) -> Result<Self, NsmError> {
        let now = clock();
        let intermediate_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).map_err(mock_err)?;
        let intermediate_params = ca_params(
            "kms-dev-nitro-zonal",
            now.saturating_sub(DAY),
            now + DAY * 30,
        )?;
        let issuer = Issuer::new(root.params.clone(), &root.key);
        let intermediate_der = intermediate_params
            .signed_by(&intermediate_key, &issuer)
            .map_err(mock_err)?
            .der()
            .to_vec();
        let mut pcrs = vec![
            PcrState {
                locked: false,
                value: vec![0u8; 48]
            };
            PCR_COUNT
        ];
        for (i, v) in image_pcrs.iter().enumerate() {
            pcrs[i].value = v.to_vec();
        }
        for p in pcrs.iter_mut().take(usize::from(FIRST_USER_PCR)) {
            p.locked = true;
        }
        let root_pinned = root.pinned()?;
        Ok(Self {
            root,
            root_pinned,
            intermediate_key,
            intermediate_params,
            intermediate_der,
            module_id: module_id.to_string(),
            pcrs: Mutex::new(pcrs),
            clock: Box::new(clock),
        })
    }

    /// The mock's root CA.
    pub fn root(&self) -> &MockRootCa {
        &self.root
    }

    fn pcrs(&self) -> std::sync::MutexGuard<'_, Vec<PcrState>> {
        self.pcrs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn index(index: u16) -> Result<usize, NsmError> {
        let i = usize::from(index);
        if i >= PCR_COUNT {
            return Err(NsmError::InvalidArgument("PCR index must be 0..=31"));
        }
        Ok(i)
    }
}

impl Nsm for MockNsm {
    fn attest(&self, req: &AttestationRequest) -> Result<Vec<u8>, NsmError> {
        req.check()?;
        let now = (self.clock)();
        let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).map_err(mock_err)?;
        let mut lp = CertificateParams::new(Vec::<String>::new()).map_err(mock_err)?;
        lp.distinguished_name = name(&format!("{}.mock-nitro", self.module_id));
        lp.is_ca = IsCa::ExplicitNoCa;
        lp.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        lp.not_before = at(now.saturating_sub(Duration::from_secs(60)))?;
        lp.not_after = at(now + Duration::from_secs(3 * 3600))?;
        let issuer = Issuer::new(self.intermediate_params.clone(), &self.intermediate_key);
        let leaf_der = lp
            .signed_by(&leaf_key, &issuer)
            .map_err(mock_err)?
            .der()
            .to_vec();

        let pcrs: Pcrs = self
            .pcrs()
            .iter()
            .take(usize::from(REPORTED_PCRS))
            .enumerate()
            .map(|(i, p)| (i as u8, p.value.clone()))
            .collect();
        let doc = AttestationDocument {
            module_id: self.module_id.clone(),
            timestamp_ms: u64::try_from(now.as_millis()).map_err(mock_err)?,
            pcrs,
            certificate: leaf_der,
            cabundle: vec![self.root.cert_der.clone(), self.intermediate_der.clone()],
            public_key: req.public_key.clone(),
            user_data: req.user_data.clone(),
            nonce: req.nonce.clone(),
        };
        let payload = encode_payload(&doc);
        let protected = es384_protected_header();
        let signer =
            p384::ecdsa::SigningKey::from_pkcs8_der(&Zeroizing::new(leaf_key.serialize_der()))
                .map_err(mock_err)?;
        let sig: p384::ecdsa::Signature = signer.sign(&sig_structure(&protected, &payload));
        Ok(encode_cose_sign1(&protected, &payload, &sig.to_bytes()))
    }

    fn describe_pcr(&self, index: u16) -> Result<PcrState, NsmError> {
        Ok(self.pcrs()[Self::index(index)?].clone())
    }

    fn extend_pcr(&self, index: u16, data: &[u8]) -> Result<Vec<u8>, NsmError> {
        let i = Self::index(index)?;
        let mut pcrs = self.pcrs();
        let p = &mut pcrs[i];
        if p.locked {
            return Err(NsmError::Locked(index));
        }
        let mut h = Sha384::new();
        h.update(&p.value);
        h.update(data);
        p.value = h.finalize().to_vec();
        Ok(p.value.clone())
    }

    fn lock_pcr(&self, index: u16) -> Result<(), NsmError> {
        let i = Self::index(index)?;
        self.pcrs()[i].locked = true;
        Ok(())
    }

    fn get_random(&self) -> Result<Vec<u8>, NsmError> {
        let mut b = vec![0u8; 256];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
        Ok(b)
    }

    fn trusted_root(&self) -> PinnedRoot {
        self.root_pinned.clone()
    }

    fn kind(&self) -> &'static str {
        "mock"
    }
}
