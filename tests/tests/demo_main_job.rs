//! The README's main job (`kms demo`) runs through, on the insecure test parameters so it is
//! fast; `real_params_e2e` covers the same path on real parameters.

use kms_cli::demo::{run, DemoConfig};
use kms_types::ParamSetName;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_runs_and_verifies_everything() {
    let mut lines = Vec::new();
    let report = run(
        DemoConfig {
            params: ParamSetName::TestInsecure,
            data_dir: None,
            crs_bits: 16,
            label: "demo-test".into(),
        },
        |l| lines.push(l.to_string()),
    )
    .await
    .unwrap();
    assert!(report.proof_verified);
    assert_eq!(report.values.len(), 5);
    for v in &report.values {
        assert_eq!(v.public_decryption, v.expected);
        assert_eq!(v.user_decryption, v.expected);
    }
    assert!(report.tamper_rejected_with.contains("digest mismatch"));
    assert!(lines.iter().any(|l| l.contains("all results verified")));
}
