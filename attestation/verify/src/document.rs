//! Strict parsing of the COSE_Sign1 envelope and the attestation payload.
//!
//! Limits follow AWS's `attestation_process.md` (the NSM's own limits): `user_data` and `nonce`
//! are at most 512 bytes, `public_key` 1..=1024 bytes, each certificate 1..=1024 bytes of DER,
//! PCR indices 0..=31 with 32-, 48- or 64-byte values, `digest` exactly `"SHA384"`. The whole
//! document is capped at 16 KiB (real documents are under 5 KiB) so parsing cost is bounded.
//! Unknown payload fields and duplicate fields are rejected.

use crate::AttestationError;
use ciborium::Value;
use std::collections::BTreeMap;

/// Largest accepted document.
pub const MAX_DOCUMENT_BYTES: usize = 16 * 1024;
/// Largest `user_data` and `nonce`.
pub const MAX_USER_DATA: usize = 512;
/// Largest `public_key` and certificate.
pub const MAX_KEY_OR_CERT: usize = 1024;

/// The parts of a COSE_Sign1 needed to check its signature.
#[derive(Clone, Debug)]
pub(crate) struct CoseSign1 {
    pub protected: Vec<u8>,
    pub payload: Vec<u8>,
    pub signature: Vec<u8>,
}

/// PCR index → value.
pub type Pcrs = BTreeMap<u8, Vec<u8>>;

/// A parsed (not yet verified) attestation document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttestationDocument {
    /// Enclave module ID.
    pub module_id: String,
    /// Milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Platform configuration registers.
    pub pcrs: Pcrs,
    /// Leaf certificate (DER).
    pub certificate: Vec<u8>,
    /// Root first, then intermediates (DER).
    pub cabundle: Vec<Vec<u8>>,
    /// Key the enclave bound into the document.
    pub public_key: Option<Vec<u8>>,
    /// Application data.
    pub user_data: Option<Vec<u8>>,
    /// Verifier's nonce.
    pub nonce: Option<Vec<u8>>,
}

impl AttestationDocument {
    /// Whether the enclave runs in debug mode (PCR0, PCR1 and PCR2 all zero).
    pub fn is_debug(&self) -> bool {
        [0u8, 1, 2]
            .iter()
            .all(|i| self.pcrs.get(i).is_some_and(|v| v.iter().all(|&b| b == 0)))
    }
}

fn cose(msg: impl Into<String>) -> AttestationError {
    AttestationError::Cose(msg.into())
}
fn doc(msg: impl Into<String>) -> AttestationError {
    AttestationError::Document(msg.into())
}

fn bytes(v: Value, field: &str, min: usize, max: usize) -> Result<Vec<u8>, AttestationError> {
    match v {
        Value::Bytes(b) if (min..=max).contains(&b.len()) => Ok(b),
        Value::Bytes(b) => Err(doc(format!(
            "{field} has {} bytes, allowed {min}..={max}",
            b.len()
        ))),
        _ => Err(doc(format!("{field} must be a byte string"))),
    }
}

fn optional_bytes(
    v: Value,
    field: &str,
    min: usize,
    max: usize,
) -> Result<Option<Vec<u8>>, AttestationError> {
    match v {
        Value::Null => Ok(None),
        other => bytes(other, field, min, max).map(Some),
    }
}

/// The four items of a COSE_Sign1 (tagged with tag 18 or untagged), size-bounded.
fn cose_items(input: &[u8]) -> Result<Vec<Value>, AttestationError> {
    if input.len() > MAX_DOCUMENT_BYTES {
        return Err(cose(format!(
            "document is {} bytes, limit {MAX_DOCUMENT_BYTES}",
            input.len()
        )));
    }
    let value: Value =
        ciborium::de::from_reader(input).map_err(|e| cose(format!("not CBOR: {e}")))?;
    let value = match value {
        Value::Tag(18, inner) => *inner,
        Value::Tag(t, _) => return Err(cose(format!("unexpected CBOR tag {t}"))),
        v => v,
    };
    match value {
        Value::Array(items) if items.len() == 4 => Ok(items),
        Value::Array(items) => Err(cose(format!("array of {} items, expected 4", items.len()))),
        _ => Err(cose("not an array")),
    }
}

