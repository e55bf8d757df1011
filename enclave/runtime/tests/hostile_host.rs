//! A hostile host against its enclave (issue 10): the host hands over tampered ciphertexts, a
//! wrong client key, a forged record, a proof for a request that was never approved, a header
//! from a chain the enclave does not trust, stale evidence. The runtime refuses each with its
//! typed error and signs nothing; the same job with honest inputs is served (so the refusals
//! are not vacuous). Chain: the devnet, in process; test parameters.

use kms_algebra::prss::{deal_keys, Prss};
use kms_chain_types::codec;
use kms_chain_types::state::{keys, RequestRecord};
use kms_chain_types::tx::{decode_tx, Fulfillment, KmsRequest, MaterialItem, Msg};
use kms_channel::{Job, Outcome};
use kms_devnet::dev::{DevSetup, ManualChain, Wallet};
use kms_eip712::SigningKey;
use kms_engine::{generate_key_set, serialize_public};
use kms_light_client::{Error as LcError, LightClient, Options, RequestEvidence};
use kms_nsm::{MockNsm, MockRootCa};
use kms_runtime::share_store::{MemoryShareStore, PendingReshare, ShareStore};
use kms_runtime::{AttestedClock, Clock, ClockError, PartyRuntime, RuntimeError, RuntimeParts};
use kms_signcryption::ClientKeyPair;
use kms_threshold::{
    deal_insecure, FloodingParams, ServedLog, SnsKeyShare, ThresholdError, ThresholdParty,
};
use kms_transport::InProcessNetwork;
use kms_types::{
    CanonicalRequest, FheType, KeyEpoch, KeyGenRequest, ParamSetName, RequestId, Reshared,
    TypedCiphertext, UserDecryptionRequest,
};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tendermint::Time;

const CHAIN: &str = "kms-hostile-host";
const PARAMS: ParamSetName = ParamSetName::TestInsecure;

/// The enclave's trusted clock in this test: the devnet's time (its blocks are a second apart).
struct DevClock(Arc<Mutex<Time>>);

impl Clock for DevClock {
    fn now(&self) -> Result<Time, ClockError> {
        Ok(*self.0.lock().unwrap())
    }
}

struct World {
    m: ManualChain,
    genesis_validators: tendermint::validator::Set,
    clock: Arc<Mutex<Time>>,
    party: Arc<ThresholdParty>,
    server_key: kms_engine::tfhe::ServerKey,
    user_id: RequestId,
    request_height: u64,
    cts: Vec<TypedCiphertext>,
    other_ct: TypedCiphertext,
    client: ClientKeyPair,
    setup: DevSetup,
    user: Wallet,
}

