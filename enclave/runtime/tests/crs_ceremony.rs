//! The CRS ceremony through the ASC (issue 12): a CRS request on the devnet runs the ceremony
//! between n = 4 party runtimes, each acting only on the record its own light client verified.
//! The test plays the hosts (it carries each enclave's transaction to the chain and publishes
//! its bytes in a content-addressed store) and the adversary: party 2 is silent in its turn,
//! party 3 proposes a copy of party 1's contribution relabelled as its own. The chain skips
//! party 2 after the deadline and rejects party 3 on the honest parties' invalid votes; the
//! parties assemble the CRS from parties 1 and 4's contributions and report it; tfhe-rs proves
//! and verifies an encryption under it and decrypts the expanded list. A host that hands over
//! the wrong bytes gets a typed refusal and no vote; a host that replays the contributor's job
//! gets the same contribution again. Test parameters, tfhe's real CRS size.

use kms_algebra::prss::{deal_keys, Prss};
use kms_ceremony::{Contribution, CrsShape};
use kms_chain_types::codec;
use kms_chain_types::state::{keys, RequestRecord, RequestStatus, CRS_TURN_BLOCKS};
use kms_chain_types::tx::{sign_tx, Fulfillment, KmsRequest, Msg};
use kms_channel::{Job, Outcome, Skip};
use kms_devnet::dev::{DevSetup, ManualChain, Wallet};
use kms_eip712::SigningKey;
use kms_engine::tfhe::prelude::*;
use kms_engine::tfhe::zk::{CompactPkeCrs, ZkComputeLoad};
use kms_engine::tfhe::{CompactPublicKey, FheUint64, FheUint8, ProvenCompactCiphertextList};
use kms_engine::{deserialize_public, generate_key_set};
use kms_light_client::{LightClient, Options, RequestEvidence};
use kms_runtime::share_store::MemoryShareStore;
use kms_runtime::{Clock, ClockError, PartyRuntime, RuntimeError, RuntimeParts};
use kms_threshold::{deal_insecure, FloodingParams, ServedLog, ThresholdParty};
use kms_transport::InProcessNetwork;
use kms_types::{
    sha3_256, CanonicalRequest, CrsGenRequest, KeyGenRequest, ParamSetName, RequestId,
};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tendermint::Time;

const CHAIN: &str = "kms-crs-ceremony";
const PARAMS: ParamSetName = ParamSetName::TestInsecure;
const BITS: u32 = 64;
const N: usize = 4;

struct DevClock(Arc<Mutex<Time>>);

impl Clock for DevClock {
    fn now(&self) -> Result<Time, ClockError> {
        Ok(*self.0.lock().unwrap())
    }
}

/// The party account's next nonce, as its host reads it from the chain before each job.
struct HostNonce(Arc<AtomicU64>);

#[async_trait::async_trait]
impl kms_channel::NonceSource for HostNonce {
    async fn next_nonce(&self) -> Result<u64, kms_channel::NonceError> {
        Ok(self.0.load(Ordering::SeqCst))
    }
}

struct Party {
    runtime: PartyRuntime,
    nonce: Arc<AtomicU64>,
    key: SigningKey,
}

struct World {
    admin: Wallet,
    m: ManualChain,
    clock: Arc<Mutex<Time>>,
    parties: Vec<Party>,
    /// The content-addressed store the hosts publish to and fetch from.
    store: BTreeMap<[u8; 32], Vec<u8>>,
    pk: CompactPublicKey,
    ck: kms_engine::tfhe::ClientKey,
    server_key: kms_engine::tfhe::ServerKey,
}

