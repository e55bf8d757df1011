//! CiphertextForRecipient as AWS KMS writes it: CMS EnvelopedData in BER with indefinite
//! lengths, one key-transport recipient identified by a 32-byte subject key identifier,
//! RSAES-OAEP (SHA-256, MGF1-SHA-256) and AES-256-CBC content in chunks.

use aws_lc_rs::cipher::{EncryptionContext, PaddedBlockEncryptingKey, UnboundCipherKey, AES_256};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{OaepPublicEncryptingKey, PublicEncryptingKey, OAEP_SHA256_MGF1SHA256};
use sha2::Digest;

/// Why the message could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The recipient's public key is not RSA SPKI.
    #[error("recipient public key is not an RSA SubjectPublicKeyInfo")]
    PublicKey,
    /// A primitive failed.
    #[error("encryption failed")]
    Crypto,
}

fn definite(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = body.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend_from_slice(&[0x81, n as u8]);
    } else {
        out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(body);
    out
}

fn indefinite(tag: u8, parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![tag, 0x80];
    for p in parts {
        out.extend_from_slice(p);
    }
    out.extend_from_slice(&[0, 0]);
    out
}

fn oid(content: &[u8]) -> Vec<u8> {
    definite(0x06, content)
}

const ENVELOPED_DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03];
const DATA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01];
const RSAES_OAEP: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07];
const MGF1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
const SHA256: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01];
const AES256_CBC: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a];

/// Encrypts `content` to the RSA key `spki_der` as AWS KMS does.
pub fn envelope(spki_der: &[u8], content: &[u8]) -> Result<Vec<u8>, BuildError> {
    let public = PublicEncryptingKey::from_der(spki_der).map_err(|_| BuildError::PublicKey)?;
    let public = OaepPublicEncryptingKey::new(public).map_err(|_| BuildError::PublicKey)?;
    let mut cek = [0u8; 32];
    let mut iv = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut cek);
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut iv);
    let mut wrapped = vec![0u8; public.ciphertext_size()];
    let wrapped = public
        .encrypt(&OAEP_SHA256_MGF1SHA256, &cek, &mut wrapped, None)
        .map_err(|_| BuildError::Crypto)?
        .to_vec();
    let cipher = UnboundCipherKey::new(&AES_256, &cek)
        .and_then(PaddedBlockEncryptingKey::cbc_pkcs7)
        .map_err(|_| BuildError::Crypto)?;
    let mut body = content.to_vec();
    cipher
        .less_safe_encrypt(&mut body, EncryptionContext::Iv128(FixedLength::from(iv)))
        .map_err(|_| BuildError::Crypto)?;

    let sha256_alg = definite(0x30, &[oid(SHA256), vec![0x05, 0x00]].concat());
    let oaep_params = definite(
        0x30,
        &[
            definite(0xa0, &sha256_alg),
            definite(
                0xa1,
                &definite(0x30, &[oid(MGF1), sha256_alg.clone()].concat()),
            ),
        ]
        .concat(),
    );
    let ski: [u8; 32] = sha2::Sha256::digest(spki_der).into();
    let recipient = definite(
        0x30,
        &[
            definite(0x02, &[2]),
            definite(0x80, &ski),
            definite(0x30, &[oid(RSAES_OAEP), oaep_params].concat()),
            definite(0x04, &wrapped),
        ]
        .concat(),
    );
    // The content in chunks of at most 1 KiB inside a constructed [0].
    let chunks: Vec<Vec<u8>> = body.chunks(1024).map(|c| definite(0x04, c)).collect();
    let encrypted_content_info = indefinite(
        0x30,
        &[
            oid(DATA),
            definite(0x30, &[oid(AES256_CBC), definite(0x04, &iv)].concat()),
            indefinite(0xa0, &chunks),
        ],
    );
    let enveloped = indefinite(
        0x30,
        &[
            definite(0x02, &[2]),
            definite(0x31, &recipient),
            encrypted_content_info,
        ],
    );
    Ok(indefinite(
        0x30,
        &[oid(ENVELOPED_DATA), indefinite(0xa0, &[enveloped])],
    ))
}
