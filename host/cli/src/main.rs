//! `kms`: the developer-mode KMS core server and its client.

#![forbid(unsafe_code)]

use clap::{Args, Parser, Subcommand};
use kms_cli::devserver::{self, DevServerConfig, PublicStore};
use kms_cli::{bench, demo};
use kms_client::{encrypt_value, ClearValue, KmsClient, Pinned};
use kms_eip712::DomainConfig;
use kms_engine::tfhe;
use kms_storage::S3Config;
use kms_types::{FheType, ParamSetName, RequestId, TypedCiphertext};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "kms",
    version,
    about = "Threshold FHE key management system (developer mode)"
)]
struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct Conn {
    /// Core endpoint.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    endpoint: String,
    /// Expected signer address (0x…). With it, results are verified against this signer, the
    /// EIP-712 domain given by the domain flags and the public material under `--public-base`;
    /// without it (developer mode only) the signer, domain and base the server reports are
    /// trusted.
    #[arg(long, requires = "public_base")]
    signer: Option<String>,
    /// Base URI of the KMS's public material (`file:///…/public` or `s3://bucket/prefix`),
    /// pinned with `--signer`: downloads go to URIs derived from it, never to server-sent ones.
    #[arg(long)]
    public_base: Option<String>,
    #[command(flatten)]
    domain: DomainArgs,
    /// S3 endpoint for s3:// URIs (e.g. http://127.0.0.1:5000).
    #[arg(long)]
    s3_endpoint: Option<String>,
    /// S3 region.
    #[arg(long, default_value = "us-east-1")]
    s3_region: String,
}

/// Who runs a developer KMS chain.
#[derive(Args, Clone, Copy, Debug)]
struct ChainShape {
    /// Validators.
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// KMS parties registered in the config contract.
    #[arg(long, default_value_t = 4)]
    parties: usize,
    /// Threshold t (n ≥ 3t + 1).
    #[arg(long, default_value_t = 1)]
    threshold: u32,
}

/// The EIP-712 domain results are signed under.
#[derive(Args, Clone, Debug)]
struct DomainArgs {
    /// EIP-712 domain chain ID.
    #[arg(long, default_value_t = 31337)]
    chain_id: u64,
    /// EIP-712 verifying contract (0x…; default 0x…01).
    #[arg(long)]
    verifying_contract: Option<String>,
    /// EIP-712 domain name.
    #[arg(long, default_value = "KMS")]
    domain_name: String,
    /// EIP-712 domain version.
    #[arg(long, default_value = "1")]
    domain_version: String,
}