impl World {
    fn new() -> Self {
        let mut setup = DevSetup::new(CHAIN, N, 1, 4, Time::now());
        let domain = setup.genesis.app_config.eip712_domain.clone();
        let mut m = ManualChain::new(setup.genesis.clone()).unwrap();
        let genesis_validators = m.chain.validators().clone();
        let txs = vec![
            setup.admin.tx(CHAIN, Msg::Faucet { amount: 1_000_000 }),
            setup.admin.tx(
                CHAIN,
                Msg::CreateApplication {
                    app_id: "app".into(),
                    admin: [1; 20],
                },
            ),
        ];
        assert_eq!(m.include(txs).1, vec![0, 0]);
        // The parties' key shares (the dealer: this test is about the ceremony) and the key
        // set whose compact public key the proofs are made for.
        let key_id = KeyGenRequest {
            params: PARAMS,
            label: "ceremony".into(),
        }
        .request_id();
        let ks = generate_key_set(PARAMS, &key_id, &mut |_| {});
        let server_key = ks.server_key.decompress();
        let pk = ks.public_key.clone();
        let shares = deal_insecure(&ks.client_key, key_id, N, 1, &mut rand_core::OsRng).unwrap();
        let prss_keys = deal_keys(N, 1, &mut rand_core::OsRng);
        let clock = Arc::new(Mutex::new((m.clock + Duration::from_secs(1)).unwrap()));
        let parties = shares
            .into_iter()
            .enumerate()
            .map(|(i, share)| {
                let flooding = FloodingParams::for_param_set(
                    PARAMS,
                    N,
                    1,
                    share.message_modulus,
                    share.carry_modulus,
                )
                .unwrap();
                let store = Arc::new(MemoryShareStore::new(Default::default(), &share));
                let key = SigningKey::from_bytes(&setup.parties[i].key().to_bytes()).unwrap();
                let party = Arc::new(ThresholdParty {
                    prss: Prss::new(i + 1, N, 1, &prss_keys).unwrap(),
                    key: kms_threshold::HeldKey::new(Default::default(), share),
                    flooding,
                    params: PARAMS,
                    signer: SigningKey::from_bytes(&key.to_bytes()).unwrap(),
                    domain: domain.clone(),
                    served: ServedLog::in_memory(),
                });
                let (lc, _) = LightClient::from_genesis(
                    CHAIN,
                    1,
                    &genesis_validators,
                    m.chain.light_block(1).unwrap(),
                    Options {
                        trust_threshold: Default::default(),
                        trusting_period: Duration::from_secs(3600),
                        clock_drift: Duration::from_secs(5),
                    },
                    *clock.lock().unwrap(),
                )
                .unwrap();
                let nonce = Arc::new(AtomicU64::new(0));
                let runtime = PartyRuntime::new(RuntimeParts {
                    chain_id: CHAIN.into(),
                    light_client: lc,
                    party,
                    server_key: server_key.clone(),
                    material: BTreeMap::new(),
                    clock: Arc::new(DevClock(clock.clone())),
                    net: Arc::new(InProcessNetwork::new(N).party(i + 1)),
                    nonces: Arc::new(HostNonce(nonce.clone())),
                    shares: store,
                    round_deadline: Duration::from_secs(5),
                });
                Party {
                    runtime,
                    nonce,
                    key,
                }
            })
            .collect();
        Self {
            admin: setup.admin,
            m,
            clock,
            parties,
            store: BTreeMap::new(),
            pk,
            ck: ks.client_key,
            server_key,
        }
    }

    /// The admin's CRS request, approved.
    fn request(&mut self, req: CrsGenRequest) -> RequestId {
        let id = req.request_id();
        let tx = self.admin.tx(
            CHAIN,
            Msg::Request {
                app_id: "app".into(),
                request: KmsRequest::CrsGen(req),
            },
        );
        assert_eq!(self.block(vec![tx]), vec![0]);
        id
    }

    /// A block with exactly `txs` (late votes on a decided turn included: CheckTx would refuse
    /// them, execution does the same); the enclaves' clock moves to just after it.
    fn block(&mut self, txs: Vec<Vec<u8>>) -> Vec<u32> {
        let (_, codes) = self.m.include(txs);
        *self.clock.lock().unwrap() = (self.m.clock + Duration::from_secs(1)).unwrap();
        codes
    }

    fn record(&self, id: &RequestId) -> RequestRecord {
        self.m.request_record(id).unwrap()
    }

    fn account_nonce(&self, addr: &[u8; 20]) -> u64 {
        self.m.account(addr).nonce
    }