/// Parses a COSE_Sign1 (tagged with tag 18 or untagged) and its attestation payload.
pub(crate) fn parse(input: &[u8]) -> Result<(CoseSign1, AttestationDocument), AttestationError> {
    let items = cose_items(input)?;
    let [protected, unprotected, payload, signature]: [Value; 4] = items
        .try_into()
        .map_err(|v: Vec<Value>| cose(format!("array of {} items, expected 4", v.len())))?;
    let Value::Bytes(protected) = protected else {
        return Err(cose("protected header is not a byte string"));
    };
    let header: Value = ciborium::de::from_reader(protected.as_slice())
        .map_err(|e| cose(format!("protected header is not CBOR: {e}")))?;
    match header {
        Value::Map(m) if m == vec![(Value::Integer(1.into()), Value::Integer((-35).into()))] => {}
        _ => {
            return Err(AttestationError::Algorithm(
                "protected header must be exactly {1: -35} (ES384)".into(),
            ))
        }
    }
    match unprotected {
        Value::Map(m) if m.is_empty() => {}
        _ => return Err(cose("unprotected header must be an empty map")),
    }
    let Value::Bytes(payload) = payload else {
        return Err(cose("payload is not a byte string"));
    };
    let Value::Bytes(signature) = signature else {
        return Err(cose("signature is not a byte string"));
    };
    if signature.len() != 96 {
        return Err(cose(format!(
            "ES384 signature must be 96 bytes, got {}",
            signature.len()
        )));
    }
    let document = parse_payload(&payload)?;
    Ok((
        CoseSign1 {
            protected,
            payload,
            signature,
        },
        document,
    ))
}

fn parse_payload(payload: &[u8]) -> Result<AttestationDocument, AttestationError> {
    let v: Value =
        ciborium::de::from_reader(payload).map_err(|e| doc(format!("payload is not CBOR: {e}")))?;
    let Value::Map(entries) = v else {
        return Err(doc("payload is not a map"));
    };
    let mut fields: BTreeMap<String, Value> = BTreeMap::new();
    for (k, v) in entries {
        let Value::Text(k) = k else {
            return Err(doc("payload key is not text"));
        };
        if fields.insert(k.clone(), v).is_some() {
            return Err(doc(format!("duplicate field {k}")));
        }
    }
    let mut take = |name: &str| {
        fields
            .remove(name)
            .ok_or_else(|| doc(format!("missing field {name}")))
    };
    let module_id = match take("module_id")? {
        Value::Text(s) if !s.is_empty() => s,
        _ => return Err(doc("module_id must be non-empty text")),
    };
    match take("digest")? {
        Value::Text(s) if s == "SHA384" => {}
        _ => return Err(doc("digest must be \"SHA384\"")),
    }
    let timestamp_ms = match take("timestamp")? {
        Value::Integer(i) => u64::try_from(i).ok().filter(|&t| t > 0),
        _ => None,
    }
    .ok_or_else(|| doc("timestamp must be a positive integer"))?;
    let pcrs = match take("pcrs")? {
        Value::Map(m) if !m.is_empty() && m.len() <= 32 => {
            let mut out = Pcrs::new();
            for (k, v) in m {
                let idx = match k {
                    Value::Integer(i) => u8::try_from(i).ok().filter(|&i| i < 32),
                    _ => None,
                }
                .ok_or_else(|| doc("PCR index must be 0..=31"))?;
                let val = bytes(v, "PCR", 32, 64)?;
                if ![32, 48, 64].contains(&val.len()) {
                    return Err(doc("PCR values are 32, 48 or 64 bytes"));
                }
                if out.insert(idx, val).is_some() {
                    return Err(doc(format!("duplicate PCR {idx}")));
                }
            }
            out
        }
        _ => return Err(doc("pcrs must be a map of 1..=32 entries")),
    };
    let certificate = bytes(take("certificate")?, "certificate", 1, MAX_KEY_OR_CERT)?;
    let cabundle = match take("cabundle")? {
        Value::Array(a) if !a.is_empty() => a
            .into_iter()
            .map(|c| bytes(c, "cabundle entry", 1, MAX_KEY_OR_CERT))
            .collect::<Result<Vec<_>, _>>()?,
        _ => return Err(doc("cabundle must be a non-empty array")),
    };
    let mut opt = |name: &str, min, max| match fields.remove(name) {
        None => Ok(None),
        Some(v) => optional_bytes(v, name, min, max),
    };
    let public_key = opt("public_key", 1, MAX_KEY_OR_CERT)?;
    let user_data = opt("user_data", 0, MAX_USER_DATA)?;
    let nonce = opt("nonce", 0, MAX_USER_DATA)?;
    if let Some(k) = fields.keys().next() {
        return Err(doc(format!("unknown field {k}")));
    }
    Ok(AttestationDocument {
        module_id,
        timestamp_ms,
        pcrs,
        certificate,
        cabundle,
        public_key,
        user_data,
        nonce,
    })
}

