//! The unwrapping against CMS produced by an independent implementation: the `openssl cms`
//! command (OpenSSL 3), encrypting to a certificate over the recipient key's public half.
//! `-stream` gives BER with indefinite lengths and a chunked content, as AWS KMS sends it.

use kms_recipient::cms::CmsError;
use kms_recipient::{RecipientError, RecipientKey};
use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate for the recipient key's public half (signed by a throwaway CA: `openssl cms`
/// encrypts only to certificates), with a subject key identifier for `-keyid`.
fn recipient_cert(dir: &Path, key: &RecipientKey) {
    std::fs::write(dir.join("pub.der"), key.public_key_der()).unwrap();
    std::fs::write(dir.join("ext.cnf"), "subjectKeyIdentifier=hash\n").unwrap();
    openssl(
        dir,
        &[
            "pkey", "-pubin", "-inform", "DER", "-in", "pub.der", "-out", "pub.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=throwaway CA",
            "-days",
            "1",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-key",
            "ca.key",
            "-subj",
            "/CN=enclave",
            "-out",
            "r.csr",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "r.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-force_pubkey",
            "pub.pem",
            "-extfile",
            "ext.cnf",
            "-days",
            "1",
            "-out",
            "recipient.pem",
        ],
    );
}

/// `openssl cms -encrypt` of `content` to the recipient, with extra options.
fn encrypt(dir: &Path, content: &[u8], extra: &[&str]) -> Vec<u8> {
    std::fs::write(dir.join("content.bin"), content).unwrap();
    let mut args = vec![
        "cms",
        "-encrypt",
        "-binary",
        "-in",
        "content.bin",
        "-outform",
        "DER",
        "-out",
        "out.der",
        "-recip",
        "recipient.pem",
    ];
    args.extend_from_slice(extra);
    openssl(dir, &args);
    std::fs::read(dir.join("out.der")).unwrap()
}

const OAEP_SHA256: &[&str] = &[
    "-aes-256-cbc",
    "-keyopt",
    "rsa_padding_mode:oaep",
    "-keyopt",
    "rsa_oaep_md:sha256",
    "-keyopt",
    "rsa_mgf1_md:sha256",
];

/// Streamed BER with a subject key identifier, OAEP-SHA-256 and AES-256-CBC: AWS's shape.
fn encrypt_as_aws(dir: &Path, content: &[u8]) -> Vec<u8> {
    let mut opts = vec!["-stream", "-keyid"];
    opts.extend_from_slice(OAEP_SHA256);
    encrypt(dir, content, &opts)
}

fn setup() -> (tempfile::TempDir, RecipientKey) {
    let dir = tempfile::tempdir().unwrap();
    let key = RecipientKey::generate().unwrap();
    recipient_cert(dir.path(), &key);
    (dir, key)
}

#[test]
fn streamed_ber_with_subject_key_identifier_as_aws_sends_it() {
    let (dir, key) = setup();
    let data_key: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x5a);
    let cms = encrypt_as_aws(dir.path(), &data_key);
    // BER, not DER: the outer SEQUENCE has an indefinite length and the message ends in
    // end-of-contents octets.
    assert_eq!(&cms[..2], &[0x30, 0x80]);
    assert_eq!(&cms[cms.len() - 2..], &[0, 0]);
    assert_eq!(*key.unwrap_data_key(&cms).unwrap(), data_key);
}

#[test]
fn der_with_issuer_and_serial_number_as_localstack_sends_it() {
    let (dir, key) = setup();
    let data_key = [0xa5u8; 32];
    let cms = encrypt(dir.path(), &data_key, OAEP_SHA256);
    assert_ne!(cms[1], 0x80, "DER has definite lengths");
    assert_eq!(*key.unwrap_data_key(&cms).unwrap(), data_key);
}

#[test]
fn chunked_content_longer_than_one_chunk() {
    let (dir, key) = setup();
    let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let cms = encrypt_as_aws(dir.path(), &content);
    assert_eq!(*key.unwrap(&cms).unwrap(), content);
}

#[test]
fn refuses_other_algorithms() {
    let (dir, _) = setup();
    // OAEP with its SHA-1 defaults, PKCS#1 v1.5 key transport, AES-128 content.
    let sha1 = ["-aes-256-cbc", "-keyopt", "rsa_padding_mode:oaep"];
    let pkcs1 = ["-aes-256-cbc"];
    let aes128 = [
        "-aes-128-cbc",
        "-keyopt",
        "rsa_padding_mode:oaep",
        "-keyopt",
        "rsa_oaep_md:sha256",
        "-keyopt",
        "rsa_mgf1_md:sha256",
    ];
    for opts in [&sha1[..], &pkcs1[..], &aes128[..]] {
        let cms = encrypt(dir.path(), &[7u8; 32], opts);
        // Each call needs a fresh one-shot key; the refusal comes before any decryption.
        let key = RecipientKey::generate().unwrap();
        let err = key.unwrap_data_key(&cms).unwrap_err();
        assert!(
            matches!(err, RecipientError::Cms(CmsError::Unsupported(_))),
            "{opts:?}: {err:?}"
        );
    }
}

#[test]
fn another_recipients_message_and_tampering_are_refused() {
    let (dir, key) = setup();
    let cms = encrypt_as_aws(dir.path(), &[1u8; 32]);
    // For another key: the content key does not decrypt.
    let other = RecipientKey::generate().unwrap();
    assert_eq!(
        other.unwrap_data_key(&cms).unwrap_err(),
        RecipientError::KeyTransport
    );
    // The wrapped content key altered (it sits right before the content's algorithm OID):
    // OAEP refuses it.
    let aes_oid = [
        0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a,
    ];
    let at = cms
        .windows(aes_oid.len())
        .position(|w| w == aes_oid)
        .unwrap();
    let mut bad = cms.clone();
    bad[at - 40] ^= 1;
    assert_eq!(
        key.unwrap_data_key(&bad).unwrap_err(),
        RecipientError::KeyTransport
    );
    // Truncated: a typed error, never a panic.
    for cut in [1, 2, 10, cms.len() / 2] {
        let k = RecipientKey::generate().unwrap();
        assert!(matches!(
            k.unwrap_data_key(&cms[..cms.len() - cut]),
            Err(RecipientError::Cms(_))
        ));
    }
}
