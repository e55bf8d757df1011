//! ML-KEM-512 keys of the user-decryption client.

use crate::SigncryptionError;
use ml_kem::kem::{DecapsulationKey, EncapsulationKey};
use ml_kem::{EncodedSizeUser, KemCore, MlKem512, MlKem512Params};
use std::fmt;

/// Size of an ML-KEM-512 encapsulation key.
pub const EK_LEN: usize = 800;
const Q: u16 = 3329;

/// The client's encapsulation key, validated as FIPS 203 §7.2 requires (every coefficient < q).
#[derive(Clone)]
pub struct ClientPublicKey {
    pub(crate) ek: EncapsulationKey<MlKem512Params>,
    bytes: Vec<u8>,
    digest: [u8; 32],
}

impl fmt::Debug for ClientPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientPublicKey(sha3 {})", hex_prefix(&self.digest))
    }
}

fn hex_prefix(d: &[u8]) -> String {
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

impl ClientPublicKey {
    /// Parses and validates an encoded encapsulation key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SigncryptionError> {
        if bytes.len() != EK_LEN {
            return Err(SigncryptionError::BadClientKey(
                "ML-KEM-512 keys are 800 bytes",
            ));
        }
        // Modulus check: the 768 bytes of t̂ decode to 512 coefficients of 12 bits, each < q.
        for chunk in bytes.chunks_exact(3).take(256) {
            let &[c0, c1, c2] = chunk else {
                return Err(SigncryptionError::BadClientKey("wrong length"));
            };
            let a = u16::from(c0) | (u16::from(c1 & 0x0f) << 8);
            let b = u16::from(c1 >> 4) | (u16::from(c2) << 4);
            if a >= Q || b >= Q {
                return Err(SigncryptionError::BadClientKey(
                    "encapsulation key fails the FIPS 203 modulus check",
                ));
            }
        }
        let enc = ml_kem::Encoded::<EncapsulationKey<MlKem512Params>>::try_from(bytes)
            .map_err(|_| SigncryptionError::BadClientKey("wrong length"))?;
        Ok(Self {
            ek: EncapsulationKey::from_bytes(&enc),
            bytes: bytes.to_vec(),
            digest: kms_types::sha3_256(bytes),
        })
    }

    /// The encoded key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// SHA3-256 of the encoded key: the `clientKeyDigest` of the signed structs.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }
}

/// The client's ephemeral key pair. The decapsulation key is zeroized on drop.
pub struct ClientKeyPair {
    pub(crate) dk: DecapsulationKey<MlKem512Params>,
    public: ClientPublicKey,
}

impl fmt::Debug for ClientKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientKeyPair({:?})", self.public)
    }
}

impl ClientKeyPair {
    /// Generates a fresh key pair.
    pub fn generate(rng: &mut impl rand_core::CryptoRngCore) -> Self {
        let (dk, ek) = MlKem512::generate(rng);
        let bytes = ek.as_bytes().to_vec();
        let digest = kms_types::sha3_256(&bytes);
        Self {
            dk,
            public: ClientPublicKey { ek, bytes, digest },
        }
    }

    /// The public half, to send with the request.
    pub fn public(&self) -> &ClientPublicKey {
        &self.public
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_keys() {
        let kp = ClientKeyPair::generate(&mut rand_core::OsRng);
        let ok = kp.public().as_bytes().to_vec();
        assert!(ClientPublicKey::from_bytes(&ok).is_ok());
        assert!(ClientPublicKey::from_bytes(&ok[..799]).is_err());
        let mut bad = ok.clone();
        bad[0] = 0xff;
        bad[1] |= 0x0f; // first coefficient = 0xfff ≥ q
        assert!(matches!(
            ClientPublicKey::from_bytes(&bad),
            Err(SigncryptionError::BadClientKey(_))
        ));
    }
}
