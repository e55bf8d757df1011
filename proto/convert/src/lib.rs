//! Conversions between the gRPC messages and the domain types, for the core and its clients
//! alike. Every conversion of received data is fallible and returns a [`ConvertError`]. Pure:
//! wire and record types only (nothing of the engine or the enclave).

#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)
)]

use kms_eip712::{Signature, SignedDecryption, SignedHandle};
use kms_grpc::v1 as pb;
use kms_types::{DataType, FheType, Plaintext, RequestId, TypedCiphertext};

/// A message field is missing or malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ConvertError {
    /// Which field.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn err(field: &'static str, reason: impl ToString) -> ConvertError {
    ConvertError {
        field,
        reason: reason.to_string(),
    }
}

/// Proto request ID.
pub fn id_to_pb(id: &RequestId) -> pb::RequestId {
    pb::RequestId {
        value: id.to_string(),
    }
}

/// Parses a required proto request ID.
pub fn id_from_pb(
    field: &'static str,
    id: Option<&pb::RequestId>,
) -> Result<RequestId, ConvertError> {
    let id = id.ok_or_else(|| err(field, "missing"))?;
    RequestId::parse(&id.value).map_err(|e| err(field, e))
}

fn fixed<const N: usize>(field: &'static str, b: &[u8]) -> Result<[u8; N], ConvertError> {
    b.try_into()
        .map_err(|_| err(field, format!("must be {N} bytes, got {}", b.len())))
}

/// Proto ciphertexts → domain.
pub fn cts_from_pb(cts: Vec<pb::TypedCiphertext>) -> Result<Vec<TypedCiphertext>, ConvertError> {
    cts.into_iter()
        .map(|c| {
            Ok(TypedCiphertext {
                fhe_type: FheType::from_wire(c.fhe_type.into()).map_err(|e| err("fhe_type", e))?,
                bytes: c.ciphertext,
            })
        })
        .collect()
}

/// Domain ciphertexts → proto.
pub fn cts_to_pb(cts: &[TypedCiphertext]) -> Vec<pb::TypedCiphertext> {
    cts.iter()
        .map(|c| pb::TypedCiphertext {
            fhe_type: c.fhe_type.wire().into(),
            ciphertext: c.bytes.clone(),
        })
        .collect()
}

/// Handle → proto, with its URI below `base`.
pub fn handle_to_pb(h: &SignedHandle, base: &str) -> pb::PublicMaterialHandle {
    pb::PublicMaterialHandle {
        request_id: Some(id_to_pb(&h.request_id)),
        data_type: h.data_type.as_str().into(),
        digest: h.digest.to_vec(),
        uri: h.uri(base),
        signature: h.signature.to_vec(),
        signer: h.signer.to_vec(),
    }
}

/// Proto handle → domain handle and URI. The signature is *not* checked here.
pub fn handle_from_pb(
    h: &pb::PublicMaterialHandle,
) -> Result<(SignedHandle, String), ConvertError> {
    Ok((
        SignedHandle {
            request_id: id_from_pb("handle.request_id", h.request_id.as_ref())?,
            data_type: DataType::parse(&h.data_type)
                .ok_or_else(|| err("handle.data_type", &h.data_type))?,
            digest: fixed("handle.digest", &h.digest)?,
            signature: fixed("handle.signature", &h.signature)?,
            signer: fixed("handle.signer", &h.signer)?,
        },
        h.uri.clone(),
    ))
}

/// Signed decryption → proto.
pub fn decryption_to_pb(d: &SignedDecryption) -> pb::PublicDecryptionResponse {
    pb::PublicDecryptionResponse {
        request_id: Some(id_to_pb(&d.request_id)),
        key_id: Some(id_to_pb(&d.key_id)),
        ciphertext_digests: d.ciphertext_digests.iter().map(|x| x.to_vec()).collect(),
        plaintexts: d
            .plaintexts
            .iter()
            .map(|p| pb::TypedPlaintext {
                fhe_type: p.fhe_type.wire().into(),
                word: p.word.to_vec(),
            })
            .collect(),
        signature: d.signature.0.to_vec(),
        signer: d.signer.to_vec(),
    }
}

/// Proto → signed decryption. The signature is *not* checked here.
pub fn decryption_from_pb(
    r: &pb::PublicDecryptionResponse,
) -> Result<SignedDecryption, ConvertError> {
    Ok(SignedDecryption {
        request_id: id_from_pb("request_id", r.request_id.as_ref())?,
        key_id: id_from_pb("key_id", r.key_id.as_ref())?,
        ciphertext_digests: r
            .ciphertext_digests
            .iter()
            .map(|d| fixed("ciphertext_digests", d))
            .collect::<Result<_, _>>()?,
        plaintexts: r
            .plaintexts
            .iter()
            .map(|p| {
                Ok(Plaintext {
                    fhe_type: FheType::from_wire(p.fhe_type.into())
                        .map_err(|e| err("plaintexts.fhe_type", e))?,
                    word: fixed("plaintexts.word", &p.word)?,
                })
            })
            .collect::<Result<_, ConvertError>>()?,
        signature: Signature(fixed("signature", &r.signature)?),
        signer: fixed("signer", &r.signer)?,
    })
}

/// A party's user-decryption answer → proto: its signcrypted envelope (bytes) and its
/// signature of the response.
pub fn user_response_to_pb(
    id: &RequestId,
    envelope: &[u8],
    response_signature: &Signature,
    signer: &[u8; 20],
) -> pb::UserDecryptionResponse {
    pb::UserDecryptionResponse {
        request_id: Some(id_to_pb(id)),
        envelope: envelope.to_vec(),
        response_signature: response_signature.0.to_vec(),
        signer: signer.to_vec(),
    }
}

/// Proto → a party's user-decryption answer: the envelope bytes (their layout is checked when
/// they are opened) and the response signature (not verified here).
pub fn user_response_from_pb(
    r: pb::UserDecryptionResponse,
) -> Result<(Vec<u8>, Signature), ConvertError> {
    let sig = Signature(fixed("response_signature", &r.response_signature)?);
    Ok((r.envelope, sig))
}

/// Domain → proto EIP-712 domain.
pub fn domain_to_pb(d: &kms_eip712::DomainConfig) -> pb::Eip712Domain {
    pb::Eip712Domain {
        name: d.name.clone(),
        version: d.version.clone(),
        chain_id: d.chain_id,
        verifying_contract: d.verifying_contract.to_vec(),
    }
}

/// Proto → domain.
pub fn domain_from_pb(
    d: Option<&pb::Eip712Domain>,
) -> Result<kms_eip712::DomainConfig, ConvertError> {
    let d = d.ok_or_else(|| err("domain", "missing"))?;
    Ok(kms_eip712::DomainConfig {
        name: d.name.clone(),
        version: d.version.clone(),
        chain_id: d.chain_id,
        verifying_contract: fixed("domain.verifying_contract", &d.verifying_contract)?,
    })
}