    /// What an honest host hands over for `id` now: the record proven at the latest state, and
    /// the bytes it names (the last accepted contribution and the proposal).
    fn job(&mut self, id: RequestId) -> Job {
        // The state after the latest block is proven by the next header.
        self.block(vec![]);
        let h = self.m.chain.height() - 1;
        let q = self
            .m
            .chain
            .query("store", keys::request(&id), h as i64, true);
        let record: RequestRecord = codec::decode(&q.value).unwrap();
        let c = record.ceremony.unwrap();
        let blobs = c
            .accepted()
            .last()
            .map(|(_, d)| d)
            .into_iter()
            .chain(c.proposal)
            .filter_map(|d| self.store.get(&d).cloned())
            .collect();
        Job {
            evidence: RequestEvidence {
                id,
                height: h,
                header: self.m.chain.light_block(h + 1).unwrap(),
                value: q.value.to_vec(),
                proof: q.proof_ops.unwrap().try_into().unwrap(),
            },
            ciphertexts: vec![],
            client_key: None,
            blobs,
        }
    }

    /// Hands `job` to the parties `ps` (1-based) at once, each with its account's next nonce,
    /// and returns their outcomes; the bytes they asked to publish are stored.
    async fn serve(
        &mut self,
        ps: &[usize],
        job: &Job,
    ) -> Vec<(usize, Result<Outcome, RuntimeError>)> {
        for &p in ps {
            let party = &self.parties[p - 1];
            let n = self.account_nonce(&party.runtime.address());
            party.nonce.store(n, Ordering::SeqCst);
        }
        let runs = ps.iter().map(|&p| {
            let job = job.clone();
            let rt = &self.parties[p - 1].runtime;
            async move { (p, rt.serve_job(job).await) }
        });
        let outs = futures::future::join_all(runs).await;
        for (_, out) in &outs {
            if let Ok(Outcome::Publish { blobs, .. }) = out {
                for b in blobs {
                    self.store.insert(sha3_256(b), b.clone());
                }
            }
        }
        outs
    }
}

fn tx_of(o: Outcome) -> Option<Vec<u8>> {
    match o {
        Outcome::Broadcast(tx) | Outcome::Publish { tx, .. } => Some(tx),
        Outcome::Skip(_) => None,
    }
}

