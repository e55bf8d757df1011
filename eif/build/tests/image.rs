//! The developer enclave image, end to end, in one test (its two builds are the slowest part of
//! CI, so the boot and the reproducibility check share the first):
//!
//! 1. **Reproducible.** Two checkouts of one commit, in two folders, cloned and built one after
//!    the other by `kms eif build`'s code, give the same EIF bytes and manifest. The PCRs are also
//!    recomputed from the file as AWS specifies them (SHA-384 extends over the raw section
//!    payloads, read with this test's own offsets) and read by AWS's own EIF reader
//!    (`aws-nitro-enclaves-image-format`, in `eif/cross-check`); all three agree. The real
//!    binaries assembled again with one byte changed: the runtime moves PCR0 and PCR2 only, the
//!    kernel PCR0 and PCR1 only.
//! 2. **Boots.** The first image boots under QEMU's microvm (TCG) with a vhost-user vsock device:
//!    its init sends the heartbeat, its runtime reaches the host over AF_VSOCK (CID 3 first, then
//!    the host CID 2) and answers a health check with an attestation document that the host
//!    verifies (signature chain to the mock root, the host's fresh challenge as nonce, the phase
//!    as user data). Then the host has no sealed state for it, and the runtime inside the image
//!    refuses to start with a fresh identity and ends the VM.
//!
//! The checkouts are clones of this repository's HEAD: commit before running it locally.
//!
//! What the reproducibility part proves and what it does not: the second build compiles every
//! workspace crate again, from the second folder, but shares the compiled crates.io dependencies
//! (and their C code) with the first through the target directory, to stay within CI's time. So
//! it shows that the checkout's folder, the time and the assembly leave no trace. That the
//! dependencies compile to the same bytes under another cargo home and target directory, and
//! that the production variant (the same pipeline without the `insecure-dev` feature) does too,
//! is shown by `scripts/check-reproducible-cold`, which shares nothing (about 25 minutes, outside
//! CI).
//!
//! The kernel is Debian's cloud kernel (pinned by sha256, with its virtio-mmio, vsock and NSM
//! modules in the boot ramdisk), because the Nitro kernel is not published. QEMU boots exactly
//! the bytes the PCRs measure: the kernel, command line and ramdisks are taken from the EIF.

mod support;

use kms_attestation::{Policy, Release};
use kms_channel::mux::{BoxIo, Dialer, Handler, HostChannel};
use kms_channel::wire::{HostRequest, HostResponse, Phase};
use kms_eif::manifest::Variant;
use kms_eif::Eif;
use sha2::{Digest, Sha384};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{target_dir, vm_tools, workspace, Children};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHANNEL_PORT: u32 = 5000;

/// The developer files the image carries (where in the image, the file in the test's folder).
const DEV_FILES: [(&str, &str); 2] = [
    ("etc/kms-enclave/dev/root-ca", "root-ca"),
    ("etc/kms-enclave/dev/sealing-key", "sealing-key"),
];

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

fn git_clone(into: &Path) {
    let ok = Command::new("git")
        .args(["clone", "--quiet", "--no-hardlinks"])
        .arg(workspace())
        .arg(into)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git clone");
}

/// PCR0–2 as AWS specifies them, from the file's own section table (not this crate's reader).
fn independent_pcrs(eif: &[u8]) -> [String; 3] {
    let be16 = |at: usize| u16::from_be_bytes(eif[at..at + 2].try_into().unwrap());
    let be64 = |at: usize| u64::from_be_bytes(eif[at..at + 8].try_into().unwrap());
    assert_eq!(&eif[..4], b".eif");
    // magic 4, version 2, flags 2, memory 8, CPUs 8, reserved 2: the section count at 26, then
    // 32 offsets and 32 sizes.
    let count = be16(26) as usize;
    let (mut image, mut boot, mut app) = (Sha384::new(), Sha384::new(), Sha384::new());
    let mut ramdisks = 0;
    for i in 0..count {
        let off = be64(28 + 8 * i) as usize;
        let size = be64(28 + 8 * 32 + 8 * i) as usize;
        let kind = be16(off);
        let payload = &eif[off + 12..off + 12 + size];
        match kind {
            1 | 2 => {
                image.update(payload);
                boot.update(payload);
            }
            3 => {
                image.update(payload);
                if ramdisks == 0 {
                    boot.update(payload);
                } else {
                    app.update(payload);
                }
                ramdisks += 1;
            }
            _ => {}
        }
    }
    let extend = |h: Sha384| {
        let mut r = Sha384::new();
        r.update([0u8; 48]);
        r.update(h.finalize());
        hex::encode(r.finalize())
    };
    [extend(image), extend(boot), extend(app)]
}