impl World {
    fn new() -> Self {
        let mut setup = DevSetup::new(CHAIN, 4, 1, 4, Time::now());
        let domain = setup.genesis.app_config.eip712_domain.clone();
        let mut m = ManualChain::new(setup.genesis.clone()).unwrap();
        let genesis_validators = m.chain.validators().clone();
        let keygen = KmsRequest::KeyGen(KeyGenRequest {
            params: PARAMS,
            label: "hostile".into(),
        });
        let key_id = keygen.request_id();
        let mut user = Wallet::random();
        let txs = vec![
            setup.admin.tx(CHAIN, Msg::Faucet { amount: 1_000_000 }),
            user.tx(CHAIN, Msg::Faucet { amount: 1_000_000 }),
            setup.admin.tx(
                CHAIN,
                Msg::CreateApplication {
                    app_id: "app".into(),
                    admin: user.address(),
                },
            ),
            setup.admin.tx(
                CHAIN,
                Msg::Request {
                    app_id: "app".into(),
                    request: keygen,
                },
            ),
        ];
        assert_eq!(m.block(txs).unwrap().1, vec![0; 4]);
        let txs = setup.parties[..2]
            .iter_mut()
            .map(|p| {
                let item = MaterialItem::signed(p.key(), &domain, &key_id, "PublicKey", [7; 32]);
                p.tx(
                    CHAIN,
                    Msg::Fulfill {
                        request_id: key_id,
                        fulfillment: Fulfillment::Material {
                            items: vec![item.unwrap()],
                        },
                    },
                )
            })
            .collect();
        assert_eq!(m.block(txs).unwrap().1, vec![0, 0]);

        let ks = generate_key_set(PARAMS, &key_id, &mut |_| {});
        let server_key = ks.server_key.decompress();
        let encrypt =
            |v: u8| TypedCiphertext {
                fhe_type: FheType::Uint8,
                bytes:
                    serialize_public(
                        &<kms_engine::tfhe::FheUint8 as kms_engine::tfhe::prelude::FheEncrypt<
                            u8,
                            _,
                        >>::encrypt(v, &ks.client_key),
                    )
                    .unwrap(),
            };
        let cts = vec![encrypt(42)];
        let other_ct = encrypt(42);
        let client = ClientKeyPair::generate(&mut rand_core::OsRng);
        let user_req = UserDecryptionRequest {
            key_id,
            ciphertexts: cts.clone(),
            client_encryption_key: client.public().as_bytes().to_vec(),
        };
        let user_id = user_req.request_id();
        let txs = vec![
            user.tx(
                CHAIN,
                Msg::AclGrant {
                    app_id: "app".into(),
                    handles: cts.iter().map(TypedCiphertext::digest).collect(),
                    addresses: vec![user.address()],
                },
            ),
            user.tx(
                CHAIN,
                Msg::Request {
                    app_id: "app".into(),
                    request: KmsRequest::UserDecrypt(user_req.to_ref()),
                },
            ),
        ];
        let (request_height, codes) = m.block(txs).unwrap();
        assert_eq!(codes, vec![0, 0]);
        for _ in 0..3 {
            m.block(vec![]).unwrap();
        }

        let shares = deal_insecure(&ks.client_key, key_id, 4, 1, &mut rand_core::OsRng).unwrap();
        let share = shares.into_iter().next().unwrap();
        let prss_keys = deal_keys(4, 1, &mut rand_core::OsRng);
        let flooding =
            FloodingParams::for_param_set(PARAMS, 4, 1, share.message_modulus, share.carry_modulus)
                .unwrap();
        let party = Arc::new(ThresholdParty {
            prss: Prss::new(1, 4, 1, &prss_keys).unwrap(),
            key: kms_threshold::HeldKey::new(Default::default(), share),
            flooding,
            params: PARAMS,
            signer: SigningKey::from_bytes(&setup.parties[0].key().to_bytes()).unwrap(),
            domain,
            served: ServedLog::in_memory(),
        });
        let clock = Arc::new(Mutex::new((m.clock + Duration::from_secs(1)).unwrap()));
        Self {
            m,
            genesis_validators,
            clock,
            party,
            server_key,
            user_id,
            request_height,
            cts,
            other_ct,
            client,
            setup,
            user,
        }
    }

    /// A fresh enclave runtime for party 1, its light client anchored at genesis.
    fn runtime(&self) -> PartyRuntime {
        self.runtime_with(Arc::new(DevClock(self.clock.clone())))
    }

    /// The same with another trusted clock.
    fn runtime_with(&self, clock: Arc<dyn Clock>) -> PartyRuntime {
        let shares = Arc::new(MemoryShareStore::new(
            Default::default(),
            &self.party.key.current().share,
        ));
        self.build(clock, shares)
    }

    /// A fresh runtime (the devnet's clock) whose sealed share and pending resharings are
    /// `shares`.
    fn runtime_with_store(&self, shares: Arc<dyn ShareStore>) -> PartyRuntime {
        self.build(Arc::new(DevClock(self.clock.clone())), shares)
    }

    /// A copy of the share party 1 holds now.
    fn held_share(&self) -> SnsKeyShare {
        SnsKeyShare::from_sealing_bytes(&self.party.key.current().share.to_sealing_bytes()).unwrap()
    }

