//! The COSE_Sign1 ES384 signature (RFC 9052 §4.4).

use crate::document::CoseSign1;
use crate::AttestationError;
use ciborium::Value;
use p384::ecdsa::signature::Verifier;
use p384::ecdsa::{Signature, VerifyingKey};

/// The bytes an ES384 COSE_Sign1 signature covers:
/// `Sig_structure = ["Signature1", protected, external_aad = h'', payload]`, CBOR-encoded.
pub fn sig_structure(protected: &[u8], payload: &[u8]) -> Vec<u8> {
    let v = Value::Array(vec![
        Value::Text("Signature1".into()),
        Value::Bytes(protected.to_vec()),
        Value::Bytes(vec![]),
        Value::Bytes(payload.to_vec()),
    ]);
    let mut out = Vec::new();
    let _ = ciborium::ser::into_writer(&v, &mut out);
    out
}

/// Checks the ES384 signature (ECDSA P-384 over SHA-384 of the Sig_structure, raw `r ‖ s`).
pub(crate) fn verify_es384(c: &CoseSign1, key: &VerifyingKey) -> Result<(), AttestationError> {
    let sig = Signature::from_slice(&c.signature).map_err(|_| AttestationError::BadSignature)?;
    key.verify(&sig_structure(&c.protected, &c.payload), &sig)
        .map_err(|_| AttestationError::BadSignature)
}
