//! The developer-mode supervisor of party processes: it plays the **insecure dealer** (the
//! stand-in for the DKG), seals each party's state with that party's own sealing key, and runs
//! each party as two OS processes, `kms host` and `kms enclave`, joined by a Unix socket. It
//! holds no protocol logic: the processes follow the chain and serve requests by themselves.

use kms_algebra::prss::deal_keys;
use kms_attested_tls::IdentityKey;
use kms_eip712::DomainConfig;
use kms_engine::tfhe::ClientKey;
use kms_runtime::state::{AeadSealer, KeyEntry, PartyState, StateError};
use kms_types::{ParamSetName, RequestId};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Why the parties could not be provisioned or started.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// A file or directory.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// The dealer failed.
    #[error("dealer: {0}")]
    Deal(String),
    /// Sealing failed.
    #[error("sealing: {0}")]
    Seal(#[from] StateError),
    /// A process could not start, or its host never opened the channel.
    #[error("process: {0}")]
    Spawn(String),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> SupervisorError + '_ {
    move |e| SupervisorError::Io(path.to_path_buf(), e)
}

/// What the dealer needs.
pub struct DealInputs<'a> {
    /// The KMS chain.
    pub chain_id: String,
    /// Parties.
    pub n: usize,
    /// Threshold.
    pub t: usize,
    /// The EIP-712 domain of the chain's config.
    pub domain: DomainConfig,
    /// The chain's genesis validators (CometBFT JSON): each party's light-client trust root.
    pub genesis_validators: Vec<u8>,
    /// Each party's TLS identity key (their digests are registered on chain).
    pub identity: Vec<IdentityKey>,
    /// Each party's signing key (its address is registered on chain).
    pub signers: Vec<Zeroizing<Vec<u8>>>,
    /// The key set (its keygen request ID).
    pub key_id: RequestId,
    /// Its parameters.
    pub params: ParamSetName,
    /// Its client key (only the dealer ever holds it).
    pub client_key: &'a ClientKey,
    /// SHA3-256 of the serialized server key in the blob store.
    pub server_key_digest: [u8; 32],
    /// The key set's public material (data type, SHA3-256).
    pub material: Vec<(String, [u8; 32])>,
    /// Each party's endpoint in the config contract (`HOST:PORT`), where its host listens.
    pub endpoints: Vec<String>,
}

/// One party's files.
#[derive(Clone, Debug)]
pub struct PartyFiles {
    /// Its folder (host data: sealed state, cursor; logs).
    pub dir: PathBuf,
    /// The host⇄enclave channel sockets, one per enclave slot.
    pub sockets: Vec<PathBuf>,
    /// The developer-mode sealing key (hex).
    pub sealing_key: PathBuf,
    /// Where its host accepts party connections (its endpoint in the config contract).
    pub endpoint: String,
    /// Its signer address (for its host's nonce lookups).
    pub signer: [u8; 20],
}

/// AWS KMS sealing for the enclaves instead of their local key files: each enclave's first
/// boot reseals the dealer's state under a data key that the KMS endpoint releases only to an
/// attested enclave, and every later boot gets that key back from it.
#[derive(Clone, Debug)]
pub struct DevAwsKms {
    /// Where the hosts relay the enclaves' KMS connections (`HOST:PORT`).
    pub endpoint: String,
    /// The endpoint's TLS name.
    pub endpoint_host: String,
    /// The region.
    pub region: String,
    /// The CA the enclaves trust for the endpoint (DER; a local endpoint's own).
    pub ca_der: Vec<u8>,
    /// Each party's KMS key ARN, index p − 1.
    pub key_arns: Vec<String>,
}

/// The parties of one developer-mode network, as processes.
pub struct Supervisor {
    aws: Option<(DevAwsKms, PathBuf)>,
    imported: Vec<bool>,
    kms: PathBuf,
    rpc: String,
    blobs: PathBuf,
    root_ca: PathBuf,
    /// Each party's files, index p − 1.
    pub parties: Vec<PartyFiles>,
    /// Message and carry modulus of the squashed blocks (what a user-decryption client needs).
    pub moduli: (u64, u64),
    hosts: Vec<Option<Child>>,
    /// Each party's enclaves, one per slot.
    enclaves: Vec<Vec<Option<Child>>>,
}