    /// A store holding the current share at epoch 0 and `pending`.
    async fn store_with(&self, pending: PendingReshare) -> Arc<MemoryShareStore> {
        let store = Arc::new(MemoryShareStore::new(
            KeyEpoch::default(),
            &self.held_share(),
        ));
        store.put_pending(&pending).await.unwrap();
        store
    }

    /// The admin's resharing `label` of the key, approved; its ID and approving height.
    fn request_reshare(&mut self, label: &str) -> (RequestId, u64) {
        let reshare = KmsRequest::Reshare {
            key_id: self.party.key.current().share.key_id,
            epoch: label.into(),
        };
        let rid = reshare.request_id();
        let tx = self.setup.admin.tx(
            CHAIN,
            Msg::Request {
                app_id: "app".into(),
                request: reshare,
            },
        );
        let (h, codes) = self.m.block(vec![tx]).unwrap();
        assert_eq!(codes, vec![0]);
        (rid, h)
    }

    /// One more (empty) block, so the state after the last is proven, and the enclave's clock
    /// moved to just after it.
    fn settle(&mut self) {
        self.m.block(vec![]).unwrap();
        *self.clock.lock().unwrap() = (self.m.clock + Duration::from_secs(1)).unwrap();
    }

    fn build(&self, clock: Arc<dyn Clock>, shares: Arc<dyn ShareStore>) -> PartyRuntime {
        let (lc, _) = LightClient::from_genesis(
            CHAIN,
            1,
            &self.genesis_validators,
            self.m.chain.light_block(1).unwrap(),
            Options {
                trust_threshold: Default::default(),
                trusting_period: Duration::from_secs(3600),
                clock_drift: Duration::from_secs(5),
            },
            *self.clock.lock().unwrap(),
        )
        .unwrap();
        PartyRuntime::new(RuntimeParts {
            chain_id: CHAIN.into(),
            light_client: lc,
            party: self.party.clone(),
            server_key: self.server_key.clone(),
            material: BTreeMap::new(),
            clock,
            net: Arc::new(InProcessNetwork::new(4).party(1)),
            nonces: Arc::new(FirstNonce),
            shares,
            round_deadline: Duration::from_secs(5),
        })
    }

    /// What an honest host fetches: the record at height `h` with its proof, header `h + 1`.
    fn evidence(&self, id: RequestId, h: u64) -> RequestEvidence {
        let q = self
            .m
            .chain
            .query("store", keys::request(&id), h as i64, true);
        RequestEvidence {
            id,
            height: h,
            header: self.m.chain.light_block(h + 1).unwrap(),
            value: q.value.to_vec(),
            proof: q.proof_ops.unwrap().try_into().unwrap(),
        }
    }

    fn honest_job(&self) -> Job {
        Job {
            evidence: self.evidence(self.user_id, self.request_height),
            ciphertexts: self.cts.clone(),
            client_key: Some(self.client.public().as_bytes().to_vec()),
            blobs: vec![],
        }
    }
}

/// A host whose party account has sent nothing yet.
struct FirstNonce;

#[async_trait::async_trait]
impl kms_channel::NonceSource for FirstNonce {
    async fn next_nonce(&self) -> Result<u64, kms_channel::NonceError> {
        Ok(0)
    }
}

