//! `kms eif`: build the enclave image reproducibly, describe it, verify it (or a live enclave's
//! attestation document) against a release manifest. See `eif/README.md`.

use clap::Subcommand;
use kms_eif::manifest::Variant;
use kms_eif::Manifest;
use kms_eif_build::verify::{DocumentTrust, Verified};
use std::path::PathBuf;
use std::sync::Arc;

/// `kms eif` subcommands.
#[derive(Subcommand)]
pub enum EifCmd {
    /// Build the image from the source tree: writes OUT/kms-enclave.eif and OUT/manifest.json.
    Build {
        /// The workspace (source tree) to build.
        #[arg(long, default_value = ".")]
        source: PathBuf,
        /// Cargo's target directory (default: $CARGO_TARGET_DIR, else SOURCE/target).
        #[arg(long)]
        target_dir: Option<PathBuf>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// The kernel (bzImage).
        #[arg(long)]
        kernel: PathBuf,
        /// The kernel's pinned sha256.
        #[arg(long)]
        kernel_sha256: String,
        /// A kernel module for the init to load (repeat, in load order).
        #[arg(long = "module")]
        modules: Vec<PathBuf>,
        /// The kernel command line, byte for byte (default: Nitro CLI's, with its newline).
        #[arg(long)]
        cmdline_file: Option<PathBuf>,
        /// The runtime's arguments, whitespace-separated (fixed in the image, measured in PCR2).
        #[arg(long, allow_hyphen_values = true)]
        enclave_args: String,
        /// `production` or `insecure-dev` (mock NSM, local sealing: test images only).
        #[arg(long, default_value = "production")]
        variant: String,
        /// A developer file, IMAGE_PATH=FILE (insecure-dev images only; repeat).
        #[arg(long = "file")]
        files: Vec<String>,
        /// Build from a tree with uncommitted changes (the manifest says so).
        #[arg(long)]
        allow_dirty: bool,
    },
    /// Print an image's PCR0–2 and sha256 (as `nitro-cli describe-eif`).
    Describe {
        /// The image.
        image: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the attestation policy (JSON) that trusts the releases of the given manifests: the
    /// value of a party's `attestation_policy` in the config contract, which the other parties
    /// and clients apply to its enclaves.
    Policy {
        /// A release manifest (repeat to trust several releases, e.g. during an upgrade).
        #[arg(long = "manifest", required = true)]
        manifests: Vec<PathBuf>,
        /// Largest attestation document age in seconds.
        #[arg(long, default_value_t = 300)]
        max_age_s: u64,
    },
    /// Bring-up probe for an image booted under QEMU with `vhost-device-vsock --uds-path UDS`:
    /// stands in for the host on the Unix sockets UDS_PORT, echoes the Nitro heartbeat (port
    /// 9000), accepts the runtime's channel, sends it a health check and writes the attestation
    /// document it answers with (check it with `kms eif verify --attestation`). Serves no other
    /// host request.
    Probe {
        /// vhost-device-vsock's `--uds-path`.
        #[arg(long)]
        uds: PathBuf,
        /// The channel's vsock port (the image's `--channel vsock:3:PORT`).
        #[arg(long, default_value_t = 5000)]
        port: u32,
        /// The party the image serves (its health document must say so).
        #[arg(long, default_value_t = 1)]
        party: u32,
        /// Where to write the document.
        #[arg(long)]
        out: PathBuf,
        /// How long to wait for the enclave.
        #[arg(long, default_value_t = 600)]
        timeout_s: u64,
    },
    /// Verify an image, or a live enclave's attestation document, against a release manifest.
    /// Exits non-zero on any difference.
    Verify {
        /// The release manifest.
        #[arg(long)]
        manifest: PathBuf,
        /// An image file.
        #[arg(long, conflicts_with = "attestation")]
        image: Option<PathBuf>,
        /// An attestation document (COSE_Sign1).
        #[arg(long)]
        attestation: Option<PathBuf>,
        /// The root to pin, PEM or DER (default: the AWS Nitro Enclaves root G1).
        #[arg(long)]
        root: Option<PathBuf>,
        /// Verification time in Unix milliseconds (default: now).
        #[arg(long)]
        at_ms: Option<u64>,
        /// Largest document age in seconds.
        #[arg(long, default_value_t = 600)]
        max_age_s: u64,
        /// The nonce (hex) the document must carry: the verifier's own fresh challenge, which
        /// proves the document is live and not a replay.
        #[arg(long)]
        nonce: Option<String>,
        /// Accept QEMU's unsigned emulated-NSM document: compares PCRs (and the nonce) only, with
        /// no authenticity at all. For the emulator; never for a production decision.
        #[arg(long, conflicts_with_all = ["root", "at_ms"])]
        unsigned_emulator: bool,
    },
}

type R<T> = Result<T, String>;

fn read(p: &PathBuf) -> R<Vec<u8>> {
    std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
}

/// Runs a `kms eif` subcommand.
pub async fn run(cmd: EifCmd) -> R<()> {
    match cmd {
        EifCmd::Probe {
            uds,
            port,
            party,
            out,
            timeout_s,
        } => {
            probe(
                &uds,
                port,
                party,
                &out,
                std::time::Duration::from_secs(timeout_s),
            )
            .await
        }
        EifCmd::Build {
            source,
            target_dir,
            out,
            kernel,
            kernel_sha256,
            modules,
            cmdline_file,
            enclave_args,
            variant,
            files,
            allow_dirty,
        } => {
            let variant = match variant.as_str() {
                "production" => Variant::Production,
                "insecure-dev" => Variant::InsecureDev,
                v => return Err(format!("unknown variant {v:?} (production | insecure-dev)")),
            };
            let source =
                std::fs::canonicalize(&source).map_err(|e| format!("{}: {e}", source.display()))?;
            let target_dir = target_dir
                .or_else(|| std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from))
                .unwrap_or_else(|| source.join("target"));
            std::fs::create_dir_all(&target_dir).map_err(|e| e.to_string())?;
            let target_dir = std::fs::canonicalize(&target_dir).map_err(|e| e.to_string())?;
            let cmdline = match cmdline_file {
                Some(f) => read(&f)?,
                None => kms_eif_build::NITRO_CMDLINE.as_bytes().to_vec(),
            };
            let mut extra_files = Vec::new();
            for f in files {
                let (image_path, file) = f
                    .split_once('=')
                    .ok_or_else(|| format!("--file {f:?}: expected IMAGE_PATH=FILE"))?;
                extra_files.push((image_path.to_string(), PathBuf::from(file)));
            }
            let spec = kms_eif_build::ImageSpec {
                binaries: kms_eif_build::BinariesSpec {
                    source,
                    target_dir,
                    variant,
                },
                allow_dirty,
                kernel: (kernel, kernel_sha256, modules),
                cmdline,
                enclave_args: enclave_args
                    .split_whitespace()
                    .map(str::to_string)
                    .collect(),
                extra_files,
            };
            let (eif, manifest) = kms_eif_build::build(&spec).map_err(|e| e.to_string())?;
            std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            let json = manifest.to_json().map_err(|e| e.to_string())?;
            kms_eif_build::write(&out.join("kms-enclave.eif"), &eif).map_err(|e| e.to_string())?;
            kms_eif_build::write(&out.join("manifest.json"), &json).map_err(|e| e.to_string())?;
            println!("{}", String::from_utf8_lossy(&json).trim_end());
            Ok(())
        }
        EifCmd::Describe { image, json } => {
            let d = kms_eif_build::describe::describe(&read(&image)?).map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&d).map_err(|e| e.to_string())?
                );
            } else {
                println!("{d}");
            }
            Ok(())
        }
        EifCmd::Policy {
            manifests,
            max_age_s,
        } => {
            let mut releases = Vec::new();
            for p in &manifests {
                let m = Manifest::from_json(&read(p)?).map_err(|e| e.to_string())?;
                if m.variant != Variant::Production {
                    return Err(format!(
                        "{}: an insecure-dev image is never a trusted release",
                        p.display()
                    ));
                }
                releases.push(kms_attestation::Release::from_image(
                    &format!("{} {} ({})", m.name, m.version, m.source_commit),
                    m.pcrs.as_arrays(),
                ));
            }
            let policy = kms_attestation::Policy::production(releases, max_age_s);
            println!(
                "{}",
                serde_json::to_string_pretty(&policy).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        EifCmd::Verify {
            manifest,
            image,
            attestation,
            root,
            at_ms,
            max_age_s,
            nonce,
            unsigned_emulator,
        } => {
            let m = Manifest::from_json(&read(&manifest)?).map_err(|e| e.to_string())?;
            let nonce = nonce
                .map(|h| hex::decode(h).map_err(|e| format!("--nonce: {e}")))
                .transpose()?;
            let verified = match (image, attestation) {
                (Some(image), None) => {
                    kms_eif_build::verify::image(&m, &read(&image)?).map_err(|e| e.to_string())?
                }
                (None, Some(doc)) => {
                    let trust = if unsigned_emulator {
                        DocumentTrust::UnsignedEmulator { nonce }
                    } else {
                        let root = match root {
                            Some(p) => {
                                let raw = read(&p)?;
                                match std::str::from_utf8(&raw) {
                                    Ok(pem) if pem.contains("-----BEGIN") => {
                                        kms_attestation::PinnedRoot::from_pem(pem)
                                    }
                                    _ => kms_attestation::PinnedRoot::from_der(&raw),
                                }
                                .map_err(|e| e.to_string())?
                            }
                            None => kms_attestation::PinnedRoot::aws(),
                        };
                        let now = match at_ms {
                            Some(ms) => std::time::Duration::from_millis(ms),
                            None => std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)
                                .map_err(|e| e.to_string())?,
                        };
                        DocumentTrust::Root {
                            root,
                            now,
                            max_age_s,
                            nonce,
                        }
                    };
                    kms_eif_build::verify::document(&m, &read(&doc)?, &trust)
                        .map_err(|e| e.to_string())?
                }
                _ => return Err("give exactly one of --image and --attestation".into()),
            };
            match verified {
                Verified::Image(p) => println!(
                    "OK: the image is release {} {} (sha256 {}; PCR0 {})",
                    m.name, m.version, m.image_sha256, p.pcr0.to_hex()
                ),
                Verified::SignedDocument { module_id } => println!(
                    "OK: enclave {module_id} runs release {} {} (document signed under the pinned root)",
                    m.name, m.version
                ),
                Verified::UnsignedEmulatorDocument { module_id } => println!(
                    "OK (UNSIGNED, emulator only): {module_id} reports the PCRs of release {} {}",
                    m.name, m.version
                ),
            }
            Ok(())
        }
    }
}

