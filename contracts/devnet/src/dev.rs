//! Developer-mode setup: keys for an admin, n KMS parties and the validators, and the genesis
//! that registers them. Every key is generated here and is for developer mode only.

use crate::chain::{Genesis, ValidatorKey};
use kms_chain_types::state::{keys, Account, Config, FeeSchedule, Party, RequestRecord};
use kms_chain_types::tx::{sign_tx, Msg};
use kms_eip712::{DomainConfig, SigningKey};
use tendermint::Time;

/// The developer-mode fee schedule.
pub fn dev_fees() -> FeeSchedule {
    FeeSchedule {
        keygen: 1_000,
        crs_gen: 500,
        public_decrypt_per_ct: 10,
        user_decrypt_per_ct: 20,
        reshare: 1_000,
        faucet_max: 1_000_000,
        tx_base: 1,
        per_state_byte: 1,
    }
}

/// A chain account: a secp256k1 key and its next nonce.
pub struct Wallet {
    key: SigningKey,
    nonce: u64,
}

impl Wallet {
    /// A wallet for a key whose next nonce is 0.
    pub fn new(key: SigningKey) -> Self {
        Self { key, nonce: 0 }
    }

    /// A new random account.
    pub fn random() -> Self {
        Self::new(SigningKey::random(&mut rand::thread_rng()))
    }

    /// The address.
    pub fn address(&self) -> [u8; 20] {
        self.key.address()
    }

    /// The key (to sign EIP-712 results with the same identity).
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// Signs `msg` with the next nonce and advances it.
    pub fn tx(&mut self, chain_id: &str, msg: Msg) -> Vec<u8> {
        let tx = sign_tx(&self.key, chain_id, self.nonce, msg);
        self.nonce += 1;
        tx
    }

    /// Signs `msg` with an explicit nonce (does not advance).
    pub fn tx_with_nonce(&self, chain_id: &str, nonce: u64, msg: Msg) -> Vec<u8> {
        sign_tx(&self.key, chain_id, nonce, msg)
    }

    /// Sets the next nonce (after a rejected transaction).
    pub fn set_nonce(&mut self, nonce: u64) {
        self.nonce = nonce;
    }
}

/// Keys and genesis of a developer-mode chain.
pub struct DevSetup {
    /// The config admin.
    pub admin: Wallet,
    /// The KMS parties, index i + 1.
    pub parties: Vec<Wallet>,
    /// The genesis (validators included).
    pub genesis: Genesis,
}

/// The attestation policy developer mode registers for every party: the one release the mock
/// NSM attests to (PCR0/1/2 filled with `K`, `M`, `S`), documents at most 300 s old; JSON of
/// `kms_attestation::Policy`, the form the enclaves read from the config contract.
pub fn dev_attestation_policy() -> String {
    let pcr = |b: u8| hex::encode([b; 48]);
    format!(
        "{{\"releases\":[{{\"name\":\"kms dev\",\"pcr0\":\"{}\",\"pcr1\":\"{}\",\"pcr2\":\"{}\"}}],\"allow_debug\":false,\"max_age_s\":300}}",
        pcr(0x4b),
        pcr(0x4d),
        pcr(0x53)
    )
}

impl DevSetup {
    /// `n` parties with threshold `t` and `validators` validator keys. Each party's endpoint
    /// (where its host accepts relayed party connections) is a free loopback port.
    pub fn new(chain_id: &str, n: usize, t: u32, validators: usize, genesis_time: Time) -> Self {
        let admin = Wallet::random();
        let parties: Vec<Wallet> = (0..n).map(|_| Wallet::random()).collect();
        let config = Config {
            parties: parties
                .iter()
                .enumerate()
                .map(|(i, w)| Party {
                    index: i as u32 + 1,
                    signer: w.address(),
                    endpoint: free_endpoint(50100 + i),
                    attestation_policy: dev_attestation_policy(),
                    // A distinct placeholder with no key behind it: parties that talk over the
                    // attested mesh register their real keys with `with_identity_keys`.
                    identity_key_digest: Party::identity_digest_of_spki(
                        format!("kms-dev-identity-placeholder/{}", i + 1).as_bytes(),
                    ),
                })
                .collect(),
            threshold: t,
            fees: dev_fees(),
            admins: vec![admin.address()],
            eip712_domain: DomainConfig::default(),
            max_ciphertexts_per_request: 64,
            max_acl_entries_per_app: 100_000,
            developer_chain: true,
        };
        let genesis = Genesis {
            chain_id: chain_id.to_string(),
            genesis_time,
            validators: (0..validators).map(|_| ValidatorKey::random()).collect(),
            app_config: config,
        };
        Self {
            admin,
            parties,
            genesis,
        }
    }

