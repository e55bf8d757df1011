//! The README's main job (`kms demo`) runs through, on the insecure test parameters so it is
//! fast: the single core, then the same ciphertexts through the KMS chain to 4 threshold
//! parties, each an enclave process and a host process. `real_params_e2e` covers the core path
//! on real parameters and `threshold_decrypt` the threshold path.

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
            kms: env!("CARGO_BIN_EXE_kms").into(),
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
    // The multi-party stage: chain-approved requests, 4 parties, t + 1 signed results.
    let th = &report.threshold;
    assert_eq!((th.n, th.t), (4, 1));
    assert_eq!(
        th.public_completed_by.len(),
        2,
        "t + 1 matching results complete it"
    );
    assert!(th.user_forwarded_by.len() >= 3, "2t + 1 envelopes at least");
    let expected: Vec<&String> = report.values.iter().map(|v| &v.expected).collect();
    assert_eq!(th.public.iter().collect::<Vec<_>>(), expected);
    assert_eq!(th.user.iter().collect::<Vec<_>>(), expected);
    assert_eq!(th.processes.len(), 4);
    assert!(th.processes.iter().all(|(h, e)| *h > 0 && *e > 0));
    // The CRS through the ASC: made by the parties' ceremony (all four honest contributions
    // accepted on chain), reported by them, fetched by its agreed digest, and a proof under it
    // verified by tfhe-rs.
    assert!(th.crs_verified);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("ceremony of 4 turns decided on chain")
                && l.contains("contributions of parties [1, 2, 3, 4] accepted")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l
                .contains("fetched by its agreed digest; a proven encryption under it verifies"))
    );
    // The resharing through the ASC: completed on all n equal verdicts, and a decryption
    // stamped with the new epoch gives tfhe's value with the new shares.
    assert_eq!(
        th.reshared_by.len(),
        4,
        "all n verdicts complete a resharing"
    );
    assert_eq!(
        th.after_reshare,
        kms_cli::demo_threshold::AFTER_RESHARE.to_string()
    );
    assert!(lines
        .iter()
        .any(|l| l.contains("verified the request with their own light clients")));
    assert!(lines.iter().any(|l| l.contains("all results verified")));
}