/// Proves an encryption under `crs`, checks tfhe verifies it (and not with other metadata),
/// expands and decrypts it.
fn prove_verify_decrypt(w: &World, crs: &CompactPkeCrs) {
    let meta = b"kms crs ceremony through the chain";
    let proven = ProvenCompactCiphertextList::builder(&w.pk)
        .push(200u8)
        .push(0xfeed_beefu64)
        .build_with_proof_packed(crs, meta, ZkComputeLoad::Proof)
        .unwrap();
    assert!(proven.verify(crs, &w.pk, meta).is_valid());
    assert!(proven.verify(crs, &w.pk, b"other").is_invalid());
    kms_engine::tfhe::set_server_key(w.server_key.clone());
    let expander = proven.verify_and_expand(crs, &w.pk, meta).unwrap();
    let a: FheUint8 = expander.get(0).unwrap().unwrap();
    let b: FheUint64 = expander.get(1).unwrap().unwrap();
    let (a, b): (u8, u64) = (a.decrypt(&w.ck), b.decrypt(&w.ck));
    assert_eq!((a, b), (200, 0xfeed_beef));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crs_request_runs_the_ceremony_skips_the_silent_and_the_cheater_and_tfhe_uses_the_crs() {
    let mut w = World::new();
    let req = CrsGenRequest {
        params: PARAMS,
        max_num_bits: BITS,
        label: "ceremony".into(),
    };
    let shape = CrsShape::for_request(PARAMS, BITS).unwrap();
    let id = w.request(req);

    // Steps until the ceremony ended: each step the hosts hand the request over (an honest
    // host does on every ceremony event); party 2 is silent in its own turn; in its turn party
    // 3 proposes a relabelled copy of party 1's contribution instead of its own.
    let mut skipped_for_deadline = false;
    for _step in 0..20 {
        let c = w.record(&id).ceremony.unwrap();
        if c.finished(N) {
            break;
        }
        let current = c.turn as usize + 1;
        let mut txs = Vec::new();
        let cheating = current == 3 && c.proposal.is_none();
        if cheating {
            let (_, d1) = c.accepted().last().unwrap();
            let mut copy = Contribution::from_bytes(&w.store[&d1], &shape).unwrap();
            copy.contributor = 3;
            let bytes = copy.to_bytes().unwrap();
            let digest = sha3_256(&bytes);
            w.store.insert(digest, bytes);
            let party = &w.parties[2];
            let nonce = w.account_nonce(&party.runtime.address());
            txs.push(sign_tx(
                &party.key,
                CHAIN,
                nonce,
                Msg::Fulfill {
                    request_id: id,
                    fulfillment: Fulfillment::CrsContribution { turn: 2, digest },
                },
            ));
        }
        let ps: Vec<usize> = (1..=N)
            .filter(|&p| {
                let silent = p == 2 && current == 2;
                !(silent || p == 3 && cheating)
            })
            .collect();
        let job = w.job(id);
        if current == 1 && c.proposal.is_some() {
            // A host that hands its enclave other bytes than the proposal's gets a refusal,
            // not an invalid vote against an honest contribution.
            let mut forged = job.clone();
            for b in &mut forged.blobs {
                b[1000] ^= 1;
            }
            let refused = w.serve(&[2], &forged).await;
            assert!(
                matches!(refused[0].1, Err(RuntimeError::BlobMissing(_))),
                "{:?}",
                refused[0].1
            );
        }
        let outs = w.serve(&ps, &job).await;
        if current == 1 && c.proposal.is_none() {
            // The same job handed over again (a host replaying the record to collect several
            // contributions and publish the one it likes): the same contribution comes back.
            let again = w.serve(&[1], &job).await;
            let published = |o: &Result<Outcome, RuntimeError>| match o {
                Ok(Outcome::Publish { blobs, .. }) => sha3_256(&blobs[0]),
                other => panic!("party 1 should contribute: {other:?}"),
            };
            assert_eq!(published(&again[0].1), published(&outs[0].1));
        }
        for (p, out) in outs {
            let out = out.unwrap_or_else(|e| panic!("party {p}: {e}"));
            txs.extend(tx_of(out));
        }
        if txs.is_empty() {
            // Nobody could act: the turn's contributor is silent. Let the deadline pass.
            assert_eq!(current, 2, "only party 2's turn stalls");
            for _ in 0..CRS_TURN_BLOCKS {
                w.block(vec![]);
            }
            skipped_for_deadline = true;
            continue;
        }
        w.block(txs);
    }
    assert!(skipped_for_deadline);
    let c = w.record(&id).ceremony.unwrap();
    assert!(c.finished(N), "the ceremony ended: {c:?}");
    let accepted: Vec<u32> = c.accepted().map(|(p, _)| p).collect();
    assert_eq!(
        accepted,
        vec![1, 4],
        "party 2 skipped (silent), party 3 rejected (cheater)"
    );
    assert_eq!((c.decided[1].accepted, c.decided[2].accepted), (None, None));

    // A host that hands over other bytes than the accepted ones gets a typed refusal.
    let mut bad = w.job(id);
    for b in &mut bad.blobs {
        b[100] ^= 1;
    }
    let refused = w.serve(&[1], &bad).await;
    assert!(matches!(refused[0].1, Err(RuntimeError::BlobMissing(_))));

    // The end: every party assembles the CRS, publishes it and reports its digest.
    let job = w.job(id);
    let mut txs = Vec::new();
    let mut digests = Vec::new();
    for (p, out) in w.serve(&[1, 2, 3, 4], &job).await {
        let out = out.unwrap();
        let Outcome::Publish { blobs, .. } = &out else {
            panic!("party {p} should publish the CRS: {out:?}");
        };
        digests.push(sha3_256(&blobs[0]));
        txs.extend(tx_of(out));
    }
    assert!(digests.windows(2).all(|d| d[0] == d[1]), "one CRS for all");
    let codes = w.block(txs);
    assert_eq!(&codes[..2], &[0, 0]);
    assert!(matches!(
        w.record(&id).status,
        RequestStatus::Completed { .. }
    ));
    // Served again after completion: nothing more (party 1's report counted, party 4's came
    // after the completion).
    let job = w.job(id);
    let again = w.serve(&[1, 4], &job).await;
    assert!(matches!(
        again[0].1,
        Ok(Outcome::Skip(Skip::AlreadyAnswered))
    ));
    assert!(matches!(again[1].1, Ok(Outcome::Skip(Skip::Complete))));

    // The CRS the chain agreed on, fetched by its digest: tfhe proves, verifies and decrypts.
    let crs: CompactPkeCrs = deserialize_public(&w.store[&digests[0]]).unwrap();
    prove_verify_decrypt(&w, &crs);
}