    /// Each party's endpoint in the genesis config, index p − 1.
    pub fn endpoints(&self) -> Vec<String> {
        self.genesis
            .app_config
            .parties
            .iter()
            .map(|p| p.endpoint.clone())
            .collect()
    }

    /// Registers the parties' TLS identity keys: `digests[i]` (SHA-256 of party i + 1's
    /// SubjectPublicKeyInfo, `kms_attested_tls::IdentityKey::digest`) becomes its
    /// `identity_key_digest` in the genesis config.
    pub fn with_identity_keys(mut self, digests: &[[u8; 32]]) -> Self {
        for (party, digest) in self.genesis.app_config.parties.iter_mut().zip(digests) {
            party.identity_key_digest = *digest;
        }
        self
    }
}

/// A devnet driven by hand (tests, benchmarks): blocks are made on demand with a clock that
/// advances one second per block.
pub struct ManualChain {
    /// The chain.
    pub chain: crate::Chain,
    /// Time of the last block.
    pub clock: Time,
}

impl ManualChain {
    /// Starts from `genesis` (its genesis time is the clock's start).
    pub fn new(genesis: Genesis) -> Result<Self, crate::ChainError> {
        let clock = genesis.genesis_time;
        Ok(Self {
            chain: crate::Chain::new(genesis)?,
            clock,
        })
    }

    /// Advances the clock by a second and returns it.
    pub fn tick(&mut self) -> Time {
        self.clock = (self.clock + std::time::Duration::from_secs(1)).unwrap_or(self.clock);
        self.clock
    }

    /// Submits `txs` (each must pass CheckTx), makes a block; returns its height and the result
    /// code of each transaction.
    pub fn block(&mut self, txs: Vec<Vec<u8>>) -> Result<(u64, Vec<u32>), String> {
        for tx in txs {
            let r = self.chain.submit(tx);
            if r.code != 0 {
                return Err(format!("CheckTx refused (code {}): {}", r.code, r.log));
            }
        }
        let now = self.tick();
        let h = self.chain.produce_block(now);
        Ok((h, self.codes(h)))
    }

    /// Produces the next block with exactly `txs`, without CheckTx (as a proposer that ignores
    /// its mempool would, or as when state changed between CheckTx and the block): what
    /// execution does with transactions CheckTx would refuse. Returns the height and the
    /// execution codes.
    pub fn include(&mut self, txs: Vec<Vec<u8>>) -> (u64, Vec<u32>) {
        let now = self.tick();
        let h = self.chain.produce_block_with(now, txs);
        (h, self.codes(h))
    }

    /// The ASC's record of request `id` in the latest state, if it exists and decodes.
    pub fn request_record(&self, id: &kms_types::RequestId) -> Option<RequestRecord> {
        let v = self.chain.query("store", keys::request(id), 0, false).value;
        kms_chain_types::codec::decode(&v).ok()
    }

    /// Account `addr` in the latest state (empty if it never held anything).
    pub fn account(&self, addr: &[u8; 20]) -> Account {
        let v = self
            .chain
            .query("store", keys::account(addr), 0, false)
            .value;
        kms_chain_types::codec::decode(&v).unwrap_or_default()
    }

    fn codes(&self, h: u64) -> Vec<u32> {
        self.chain
            .tx_results(h)
            .map(|rs| rs.iter().map(|r| r.code).collect())
            .unwrap_or_default()
    }
}

/// `127.0.0.1:<a port free now>` (`fallback` if none can be found).
fn free_endpoint(fallback: usize) -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or(fallback, |a| usize::from(a.port()));
    format!("127.0.0.1:{port}")
}
