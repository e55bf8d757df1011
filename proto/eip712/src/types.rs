//! The typed structs the KMS signs. Changing one changes its type hash: bump the domain version.

#![allow(missing_docs)] // the sol! macro generates undocumented items; each struct is documented below

use alloy_sol_types::sol;

sol! {
    /// A handle to public material in storage: which request produced it, what it is, and the
    /// SHA3-256 digest of its bytes. The URI is derived from the handle
    /// (`<base>/PUB/<dataType>/<requestId>`), so it is not signed.
    #[derive(Debug, PartialEq, Eq)]
    struct PublicMaterial {
        bytes20 requestId;
        string dataType;
        bytes32 digest;
    }

    /// The result of a public decryption: the plaintexts of the ciphertexts with the given
    /// SHA3-256 digests, decrypted under key `keyId`. `plaintexts` is the concatenation of one
    /// 32-byte big-endian word per ciphertext (`abi.encode` of `uint256[]` without the header;
    /// signed values sign-extended as `int256`).
    #[derive(Debug, PartialEq, Eq)]
    struct PublicDecryptionResult {
        bytes20 requestId;
        bytes20 keyId;
        bytes32[] ciphertextDigests;
        uint8[] fheTypes;
        bytes plaintexts;
    }

    /// The signed payload inside a user-decryption envelope (sign-then-encrypt): binds the
    /// request, the client's ML-KEM key (its SHA3-256 digest) and the KMS signer to the
    /// plaintexts, encoded as in `PublicDecryptionResult`.
    #[derive(Debug, PartialEq, Eq)]
    struct UserDecryptionPayload {
        bytes20 requestId;
        bytes20 keyId;
        bytes32 clientKeyDigest;
        address kmsSigner;
        bytes32[] ciphertextDigests;
        uint8[] fheTypes;
        bytes plaintexts;
    }

    /// One party's share of a threshold user decryption, inside an envelope to the client:
    /// `shares` holds, per ciphertext in order, the party's flooded partial decryption of each
    /// squashed block (64 bytes per block: four little-endian u128 coefficients of GR(Z/2^128, 4)).
    #[derive(Debug, PartialEq, Eq)]
    struct UserDecryptionShare {
        bytes20 requestId;
        bytes20 keyId;
        bytes32 clientKeyDigest;
        address kmsSigner;
        uint32 party;
        bytes32[] ciphertextDigests;
        uint8[] fheTypes;
        bytes shares;
    }

    /// The public attestation of a user-decryption response: which envelope (SHA3-256 of its
    /// bytes) this party sent for which request and client key. Verifiable by anyone, e.g. the
    /// ASC, without learning the plaintext.
    #[derive(Debug, PartialEq, Eq)]
    struct UserDecryptionResponse {
        bytes20 requestId;
        bytes32 clientKeyDigest;
        bytes32 envelopeDigest;
    }
}

impl PublicMaterial {
    /// The handle of public material `data_type` produced by `request_id`, with SHA3-256 `digest`.
    pub fn new(request_id: &kms_types::RequestId, data_type: &str, digest: [u8; 32]) -> Self {
        Self {
            requestId: (*request_id.as_bytes()).into(),
            dataType: data_type.to_string(),
            digest: digest.into(),
        }
    }
}

impl PublicDecryptionResult {
    /// A public-decryption result: per ciphertext its digest, its type (wire value) and its
    /// 32-byte plaintext word, the words concatenated.
    pub fn new(
        request_id: &kms_types::RequestId,
        key_id: &kms_types::RequestId,
        ciphertext_digests: &[[u8; 32]],
        fhe_types: Vec<u8>,
        plaintexts: Vec<u8>,
    ) -> Self {
        Self {
            requestId: (*request_id.as_bytes()).into(),
            keyId: (*key_id.as_bytes()).into(),
            ciphertextDigests: ciphertext_digests.iter().map(|d| (*d).into()).collect(),
            fheTypes: fhe_types,
            plaintexts: plaintexts.into(),
        }
    }
}

impl UserDecryptionResponse {
    /// Which envelope (its SHA3-256) a party sent for a request and client key.
    pub fn new(
        request_id: &kms_types::RequestId,
        client_key_digest: [u8; 32],
        envelope_digest: [u8; 32],
    ) -> Self {
        Self {
            requestId: (*request_id.as_bytes()).into(),
            clientKeyDigest: client_key_digest.into(),
            envelopeDigest: envelope_digest.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_sol_types::SolStruct;

    /// The type strings documented in the README; a change here is a breaking change for
    /// every contract that verifies KMS signatures.
    #[test]
    fn type_strings_are_stable() {
        assert_eq!(
            PublicMaterial::eip712_encode_type(),
            "PublicMaterial(bytes20 requestId,string dataType,bytes32 digest)"
        );
        assert_eq!(
            PublicDecryptionResult::eip712_encode_type(),
            "PublicDecryptionResult(bytes20 requestId,bytes20 keyId,bytes32[] ciphertextDigests,uint8[] fheTypes,bytes plaintexts)"
        );
        assert_eq!(
            UserDecryptionPayload::eip712_encode_type(),
            "UserDecryptionPayload(bytes20 requestId,bytes20 keyId,bytes32 clientKeyDigest,address kmsSigner,bytes32[] ciphertextDigests,uint8[] fheTypes,bytes plaintexts)"
        );
        assert_eq!(
            UserDecryptionShare::eip712_encode_type(),
            "UserDecryptionShare(bytes20 requestId,bytes20 keyId,bytes32 clientKeyDigest,address kmsSigner,uint32 party,bytes32[] ciphertextDigests,uint8[] fheTypes,bytes shares)"
        );
        assert_eq!(
            UserDecryptionResponse::eip712_encode_type(),
            "UserDecryptionResponse(bytes20 requestId,bytes32 clientKeyDigest,bytes32 envelopeDigest)"
        );
    }
}