impl Supervisor {
    /// Deals the key set and the PRSS keys, seals each party's state under `dir/party<p>`, and
    /// writes the mock NSM root. Each party runs one enclave; see [`Supervisor::provision_slots`]. The hosts find each other at the endpoints the config contract
    /// registers (`inputs.endpoints`, the same list). `kms` is the `kms` binary, `rpc` the
    /// chain node the hosts follow, `blobs` the blob store they share.
    pub fn provision(
        dir: &Path,
        kms: &Path,
        rpc: &str,
        blobs: &Path,
        inputs: DealInputs<'_>,
    ) -> Result<Self, SupervisorError> {
        Self::provision_slots(dir, kms, rpc, blobs, inputs, 1)
    }

    /// [`Supervisor::provision`] with `slots` enclaves per party (every party the same number:
    /// slot `s` of each party meets slot `s` of the others). A party's enclaves share its sealed
    /// state and its sealing key; its host hands each request to one of them.
    pub fn provision_slots(
        dir: &Path,
        kms: &Path,
        rpc: &str,
        blobs: &Path,
        inputs: DealInputs<'_>,
        slots: usize,
    ) -> Result<Self, SupervisorError> {
        let slots = slots.max(1);
        let rng = &mut rand_core::OsRng;
        let (n, t) = (inputs.n, inputs.t);
        let shares = kms_threshold::deal_insecure(inputs.client_key, inputs.key_id, n, t, rng)
            .map_err(|e| SupervisorError::Deal(e.to_string()))?;
        let prss = deal_keys(n, t, rng);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let root =
            kms_nsm::MockRootCa::generate(now).map_err(|e| SupervisorError::Deal(e.to_string()))?;
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let root_ca = dir.join("dev-root-ca");
        let mut raw = (root.cert_der().len() as u32).to_be_bytes().to_vec();
        raw.extend_from_slice(root.cert_der());
        raw.extend_from_slice(&root.key_pkcs8_der());
        std::fs::write(&root_ca, &raw).map_err(io(&root_ca))?;
        let moduli = shares
            .first()
            .map(|s| (s.message_modulus, s.carry_modulus))
            .ok_or_else(|| SupervisorError::Deal("no shares".into()))?;
        let mut parties = Vec::with_capacity(n);
        for (i, share) in shares.into_iter().enumerate() {
            let p = i + 1;
            let pdir = dir.join(format!("party{p}"));
            let sealed_dir = pdir.join("sealed");
            std::fs::create_dir_all(&sealed_dir).map_err(io(&sealed_dir))?;
            let mut key = Zeroizing::new([0u8; 32]);
            rand_core::RngCore::fill_bytes(rng, &mut key[..]);
            let sealing_key = pdir.join("dev-sealing-key");
            std::fs::write(&sealing_key, hex::encode(&key[..])).map_err(io(&sealing_key))?;
            let (identity, signer) = match (inputs.identity.get(i), inputs.signers.get(i)) {
                (Some(id), Some(s)) => (id.to_pkcs8_der(), Zeroizing::new(s.to_vec())),
                _ => return Err(SupervisorError::Deal(format!("no keys for party {p}"))),
            };
            let address = kms_eip712::SigningKey::from_bytes(&signer)
                .map_err(|e| SupervisorError::Deal(e.to_string()))?
                .address();
            let state = PartyState {
                party: p as u32,
                n: n as u32,
                t: t as u32,
                chain_id: inputs.chain_id.clone(),
                domain: inputs.domain.clone(),
                genesis_validators: inputs.genesis_validators.clone(),
                identity_key: identity,
                signer_key: signer,
                // A party holds the keys of the PRSS sets it belongs to, no others.
                prss: prss
                    .iter()
                    .filter(|(set, _)| set.contains(&p))
                    .map(|(s, k)| (s.clone(), k.clone()))
                    .collect(),
                keys: vec![KeyEntry {
                    key_id: inputs.key_id,
                    params: inputs.params,
                    share,
                    server_key_digest: inputs.server_key_digest,
                    material: inputs.material.clone(),
                    epoch: Default::default(),
                }],
            };
            let sealed = AeadSealer::new(&key)
                .seal(&PartyState::context(p as u32, "state"), &state.encode()?)
                .map_err(StateError::from)?;
            let path = sealed_dir.join("state");
            std::fs::write(&path, sealed).map_err(io(&path))?;
            parties.push(PartyFiles {
                sockets: (0..slots)
                    .map(|s| match s {
                        0 => pdir.join("channel.sock"),
                        s => pdir.join(format!("channel-{s}.sock")),
                    })
                    .collect(),
                dir: pdir,
                sealing_key,
                endpoint: inputs
                    .endpoints
                    .get(i)
                    .cloned()
                    .ok_or_else(|| SupervisorError::Deal(format!("no endpoint for party {p}")))?,
                signer: address,
            });
        }
        Ok(Self {
            aws: None,
            imported: vec![false; n],
            kms: kms.to_path_buf(),
            rpc: rpc.to_string(),
            blobs: blobs.to_path_buf(),
            root_ca,
            hosts: (0..n).map(|_| None).collect(),
            enclaves: (0..n).map(|_| (0..slots).map(|_| None).collect()).collect(),
            parties,
            moduli,
        })
    }