/// Parses the payload of a COSE_Sign1 whatever its header and signature: for the documents of
/// QEMU's emulated NSM (`nitro-enclave` machine), which are not signed (protected header
/// `{1: -1}`, a zeroed signature, certificate and bundle). What it returns is a claim with no
/// authenticity at all; no production path may act on it. The payload is parsed as strictly as
/// a signed document's.
pub fn parse_unsigned_emulator(input: &[u8]) -> Result<AttestationDocument, AttestationError> {
    match cose_items(input)?.get(2) {
        Some(Value::Bytes(payload)) => parse_payload(payload),
        _ => Err(cose("the payload is not a byte string")),
    }
}

/// Parses a document without verifying anything: for tools that display what a document claims.
pub fn parse_unverified(input: &[u8]) -> Result<AttestationDocument, AttestationError> {
    parse(input).map(|(_, d)| d)
}

/// Encodes a payload map in the NSM's layout (used by the mock NSM).
pub fn encode_payload(d: &AttestationDocument) -> Vec<u8> {
    let opt = |v: &Option<Vec<u8>>| v.clone().map_or(Value::Null, Value::Bytes);
    let map = Value::Map(vec![
        (
            Value::Text("module_id".into()),
            Value::Text(d.module_id.clone()),
        ),
        (Value::Text("digest".into()), Value::Text("SHA384".into())),
        (
            Value::Text("timestamp".into()),
            Value::Integer(d.timestamp_ms.into()),
        ),
        (
            Value::Text("pcrs".into()),
            Value::Map(
                d.pcrs
                    .iter()
                    .map(|(k, v)| (Value::Integer((*k).into()), Value::Bytes(v.clone())))
                    .collect(),
            ),
        ),
        (
            Value::Text("certificate".into()),
            Value::Bytes(d.certificate.clone()),
        ),
        (
            Value::Text("cabundle".into()),
            Value::Array(d.cabundle.iter().cloned().map(Value::Bytes).collect()),
        ),
        (Value::Text("public_key".into()), opt(&d.public_key)),
        (Value::Text("user_data".into()), opt(&d.user_data)),
        (Value::Text("nonce".into()), opt(&d.nonce)),
    ]);
    let mut out = Vec::new();
    // Writing a Value into a Vec cannot fail.
    let _ = ciborium::ser::into_writer(&map, &mut out);
    out
}

/// The COSE protected header the NSM uses: `{1: -35}` (ES384).
pub fn es384_protected_header() -> Vec<u8> {
    let mut out = Vec::new();
    let _ = ciborium::ser::into_writer(
        &Value::Map(vec![(
            Value::Integer(1.into()),
            Value::Integer((-35).into()),
        )]),
        &mut out,
    );
    out
}

/// Assembles an untagged COSE_Sign1 from its parts (used by the mock NSM).
pub fn encode_cose_sign1(protected: &[u8], payload: &[u8], signature: &[u8]) -> Vec<u8> {
    let v = Value::Array(vec![
        Value::Bytes(protected.to_vec()),
        Value::Map(vec![]),
        Value::Bytes(payload.to_vec()),
        Value::Bytes(signature.to_vec()),
    ]);
    let mut out = Vec::new();
    let _ = ciborium::ser::into_writer(&v, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A document shaped as QEMU's emulated NSM writes it: protected header `{1: -1}`, zeroed
    /// 64-byte signature, certificate and bundle.
    fn emulator_document() -> Vec<u8> {
        let d = AttestationDocument {
            module_id: "i-234-enc5678".into(),
            timestamp_ms: 1_700_000_000_000,
            pcrs: (0u8..16).map(|i| (i, vec![i; 48])).collect(),
            certificate: vec![0; 64],
            cabundle: vec![vec![0; 64]],
            public_key: None,
            user_data: Some(b"u".to_vec()),
            nonce: Some(vec![9; 32]),
        };
        encode_cose_sign1(&[0xa1, 0x01, 0x20], &encode_payload(&d), &[0; 64])
    }

    #[test]
    fn an_emulator_document_is_read_only_by_the_unsigned_parser() {
        let doc = emulator_document();
        assert!(parse_unverified(&doc).is_err(), "the strict parser took it");
        let d = parse_unsigned_emulator(&doc).unwrap();
        assert_eq!(d.module_id, "i-234-enc5678");
        assert_eq!(d.pcrs.get(&2), Some(&vec![2u8; 48]));
        assert_eq!(d.nonce, Some(vec![9; 32]));
        // Its payload is still parsed strictly.
        assert!(parse_unsigned_emulator(&doc[..doc.len() - 70]).is_err());
        assert!(parse_unsigned_emulator(&[0x80]).is_err());
    }
}