fn refused(r: Result<Outcome, RuntimeError>) -> RuntimeError {
    match r {
        Err(e) => e,
        Ok(o) => panic!("the enclave acted: {o:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_enclave_refuses_what_a_hostile_host_tampered_with_and_serves_the_honest_job() {
    let w = World::new();

    // Tampered ciphertext: another encryption of the same value, same type.
    let mut job = w.honest_job();
    job.ciphertexts = vec![w.other_ct.clone()];
    assert!(matches!(
        refused(w.runtime().serve_job(job).await),
        RuntimeError::CiphertextsNotApproved
    ));

    // The client key: another one, or none.
    let mut job = w.honest_job();
    job.client_key = Some(
        ClientKeyPair::generate(&mut rand_core::OsRng)
            .public()
            .as_bytes()
            .to_vec(),
    );
    assert!(matches!(
        refused(w.runtime().serve_job(job).await),
        RuntimeError::ClientKeyNotApproved
    ));
    let mut job = w.honest_job();
    job.client_key = None;
    assert!(matches!(
        refused(w.runtime().serve_job(job).await),
        RuntimeError::ClientKeyNotApproved
    ));

    // A forged record (the approved one with the other ciphertext's digest) under the real proof.
    let mut job = w.honest_job();
    let mut record: RequestRecord = codec::decode(&job.evidence.value).unwrap();
    if let KmsRequest::UserDecrypt(r) = &mut record.request {
        r.ciphertexts = vec![w.other_ct.to_ref()];
    }
    job.evidence.value = codec::encode(&record);
    job.ciphertexts = vec![w.other_ct.clone()];
    assert!(matches!(
        refused(w.runtime().serve_job(job).await),
        RuntimeError::NotProven(LcError::StateProofValueMismatch)
    ));

    // A request that was never approved: the node's answer is a proof of absence.
    let never = UserDecryptionRequest {
        key_id: w.party.key.current().share.key_id,
        ciphertexts: vec![w.other_ct.clone()],
        client_encryption_key: w.client.public().as_bytes().to_vec(),
    }
    .request_id();
    let mut job = w.honest_job();
    job.evidence = w.evidence(never, w.request_height);
    job.ciphertexts = vec![w.other_ct.clone()];
    assert!(matches!(
        refused(w.runtime().serve_job(job).await),
        RuntimeError::NotProven(_)
    ));

    // A header from a chain with the same ID but other validators (the host's own devnet).
    let forged = ManualChain::new(DevSetup::new(CHAIN, 4, 1, 4, Time::now()).genesis).unwrap();
    let mut forged = forged;
    for _ in 0..=w.request_height {
        forged.block(vec![]).unwrap();
    }
    let mut job = w.honest_job();
    job.evidence.header = forged.chain.light_block(w.request_height + 1).unwrap();
    assert!(matches!(
        refused(w.runtime().serve_job(job).await),
        RuntimeError::NotProven(_)
    ));

    // The honest job is served: a Fulfill signed by party 1 for the request.
    let rt = w.runtime();
    let Outcome::Broadcast(tx) = rt.serve_job(w.honest_job()).await.unwrap() else {
        panic!("honest job not served");
    };
    let tx = decode_tx(&tx, CHAIN).unwrap();
    assert_eq!(tx.sender, w.party.signer.address());
    assert!(matches!(
        tx.body.msg,
        Msg::Fulfill { request_id, fulfillment: Fulfillment::UserDecryption { .. } }
            if request_id == w.user_id
    ));

    // Stale evidence: once the light client trusts a later header, older evidence is refused
    // (the host must prove the request at a later height, which works).
    let later = w.evidence(w.user_id, w.request_height + 2);
    let mut job = w.honest_job();
    job.evidence = later;
    assert!(rt.serve_job(job).await.is_ok());
    assert!(matches!(
        refused(rt.serve_job(w.honest_job()).await),
        RuntimeError::NotProven(LcError::NotMonotonic(_))
    ));
}

/// Trusted time: the runtime reads the enclave clock checked against a fresh NSM document. With
/// the two consistent it serves; with the NSM's time ten minutes off (or the enclave clock
/// wrong) it refuses to act at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_refuses_to_act_when_its_clock_disagrees_with_the_nsm() {
    let w = World::new();
    let devnet_now = *w.clock.lock().unwrap();
    let unix = |t: Time| {
        Duration::from_nanos(t.duration_since(Time::unix_epoch()).unwrap().as_nanos() as u64)
    };
    let nsm_at = |offset: Duration| {
        let root = MockRootCa::generate(unix(devnet_now)).unwrap();
        let base = unix(devnet_now);
        Arc::new(
            MockNsm::new(root, "i-clock", [[1; 48], [2; 48], [3; 48]], move || {
                base + offset
            })
            .unwrap(),
        ) as Arc<dyn kms_nsm::Nsm>
    };
    let local = move || Ok(unix(devnet_now));
    let agreeing = AttestedClock::with_local(nsm_at(Duration::ZERO), Duration::from_secs(5), local);
    assert!(w
        .runtime_with(Arc::new(agreeing))
        .serve_job(w.honest_job())
        .await
        .is_ok());
    let off = AttestedClock::with_local(
        nsm_at(Duration::from_secs(600)),
        Duration::from_secs(5),
        local,
    );
    assert!(matches!(
        refused(
            w.runtime_with(Arc::new(off))
                .serve_job(w.honest_job())
                .await
        ),
        RuntimeError::Clock(ClockError::Inconsistent { .. })
    ));
}

/// Resharing: a host cannot make the enclave take up a share that is not the one the chain's
/// epoch names. A user decryption approved after resharing R completed (all parties reported
/// verdict V) carries epoch (1, R, V); the enclave, holding epoch 0, takes up its sealed pending
/// share only if it is R's with V, and then refuses requests of epoch 0 (that share is gone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_enclave_takes_up_only_the_pending_share_the_chain_epoch_names() {
    let mut w = World::new();
    let key_id = w.party.key.current().share.key_id;
    let (rid, _) = w.request_reshare("e1");
    let v = [0x5a; 32];
    let txs = w
        .setup
        .parties
        .iter_mut()
        .map(|p| {
            p.tx(
                CHAIN,
                Msg::Fulfill {
                    request_id: rid,
                    fulfillment: Fulfillment::ReshareDone { verdict_digest: v },
                },
            )
        })
        .collect();
    assert_eq!(w.m.block(txs).unwrap().1, vec![0; 4]);
    let req = UserDecryptionRequest {
        key_id,
        ciphertexts: vec![w.other_ct.clone()],
        client_encryption_key: w.client.public().as_bytes().to_vec(),
    };
    let new_id = req.request_id();
    let txs = vec![
        w.user.tx(
            CHAIN,
            Msg::AclGrant {
                app_id: "app".into(),
                handles: vec![w.other_ct.digest()],
                addresses: vec![w.user.address()],
            },
        ),
        w.user.tx(
            CHAIN,
            Msg::Request {
                app_id: "app".into(),
                request: KmsRequest::UserDecrypt(req.to_ref()),
            },
        ),
    ];
    let (h, codes) = w.m.block(txs).unwrap();
    assert_eq!(codes, vec![0, 0]);
    w.settle();
    let epoch1 = KeyEpoch {
        number: 1,
        by: Some(Reshared {
            request: rid,
            verdict_digest: v,
        }),
    };
    let job = || Job {
        evidence: w.evidence(new_id, h),
        ciphertexts: vec![w.other_ct.clone()],
        client_key: Some(w.client.public().as_bytes().to_vec()),
        blobs: vec![],
    };
    let record: RequestRecord = codec::decode(&job().evidence.value).unwrap();
    assert_eq!(record.key_epoch, epoch1);

    let wrong_epoch = |e: RuntimeError| {
        matches!(
            e,
            RuntimeError::Threshold(ThresholdError::WrongEpoch { .. })
        )
    };
    // A pending share of another resharing, or of R with another verdict: refused, nothing
    // taken up.
    for (other, digest) in [(RequestId::derive("other", b""), v), (rid, [0x5b; 32])] {
        let store = w
            .store_with(PendingReshare {
                reshare_id: other,
                from: KeyEpoch::default(),
                verdict_digest: digest,
                share: w.held_share(),
            })
            .await;
        let rt = w.runtime_with_store(store.clone());
        assert!(wrong_epoch(refused(rt.serve_job(job()).await)));
        assert_eq!(store.share(&key_id).await.unwrap().0, KeyEpoch::default());
        assert_eq!(w.party.key.current().epoch, KeyEpoch::default());
    }
    // R's pending share with V: taken up (sealed first, then in use) and the request served.
    // (A share with other values than the one held, so the swap itself is seen.)
    let mut fresh = w.held_share();
    fresh.key[0] = fresh.key[0].add(&kms_threshold::Share::one());
    let fresh_bytes = fresh.to_sealing_bytes();
    let store = w
        .store_with(PendingReshare {
            reshare_id: rid,
            from: KeyEpoch::default(),
            verdict_digest: v,
            share: fresh,
        })
        .await;
    let rt = w.runtime_with_store(store.clone());
    assert!(matches!(
        rt.serve_job(job()).await.unwrap(),
        Outcome::Broadcast(_)
    ));
    let (sealed_epoch, sealed) = store.share(&key_id).await.unwrap();
    assert_eq!(sealed_epoch, epoch1);
    assert_eq!(*sealed.to_sealing_bytes(), *fresh_bytes, "the sealed share");
    assert_eq!(w.party.key.current().epoch, epoch1);
    assert_eq!(
        *w.party.key.current().share.to_sealing_bytes(),
        *fresh_bytes,
        "the share in use"
    );
    // The request approved before the resharing completed needs the erased share: refused.
    let mut old = w.honest_job();
    old.evidence = w.evidence(w.user_id, h);
    assert!(wrong_epoch(refused(rt.serve_job(old).await)));
}