impl DomainArgs {
    fn config(&self) -> R<DomainConfig> {
        let mut domain = DomainConfig {
            name: self.domain_name.clone(),
            version: self.domain_version.clone(),
            chain_id: self.chain_id,
            ..DomainConfig::default()
        };
        if let Some(c) = &self.verifying_contract {
            domain.verifying_contract = addr(c)?;
        }
        Ok(domain)
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a developer-mode core server (centralized engine, plaintext sealing).
    Server {
        /// Data folder (private/ and public/ below it).
        #[arg(long, default_value = "kms-data")]
        data_dir: PathBuf,
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:50051")]
        listen: std::net::SocketAddr,
        /// Put public material in this S3 bucket instead of <data-dir>/public.
        #[arg(long)]
        s3_bucket: Option<String>,
        /// S3 endpoint for S3-compatible servers.
        #[arg(long)]
        s3_endpoint: Option<String>,
        /// S3 key prefix.
        #[arg(long, default_value = "")]
        s3_prefix: String,
        /// S3 region.
        #[arg(long, default_value = "us-east-1")]
        s3_region: String,
        #[command(flatten)]
        domain: DomainArgs,
    },
    /// Generate a key set and print its verified handles.
    Keygen {
        #[command(flatten)]
        conn: Conn,
        /// Parameter set: default | test-insecure.
        #[arg(long, default_value = "default")]
        params: String,
        /// Label distinguishing otherwise identical requests.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Download the public key and server key of a key set, verify them, write them to a folder.
    FetchKey {
        #[command(flatten)]
        conn: Conn,
        /// Key ID.
        #[arg(long)]
        key_id: String,
        /// Output folder.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Encrypt a value with a key set's (downloaded and verified) public key.
    Encrypt {
        #[command(flatten)]
        conn: Conn,
        /// Key ID.
        #[arg(long)]
        key_id: String,
        /// Type, e.g. bool, uint8, int32, uint256.
        #[arg(long = "type")]
        fhe_type: String,
        /// Value (decimal; true/false for bool).
        #[arg(long, allow_hyphen_values = true)]
        value: String,
        /// Output file for the ciphertext.
        #[arg(long)]
        out: PathBuf,
    },
    /// Publicly decrypt ciphertext files (all of one type per call).
    PublicDecrypt {
        #[command(flatten)]
        conn: Conn,
        /// Key ID.
        #[arg(long)]
        key_id: String,
        /// Type of the ciphertexts.
        #[arg(long = "type")]
        fhe_type: String,
        /// Ciphertext files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// User-decrypt ciphertext files: the result comes back encrypted to an ephemeral ML-KEM key.
    UserDecrypt {
        #[command(flatten)]
        conn: Conn,
        /// Key ID.
        #[arg(long)]
        key_id: String,
        /// Type of the ciphertexts.
        #[arg(long = "type")]
        fhe_type: String,
        /// Ciphertext files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Generate a CRS for zero-knowledge proofs of encryption.
    CrsGen {
        #[command(flatten)]
        conn: Conn,
        /// Largest number of plaintext bits per proof.
        #[arg(long, default_value_t = 2048)]
        max_bits: u32,
        /// Parameter set.
        #[arg(long, default_value = "default")]
        params: String,
        /// Label.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List the verified handles of all public material.
    Material {
        #[command(flatten)]
        conn: Conn,
    },
    /// The main job: a local developer-mode KMS doing keygen → encrypt → public decrypt → user
    /// decrypt → CRS, printing verified results.
    Demo {
        /// Parameter set (default = real parameters).
        #[arg(long, default_value = "default")]
        params: String,
        /// Keep data in this folder instead of a temporary one.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// CRS size.
        #[arg(long, default_value_t = 64)]
        crs_bits: u32,
    },
    /// Enclave images: build reproducibly, describe, verify against a release manifest.
    Eif {
        #[command(subcommand)]
        cmd: kms_cli::eif::EifCmd,
    },
    /// Attestation tools for operators and auditors.
    Attestation {
        #[command(subcommand)]
        cmd: AttestationCmd,
    },
    /// Run the developer-mode KMS chain: the ABCI app under an embedded devnet producing
    /// CometBFT 0.38 blocks, serving the CometBFT RPC subset. Resumes from --data-dir (the
    /// chain ID, validators, parties and threshold apply to new chains only).
    Devnet {
        /// Chain data (genesis, block log, developer keys).
        #[arg(long, default_value = "kms-devnet-data")]
        data_dir: PathBuf,
        /// Chain ID (new chains only).
        #[arg(long, default_value = "kms-devnet")]
        chain_id: String,
        /// RPC address.
        #[arg(long, default_value = "127.0.0.1:26657")]
        rpc: std::net::SocketAddr,
        /// Block interval in milliseconds.
        #[arg(long, default_value_t = 1000)]
        block_ms: u64,
        /// Validators, parties and threshold (new chains only).
        #[command(flatten)]
        shape: ChainShape,
    },
    /// Write a k-validator network of the KMS chain for real CometBFT (loopback ports, genesis
    /// with a developer config, developer keys) and print how to start its nodes.
    ChainNet {
        /// Network folder (one CometBFT home per validator, `network.json`, `dev-keys.json`).
        #[arg(long, default_value = "kms-chain-net")]
        dir: PathBuf,
        /// Chain ID.
        #[arg(long, default_value = "kms-local")]
        chain_id: String,
        #[command(flatten)]
        shape: ChainShape,
        /// CometBFT's `timeout_commit`, milliseconds.
        #[arg(long, default_value_t = 1000)]
        block_ms: u64,
        /// The `cometbft` binary (`scripts/install-cometbft` prints its path).
        #[arg(long, default_value = "cometbft")]
        cometbft: PathBuf,
    },
    /// Bring up the developer-mode KMS and leave it running for manual use: a devnet serving
    /// CometBFT's RPC, 4 parties as enclave and host processes, a key set (insecure dealer)
    /// registered on chain; `<dir>/up.json` says how to reach it. Ctrl-C stops everything.
    Up {
        /// Folder for the chain, blobs, party state and logs.
        #[arg(long, default_value = "kms-up")]
        dir: PathBuf,
        /// RPC address of the chain.
        #[arg(long, default_value = "127.0.0.1:26657")]
        rpc: std::net::SocketAddr,
        /// Parameter set of the key set (`default` or `test-insecure`).
        #[arg(long, default_value = "default")]
        params: String,
        /// Enclaves per party (each party's host hands each request to one of them).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=16))]
        enclaves_per_party: u8,
    },
    /// Start a network written by `chain-net`: each node's `kms chain-app` and `cometbft start`,
    /// detached (logs in each home, PIDs in `<dir>/pids.json`); waits until every node makes
    /// blocks and prints their RPC addresses.
    ChainUp {
        /// Network folder written by `chain-net`.
        #[arg(long, default_value = "kms-chain-net")]
        dir: PathBuf,
        /// The `cometbft` binary.
        #[arg(long, default_value = "cometbft")]
        cometbft: PathBuf,
    },
    /// Stop a network started by `chain-up` (SIGTERM, then SIGKILL after 10 s).
    ChainDown {
        /// Network folder.
        #[arg(long, default_value = "kms-chain-net")]
        dir: PathBuf,
    },
    /// One party's enclave process in developer mode (what `kms-enclave` runs): its only I/O
    /// is the channel to its host. Arguments: `--party N --channel unix:PATH
    /// --dev-sealing-key FILE --dev-root-ca FILE`.
    Enclave {
        /// Passed to the enclave process.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// One party's host process (what `kms-host` runs). Arguments: `--channel unix:PATH
    /// --listen ADDR --rpc URL --data-dir DIR --blobs DIR --signer 0x… [--poll-ms N]`.
    Host {
        /// Passed to the host process.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Serve the KMS chain's ABCI app to a real CometBFT 0.38 node (production).
    ChainApp {
        /// ABCI listen address (CometBFT's `proxy_app`).
        #[arg(long, default_value = "127.0.0.1:26658")]
        abci: String,
        /// Keep the app's committed state in `<data-dir>/state.redb` (restarts resume from it);
        /// without it the state is in memory and CometBFT replays the whole chain on restart.
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Benchmark of the enclave's light client: skipping header update (4 validators) + ICS23
    /// proof of a request, against 4 raw ed25519 verifications in the same run.
    BenchChain {
        /// Runs.
        #[arg(long, default_value_t = 51)]
        runs: usize,
    },
    /// Benchmark of the KMS chain under 4 real CometBFT validators against the devnet at the
    /// same block time: throughput (transactions broadcast to committed) and one transaction's
    /// commit latency.
    BenchConsensus {
        /// The `cometbft` binary.
        #[arg(long, default_value = "cometbft")]
        cometbft: PathBuf,
        /// Transactions in the throughput run.
        #[arg(long, default_value_t = 2000)]
        txs: usize,
        /// Latency runs (median).
        #[arg(long, default_value_t = 11)]
        latency_runs: usize,
        /// Milliseconds between blocks (CometBFT's `timeout_commit`, the devnet's interval).
        #[arg(long, default_value_t = 1000)]
        block_ms: u64,
    },
    /// Where a public decryption's latency goes with the 4 parties as enclave and host
    /// processes on a devnet: chain wait, verification, squash, MPC, fulfillment, each against
    /// the end-to-end latency; and each process's memory.
    BenchRuntime {
        /// Decryptions (median).
        #[arg(long, default_value_t = 11)]
        runs: usize,
        /// Milliseconds between blocks.
        #[arg(long, default_value_t = 1000)]
        block_ms: u64,
        /// Requests per throughput batch (one and two enclaves per party); 0: no batch.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Batches per configuration (median).
        #[arg(long, default_value_t = 3)]
        batch_runs: usize,
    },
    /// Benchmark against tfhe-rs baselines in the same run.
    Bench {
        /// Parameter set.
        #[arg(long, default_value = "default")]
        params: String,
        /// Key generations of each kind.
        #[arg(long, default_value_t = 3)]
        keygen_runs: usize,
        /// Decryptions of each kind.
        #[arg(long, default_value_t = 11)]
        decrypt_runs: usize,
    },
    /// The CRS ceremony (every party's contribution and its checks) against tfhe-rs generating
    /// the same CRS alone, in the same run.
    BenchCeremony {
        /// Parameter set.
        #[arg(long, default_value = "default")]
        params: String,
        /// `max_num_bits` of the CRS (fhEVM uses 2048).
        #[arg(long, default_value_t = 2048)]
        max_bits: u32,
        /// Contributing parties.
        #[arg(long, default_value_t = 4)]
        parties: u32,
    },
}

#[derive(Subcommand)]
enum AttestationCmd {
    /// Verify an attestation document (COSE_Sign1 file) against a PCR policy (JSON) and print what
    /// was checked. Exits non-zero if the document is rejected.
    Verify {
        /// The document.
        #[arg(long)]
        document: PathBuf,
        /// The policy: {"releases":[{"name","pcr0","pcr1","pcr2",…}],"allow_debug","max_age_s",…}.
        #[arg(long)]
        policy: PathBuf,
        /// PEM of the root to pin (default: the AWS Nitro Enclaves root G1).
        #[arg(long)]
        root: Option<PathBuf>,
        /// Verification time in Unix milliseconds (default: now).
        #[arg(long)]
        at_ms: Option<u64>,
    },
}

type R<T> = Result<T, String>;

/// Prints benchmark comparisons as JSON or a table (times scaled by `scale`, shown in `unit`).
fn print_comparisons(res: &[bench::Comparison], json: bool, scale: f64, unit: &str) -> R<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(res).map_err(|e| e.to_string())?
        );
        return Ok(());
    }
    println!(
        "{:<64} {:>10} {:>10}  {:>7}  baseline",
        "measure (median)",
        format!("kms {unit}"),
        format!("base {unit}"),
        "ratio"
    );
    for r in res {
        println!(
            "{:<64} {:>10.4} {:>10.4}  {:>6.3}×  {} ({} runs)",
            r.name,
            r.kms_s * scale,
            r.baseline_s * scale,
            r.ratio,
            r.baseline,
            r.runs
        );
    }
    Ok(())
}

fn params(s: &str) -> R<ParamSetName> {
    ParamSetName::parse(s)
        .ok_or_else(|| format!("unknown parameter set {s:?} (default | test-insecure)"))
}

fn addr(s: &str) -> R<[u8; 20]> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    let mut a = [0u8; 20];
    hex::decode_to_slice(s, &mut a).map_err(|e| format!("bad address: {e}"))?;
    Ok(a)
}

fn fhe_type(s: &str) -> R<FheType> {
    FheType::from_name(s).ok_or_else(|| format!("unknown type {s:?}"))
}

fn id(s: &str) -> R<RequestId> {
    RequestId::parse(s).map_err(|e| format!("bad ID {s:?}: {e}"))
}

async fn connect(c: &Conn) -> R<KmsClient> {
    let pin = match (&c.signer, &c.public_base) {
        (Some(signer), Some(base)) => Some(Pinned {
            signer: addr(signer)?,
            domain: c.domain.config()?,
            public_base_uri: base.clone(),
        }),
        _ => None,
    };
    let mut client = KmsClient::connect(&c.endpoint, pin)
        .await
        .map_err(|e| e.to_string())?;
    if let Some(ep) = &c.s3_endpoint {
        client = client.with_s3(S3Config {
            bucket: String::new(),
            prefix: String::new(),
            endpoint: Some(ep.clone()),
            region: c.s3_region.clone(),
            credentials: None,
        });
    }
    Ok(client)
}

fn read_cts(t: FheType, files: &[PathBuf]) -> R<Vec<TypedCiphertext>> {
    files
        .iter()
        .map(|f| {
            Ok(TypedCiphertext {
                fhe_type: t,
                bytes: std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?,
            })
        })
        .collect()
}

fn parse_value(t: FheType, s: &str) -> R<ClearValue> {
    if t == FheType::Bool {
        return match s {
            "true" | "1" => Ok(ClearValue::Bool(true)),
            "false" | "0" => Ok(ClearValue::Bool(false)),
            _ => Err(format!("bool value must be true or false, got {s}")),
        };
    }
    if t.is_signed() {
        s.parse::<i128>()
            .map(ClearValue::Signed)
            .map_err(|e| e.to_string())
    } else {
        s.parse::<u128>()
            .map(ClearValue::Unsigned)
            .map_err(|e| e.to_string())
    }
}

async fn run(cli: Cli) -> R<()> {
    let json = cli.json;
    let say = |s: &str| {
        if !json {
            println!("{s}");
        }
    };
    match cli.cmd {
        Cmd::Server {
            data_dir,
            listen,
            s3_bucket,
            s3_endpoint,
            s3_prefix,
            s3_region,
            domain,
        } => {
            let domain = domain.config()?;
            let public = match s3_bucket {
                Some(bucket) => PublicStore::S3(S3Config {
                    bucket,
                    prefix: s3_prefix,
                    endpoint: s3_endpoint,
                    region: s3_region,
                    credentials: None,
                }),
                None => PublicStore::File,
            };
            let server = devserver::start(DevServerConfig {
                data_dir,
                listen,
                public,
                domain,
                parallel_jobs: std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2),
            })
            .await
            .map_err(|e| e.to_string())?;
            say(&format!("serving on {}; Ctrl-C to stop", server.endpoint()));
            tokio::signal::ctrl_c().await.map_err(|e| e.to_string())?;
            server.stop().await;
        }
        Cmd::Keygen {
            conn,
            params: p,
            label,
        } => {
            let mut c = connect(&conn).await?;
            let r = c
                .keygen(params(&p)?, &label, |m| say(&format!("… {m}")))
                .await
                .map_err(|e| e.to_string())?;
            if json {
                let hs: Vec<_> = r.handles.iter().map(|(h, uri)| json!({"data_type": h.data_type.as_str(), "digest": hex::encode(h.digest), "uri": uri, "signature": hex::encode(h.signature)})).collect();
                println!("{}", json!({"key_id": r.key_id.to_string(), "handles": hs}));
            } else {
                println!("key ID {}", r.key_id);
                for (h, uri) in &r.handles {
                    println!(
                        "  {:<10} sha3-256 {}  {uri}",
                        h.data_type.as_str(),
                        hex::encode(h.digest)
                    );
                }
            }
        }
        Cmd::FetchKey { conn, key_id, out } => {
            let mut c = connect(&conn).await?;
            let k = id(&key_id)?;
            std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
            let mut written = Vec::new();
            for dt in [
                kms_types::DataType::PublicKey,
                kms_types::DataType::ServerKey,
            ] {
                let (h, _) = c.handle(&k, dt).await.map_err(|e| e.to_string())?;
                let bytes = c.download(&h).await.map_err(|e| e.to_string())?;
                let path = out.join(format!("{}-{}.bin", dt.as_str(), k));
                std::fs::write(&path, &bytes).map_err(|e| e.to_string())?;
                written.push((
                    dt.as_str(),
                    path.display().to_string(),
                    hex::encode(h.digest),
                ));
            }
            if json {
                println!("{}", json!({"key_id": key_id, "files": written}));
            } else {
                for (dt, p, d) in written {
                    println!("{dt:<10} verified (sha3-256 {d}) → {p}");
                }
            }
        }
        Cmd::Encrypt {
            conn,
            key_id,
            fhe_type: t,
            value,
            out,
        } => {
            let mut c = connect(&conn).await?;
            let k = id(&key_id)?;
            let t = fhe_type(&t)?;
            let v = parse_value(t, &value)?;
            let pk = c.fetch_public_key(&k).await.map_err(|e| e.to_string())?;
            let sk = c.fetch_server_key(&k).await.map_err(|e| e.to_string())?;
            tfhe::set_server_key(sk.decompress());
            let ct = encrypt_value(&pk.public_key, t, v).map_err(|e| e.to_string())?;
            std::fs::write(&out, &ct.bytes).map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    json!({"file": out.display().to_string(), "type": t.name(), "digest": hex::encode(ct.digest())})
                );
            } else {
                println!(
                    "{} ciphertext written to {} (sha3-256 {})",
                    t,
                    out.display(),
                    hex::encode(ct.digest())
                );
            }
        }
        Cmd::PublicDecrypt {
            conn,
            key_id,
            fhe_type: t,
            files,
        } => {
            let mut c = connect(&conn).await?;
            let cts = read_cts(fhe_type(&t)?, &files)?;
            let r = c
                .public_decrypt(id(&key_id)?, cts)
                .await
                .map_err(|e| e.to_string())?;
            let vals = demo::render_plaintexts(&r.plaintexts);
            if json {
                println!(
                    "{}",
                    json!({"request_id": r.request_id.to_string(), "plaintexts": vals, "signature": hex::encode(r.signature.0), "signer": hex::encode(r.signer)})
                );
            } else {
                println!(
                    "request {} (signature verified, signer 0x{})",
                    r.request_id,
                    hex::encode(r.signer)
                );
                for (f, v) in files.iter().zip(vals) {
                    println!("  {} = {v}", f.display());
                }
            }
        }
        Cmd::UserDecrypt {
            conn,
            key_id,
            fhe_type: t,
            files,
        } => {
            let mut c = connect(&conn).await?;
            let cts = read_cts(fhe_type(&t)?, &files)?;
            let pts = c
                .user_decrypt(id(&key_id)?, cts)
                .await
                .map_err(|e| e.to_string())?;
            let vals = demo::render_plaintexts(&pts);
            if json {
                println!("{}", json!({"plaintexts": vals}));
            } else {
                println!("user decryption (envelope opened, signatures verified)");
                for (f, v) in files.iter().zip(vals) {
                    println!("  {} = {v}", f.display());
                }
            }
        }
        Cmd::CrsGen {
            conn,
            max_bits,
            params: p,
            label,
        } => {
            let mut c = connect(&conn).await?;
            let (h, uri) = c
                .crs_gen(params(&p)?, max_bits, &label)
                .await
                .map_err(|e| e.to_string())?;
            c.fetch_crs(&h).await.map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    json!({"crs_id": h.request_id.to_string(), "uri": uri, "digest": hex::encode(h.digest)})
                );
            } else {
                println!(
                    "CRS {} (downloaded and verified, sha3-256 {})  {uri}",
                    h.request_id,
                    hex::encode(h.digest)
                );
            }
        }
        Cmd::Material { conn } => {
            let mut c = connect(&conn).await?;
            let list = c
                .rpc()
                .get_public_material(kms_grpc::v1::GetPublicMaterialRequest {})
                .await
                .map_err(|e| e.to_string())?
                .into_inner();
            let mut rows = Vec::new();
            for h in &list.handles {
                let (sh, uri) = kms_convert::handle_from_pb(h).map_err(|e| e.to_string())?;
                sh.verify_signature(c.domain(), &c.signer())
                    .map_err(|e| e.to_string())?;
                rows.push((
                    sh.request_id.to_string(),
                    sh.data_type.as_str(),
                    hex::encode(sh.digest),
                    uri,
                ));
            }
            if json {
                println!(
                    "{}",
                    serde_json::to_string(&rows).map_err(|e| e.to_string())?
                );
            } else {
                for (i, d, g, u) in rows {
                    println!("{i} {d:<10} sha3-256 {g}  {u}");
                }
            }
        }
        Cmd::Demo {
            params: p,
            data_dir,
            crs_bits,
        } => {
            let report = demo::run(
                demo::DemoConfig {
                    params: params(&p)?,
                    data_dir,
                    crs_bits,
                    label: format!("demo-{}", std::process::id()),
                    kms: std::env::current_exe().map_err(|e| e.to_string())?,
                },
                say,
            )
            .await
            .map_err(|e| e.to_string())?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
                );
            } else {
                for (step, s) in &report.timings {
                    println!("  {step:<32} {s:>8.2} s");
                }
            }
        }
        Cmd::Eif { cmd } => kms_cli::eif::run(cmd).await?,
        Cmd::Attestation {
            cmd:
                AttestationCmd::Verify {
                    document,
                    policy,
                    root,
                    at_ms,
                },
        } => {
            let doc =
                std::fs::read(&document).map_err(|e| format!("{}: {e}", document.display()))?;
            let policy: kms_attestation::Policy = serde_json::from_slice(
                &std::fs::read(&policy).map_err(|e| format!("{}: {e}", policy.display()))?,
            )
            .map_err(|e| format!("policy: {e}"))?;
            let root = match root {
                Some(p) => kms_attestation::PinnedRoot::from_pem(
                    &std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?,
                )
                .map_err(|e| e.to_string())?,
                None => kms_attestation::PinnedRoot::aws(),
            };
            let at = match at_ms {
                Some(ms) => std::time::Duration::from_millis(ms),
                None => std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|e| e.to_string())?,
            };
            let report = kms_cli::auditor::audit(&doc, &policy, &root, at)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?
                );
            } else {
                print!("{}", kms_cli::auditor::render(&report));
            }
            if report.error.is_some() {
                return Err("attestation document rejected".into());
            }
        }
        Cmd::Devnet {
            data_dir,
            chain_id,
            rpc,
            block_ms,
            shape,
        } => {
            kms_cli::chain::run_devnet(
                &data_dir,
                &chain_id,
                rpc,
                block_ms,
                shape.validators,
                shape.parties,
                shape.threshold,
            )
            .await?;
        }
        Cmd::Enclave { .. } | Cmd::Host { .. } => {
            return Err("the enclave and host processes run from main".into())
        }
        Cmd::Up {
            dir,
            rpc,
            params: p,
            enclaves_per_party,
        } => {
            let kms = std::env::current_exe().map_err(|e| e.to_string())?;
            let stop = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            let mut print = |s: &str| println!("{s}");
            kms_cli::demo_threshold::up(
                &dir,
                rpc,
                params(&p)?,
                usize::from(enclaves_per_party),
                &kms,
                stop,
                &mut print,
            )
            .await
            .map_err(|e| e.to_string())?;
        }
        Cmd::ChainUp { dir, cometbft } => {
            let kms = std::env::current_exe().map_err(|e| e.to_string())?;
            let running = kms_cli::network::start_network(&dir, &cometbft, &kms)
                .map_err(|e| e.to_string())?;
            for r in &running {
                let rpc = kms_connector::ChainRpc::new(&r.rpc).map_err(|e| e.to_string())?;
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
                loop {
                    if rpc.latest_height().await.is_ok_and(|h| h >= 2) {
                        break;
                    }
                    if std::time::Instant::now() > deadline {
                        return Err(format!(
                            "{} makes no blocks; see {}/node.log",
                            r.rpc,
                            r.home.display()
                        ));
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                }
                println!(
                    "{}  (app pid {}, node pid {})",
                    r.rpc, r.app_pid, r.node_pid
                );
            }
            println!("running; stop with: kms chain-down --dir {}", dir.display());
        }
        Cmd::ChainDown { dir } => {
            let stopped = kms_cli::network::stop_network(&dir, std::time::Duration::from_secs(10))
                .map_err(|e| e.to_string())?;
            println!("stopped {} processes", stopped.len());
        }
        Cmd::ChainNet {
            dir,
            chain_id,
            shape,
            block_ms,
            cometbft,
        } => kms_cli::chain::init_network(
            &cometbft,
            &dir,
            &chain_id,
            shape.validators,
            shape.parties,
            shape.threshold,
            block_ms,
        )?,
        Cmd::ChainApp { abci, data_dir } => {
            tokio::task::spawn_blocking(move || {
                kms_cli::chain::run_abci(&abci, data_dir.as_deref())
            })
            .await
            .map_err(|e| e.to_string())??;
        }
        Cmd::BenchConsensus {
            cometbft,
            txs,
            latency_runs,
            block_ms,
        } => {
            let kms = std::env::current_exe().map_err(|e| e.to_string())?;
            let res = kms_cli::bench_consensus::run(&cometbft, &kms, txs, latency_runs, block_ms)
                .await
                .map_err(|e| e.to_string())?;
            print_comparisons(&res, json, 1e3, "ms")?;
        }
        Cmd::BenchRuntime {
            runs,
            block_ms,
            batch,
            batch_runs,
        } => {
            let kms = std::env::current_exe().map_err(|e| e.to_string())?;
            let report = kms_cli::bench_runtime::run(&kms, runs, block_ms, batch, batch_runs)
                .await
                .map_err(|e| e.to_string())?;
            print_comparisons(&report.phases, json, 1e3, "ms")?;
            if let Some(b) = &report.batch {
                print_comparisons(std::slice::from_ref(&b.comparison), json, 1.0, "s")?;
                if !json {
                    println!(
                        "throughput: {:.1} requests/s with 1 enclave per party, {:.1} with 2",
                        b.one_per_s, b.two_per_s
                    );
                    for (p, s, peak) in &b.memory {
                        println!(
                            "party {p} enclave {s}: peak {:.1} MiB",
                            *peak as f64 / 1024.0
                        );
                    }
                }
            }
            if !json {
                for (p, ep, ec, hp, hc) in &report.memory {
                    println!(
                        "party {p}: enclave peak {:.1} MiB, now {:.1} MiB; host peak {:.1} MiB, now {:.1} MiB",
                        *ep as f64 / 1024.0,
                        *ec as f64 / 1024.0,
                        *hp as f64 / 1024.0,
                        *hc as f64 / 1024.0
                    );
                }
            }
        }
        Cmd::BenchChain { runs } => {
            let res = tokio::task::spawn_blocking(move || kms_cli::chain::bench_light_client(runs))
                .await
                .map_err(|e| e.to_string())??;
            print_comparisons(&res, json, 1e3, "ms")?;
        }
        Cmd::Bench {
            params: p,
            keygen_runs,
            decrypt_runs,
        } => {
            let p = params(&p)?;
            let res = tokio::task::spawn_blocking(move || {
                bench::run(p, keygen_runs, decrypt_runs, |m| {
                    if !json {
                        eprintln!("{m}");
                    }
                })
            })
            .await
            .map_err(|e| e.to_string())??;
            print_comparisons(&res, json, 1.0, "s")?;
        }
        Cmd::BenchCeremony {
            params: p,
            max_bits,
            parties,
        } => {
            let p = params(&p)?;
            let (res, sizes) = tokio::task::spawn_blocking(move || {
                kms_cli::bench_ceremony::run(p, max_bits, parties, |m| {
                    if !json {
                        eprintln!("{m}");
                    }
                })
            })
            .await
            .map_err(|e| e.to_string())??;
            if !json {
                println!(
                    "n = {} powers; one contribution {} bytes; the CRS {} bytes",
                    sizes.n, sizes.contribution_bytes, sizes.crs_bytes
                );
            }
            print_comparisons(&res, json, 1.0, "s")?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.cmd {
        Cmd::Enclave { args } => return rt.block_on(kms_runtime::process::main_with(args)),
        Cmd::Host { args } => return rt.block_on(kms_host::process::main_with(args)),
        _ => {}
    }
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