/// AWS's reader's view of the image.
fn aws_reader(eif_path: &Path) -> serde_json::Value {
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["run", "--quiet", "--release", "--manifest-path"])
        .arg(workspace().join("eif/cross-check/Cargo.toml"))
        .arg("--")
        .arg(eif_path)
        .env("CARGO_TARGET_DIR", target_dir().join("eif-cross-check"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cross-check: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_developer_image_is_reproducible_boots_under_qemu_and_answers_an_attested_health_check()
{
    let tools = vm_tools();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // The developer files the image carries: the mock NSM's root and a local sealing key.
    let root = kms_nsm::MockRootCa::generate(now()).unwrap();
    let mut raw = (root.cert_der().len() as u32).to_be_bytes().to_vec();
    raw.extend_from_slice(root.cert_der());
    raw.extend_from_slice(&root.key_pkcs8_der());
    std::fs::write(d.join("root-ca"), &raw).unwrap();
    std::fs::write(d.join("sealing-key"), "11".repeat(32)).unwrap();

    let spec = |source: &Path| kms_eif_build::ImageSpec {
        binaries: kms_eif_build::BinariesSpec {
            source: source.to_path_buf(),
            target_dir: target_dir(),
            variant: Variant::InsecureDev,
        },
        allow_dirty: false,
        kernel: (
            tools.kernel.clone(),
            tools.kernel_sha256.clone(),
            tools.modules.clone(),
        ),
        cmdline: kms_eif_build::NITRO_CMDLINE.as_bytes().to_vec(),
        enclave_args: format!(
            "--party 1 --channel vsock:3:{CHANNEL_PORT} \
             --dev-root-ca /etc/kms-enclave/dev/root-ca \
             --dev-sealing-key /etc/kms-enclave/dev/sealing-key"
        )
        .split_whitespace()
        .map(str::to_string)
        .collect(),
        extra_files: DEV_FILES
            .iter()
            .map(|(at, file)| (at.to_string(), d.join(file)))
            .collect(),
    };
    // Clones HEAD into `checkout` and builds the image there: the image, its manifest, seconds.
    let clone_and_build = |checkout: std::path::PathBuf| {
        git_clone(&checkout);
        let spec = spec(&checkout);
        let started = Instant::now();
        async move {
            let (eif, manifest) =
                tokio::task::spawn_blocking(move || kms_eif_build::build(&spec).unwrap())
                    .await
                    .unwrap();
            (eif, manifest, started.elapsed().as_secs_f64())
        }
    };
    let (eif_bytes, manifest, build_s) = clone_and_build(d.join("checkout-a")).await;
    assert_eq!(manifest.variant, Variant::InsecureDev);

    // QEMU boots the EIF's own sections.
    let eif = Eif::parse(&eif_bytes).unwrap();
    std::fs::write(d.join("kernel"), &eif.kernel).unwrap();
    std::fs::write(d.join("initrd"), eif.ramdisks.concat()).unwrap();
    let cmdline = String::from_utf8(eif.cmdline.clone()).unwrap();

    // The host's vsock ports, as vhost-device-vsock exposes them: Unix sockets PATH_PORT.
    let uds = d.join("vm.vsock");
    let heartbeat =
        tokio::net::UnixListener::bind(d.join(format!("vm.vsock_{}", kms_init::HEARTBEAT_PORT)))
            .unwrap();
    let channel =
        tokio::net::UnixListener::bind(d.join(format!("vm.vsock_{CHANNEL_PORT}"))).unwrap();
    let beats = Arc::new(Mutex::new(Vec::new()));
    {
        let beats = beats.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = heartbeat.accept().await {
                let mut b = [0u8; 1];
                if s.read_exact(&mut b).await.is_ok() {
                    beats.lock().unwrap().push(b[0]);
                    let _ = s.write_all(&b).await;
                }
            }
        });
    }

    // Under TCG the guest kernel calibrates its TSC against the emulated PIT. Without
    // `-icount` both follow the host's clock, and on a loaded 2-core machine the calibration
    // fails ("tsc: Unable to calibrate against PIT ... Marking TSC unstable"); microvm has no
    // HPET or PM timer to fall back on, so the kernel then stalls before userspace (measured: 3
    // of 5 boots with two busy loops beside QEMU, and 2 of 3 CI runs). With `-icount` the TSC and
    // the PIT both count executed instructions, so the calibration cannot be disturbed by the
    // host (measured: 9 of 9 boots, 5 of them loaded); `sleep=on` (the default) keeps an idle
    // guest on real time, so its I/O timeouts stay real. A boot that still has not reached the
    // channel within BOOT_TIMEOUT is retried once, from a fresh vsock backend, and both consoles
    // are shown if the second fails too.
    const BOOT_TIMEOUT: Duration = Duration::from_secs(75);
    let mut failed_consoles = Vec::new();
    let mut booted = None;
    for attempt in 1..=2 {
        let mut children = Children::default();
        let vhost_socket = d.join(format!("vhost-{attempt}.sock"));
        children.0.push(
            Command::new(&tools.vhost_device_vsock)
                .args(["--guest-cid", "4"])
                .arg("--socket")
                .arg(&vhost_socket)
                .arg("--uds-path")
                .arg(&uds)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !vhost_socket.exists() {
            assert!(
                Instant::now() < deadline,
                "vhost-device-vsock did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let console = d.join(format!("console-{attempt}.log"));
        let boot = Instant::now();
        let qemu = Command::new(&tools.qemu)
            .args(["-M", "microvm,acpi=on,memory-backend=mem"])
            .args(["-accel", "tcg", "-icount", "shift=2", "-cpu", "max"])
            .args(["-smp", "1", "-m", "1G"])
            .args(["-object", "memory-backend-memfd,id=mem,size=1G,share=on"])
            .arg("-chardev")
            .arg(format!("socket,id=vsock,path={}", vhost_socket.display()))
            .args(["-device", "vhost-user-vsock-device,chardev=vsock"])
            .arg("-kernel")
            .arg(d.join("kernel"))
            .arg("-initrd")
            .arg(d.join("initrd"))
            .args(["-append", cmdline.trim_end()])
            .args(["-nodefaults", "-no-reboot", "-display", "none"])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        children.0.push(qemu);
        match tokio::time::timeout(BOOT_TIMEOUT, channel.accept()).await {
            Ok(Ok((io, _))) => {
                booted = Some((io, children, console, boot, attempt));
                break;
            }
            _ => failed_consoles.push(std::fs::read_to_string(&console).unwrap_or_default()),
        }
    }
    let Some((io, mut children, console, boot, attempts)) = booted else {
        panic!(
            "the enclave never connected in two boots; consoles:\n{}",
            failed_consoles.join("\n----- second boot -----\n")
        );
    };
    let console_text = || std::fs::read_to_string(&console).unwrap_or_default();
    let connected_s = boot.elapsed().as_secs_f64();
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let asked = Arc::new(Mutex::new(Vec::new()));
    let handler: Handler = {
        let asked = asked.clone();
        Arc::new(move |req: HostRequest| {
            let (asked, mut go) = (asked.clone(), go_rx.clone());
            Box::pin(async move {
                asked.lock().unwrap().push(format!("{req:?}"));
                let _ = go.wait_for(|g| *g).await;
                match req {
                    HostRequest::GetSealed { .. } => HostResponse::Blob(None),
                    _ => HostResponse::Failed("not in this test".into()),
                }
            })
        })
    };
    let dial: Dialer = Arc::new(|_| {
        Box::pin(async { Err::<BoxIo, _>(std::io::Error::other("no peers in this test")) })
    });
    let host = HostChannel::start(Box::new(io), dial, handler);

    let challenge: [u8; 32] = rand_bytes();
    let report = host
        .health(challenge, Duration::from_secs(60))
        .await
        .expect("channel")
        .expect("health report");
    let ready_s = boot.elapsed().as_secs_f64();
    assert_eq!(report.phase, Phase::Booting);
    let dev_release = Release::from_image("developer", kms_runtime::process::DEV_PCRS);
    let policy = |nonce: &[u8]| Policy {
        nonce: Some(nonce.to_vec()),
        user_data: Some(Phase::Booting.user_data(1)),
        ..Policy::production(vec![dev_release.clone()], 120)
    };
    let pinned = root.pinned().unwrap();
    let verified =
        kms_attestation::verify_document(&report.document, &pinned, &policy(&challenge), now())
            .expect("the health document verifies");
    assert_eq!(verified.document.module_id, "i-party-1");
    // Bound to this challenge: under another nonce it is refused.
    let mut other = challenge;
    other[0] ^= 1;
    assert!(
        kms_attestation::verify_document(&report.document, &pinned, &policy(&other), now())
            .is_err()
    );
    // Not under another root.
    let stranger = kms_nsm::MockRootCa::generate(now())
        .unwrap()
        .pinned()
        .unwrap();
    assert!(kms_attestation::verify_document(
        &report.document,
        &stranger,
        &policy(&challenge),
        now()
    )
    .is_err());

    // Now the host has no sealed state: the runtime must refuse to invent an identity, and the
    // init ends the VM.
    go_tx.send(true).unwrap();
    let mut qemu = children.0.pop().unwrap();
    let exit = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = qemu.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() > deadline {
                let _ = qemu.kill();
                let _ = qemu.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
    .await
    .unwrap();
    let text = console_text();
    assert!(exit.is_some(), "the VM did not end; console:\n{text}");
    assert!(
        asked
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.contains("GetSealed") && r.contains("state")),
        "the runtime never asked for its sealed state: {:?}",
        asked.lock().unwrap()
    );
    assert!(
        text.contains("refusing to start with a fresh identity"),
        "console:\n{text}"
    );
    assert!(
        text.contains("heartbeat answered by CID 2"),
        "console:\n{text}"
    );
    assert_eq!(*beats.lock().unwrap(), vec![kms_init::HEARTBEAT]);
    drop(children);

    // Another folder, cloned after the first build finished: the same image.
    let checkout_b = d.join("elsewhere/checkout-b");
    let (eif_b, manifest_b, rebuild_s) = clone_and_build(checkout_b.clone()).await;
    assert_eq!(manifest, manifest_b, "the two builds' manifests differ");
    assert_eq!(
        kms_eif::sha256_hex(&eif_bytes),
        kms_eif::sha256_hex(&eif_b),
        "the two builds' images differ"
    );
    assert!(!manifest.source_commit.ends_with("-dirty"));
    manifest.check_image(&eif_b).unwrap();

    // An independent computation and AWS's reader give the manifest's PCRs.
    let pcrs = [
        manifest.pcrs.pcr0.to_hex(),
        manifest.pcrs.pcr1.to_hex(),
        manifest.pcrs.pcr2.to_hex(),
    ];
    assert_eq!(independent_pcrs(&eif_bytes), pcrs);
    let path = d.join("kms-enclave.eif");
    std::fs::write(&path, &eif_bytes).unwrap();
    let aws = aws_reader(&path);
    assert_eq!(aws["CheckCRC"], true, "{aws}");
    assert_eq!(aws["Version"], 4, "{aws}");
    for (i, p) in pcrs.iter().enumerate() {
        assert_eq!(aws[format!("PCR{i}")].as_str(), Some(p.as_str()), "{aws}");
    }
    assert_eq!(aws["Metadata"]["ImageName"], "kms-enclave", "{aws}");

    // The real binaries, one byte changed.
    let bins = target_dir().join("x86_64-unknown-linux-gnu/enclave");
    let extra_files = DEV_FILES
        .iter()
        .map(|(at, file)| (at.to_string(), std::fs::read(d.join(file)).unwrap()))
        .collect();
    let inputs = kms_eif_build::ImageInputs {
        kernel: kms_eif_build::Kernel::load(&tools.kernel, &tools.kernel_sha256, &tools.modules)
            .unwrap(),
        cmdline: kms_eif_build::NITRO_CMDLINE.as_bytes().to_vec(),
        init: std::fs::read(bins.join("kms-init")).unwrap(),
        runtime: std::fs::read(bins.join("kms-enclave")).unwrap(),
        enclave_args: manifest.inputs.enclave_args.clone(),
        extra_files,
        variant: Variant::InsecureDev,
        version: manifest.version.clone(),
        source_commit: manifest.source_commit.clone(),
        toolchain: manifest.toolchain.clone(),
        cargo_lock: std::fs::read(checkout_b.join("Cargo.lock")).unwrap(),
    };
    let (again, _) = kms_eif_build::assemble(&inputs).unwrap();
    assert_eq!(
        again, eif_b,
        "assembling the same binaries again gives another image"
    );
    let base = manifest.pcrs;
    let mut runtime = inputs.clone();
    let mid = runtime.runtime.len() / 2;
    runtime.runtime[mid] ^= 1;
    let (_, m) = kms_eif_build::assemble(&runtime).unwrap();
    assert_ne!(m.pcrs.pcr0, base.pcr0);
    assert_eq!(m.pcrs.pcr1, base.pcr1);
    assert_ne!(m.pcrs.pcr2, base.pcr2);
    let mut kernel = inputs.clone();
    let mid = kernel.kernel.image.len() / 2;
    kernel.kernel.image[mid] ^= 1;
    let (_, m) = kms_eif_build::assemble(&kernel).unwrap();
    assert_ne!(m.pcrs.pcr0, base.pcr0);
    assert_ne!(m.pcrs.pcr1, base.pcr1);
    assert_eq!(m.pcrs.pcr2, base.pcr2);

    println!(
        "image build {build_s:.1} s; boot to channel {connected_s:.1} s; boot to attested health \
         {ready_s:.1} s (QEMU TCG, boot attempt {attempts}); rebuild elsewhere {rebuild_s:.1} s; \
         image sha256 {}; PCR0 {}; PCR1 {}; PCR2 {}",
        manifest.image_sha256, pcrs[0], pcrs[1], pcrs[2]
    );
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    b
}
