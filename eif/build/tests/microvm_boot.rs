//! The developer enclave image, built by `kms eif build`'s code, boots under QEMU's microvm
//! (TCG) with a vhost-user vsock device: its init sends the heartbeat, its runtime reaches the
//! host over AF_VSOCK (CID 3 first, then the host CID 2), and answers a health check with an
//! attestation document that the host verifies (signature chain to the mock root, the host's
//! fresh challenge as nonce, the phase as user data). Then the host has no sealed state for it,
//! and the runtime inside the image refuses to start with a fresh identity and ends the VM.
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
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::{target_dir, vm_tools, workspace, Children};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHANNEL_PORT: u32 = 5000;

fn now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_developer_image_boots_under_qemu_and_answers_an_attested_health_check_over_vsock() {
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

    let spec = kms_eif_build::ImageSpec {
        binaries: kms_eif_build::BinariesSpec {
            source: workspace(),
            target_dir: target_dir(),
            variant: Variant::InsecureDev,
        },
        allow_dirty: true,
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
        extra_files: vec![
            ("etc/kms-enclave/dev/root-ca".into(), d.join("root-ca")),
            (
                "etc/kms-enclave/dev/sealing-key".into(),
                d.join("sealing-key"),
            ),
        ],
    };
    let started = Instant::now();
    let (eif_bytes, manifest) =
        tokio::task::spawn_blocking(move || kms_eif_build::build(&spec).unwrap())
            .await
            .unwrap();
    let build_s = started.elapsed().as_secs_f64();
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

    // Under TCG the guest kernel calibrates its TSC against the emulated PIT; on a loaded 2-core
    // machine that calibration can fail, and the kernel then stalls before userspace (seen once
    // in CI: "tsc: Marking TSC unstable", nothing after). That is the emulator's timing, not the
    // image: a boot that has not reached the channel within BOOT_TIMEOUT is retried once, from
    // a fresh vsock backend, and both consoles are shown if the second fails too.
    const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
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
            .args(["-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", "1G"])
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
    println!(
        "image build {build_s:.1} s; boot to channel {connected_s:.1} s; boot to attested health \
         {ready_s:.1} s (QEMU TCG, boot attempt {attempts}); PCR0 {}",
        manifest.pcrs.pcr0.to_hex()
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
