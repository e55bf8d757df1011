//! `kms attestation verify`: checks a Nitro attestation document against a PCR policy and says
//! what it checked, for operators and auditors.

use kms_attestation::chain::{describe_chain, CertificateSummary};
use kms_attestation::document::parse_unverified;
use kms_attestation::{verify_document, PinnedRoot, Policy};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// What the auditor reports.
#[derive(Clone, Debug, Serialize)]
pub struct AuditReport {
    /// `accepted` or `rejected`.
    pub verdict: &'static str,
    /// Why it was rejected.
    pub error: Option<String>,
    /// SHA-256 of the pinned root.
    pub root_sha256: String,
    /// Verification time, Unix milliseconds.
    pub verified_at_ms: u64,
    /// The document's timestamp, Unix milliseconds.
    pub document_timestamp_ms: u64,
    /// Module ID.
    pub module_id: String,
    /// Root first, leaf last (as claimed by the document).
    pub chain: Vec<CertificateSummary>,
    /// PCR index → hex.
    pub pcrs: BTreeMap<u8, String>,
    /// Debug-mode enclave.
    pub debug: bool,
    /// The matched release.
    pub release: Option<String>,
}

/// Verifies `document` with `policy` against `root` at `at` and reports. Fails only if the
/// document cannot even be parsed for display.
pub fn audit(
    document: &[u8],
    policy: &Policy,
    root: &PinnedRoot,
    at: Duration,
) -> Result<AuditReport, String> {
    let doc = parse_unverified(document).map_err(|e| e.to_string())?;
    let chain = describe_chain(&doc.cabundle, &doc.certificate).map_err(|e| e.to_string())?;
    let result = verify_document(document, root, policy, at);
    Ok(AuditReport {
        verdict: if result.is_ok() {
            "accepted"
        } else {
            "rejected"
        },
        error: result.as_ref().err().map(ToString::to_string),
        root_sha256: root.fingerprint_hex(),
        verified_at_ms: u64::try_from(at.as_millis()).unwrap_or(u64::MAX),
        document_timestamp_ms: doc.timestamp_ms,
        module_id: doc.module_id.clone(),
        chain,
        pcrs: doc.pcrs.iter().map(|(k, v)| (*k, hex::encode(v))).collect(),
        debug: doc.is_debug(),
        release: result.ok().and_then(|v| v.release),
    })
}

/// Human rendering.
pub fn render(r: &AuditReport) -> String {
    let mut s = String::new();
    let mut line = |l: String| {
        s.push_str(&l);
        s.push('\n');
    };
    line(format!("verdict:     {}", r.verdict.to_uppercase()));
    if let Some(e) = &r.error {
        line(format!("reason:      {e}"));
    }
    line(format!("pinned root: sha256 {}", r.root_sha256));
    line(format!(
        "time:        verified at {} ms, document timestamp {} ms",
        r.verified_at_ms, r.document_timestamp_ms
    ));
    line(format!("module:      {}", r.module_id));
    line(format!("debug mode:  {}", r.debug));
    line(format!(
        "release:     {}",
        r.release.as_deref().unwrap_or("-")
    ));
    line("chain (root first):".into());
    for (i, c) in r.chain.iter().enumerate() {
        line(format!(
            "  [{i}] {} valid {}..{} sha256 {}",
            c.subject, c.not_before_s, c.not_after_s, c.sha256
        ));
    }
    line("PCRs:".into());
    for (i, v) in &r.pcrs {
        line(format!("  PCR{i:<2} {v}"));
    }
    s
}