    /// Seals the enclaves' state with AWS KMS (see [`DevAwsKms`]); call before starting them.
    pub fn use_aws_kms(&mut self, aws: DevAwsKms) -> Result<(), SupervisorError> {
        if aws.key_arns.len() != self.parties.len() {
            return Err(SupervisorError::Spawn("one KMS key per party".into()));
        }
        let dir = self
            .root_ca
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let ca = dir.join("aws-kms-ca.der");
        std::fs::write(&ca, &aws.ca_der).map_err(io(&ca))?;
        self.aws = Some((aws, ca));
        Ok(())
    }

    /// The mock NSM's root certificate (DER): what a verifier of the enclaves' attestation
    /// documents pins.
    pub fn nsm_root_der(&self) -> Result<Vec<u8>, SupervisorError> {
        let raw = std::fs::read(&self.root_ca).map_err(io(&self.root_ca))?;
        raw.split_first_chunk::<4>()
            .and_then(|(len, rest)| rest.get(..u32::from_be_bytes(*len) as usize))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| SupervisorError::Deal("malformed root CA file".into()))
    }

    fn log(path: &Path) -> Result<std::fs::File, SupervisorError> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io(path))
    }

    /// Starts every host, then every enclave.
    pub fn start(&mut self) -> Result<(), SupervisorError> {
        for i in 0..self.parties.len() {
            self.start_host(i)?;
        }
        for i in 0..self.parties.len() {
            self.start_enclave(i)?;
        }
        Ok(())
    }

    /// Enclaves per party.
    pub fn slots(&self) -> usize {
        self.parties.first().map_or(1, |p| p.sockets.len())
    }

    /// The log file of party `i + 1`'s enclave in `slot`.
    pub fn enclave_log(&self, i: usize, slot: usize) -> Option<PathBuf> {
        let p = self.parties.get(i)?;
        Some(match slot {
            0 => p.dir.join("enclave.log"),
            s => p.dir.join(format!("enclave-{s}.log")),
        })
    }

    /// Starts party `i + 1`'s host.
    pub fn start_host(&mut self, i: usize) -> Result<(), SupervisorError> {
        let p = self
            .parties
            .get(i)
            .ok_or_else(|| SupervisorError::Spawn(format!("no party {}", i + 1)))?;
        let child = Command::new(&self.kms)
            .arg("host")
            .args(
                p.sockets
                    .iter()
                    .flat_map(|s| ["--channel".to_string(), format!("unix:{}", s.display())]),
            )
            .args(["--listen", &p.endpoint])
            .args(["--rpc", &self.rpc])
            .arg("--data-dir")
            .arg(&p.dir)
            .arg("--blobs")
            .arg(&self.blobs)
            .args(["--signer", &format!("0x{}", hex::encode(p.signer))])
            .args(["--poll-ms", "150"])
            .args(
                self.aws
                    .iter()
                    .flat_map(|(a, _)| ["--aws-kms-endpoint".to_string(), a.endpoint.clone()]),
            )
            .stdout(Stdio::null())
            .stderr(Self::log(&p.dir.join("host.log"))?)
            .spawn()
            .map_err(|e| SupervisorError::Spawn(e.to_string()))?;
        if let Some(slot) = self.hosts.get_mut(i) {
            *slot = Some(child);
        }
        Ok(())
    }

    /// Starts party `i + 1`'s enclaves, one per slot (each once its host opened the slot's
    /// channel socket). Under AWS KMS the first enclave's first boot takes over the dealer's
    /// state; the others wait for it and then open the same data key.
    pub fn start_enclave(&mut self, i: usize) -> Result<(), SupervisorError> {
        for slot in 0..self.slots() {
            self.start_enclave_slot(i, slot)?;
        }
        Ok(())
    }

    /// Starts party `i + 1`'s enclave in `slot`.
    pub fn start_enclave_slot(&mut self, i: usize, slot: usize) -> Result<(), SupervisorError> {
        let p = self
            .parties
            .get(i)
            .ok_or_else(|| SupervisorError::Spawn(format!("no party {}", i + 1)))?;
        let socket = p
            .sockets
            .get(slot)
            .ok_or_else(|| SupervisorError::Spawn(format!("no slot {slot}")))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !socket.exists() {
            if Instant::now() > deadline {
                return Err(SupervisorError::Spawn(format!(
                    "host {} never opened {}",
                    i + 1,
                    socket.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut cmd = Command::new(&self.kms);
        cmd.arg("enclave")
            .args(["--party", &(i + 1).to_string()])
            .arg("--channel")
            .arg(format!("unix:{}", socket.display()))
            .arg("--dev-root-ca")
            .arg(&self.root_ca);
        match &self.aws {
            None => {
                cmd.arg("--dev-sealing-key").arg(&p.sealing_key);
            }
            Some((aws, ca)) => {
                let arn = aws.key_arns.get(i).ok_or_else(|| {
                    SupervisorError::Spawn(format!("no KMS key for party {}", i + 1))
                })?;
                cmd.args(["--aws-kms-key-arn", arn, "--aws-region", &aws.region])
                    .args(["--aws-kms-endpoint-host", &aws.endpoint_host])
                    .arg("--dev-aws-kms-ca")
                    .arg(ca);
                // The first start takes over the dealer's state; later ones need only KMS.
                if !self.imported.get(i).copied().unwrap_or(true) {
                    if slot != 0 {
                        return Err(SupervisorError::Spawn(
                            "the first enclave of a party imports its state".into(),
                        ));
                    }
                    cmd.arg("--import-dev-state")
                        .arg("--dev-sealing-key")
                        .arg(&p.sealing_key);
                    if let Some(done) = self.imported.get_mut(i) {
                        *done = true;
                    }
                } else if slot != 0 {
                    // The data-key record the first enclave created.
                    let record = p.dir.join("sealed").join("data-key");
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while !record.exists() {
                        if Instant::now() > deadline {
                            return Err(SupervisorError::Spawn(format!(
                                "party {}'s first enclave created no data key",
                                i + 1
                            )));
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        }
        let log = self
            .enclave_log(i, slot)
            .ok_or_else(|| SupervisorError::Spawn(format!("no party {}", i + 1)))?;
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Self::log(&log)?)
            .spawn()
            .map_err(|e| SupervisorError::Spawn(e.to_string()))?;
        if let Some(s) = self.enclaves.get_mut(i).and_then(|e| e.get_mut(slot)) {
            *s = Some(child);
        }
        Ok(())
    }

    /// Kills party `i + 1`'s enclaves.
    pub fn kill_enclave(&mut self, i: usize) {
        for c in self.enclaves.get_mut(i).into_iter().flatten() {
            if let Some(mut c) = c.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }

    /// Kills party `i + 1`'s enclave in `slot` (its other enclaves keep running).
    pub fn kill_enclave_slot(&mut self, i: usize, slot: usize) {
        if let Some(mut c) = self
            .enclaves
            .get_mut(i)
            .and_then(|e| e.get_mut(slot))
            .and_then(Option::take)
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits up to `within` for party `i + 1`'s (first) enclave to exit; its status if it did.
    pub fn enclave_exit(&mut self, i: usize, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            let slot = self.enclaves.get_mut(i)?.get_mut(0)?;
            let child = slot.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                *slot = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process IDs: (host, first enclave) per party.
    pub fn pids(&self) -> Vec<(Option<u32>, Option<u32>)> {
        self.hosts
            .iter()
            .zip(&self.enclaves)
            .map(|(h, e)| {
                (
                    h.as_ref().map(Child::id),
                    e.first().and_then(Option::as_ref).map(Child::id),
                )
            })
            .collect()
    }

    /// The process IDs of party `i + 1`'s enclaves, by slot.
    pub fn enclave_pids(&self, i: usize) -> Vec<Option<u32>> {
        self.enclaves
            .get(i)
            .map(|e| e.iter().map(|c| c.as_ref().map(Child::id)).collect())
            .unwrap_or_default()
    }

    /// Every process's log file.
    pub fn logs(&self) -> Vec<PathBuf> {
        (0..self.parties.len())
            .flat_map(|i| {
                let host = self.parties.get(i).map(|p| p.dir.join("host.log"));
                host.into_iter()
                    .chain((0..self.slots()).filter_map(move |s| self.enclave_log(i, s)))
            })
            .collect()
    }

    /// Stops every process.
    pub fn stop(&mut self) {
        for c in self
            .enclaves
            .iter_mut()
            .flatten()
            .chain(self.hosts.iter_mut())
        {
            if let Some(mut c) = c.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop();
    }
}