/// A resharing job served again (a restarted enclave, a rewinding host) after this party sealed
/// its new share: the same verdict is reported again, without a second run (which would deal
/// anew); a pending share of that resharing that does not fit the record is refused, never
/// overwritten; and with nothing pending, a party alone (the others silent) aborts the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resharing_served_again_reports_its_sealed_verdict_and_never_runs_twice() {
    let mut w = World::new();
    let (rid, h) = w.request_reshare("again");
    w.settle();
    let job = || Job {
        evidence: w.evidence(rid, h),
        ciphertexts: vec![],
        client_key: None,
        blobs: vec![],
    };
    let digest = [0x77; 32];

    // Sealed before a restart: reported again at once.
    let store = w
        .store_with(PendingReshare {
            reshare_id: rid,
            from: KeyEpoch::default(),
            verdict_digest: digest,
            share: w.held_share(),
        })
        .await;
    let rt = w.runtime_with_store(store);
    let Outcome::Broadcast(tx) = rt.serve_job(job()).await.unwrap() else {
        panic!("nothing reported");
    };
    let tx = decode_tx(&tx, CHAIN).unwrap();
    assert!(matches!(
        tx.body.msg,
        Msg::Fulfill { request_id, fulfillment: Fulfillment::ReshareDone { verdict_digest } }
            if request_id == rid && verdict_digest == digest
    ));

    // A pending share of this resharing from another epoch: refused, not overwritten.
    let store = w
        .store_with(PendingReshare {
            reshare_id: rid,
            from: KeyEpoch {
                number: 5,
                by: None,
            },
            verdict_digest: digest,
            share: w.held_share(),
        })
        .await;
    let rt = w.runtime_with_store(store.clone());
    assert!(matches!(
        refused(rt.serve_job(job()).await),
        RuntimeError::Threshold(ThresholdError::ReshareAborted(_))
    ));
    assert_eq!(store.pending(&rid).await.unwrap().unwrap().from.number, 5);

    // Nothing pending: a real run, which a party alone aborts in its first round.
    let store = Arc::new(MemoryShareStore::new(KeyEpoch::default(), &w.held_share()));
    let rt = w.runtime_with_store(store.clone());
    match refused(rt.serve_job(job()).await) {
        RuntimeError::Threshold(ThresholdError::ReshareAborted(why)) => {
            assert!(why.contains("silent in the run round"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    assert!(store.pending(&rid).await.unwrap().is_none());
}
