//! The mock's CiphertextForRecipient opens with an independent implementation (`openssl cms
//! -decrypt`), so the enclave-side unwrapping is tested against the standard twice: here, and
//! against `openssl cms -encrypt` in `kms-recipient`.

use std::process::Command;

fn openssl(dir: &std::path::Path, args: &[&str]) {
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

#[test]
fn openssl_decrypts_the_mocks_envelope() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "k.pem",
        ],
    );
    openssl(
        d,
        &[
            "pkey", "-in", "k.pem", "-pubout", "-outform", "DER", "-out", "pub.der",
        ],
    );
    let spki = std::fs::read(d.join("pub.der")).unwrap();
    // Longer than one 1 KiB chunk, so the content is split as AWS splits it.
    let content: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 256) as u8).collect();
    let cms = kms_mock_aws_kms::cms::envelope(&spki, &content).unwrap();
    assert_eq!(&cms[..2], &[0x30, 0x80], "BER with indefinite lengths");
    std::fs::write(d.join("c.der"), &cms).unwrap();
    openssl(
        d,
        &[
            "cms",
            "-decrypt",
            "-binary",
            "-inform",
            "DER",
            "-in",
            "c.der",
            "-inkey",
            "k.pem",
            "-out",
            "plain.bin",
        ],
    );
    assert_eq!(std::fs::read(d.join("plain.bin")).unwrap(), content);
}