async fn probe(
    uds: &std::path::Path,
    port: u32,
    party: u32,
    out: &PathBuf,
    timeout: std::time::Duration,
) -> R<()> {
    use kms_channel::mux::{BoxIo, Dialer, Handler, HostChannel};
    use kms_channel::wire::HostResponse;
    use rand_core::RngCore;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let bind = |port: u32| {
        let path = PathBuf::from(format!("{}_{port}", uds.display()));
        let _ = std::fs::remove_file(&path);
        tokio::net::UnixListener::bind(&path).map_err(|e| format!("{}: {e}", path.display()))
    };
    let heartbeat = bind(kms_init::HEARTBEAT_PORT)?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = heartbeat.accept().await {
            let mut b = [0u8; 1];
            if s.read_exact(&mut b).await.is_ok() {
                println!("heartbeat {:#04x}", b[0]);
                let _ = s.write_all(&b).await;
            }
        }
    });
    let channel = bind(port)?;
    println!(
        "waiting for the enclave's channel on {}_{port}",
        uds.display()
    );
    let started = std::time::Instant::now();
    let (io, _) = tokio::time::timeout(timeout, channel.accept())
        .await
        .map_err(|_| "the enclave did not connect in time".to_string())?
        .map_err(|e| e.to_string())?;
    println!("channel up after {:.1} s", started.elapsed().as_secs_f64());
    // Host requests wait until the health check is answered (the runtime ends when its first
    // request fails, and the check must not race that).
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let handler: Handler = Arc::new(move |_| {
        let mut done = done_rx.clone();
        Box::pin(async move {
            let _ = done.wait_for(|d| *d).await;
            HostResponse::Failed("the probe serves no host request".into())
        })
    });
    let dial: Dialer = Arc::new(|_| {
        Box::pin(async { Err::<BoxIo, _>(std::io::Error::other("the probe relays nothing")) })
    });
    let host = HostChannel::start(Box::new(io), dial, handler);
    let mut challenge = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut challenge);
    let report = host
        .health(challenge, std::time::Duration::from_secs(120))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("the enclave refused the health check: {e}"))?;
    let _ = done_tx.send(true);
    let claimed = kms_attestation::document::parse_unsigned_emulator(&report.document)
        .map_err(|e| e.to_string())?;
    if claimed.nonce.as_deref() != Some(challenge.as_slice()) {
        return Err("the document does not carry the probe's challenge".into());
    }
    if claimed.user_data != Some(report.phase.user_data(party)) {
        return Err(format!(
            "the document does not attest party {party} in the reported phase {:?}",
            report.phase
        ));
    }
    std::fs::write(out, &report.document).map_err(|e| format!("{}: {e}", out.display()))?;
    println!(
        "health: {:?} after {:.1} s; module {}; PCR0 {}; document written to {}",
        report.phase,
        started.elapsed().as_secs_f64(),
        claimed.module_id,
        claimed.pcrs.get(&0).map(hex::encode).unwrap_or_default(),
        out.display()
    );
    Ok(())
}
