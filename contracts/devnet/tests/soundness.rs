//! Issue 9, KMS chain side: each test is an attack that succeeded on the chain before the fix.

use kms_chain_types::codec;
use kms_chain_types::state::{
    keys, Account, Config, Party, RequestRecord, RequestStatus, ResponseRecord,
};
use kms_chain_types::tx::{ConfigUpdate, Fulfillment, KmsRequest, MaterialItem, Msg};
use kms_devnet::dev::{DevSetup, ManualChain, Wallet};
use kms_eip712::types::{PublicDecryptionResult, UserDecryptionResponse};
use kms_eip712::DomainConfig;
use kms_light_client::state_proof::{decode_proof_ops, verify_non_membership};
use kms_light_client::{verify_request_approved, Error, LightClient, Options};
use kms_types::{
    sha3_256, CiphertextRef, CrsGenRequest, FheType, KeyGenRequest, ParamSetName,
    PublicDecryptionRef, RequestId, UserDecryptionRef,
};
use std::time::Duration;
use tendermint::Time;

const CHAIN: &str = "kms-soundness";

struct Net {
    m: ManualChain,
    setup: DevSetup,
    domain: DomainConfig,
}

impl Net {
    fn new() -> Self {
        Self::with_config(|_| {})
    }

    fn with_config(f: impl FnOnce(&mut Config)) -> Self {
        let mut setup = DevSetup::new(CHAIN, 4, 1, 4, genesis_time());
        f(&mut setup.genesis.app_config);
        let domain = setup.genesis.app_config.eip712_domain.clone();
        Self {
            m: ManualChain::new(setup.genesis.clone()).unwrap(),
            setup,
            domain,
        }
    }

    /// A block with exactly `txs` (execution codes; CheckTx is tested on its own).
    fn block(&mut self, txs: Vec<Vec<u8>>) -> Vec<u32> {
        self.m.include(txs).1
    }

    fn one(&mut self, tx: Vec<u8>) -> u32 {
        self.block(vec![tx])[0]
    }

    fn get(&self, key: Vec<u8>) -> Vec<u8> {
        self.m.chain.query("store", key, 0, false).value.to_vec()
    }

    fn record(&self, id: &RequestId) -> RequestRecord {
        codec::decode(&self.get(keys::request(id))).unwrap()
    }

    fn balance(&self, addr: &[u8; 20]) -> u128 {
        let v = self.get(keys::account(addr));
        if v.is_empty() {
            return 0;
        }
        codec::decode::<Account>(&v).unwrap().balance
    }

    /// The admin registers `app_id` with `acl_admin` managing its ACL.
    fn register_app(&mut self, app_id: &str, acl_admin: [u8; 20]) {
        let tx = self.setup.admin.tx(
            CHAIN,
            Msg::CreateApplication {
                app_id: app_id.into(),
                admin: acl_admin,
            },
        );
        assert_eq!(self.one(tx), 0);
    }

    /// A completed keygen requested under `app_id`.
    fn keygen(&mut self, app_id: &str, label: &str) -> RequestId {
        let req = KmsRequest::KeyGen(KeyGenRequest {
            params: ParamSetName::TestInsecure,
            label: label.into(),
        });
        let id = req.request_id();
        let faucet = self.setup.admin.tx(CHAIN, Msg::Faucet { amount: 10_000 });
        let request = self.setup.admin.tx(
            CHAIN,
            Msg::Request {
                app_id: app_id.into(),
                request: req,
            },
        );
        assert_eq!(self.block(vec![faucet, request]), vec![0, 0]);
        let domain = self.domain.clone();
        let txs = self.setup.parties[..2]
            .iter_mut()
            .map(|p| {
                let item = MaterialItem::signed(p.key(), &domain, &id, "PublicKey", [7; 32]);
                p.tx(
                    CHAIN,
                    Msg::Fulfill {
                        request_id: id,
                        fulfillment: Fulfillment::Material {
                            items: vec![item.unwrap()],
                        },
                    },
                )
            })
            .collect();
        assert_eq!(self.block(txs), vec![0, 0]);
        assert!(matches!(
            self.record(&id).status,
            RequestStatus::Completed { .. }
        ));
        id
    }
}

fn genesis_time() -> Time {
    Time::parse_from_rfc3339("2026-11-24T00:00:00Z").unwrap()
}

fn options() -> Options {
    Options {
        trust_threshold: Default::default(),
        trusting_period: Duration::from_secs(7 * 24 * 3600),
        clock_drift: Duration::from_secs(5),
    }
}

fn funded(net: &mut Net, amount: u128) -> Wallet {
    let mut w = Wallet::random();
    assert_eq!(net.one(w.tx(CHAIN, Msg::Faucet { amount })), 0);
    w
}

fn grant(w: &mut Wallet, app: &str, handles: &[[u8; 32]], to: &[[u8; 20]]) -> Vec<u8> {
    w.tx(
        CHAIN,
        Msg::AclGrant {
            app_id: app.into(),
            handles: handles.to_vec(),
            addresses: to.to_vec(),
        },
    )
}

fn decrypt(w: &mut Wallet, app: &str, key_id: RequestId, handle: [u8; 32]) -> (Vec<u8>, RequestId) {
    let r = KmsRequest::PublicDecrypt(PublicDecryptionRef {
        key_id,
        ciphertexts: vec![CiphertextRef {
            fhe_type: FheType::Uint8,
            digest: handle,
        }],
    });
    let id = r.request_id();
    (
        w.tx(
            CHAIN,
            Msg::Request {
                app_id: app.into(),
                request: r,
            },
        ),
        id,
    )
}

/// A user decryption to the sender's (stand-in) ML-KEM key.
fn user_decrypt(
    w: &mut Wallet,
    app: &str,
    key_id: RequestId,
    handle: [u8; 32],
) -> (Vec<u8>, RequestId) {
    let r = KmsRequest::UserDecrypt(UserDecryptionRef {
        key_id,
        ciphertexts: vec![CiphertextRef {
            fhe_type: FheType::Uint8,
            digest: handle,
        }],
        client_key_digest: sha3_256(&w.address()),
    });
    let id = r.request_id();
    (
        w.tx(
            CHAIN,
            Msg::Request {
                app_id: app.into(),
                request: r,
            },
        ),
        id,
    )
}

fn public_result(
    w: &Wallet,
    domain: &DomainConfig,
    id: &RequestId,
    r: &PublicDecryptionRef,
    value: u8,
) -> Fulfillment {
    let mut plaintexts = vec![0u8; 32 * r.ciphertexts.len()];
    for i in 0..r.ciphertexts.len() {
        plaintexts[32 * i + 31] = value;
    }
    let digests: Vec<[u8; 32]> = r.ciphertexts.iter().map(|c| c.digest).collect();
    let v = PublicDecryptionResult::new(
        id,
        &r.key_id,
        &digests,
        r.ciphertexts.iter().map(|c| c.fhe_type.wire()).collect(),
        plaintexts.clone(),
    );
    Fulfillment::PublicDecryption {
        plaintexts,
        signature: w.key().sign(domain, &v).unwrap().0.to_vec(),
    }
}

fn fulfill(w: &mut Wallet, id: RequestId, f: Fulfillment) -> Vec<u8> {
    w.tx(
        CHAIN,
        Msg::Fulfill {
            request_id: id,
            fulfillment: f,
        },
    )
}

// ---------------------------------------------------------------------------------------------
// Hole 2: applications, handle ownership, key binding.
// ---------------------------------------------------------------------------------------------

/// The attack of the issue: an attacker creates an application, grants itself a victim's
/// ciphertext digest and asks for its decryption. Every step is refused with its own code, and
/// the party's light-client gate cannot be shown the request as approved.
#[test]
fn hole2_attacker_cannot_create_an_app_grant_itself_a_victims_handle_or_decrypt_it() {
    let mut net = Net::new();
    let mut victim = funded(&mut net, 100_000);
    let mut attacker = funded(&mut net, 100_000);
    net.register_app("victim-app", victim.address());
    let key_id = net.keygen("victim-app", "k1");
    let handle = [0xa1u8; 32];
    let victim_addr = victim.address();
    assert_eq!(
        net.one(grant(&mut victim, "victim-app", &[handle], &[victim_addr])),
        0
    );

    // 1. Application creation is governance-only (code 14).
    let create = attacker.tx(
        CHAIN,
        Msg::CreateApplication {
            app_id: "evil".into(),
            admin: attacker.address(),
        },
    );
    assert_eq!(net.one(create), 14);
    assert!(net.get(keys::application("evil")).is_empty());

    // Worst case: governance registered an application the attacker administers.
    net.register_app("evil", attacker.address());
    // 2. The victim's handle belongs to the victim's application (code 15).
    let attacker_addr = attacker.address();
    assert_eq!(
        net.one(grant(&mut attacker, "evil", &[handle], &[attacker_addr])),
        15
    );
    assert!(net
        .get(keys::acl("evil", &handle, &attacker_addr))
        .is_empty());
    // 3. The key set is bound to the victim's application (code 16).
    let (tx, evil_id) = user_decrypt(&mut attacker, "evil", key_id, handle);
    assert_eq!(net.one(tx), 16);
    // Even once governance lets "evil" use the key, the handle is not evil's (code 15).
    let allow = net.setup.admin.tx(
        CHAIN,
        Msg::UpdateConfig(ConfigUpdate::AllowKeyForApp {
            key_id,
            app_id: "evil".into(),
        }),
    );
    assert_eq!(net.one(allow), 0);
    let (tx, _) = user_decrypt(&mut attacker, "evil", key_id, handle);
    assert_eq!(net.one(tx), 15);
    // 4. Through the victim's application, the ISC refuses (code 7).
    let (tx, via_victim_id) = user_decrypt(&mut attacker, "victim-app", key_id, handle);
    assert_eq!(net.one(tx), 7);
    // The victim itself still can.
    let (tx, ok_id) = user_decrypt(&mut victim, "victim-app", key_id, handle);
    assert_eq!(net.one(tx), 0);

    // The party's gate: the refused requests are provably absent, and the gate refuses them.
    let (h_last, _) = net.m.block(vec![]).unwrap();
    let (h_next, _) = net.m.block(vec![]).unwrap();
    let now = net.m.tick();
    let mut lc = LightClient::from_genesis(
        CHAIN,
        1,
        &net.m.chain.validators().clone(),
        net.m.chain.light_block(1).unwrap(),
        options(),
        now,
    )
    .unwrap()
    .0;
    let header = lc
        .update(net.m.chain.light_block(h_next).unwrap(), now)
        .unwrap();
    for id in [evil_id, via_victim_id] {
        let q = net
            .m
            .chain
            .query("store", keys::request(&id), h_last as i64, true);
        assert!(q.value.is_empty());
        let ops =
            tendermint::merkle::proof::ProofOps::try_from(q.proof_ops.clone().unwrap()).unwrap();
        let key = keys::request(&id);
        verify_non_membership(&header, &decode_proof_ops(&ops, &key).unwrap(), &key).unwrap();
        assert!(matches!(
            verify_request_approved(&header, &id, &q.value, &ops),
            Err(Error::StateProofMalformed(_))
        ));
    }
    // ...while the victim's own request passes the same gate.
    let q = net
        .m
        .chain
        .query("store", keys::request(&ok_id), h_last as i64, true);
    let ops = tendermint::merkle::proof::ProofOps::try_from(q.proof_ops.clone().unwrap()).unwrap();
    let approved = verify_request_approved(&header, &ok_id, &q.value, &ops).unwrap();
    assert_eq!(approved.record.requester, victim.address());
}

/// An application cannot grant (or revoke) a handle another application owns.
#[test]
fn hole2_granting_another_applications_handle_is_refused() {
    let mut net = Net::new();
    let mut a = funded(&mut net, 100_000);
    let mut b = funded(&mut net, 100_000);
    net.register_app("app-a", a.address());
    net.register_app("app-b", b.address());
    let h = [0x11u8; 32];
    let (a_addr, b_addr) = (a.address(), b.address());
    // First grant registers the handle to app-a.
    assert_eq!(net.one(grant(&mut a, "app-a", &[h], &[a_addr])), 0);
    assert_eq!(
        codec::decode::<String>(&net.get(keys::handle_owner(&h))).unwrap(),
        "app-a"
    );
    assert_eq!(net.one(grant(&mut b, "app-b", &[h], &[b_addr])), 15);
    // A batch with one foreign handle is refused as a whole.
    assert_eq!(
        net.one(grant(&mut b, "app-b", &[[0x22; 32], h], &[b_addr])),
        15
    );
    assert!(net.get(keys::handle_owner(&[0x22; 32])).is_empty());
    let revoke = b.tx(
        CHAIN,
        Msg::AclRevoke {
            app_id: "app-b".into(),
            handles: vec![h],
            addresses: vec![a_addr],
        },
    );
    assert_eq!(net.one(revoke), 15);
    // app-a keeps administering its own handle.
    assert_eq!(net.one(grant(&mut a, "app-a", &[h], &[b_addr])), 0);
}

/// A key set is usable only by the applications bound to it.
#[test]
fn hole2_requesting_with_a_key_the_application_may_not_use_is_refused() {
    let mut net = Net::new();
    let a = funded(&mut net, 100_000);
    let mut b = funded(&mut net, 100_000);
    net.register_app("app-a", a.address());
    net.register_app("app-b", b.address());
    let key_a = net.keygen("app-a", "ka");
    let hb = [0x33u8; 32];
    let b_addr = b.address();
    assert_eq!(net.one(grant(&mut b, "app-b", &[hb], &[b_addr])), 0);
    let (tx, _) = decrypt(&mut b, "app-b", key_a, hb);
    assert_eq!(net.one(tx), 16);
    // Only governance binds keys to applications.
    let by_b = b.tx(
        CHAIN,
        Msg::UpdateConfig(ConfigUpdate::AllowKeyForApp {
            key_id: key_a,
            app_id: "app-b".into(),
        }),
    );
    assert_eq!(net.one(by_b), 6);
    let allow = net.setup.admin.tx(
        CHAIN,
        Msg::UpdateConfig(ConfigUpdate::AllowKeyForApp {
            key_id: key_a,
            app_id: "app-b".into(),
        }),
    );
    assert_eq!(net.one(allow), 0);
    let (tx, _) = decrypt(&mut b, "app-b", key_a, hb);
    assert_eq!(net.one(tx), 0);
    let disallow = net.setup.admin.tx(
        CHAIN,
        Msg::UpdateConfig(ConfigUpdate::DisallowKeyForApp {
            key_id: key_a,
            app_id: "app-b".into(),
        }),
    );
    assert_eq!(net.one(disallow), 0);
    let user_req = KmsRequest::UserDecrypt(UserDecryptionRef {
        key_id: key_a,
        ciphertexts: vec![CiphertextRef {
            fhe_type: FheType::Bool,
            digest: hb,
        }],
        client_key_digest: [5; 32],
    });
    let tx = b.tx(
        CHAIN,
        Msg::Request {
            app_id: "app-b".into(),
            request: user_req,
        },
    );
    assert_eq!(net.one(tx), 16);
}

// ---------------------------------------------------------------------------------------------
// Hole 11: votes by signer key over the party set frozen at creation.
// ---------------------------------------------------------------------------------------------

/// The scenario: party 3 votes a wrong value, the admin removes party 1 so party 3 moves
/// to index 2, and party 3 votes again with the same wrong value. Before, the two votes sat at
/// indices 3 and 2 and completed the request (t + 1 = 2) with the wrong value.
#[test]
fn hole11_a_reindexed_party_cannot_vote_twice_and_removed_keys_do_not_count() {
    let mut net = Net::new();
    let mut client = funded(&mut net, 100_000);
    let client_addr = client.address();
    net.register_app("app", client_addr);
    let key_id = net.keygen("app", "k");
    let h = [0x44u8; 32];
    assert_eq!(net.one(grant(&mut client, "app", &[h], &[client_addr])), 0);
    let (tx, id) = decrypt(&mut client, "app", key_id, h);
    assert_eq!(net.one(tx), 0);
    let KmsRequest::PublicDecrypt(r) = net.record(&id).request else {
        unreachable!()
    };
    let domain = net.domain.clone();

    // Party 3 (lying) votes 99.
    let lie3 = public_result(&net.setup.parties[2], &domain, &id, &r, 99);
    let tx = fulfill(&mut net.setup.parties[2], id, lie3.clone());
    assert_eq!(net.one(tx), 0);
    assert_eq!(net.record(&id).status, RequestStatus::Pending);

    // The admin removes party 1 and adds party 5: party 3 is now index 2.
    let p5 = Wallet::random();
    let mut parties: Vec<Party> = net.setup.genesis.app_config.parties[1..].to_vec();
    parties.push(Party {
        index: 4,
        signer: p5.address(),
        endpoint: "http://127.0.0.1:50105".into(),
        attestation_policy: "{}".into(),
        identity_key_digest: Party::identity_digest_of_spki(b"party 5"),
    });
    for (i, p) in parties.iter_mut().enumerate() {
        p.index = i as u32 + 1;
    }
    assert_eq!(parties[1].signer, net.setup.parties[2].address());
    let change = net.setup.admin.tx(
        CHAIN,
        Msg::UpdateConfig(ConfigUpdate::SetParties {
            parties,
            threshold: 1,
        }),
    );
    assert_eq!(net.one(change), 0);

    // Party 3 votes again with the same wrong value: refused, it already voted (code 12).
    let again = fulfill(&mut net.setup.parties[2], id, lie3);
    assert_eq!(net.one(again), 12);
    // The new party 5 was not in the set the request was created under (code 12).
    let mut p5 = p5;
    let lie5 = public_result(&p5, &domain, &id, &r, 99);
    assert_eq!(net.one(fulfill(&mut p5, id, lie5)), 12);
    // The removed party 1 is no party any more (code 9).
    let lie1 = public_result(&net.setup.parties[0], &domain, &id, &r, 99);
    let tx = fulfill(&mut net.setup.parties[0], id, lie1);
    assert_eq!(net.one(tx), 9);
    let rec = net.record(&id);
    assert_eq!(rec.status, RequestStatus::Pending);
    assert_eq!(rec.responded, vec![net.setup.parties[2].address()]);
    assert_eq!(rec.threshold, 1);
    assert_eq!(rec.parties.len(), 4);

    // Honest parties 2 and 4 complete it with the right value; the fee goes to their keys.
    let before = [
        net.balance(&net.setup.parties[1].address()),
        net.balance(&net.setup.parties[3].address()),
    ];
    let f2 = public_result(&net.setup.parties[1], &domain, &id, &r, 42);
    let f4 = public_result(&net.setup.parties[3], &domain, &id, &r, 42);
    let txs = vec![
        fulfill(&mut net.setup.parties[1], id, f2),
        fulfill(&mut net.setup.parties[3], id, f4),
    ];
    assert_eq!(net.block(txs), vec![0, 0]);
    let mut expect = vec![0u8; 32];
    expect[31] = 42;
    assert!(matches!(
        net.record(&id).status,
        RequestStatus::Completed { result_digest, .. } if result_digest == sha3_256(&expect)
    ));
    let fee = net.record(&id).fee;
    assert_eq!(
        net.balance(&net.setup.parties[1].address()) + net.balance(&net.setup.parties[3].address()),
        before[0] + before[1] + fee
    );
    // Responses are stored by signer.
    let resp: ResponseRecord =
        codec::decode(&net.get(keys::response(&id, &net.setup.parties[3].address()))).unwrap();
    assert_eq!(resp.signer, net.setup.parties[3].address());
    assert_eq!(resp.party, 4);
}

// ---------------------------------------------------------------------------------------------
// Hole 12: failed transactions consume their nonce; nonce window; pending per account.
// ---------------------------------------------------------------------------------------------

/// A transfer that failed for insufficient funds cannot be rebroadcast by its payee once the
/// sender is funded.
#[test]
fn hole12_a_failed_transfer_cannot_be_resurrected() {
    let mut net = Net::new();
    let mut sender = funded(&mut net, 100);
    let payee = Wallet::random();
    let transfer = sender.tx(
        CHAIN,
        Msg::Transfer {
            to: payee.address(),
            amount: 500,
        },
    );
    assert_eq!(net.one(transfer.clone()), 5, "insufficient funds");
    // The sender is funded later (its next transaction uses the next nonce: the transfer's was
    // consumed).
    assert_eq!(net.one(sender.tx(CHAIN, Msg::Faucet { amount: 10_000 })), 0);
    // The payee rebroadcasts the failed transfer: CheckTx refuses it (code 4)...
    assert_eq!(net.m.chain.submit(transfer.clone()).code, 4);
    // ...and a proposer that includes it anyway gets it refused on execution.
    let now = net.m.tick();
    let h = net.m.chain.produce_block_with(now, vec![transfer]);
    assert_eq!(net.m.chain.tx_results(h).unwrap()[0].code, 4);
    assert_eq!(net.balance(&payee.address()), 0);
}

/// CheckTx executes a transaction as FinalizeBlock would: a sender that cannot pay is refused,
/// a faucet request too small to pay for its own state is refused, and a party's answer to a
/// request that does not exist is refused (it used to pass, exempt from fees, and take block
/// space for free).
#[test]
fn hole12_checktx_refuses_what_finalize_block_would_refuse() {
    let mut net = Net::new();
    let broke = Wallet::random();
    let t = broke.tx_with_nonce(
        CHAIN,
        0,
        Msg::Transfer {
            to: [1; 20],
            amount: 1,
        },
    );
    assert_eq!(net.m.chain.submit(t).code, 5);
    let tiny = broke.tx_with_nonce(CHAIN, 0, Msg::Faucet { amount: 10 });
    assert_eq!(net.m.chain.submit(tiny.clone()).code, 5);
    let now = net.m.tick();
    let h = net.m.chain.produce_block_with(now, vec![tiny]);
    assert_eq!(
        net.m.chain.tx_results(h).unwrap()[0].code,
        5,
        "and so does execution"
    );
    let enough = broke.tx_with_nonce(CHAIN, 1, Msg::Faucet { amount: 1_000 });
    assert_eq!(net.m.chain.submit(enough).code, 0);
    let unknown = net.setup.parties[0].tx_with_nonce(
        CHAIN,
        0,
        Msg::Fulfill {
            request_id: RequestId::derive("x", b""),
            fulfillment: Fulfillment::ReshareDone {
                verdict_digest: [0; 32],
            },
        },
    );
    assert_eq!(net.m.chain.submit(unknown).code, 11);
}

/// CheckTx sees the transactions it already accepted: a second transaction with the same nonce
/// is refused, a sender holding one fee cannot queue two paying transactions, and nonces must
/// follow the pending ones (a nonce ahead of them is refused; 16 pending per account at most).
#[test]
fn hole12_checktx_counts_pending_nonces_and_balances() {
    let mut net = Net::new();
    let mut w = funded(&mut net, 1_000);
    let pay = |w: &Wallet, nonce, amount| {
        w.tx_with_nonce(
            CHAIN,
            nonce,
            Msg::Transfer {
                to: [9; 20],
                amount,
            },
        )
    };
    // What a transfer costs, measured on a committed one.
    let before = net.balance(&w.address());
    assert_eq!(net.one(pay(&w, 1, 1)), 0);
    let fee = before - net.balance(&w.address()) - 1;
    w.set_nonce(2);
    // Nonce 2 is next; nonce 3 is ahead of anything pending.
    assert_eq!(net.m.chain.submit(pay(&w, 3, 1)).code, 4);
    let balance = net.balance(&w.address());
    // (A margin for record sizes: CBOR balances grow with their value; a fee is far more.)
    assert!(fee > 20);
    assert_eq!(net.m.chain.submit(pay(&w, 2, balance - fee - 10)).code, 0);
    assert_eq!(
        net.m.chain.submit(pay(&w, 2, 1)).code,
        4,
        "same nonce, other content"
    );
    // The pending transfer spent the balance: the next one cannot pay its fee.
    assert_eq!(net.m.chain.submit(pay(&w, 3, 1)).code, 5);
    // Nonces follow the pending ones, at most 16 pending per account.
    let mut w = funded(&mut net, 100_000);
    let max = net.m.chain.limits().max_per_account as u64;
    for n in 1..=max {
        assert_eq!(net.m.chain.submit(pay(&w, n, 1)).code, 0, "nonce {n}");
    }
    assert_eq!(net.m.chain.submit(pay(&w, max + 1, 1)).code, 18);
    w.set_nonce(max + 1);
    // Another account is not affected.
    let other = Wallet::random().tx_with_nonce(CHAIN, 0, Msg::Faucet { amount: 1_000 });
    assert_eq!(net.m.chain.submit(other).code, 0);
}

/// After each block the mempool is rechecked over the new state: a pending transaction that a
/// block made invalid (its nonce taken by a transaction included directly) is dropped, and one
/// still valid stays and is included next.
#[test]
fn hole12_recheck_drops_what_a_block_invalidated() {
    let mut net = Net::new();
    let a = funded(&mut net, 1_000);
    let b = funded(&mut net, 1_000);
    let stale = a.tx_with_nonce(CHAIN, 1, Msg::Faucet { amount: 100 });
    let fresh = b.tx_with_nonce(CHAIN, 1, Msg::Faucet { amount: 100 });
    assert_eq!(net.m.chain.submit(stale).code, 0);
    assert_eq!(net.m.chain.submit(fresh).code, 0);
    let competing = a.tx_with_nonce(
        CHAIN,
        1,
        Msg::Transfer {
            to: [9; 20],
            amount: 1,
        },
    );
    let now = net.m.tick();
    let h = net.m.chain.produce_block_with(now, vec![competing]);
    assert_eq!(net.m.chain.tx_results(h).unwrap()[0].code, 0);
    assert_eq!(
        net.m.chain.mempool_len(),
        1,
        "a's stale faucet request dropped"
    );
    let before = net.balance(&b.address());
    let now = net.m.tick();
    net.m.chain.produce_block(now);
    assert!(net.balance(&b.address()) > before, "b's request included");
}

/// A party's late answer to a complete public decryption is refused by CheckTx: the honest party
/// does not pay for it and it takes no block space.
#[test]
fn hole12_checktx_refuses_a_late_answer_to_a_complete_request() {
    let mut net = Net::new();
    net.register_app("app", net.setup.admin.address());
    let key = net.keygen("app", "late");
    let late = net.setup.parties[2].tx(
        CHAIN,
        Msg::Fulfill {
            request_id: key,
            fulfillment: Fulfillment::Material { items: vec![] },
        },
    );
    assert_eq!(net.m.chain.submit(late).code, 12);
}

// ---------------------------------------------------------------------------------------------
// Hole 13: state costs fees; per-application bound.
// ---------------------------------------------------------------------------------------------

/// An unfunded account cannot grow state: ACL grants pay per byte written.
#[test]
fn hole13_an_unfunded_application_admin_cannot_write_acl_entries_for_free() {
    let mut net = Net::new();
    let mut poor = Wallet::random();
    net.register_app("app", poor.address());
    let addrs: Vec<[u8; 20]> = (0..16u8).map(|i| [i; 20]).collect();
    let handles: Vec<[u8; 32]> = (0..16u8).map(|i| [i; 32]).collect();
    // With nothing, it cannot even have its transaction included (CheckTx, code 5).
    let tx = poor.tx_with_nonce(
        CHAIN,
        0,
        Msg::AclGrant {
            app_id: "app".into(),
            handles: handles.clone(),
            addresses: addrs.clone(),
        },
    );
    assert_eq!(net.m.chain.submit(tx).code, 5);
    // With a little, the grant fails on execution: 256 entries cost more.
    assert_eq!(net.one(poor.tx(CHAIN, Msg::Faucet { amount: 1_000 })), 0);
    let tx = grant(&mut poor, "app", &handles, &addrs);
    assert_eq!(net.one(tx), 5, "256 entries cost more than 1 000 tokens");
    assert!(net.get(keys::acl("app", &handles[0], &addrs[0])).is_empty());
    // Funded, it pays per byte.
    let tx = poor.tx(CHAIN, Msg::Faucet { amount: 1_000_000 });
    assert_eq!(net.one(tx), 0);
    let before = net.balance(&poor.address());
    assert_eq!(net.one(grant(&mut poor, "app", &handles, &addrs)), 0);
    let paid = before - net.balance(&poor.address());
    let per_entry = (keys::acl("app", &handles[0], &addrs[0]).len() + 1) as u128;
    assert!(
        paid >= 256 * per_entry,
        "paid {paid} for 256 entries of {per_entry} bytes"
    );
}

#[test]
fn hole13_acl_entries_per_application_are_bounded() {
    let mut net = Net::with_config(|c| c.max_acl_entries_per_app = 3);
    let mut a = funded(&mut net, 1_000_000);
    net.register_app("app", a.address());
    let (x, y) = ([1u8; 20], [2u8; 20]);
    assert_eq!(
        net.one(grant(&mut a, "app", &[[1; 32], [2; 32]], &[x, y])),
        20
    );
    assert_eq!(net.one(grant(&mut a, "app", &[[1; 32]], &[x, y])), 0);
    // Granting an existing entry again costs no slot.
    assert_eq!(net.one(grant(&mut a, "app", &[[1; 32]], &[x])), 0);
    assert_eq!(net.one(grant(&mut a, "app", &[[2; 32]], &[x])), 0);
    assert_eq!(net.one(grant(&mut a, "app", &[[3; 32]], &[x])), 20);
    let revoke = a.tx(
        CHAIN,
        Msg::AclRevoke {
            app_id: "app".into(),
            handles: vec![[1; 32]],
            addresses: vec![y],
        },
    );
    assert_eq!(net.one(revoke), 0);
    assert_eq!(net.one(grant(&mut a, "app", &[[3; 32]], &[x])), 0);
}

/// Handle ownership records count against the application's bound too (chain review: granting
/// then revoking freed the ACL slot but kept the ownership record, so one application could own
/// any number of handles).
#[test]
fn hole13_owned_handles_per_application_are_bounded() {
    let mut net = Net::with_config(|c| c.max_acl_entries_per_app = 3);
    let mut a = funded(&mut net, 1_000_000);
    net.register_app("app", a.address());
    let x = [1u8; 20];
    for i in 1..=4u8 {
        let code = net.one(grant(&mut a, "app", &[[i; 32]], &[x]));
        if i == 4 {
            assert_eq!(code, 20, "a fourth handle");
            break;
        }
        assert_eq!(code, 0);
        let revoke = a.tx(
            CHAIN,
            Msg::AclRevoke {
                app_id: "app".into(),
                handles: vec![[i; 32]],
                addresses: vec![x],
            },
        );
        assert_eq!(net.one(revoke), 0);
    }
    // Its own handles stay grantable.
    assert_eq!(net.one(grant(&mut a, "app", &[[1; 32]], &[x])), 0);
}

// ---------------------------------------------------------------------------------------------
// Hole 14: mempool and index.
// ---------------------------------------------------------------------------------------------

#[test]
fn hole14_mempool_deduplicates_and_is_capped_in_count_and_bytes() {
    let mut net = Net::new();
    let mut w = Wallet::random();
    let tx = w.tx(CHAIN, Msg::Faucet { amount: 1_000 });
    assert_eq!(net.m.chain.submit(tx.clone()).code, 0);
    assert_eq!(net.m.chain.submit(tx).code, 19);
    assert_eq!(net.m.chain.mempool_len(), 1);
    let mut limits = net.m.chain.limits();
    limits.max_txs = 2;
    net.m.chain.set_limits(limits);
    let tx2 = Wallet::random().tx(CHAIN, Msg::Faucet { amount: 1_000 });
    assert_eq!(net.m.chain.submit(tx2.clone()).code, 0);
    let tx3 = Wallet::random().tx(CHAIN, Msg::Faucet { amount: 1_000 });
    assert_eq!(net.m.chain.submit(tx3.clone()).code, 18);
    limits.max_txs = 100;
    limits.max_bytes = net.m.chain.mempool_bytes() + tx3.len() - 1;
    net.m.chain.set_limits(limits);
    assert_eq!(net.m.chain.submit(tx3).code, 18);
    assert_eq!(net.m.chain.mempool_len(), 2);
}

#[test]
fn hole14_blocks_are_size_limited_and_the_rest_waits() {
    let mut net = Net::new();
    let txs: Vec<Vec<u8>> = (0..5)
        .map(|_| Wallet::random().tx(CHAIN, Msg::Faucet { amount: 1_000 }))
        .collect();
    let mut limits = net.m.chain.limits();
    limits.block_max_tx_bytes = txs[0].len() + txs[1].len();
    net.m.chain.set_limits(limits);
    for tx in &txs {
        assert_eq!(net.m.chain.submit(tx.clone()).code, 0);
    }
    let h = {
        let now = net.m.tick();
        net.m.chain.produce_block(now)
    };
    assert_eq!(net.m.chain.block(h).unwrap().block.data(), &txs[..2]);
    assert_eq!(net.m.chain.mempool_len(), 3);
    // The rest follows, in order, in blocks within the limit.
    let mut included = Vec::new();
    while net.m.chain.mempool_len() > 0 {
        let h = {
            let now = net.m.tick();
            net.m.chain.produce_block(now)
        };
        let data = net.m.chain.block(h).unwrap().block.data().clone();
        assert!(!data.is_empty());
        assert!(data.iter().map(Vec::len).sum::<usize>() <= limits.block_max_tx_bytes);
        included.extend(data);
    }
    assert_eq!(included, &txs[2..]);
}

/// A transaction included twice is indexed at its successful copy, whichever came first.
#[test]
fn hole14_a_transaction_included_twice_is_indexed_at_its_successful_copy() {
    use sha2::Digest;
    let mut net = Net::new();
    let mut w = Wallet::random();
    // Successful copy first, then a replay (fails: stale nonce).
    let tx = w.tx(CHAIN, Msg::Faucet { amount: 1_000 });
    let hash: [u8; 32] = sha2::Sha256::digest(&tx).into();
    let h1 = {
        let now = net.m.tick();
        net.m.chain.produce_block_with(now, vec![tx.clone()])
    };
    let h2 = {
        let now = net.m.tick();
        net.m.chain.produce_block_with(now, vec![tx.clone()])
    };
    assert_eq!(net.m.chain.tx_results(h2).unwrap()[0].code, 4);
    assert_eq!(net.m.chain.find_tx(&hash).unwrap().height, h1);
    // A copy that failed first (nonce ahead), then the successful one.
    let later = w.tx_with_nonce(CHAIN, 2, Msg::Faucet { amount: 1 });
    let hash: [u8; 32] = sha2::Sha256::digest(&later).into();
    let h3 = {
        let now = net.m.tick();
        net.m.chain.produce_block_with(now, vec![later.clone()])
    };
    assert_eq!(net.m.chain.tx_results(h3).unwrap()[0].code, 4);
    let next = w.tx(CHAIN, Msg::Faucet { amount: 1 });
    let h4 = {
        let now = net.m.tick();
        net.m.chain.produce_block_with(now, vec![next, later])
    };
    assert_eq!(net.m.chain.tx_results(h4).unwrap()[1].code, 0);
    assert_eq!(
        net.m.chain.find_tx(&hash).unwrap(),
        kms_devnet::chain::TxLocation {
            height: h4,
            index: 1
        }
    );
}

// ---------------------------------------------------------------------------------------------
// Hole 15: the envelope bound implied by the request.
// ---------------------------------------------------------------------------------------------

/// Every party can always answer a user decryption the ASC accepted in one transaction (review of
/// hole 15: envelopes within the new bound could exceed the transaction limit, so such requests
/// hung forever with their fee escrowed): the request is refused when a party's answer could
/// not fit, and the largest accepted one's answer, at its maximum size, is accepted on chain.
#[test]
fn hole15_a_party_can_always_answer_in_one_transaction() {
    use kms_chain_types::tx::{FULFILLMENT_OVERHEAD_BYTES, MAX_TX_BYTES};
    let mut net = Net::new();
    let mut client = funded(&mut net, 1_000_000);
    let client_addr = client.address();
    net.register_app("app", client_addr);
    let key_id = net.keygen("app", "k");
    let cts = |k: usize| -> Vec<CiphertextRef> {
        (0..k)
            .map(|i| CiphertextRef {
                fhe_type: FheType::Uint256,
                digest: [i as u8 + 1; 32],
            })
            .collect()
    };
    let fits = |k: usize| {
        kms_chain_app::asc::max_envelope(&cts(k)) + FULFILLMENT_OVERHEAD_BYTES <= MAX_TX_BYTES
    };
    let largest = (1..=64).take_while(|&k| fits(k)).last().unwrap();
    assert!(
        largest < 64,
        "64 × FheUint256 answers fit: the test would prove nothing"
    );
    let handles: Vec<[u8; 32]> = cts(largest + 1).iter().map(|c| c.digest).collect();
    assert_eq!(
        net.one(grant(&mut client, "app", &handles, &[client_addr])),
        0
    );
    let ckp = kms_signcryption::ClientKeyPair::generate(&mut rand::thread_rng());
    let request = |k: usize| {
        KmsRequest::UserDecrypt(UserDecryptionRef {
            key_id,
            ciphertexts: cts(k),
            client_key_digest: ckp.public().digest(),
        })
    };
    let submit = |client: &mut Wallet, r: KmsRequest| {
        client.tx(
            CHAIN,
            Msg::Request {
                app_id: "app".into(),
                request: r,
            },
        )
    };
    let tx = submit(&mut client, request(largest + 1));
    assert_eq!(
        net.one(tx),
        13,
        "an answer that cannot fit is refused up front"
    );
    let r = request(largest);
    let id = r.request_id();
    let tx = submit(&mut client, r);
    assert_eq!(net.one(tx), 0);
    let envelope = vec![7u8; kms_chain_app::asc::max_envelope(&cts(largest))];
    let v = UserDecryptionResponse::new(&id, ckp.public().digest(), sha3_256(&envelope));
    let f = Fulfillment::UserDecryption {
        signature: net.setup.parties[0]
            .key()
            .sign(&net.domain, &v)
            .unwrap()
            .0
            .to_vec(),
        envelope,
    };
    let tx = fulfill(&mut net.setup.parties[0], id, f);
    assert!(tx.len() <= MAX_TX_BYTES, "{} bytes", tx.len());
    assert_eq!(net.one(tx), 0, "the largest answer is accepted");
}

#[test]
fn hole15_envelopes_are_bounded_by_the_request_and_a_real_envelope_fits() {
    use kms_eip712::types::UserDecryptionShare;
    let mut net = Net::new();
    let mut client = funded(&mut net, 100_000);
    let client_addr = client.address();
    net.register_app("app", client_addr);
    let key_id = net.keygen("app", "k");
    let cts = vec![
        CiphertextRef {
            fhe_type: FheType::Bool,
            digest: [0x51; 32],
        },
        CiphertextRef {
            fhe_type: FheType::Uint64,
            digest: [0x52; 32],
        },
    ];
    let handles: Vec<[u8; 32]> = cts.iter().map(|c| c.digest).collect();
    assert_eq!(
        net.one(grant(&mut client, "app", &handles, &[client_addr])),
        0
    );
    let mut rng = rand::thread_rng();
    let ckp = kms_signcryption::ClientKeyPair::generate(&mut rng);
    let ud = UserDecryptionRef {
        key_id,
        ciphertexts: cts.clone(),
        client_key_digest: ckp.public().digest(),
    };
    let id = KmsRequest::UserDecrypt(ud.clone()).request_id();
    let tx = client.tx(
        CHAIN,
        Msg::Request {
            app_id: "app".into(),
            request: KmsRequest::UserDecrypt(ud.clone()),
        },
    );
    assert_eq!(net.one(tx), 0);
    let max = kms_chain_app::asc::max_envelope(&cts);
    assert!(max < 64 * 1024 / 4, "a tight bound: {max}");
    let domain = net.domain.clone();
    let signed = |w: &Wallet, envelope: Vec<u8>| {
        let v = UserDecryptionResponse::new(&id, ud.client_key_digest, sha3_256(&envelope));
        Fulfillment::UserDecryption {
            envelope,
            signature: w.key().sign(&domain, &v).unwrap().0.to_vec(),
        }
    };
    // Too large (what the old 64 KiB bound let through), one byte over, too small: code 1.
    for len in [64 * 1024, max + 1, kms_chain_app::asc::MIN_ENVELOPE - 1, 1] {
        let f = signed(&net.setup.parties[0], vec![1; len]);
        let tx = fulfill(&mut net.setup.parties[0], id, f);
        assert_eq!(net.one(tx), 1, "{len} bytes");
    }
    // A real envelope with the largest share layout any parameters give fits.
    let blocks: usize = cts
        .iter()
        .map(|c| kms_chain_app::asc::max_squashed_blocks(c.fhe_type))
        .sum();
    let payload = UserDecryptionShare {
        requestId: (*id.as_bytes()).into(),
        keyId: (*key_id.as_bytes()).into(),
        clientKeyDigest: ud.client_key_digest.into(),
        kmsSigner: net.setup.parties[0].address().into(),
        party: 1,
        ciphertextDigests: handles.iter().map(|d| (*d).into()).collect(),
        fheTypes: cts.iter().map(|c| c.fhe_type.wire()).collect(),
        shares: vec![7u8; 64 * blocks].into(),
    };
    let sc = kms_signcryption::signcrypt(
        net.setup.parties[0].key(),
        &domain,
        payload,
        ckp.public(),
        &mut rng,
    )
    .unwrap();
    let envelope = sc.envelope.as_bytes().to_vec();
    assert!(envelope.len() <= max, "{} > {max}", envelope.len());
    assert!(
        envelope.len() + 64 > max,
        "bound within a word or two of the real size"
    );
    let f = Fulfillment::UserDecryption {
        envelope,
        signature: sc.response_signature.0.to_vec(),
    };
    let tx = fulfill(&mut net.setup.parties[0], id, f);
    assert_eq!(net.one(tx), 0);
}

// ---------------------------------------------------------------------------------------------
// Hole 6: user decryption completes on 2t + 1 responses; later ones are still recorded.
// ---------------------------------------------------------------------------------------------

#[test]
fn hole6_user_decryption_completes_on_2t_plus_1_shares_with_one_party_silent() {
    let mut net = Net::new();
    let mut client = funded(&mut net, 100_000);
    let client_addr = client.address();
    net.register_app("app", client_addr);
    let key_id = net.keygen("app", "k");
    let h = [0x61u8; 32];
    assert_eq!(net.one(grant(&mut client, "app", &[h], &[client_addr])), 0);
    let ud = UserDecryptionRef {
        key_id,
        ciphertexts: vec![CiphertextRef {
            fhe_type: FheType::Uint8,
            digest: h,
        }],
        client_key_digest: [9; 32],
    };
    let id = KmsRequest::UserDecrypt(ud.clone()).request_id();
    let tx = client.tx(
        CHAIN,
        Msg::Request {
            app_id: "app".into(),
            request: KmsRequest::UserDecrypt(ud.clone()),
        },
    );
    assert_eq!(net.one(tx), 0);
    let domain = net.domain.clone();
    let mut done_at = None;
    for i in [0usize, 2, 3, 1] {
        let envelope = vec![i as u8; kms_chain_app::asc::MIN_ENVELOPE + 10];
        let v = UserDecryptionResponse::new(&id, ud.client_key_digest, sha3_256(&envelope));
        let f = Fulfillment::UserDecryption {
            envelope,
            signature: net.setup.parties[i]
                .key()
                .sign(&domain, &v)
                .unwrap()
                .0
                .to_vec(),
        };
        let tx = fulfill(&mut net.setup.parties[i], id, f);
        assert_eq!(net.one(tx), 0);
        let rec = net.record(&id);
        if let (None, RequestStatus::Completed { result_digest, .. }) = (done_at, &rec.status) {
            done_at = Some((rec.responded.len(), *result_digest));
        }
        if let Some((_, d)) = done_at {
            // Later responses do not change the completion.
            assert!(
                matches!(rec.status, RequestStatus::Completed { result_digest, .. } if result_digest == d)
            );
        }
    }
    assert_eq!(
        done_at.map(|(n, _)| n),
        Some(3),
        "2t + 1 = 3 with party 2 silent"
    );
    assert_eq!(
        net.record(&id).responded.len(),
        4,
        "the late share is recorded"
    );
}

// ---------------------------------------------------------------------------------------------
// Hole 8: insecure parameters only on a developer chain.
// ---------------------------------------------------------------------------------------------

#[test]
fn hole8_insecure_parameters_are_refused_on_a_production_chain() {
    let mut net = Net::with_config(|c| c.developer_chain = false);
    net.register_app("app", [1; 20]);
    let tx = net.setup.admin.tx(CHAIN, Msg::Faucet { amount: 10_000 });
    assert_eq!(net.one(tx), 0);
    let insecure = |label: &str| {
        KmsRequest::KeyGen(KeyGenRequest {
            params: ParamSetName::TestInsecure,
            label: label.into(),
        })
    };
    let crs = KmsRequest::CrsGen(CrsGenRequest {
        params: ParamSetName::TestInsecure,
        max_num_bits: 64,
        label: "c".into(),
    });
    for request in [insecure("k"), crs] {
        let tx = net.setup.admin.tx(
            CHAIN,
            Msg::Request {
                app_id: "app".into(),
                request,
            },
        );
        assert_eq!(net.one(tx), 21);
    }
    let secure = KmsRequest::KeyGen(KeyGenRequest {
        params: ParamSetName::Default,
        label: "k".into(),
    });
    let tx = net.setup.admin.tx(
        CHAIN,
        Msg::Request {
            app_id: "app".into(),
            request: secure,
        },
    );
    assert_eq!(net.one(tx), 0);
    // The devnet genesis is a developer chain.
    assert!(
        DevSetup::new(CHAIN, 4, 1, 1, genesis_time())
            .genesis
            .app_config
            .developer_chain
    );
}

// ---------------------------------------------------------------------------------------------
// Hole 10: resharing completes only when all n parties report the same verdict digest (old
// shares are erased on completion; n − t would let a corrupt party hold the key hostage).
// ---------------------------------------------------------------------------------------------

#[test]
fn hole10_reshare_completes_only_when_every_party_reports_the_same_verdict() {
    let mut net = Net::new();
    net.register_app("app", [1; 20]);
    let key_id = net.keygen("app", "k");
    let reshare = |epoch: &str| KmsRequest::Reshare {
        key_id,
        epoch: epoch.into(),
    };
    let done = |v: [u8; 32]| Fulfillment::ReshareDone { verdict_digest: v };
    let (a, b) = ([0xaa; 32], [0xbb; 32]);
    // Diverging verdicts (2 vs 2): never complete, although all n parties answered.
    let r1 = reshare("e1");
    let id1 = r1.request_id();
    let tx = net.setup.admin.tx(
        CHAIN,
        Msg::Request {
            app_id: "app".into(),
            request: r1,
        },
    );
    assert_eq!(net.one(tx), 0);
    let mut txs = Vec::new();
    for (i, v) in [a, a, b, b].into_iter().enumerate() {
        txs.push(fulfill(&mut net.setup.parties[i], id1, done(v)));
    }
    assert_eq!(net.block(txs), vec![0; 4]);
    assert_eq!(net.record(&id1).status, RequestStatus::Pending);
    // 3 = n − t matching verdicts are not enough (they were as first built); the fourth
    // completes it, with the agreed verdict as result. (On another key: the diverged resharing
    // above still blocks its key's next one.)
    let key_id = net.keygen("app", "k2");
    let reshare = |epoch: &str| KmsRequest::Reshare {
        key_id,
        epoch: epoch.into(),
    };
    let r2 = reshare("e2");
    let id2 = r2.request_id();
    let tx = net.setup.admin.tx(
        CHAIN,
        Msg::Request {
            app_id: "app".into(),
            request: r2,
        },
    );
    assert_eq!(net.one(tx), 0);
    let mut txs = Vec::new();
    for (i, v) in [a, a, a].into_iter().enumerate() {
        txs.push(fulfill(&mut net.setup.parties[i], id2, done(v)));
    }
    assert_eq!(net.block(txs), vec![0; 3]);
    assert_eq!(net.record(&id2).status, RequestStatus::Pending);
    let last = fulfill(&mut net.setup.parties[3], id2, done(a));
    assert_eq!(net.one(last), 0);
    assert!(matches!(
        net.record(&id2).status,
        RequestStatus::Completed { result_digest, .. } if result_digest == a
    ));
}

/// The admin's transaction requesting resharing `label` of `key_id`, and its ID.
fn reshare_tx(net: &mut Net, key_id: RequestId, label: &str) -> (Vec<u8>, RequestId) {
    let r = KmsRequest::Reshare {
        key_id,
        epoch: label.into(),
    };
    let id = r.request_id();
    let tx = net.setup.admin.tx(
        CHAIN,
        Msg::Request {
            app_id: "app".into(),
            request: r,
        },
    );
    (tx, id)
}

/// Key epochs: decryption requests carry the epoch of the sharing they must be served with;
/// one resharing runs at a time; only a completed resharing starts an epoch, and one that was
/// superseded after its timeout can no longer complete (its parties' new shares would
/// otherwise be taken up by some parties and not others).
#[test]
fn key_epochs_stamp_requests_and_only_the_running_resharing_starts_one() {
    use kms_chain_types::state::{KeyEpochRecord, RESHARE_TIMEOUT_BLOCKS};
    use kms_types::{KeyEpoch, Reshared};
    let mut net = Net::new();
    let mut client = funded(&mut net, 100_000);
    let client_addr = client.address();
    net.register_app("app", client_addr);
    let key_id = net.keygen("app", "k");
    let h = [0x45u8; 32];
    assert_eq!(net.one(grant(&mut client, "app", &[h], &[client_addr])), 0);
    let (tx, d0) = decrypt(&mut client, "app", key_id, h);
    assert_eq!(net.one(tx), 0);
    assert_eq!(net.record(&d0).key_epoch, KeyEpoch::default());

    // A resharing runs; a second one is refused meanwhile.
    let (tx, r1) = reshare_tx(&mut net, key_id, "e1");
    assert_eq!(net.one(tx), 0);
    assert_eq!(net.record(&r1).key_epoch, KeyEpoch::default());
    let (tx, _) = reshare_tx(&mut net, key_id, "e1b");
    assert_ne!(net.one(tx), 0, "a second resharing while one runs");
    // Decryptions approved while it runs stay on the old epoch.
    let h2 = [0x46u8; 32];
    assert_eq!(net.one(grant(&mut client, "app", &[h2], &[client_addr])), 0);
    let (tx, d1) = decrypt(&mut client, "app", key_id, h2);
    assert_eq!(net.one(tx), 0);
    assert_eq!(net.record(&d1).key_epoch, KeyEpoch::default());

    let v = [0xab; 32];
    let txs = (0..4)
        .map(|i| {
            fulfill(
                &mut net.setup.parties[i],
                r1,
                Fulfillment::ReshareDone { verdict_digest: v },
            )
        })
        .collect();
    assert_eq!(net.block(txs), vec![0; 4]);
    let epoch1 = KeyEpoch {
        number: 1,
        by: Some(Reshared {
            request: r1,
            verdict_digest: v,
        }),
    };
    let rec: KeyEpochRecord = codec::decode(&net.get(keys::key_epoch(&key_id))).unwrap();
    assert_eq!(rec.epoch, epoch1);
    assert_eq!(rec.pending_reshare, None);
    let h3 = [0x47u8; 32];
    assert_eq!(net.one(grant(&mut client, "app", &[h3], &[client_addr])), 0);
    let (tx, d2) = decrypt(&mut client, "app", key_id, h3);
    assert_eq!(net.one(tx), 0);
    assert_eq!(net.record(&d2).key_epoch, epoch1);

    // A resharing nobody finishes blocks the next one until its timeout; then the new one
    // supersedes it, and the old one's answers are refused.
    let (tx, r2) = reshare_tx(&mut net, key_id, "e2");
    assert_eq!(net.one(tx), 0);
    let approved = net.record(&r2).height;
    // The next block is the last one of the timeout.
    while net.m.chain.height() < approved + RESHARE_TIMEOUT_BLOCKS - 2 {
        net.block(vec![]);
    }
    let (tx, _) = reshare_tx(&mut net, key_id, "e3");
    assert_ne!(net.one(tx), 0, "superseding before the timeout");
    let (tx, r3) = reshare_tx(&mut net, key_id, "e3");
    assert_eq!(net.one(tx), 0, "superseding after the timeout");
    assert_eq!(net.record(&r3).key_epoch, epoch1);
    let late = fulfill(
        &mut net.setup.parties[0],
        r2,
        Fulfillment::ReshareDone { verdict_digest: v },
    );
    assert_ne!(net.one(late), 0, "an answer to the superseded resharing");
    let txs = (0..4)
        .map(|i| {
            fulfill(
                &mut net.setup.parties[i],
                r3,
                Fulfillment::ReshareDone { verdict_digest: v },
            )
        })
        .collect();
    assert_eq!(net.block(txs), vec![0; 4]);
    let rec: KeyEpochRecord = codec::decode(&net.get(keys::key_epoch(&key_id))).unwrap();
    assert_eq!(rec.epoch.number, 2);
    assert_eq!(rec.epoch.by.map(|b| b.request), Some(r3));
    assert_eq!(net.record(&r2).status, RequestStatus::Pending);
}

/// A request that cannot complete (here: nobody answers) does not hold its fee for ever: from
/// `REQUEST_TIMEOUT_BLOCKS` after its approval anyone may expire it, the fee goes back to the
/// requester, and no answer is accepted any more. Not earlier, not twice, not a completed one;
/// an expired resharing no longer blocks its key's next one.
#[test]
fn a_request_that_did_not_complete_expires_and_its_fee_goes_back() {
    use kms_chain_types::state::{KeyEpochRecord, REQUEST_TIMEOUT_BLOCKS};
    let mut net = Net::new();
    let mut client = funded(&mut net, 100_000);
    let client_addr = client.address();
    net.register_app("app", client_addr);
    let key_id = net.keygen("app", "k");
    let h = [0x48u8; 32];
    assert_eq!(net.one(grant(&mut client, "app", &[h], &[client_addr])), 0);
    let (tx, id) = decrypt(&mut client, "app", key_id, h);
    assert_eq!(net.one(tx), 0);
    let (tx, reshare) = reshare_tx(&mut net, key_id, "stuck");
    assert_eq!(net.one(tx), 0);
    let fee = net.record(&id).fee;
    assert!(fee > 0);
    let approved = net.record(&id).height;
    let mut janitor = funded(&mut net, 100_000);
    let expire = |w: &mut Wallet, request_id| w.tx(CHAIN, Msg::Expire { request_id });

    // The next block is the last one before the timeout.
    while net.m.chain.height() < approved + REQUEST_TIMEOUT_BLOCKS - 2 {
        net.block(vec![]);
    }
    assert_ne!(net.one(expire(&mut janitor, id)), 0, "expired too early");
    assert_eq!(net.record(&id).status, RequestStatus::Pending);
    let before = net.balance(&client_addr);
    assert_eq!(net.one(expire(&mut janitor, id)), 0);
    assert!(matches!(
        net.record(&id).status,
        RequestStatus::Expired { .. }
    ));
    assert_eq!(net.balance(&client_addr), before + fee, "the fee went back");
    assert_ne!(net.one(expire(&mut janitor, id)), 0, "expired twice");
    // No answer is accepted any more.
    let KmsRequest::PublicDecrypt(r) = net.record(&id).request else {
        unreachable!()
    };
    let domain = net.domain.clone();
    let answer = public_result(&net.setup.parties[0], &domain, &id, &r, 7);
    let tx = fulfill(&mut net.setup.parties[0], id, answer);
    assert_ne!(net.one(tx), 0, "an answer to an expired request");
    // The stuck resharing expires too and stops blocking the key's next one.
    assert_eq!(net.one(expire(&mut janitor, reshare)), 0);
    let rec: KeyEpochRecord = codec::decode(&net.get(keys::key_epoch(&key_id))).unwrap();
    assert_eq!(rec.pending_reshare, None);
    let (tx, _) = reshare_tx(&mut net, key_id, "next");
    assert_eq!(net.one(tx), 0);
    // A completed request does not expire.
    assert_ne!(
        net.one(expire(&mut janitor, key_id)),
        0,
        "a completed keygen expired"
    );
}

// ---------------------------------------------------------------------------------------------
// Hole 5: party identity keys are distinct.
// ---------------------------------------------------------------------------------------------

#[test]
fn hole5_two_parties_with_one_identity_key_are_refused() {
    let mut net = Net::new();
    let mut parties = net.setup.genesis.app_config.parties.clone();
    parties[2].identity_key_digest = parties[0].identity_key_digest;
    let tx = net.setup.admin.tx(
        CHAIN,
        Msg::UpdateConfig(ConfigUpdate::SetParties {
            parties,
            threshold: 1,
        }),
    );
    assert_eq!(net.one(tx), 13);
}

/// `tx_search` pages the matches and proves only the page; a search by hash reports the copy
/// that counted (before, it listed the failed replay too, and `tx` reported the replay).
#[test]
fn hole14_tx_search_pages_and_reports_the_successful_copy() {
    use kms_devnet::{Node, PersistentChain};
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let mut setup = DevSetup::new(CHAIN, 4, 1, 1, Time::now());
    let genesis = setup.genesis.clone();
    let node = Node::new(PersistentChain::open_or_create(dir.path(), || genesis).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let call = |method: &str, params: serde_json::Value| {
        rt.block_on(kms_devnet::rpc::dispatch(&node, method, params))
            .unwrap()
    };
    let mut w = Wallet::random();
    let mut hashes = Vec::new();
    for _ in 0..5 {
        let tx = w.tx(CHAIN, Msg::Faucet { amount: 10_000 });
        hashes.push(hex::encode(sha2::Sha256::digest(&tx)));
        assert_eq!(node.with(|c| c.chain_mut().submit(tx)).code, 0);
        node.produce_block().unwrap();
    }
    // A replay of the first transaction lands in a block (a proposer may include it) and fails.
    let first = node.with(|c| c.chain().block(1).unwrap().block.data()[0].clone());
    let h_replay = node.with(|c| {
        let chain = c.chain_mut();
        chain.produce_block_with(Time::now(), vec![first])
    });
    assert_eq!(
        node.with(|c| c.chain().tx_results(h_replay).unwrap()[0].code),
        4
    );

    let query = format!("faucet.to='{}'", hex::encode(w.address()));
    let r = call(
        "tx_search",
        serde_json::json!({"query": query, "page": "2", "per_page": "2", "prove": true}),
    );
    assert_eq!(r["total_count"], "5");
    let txs = r["txs"].as_array().unwrap();
    assert_eq!(txs.len(), 2);
    assert_eq!(txs[0]["height"], "3");
    assert_eq!(txs[1]["height"], "4");
    assert!(txs.iter().all(|t| !t["proof"].is_null()));
    let r = call(
        "tx_search",
        serde_json::json!({"query": query, "page": "3", "per_page": "2", "order_by": "desc"}),
    );
    let txs = r["txs"].as_array().unwrap();
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0]["height"], "1");
    // By hash: one result, the successful copy at height 1, not the replay.
    let r = call(
        "tx_search",
        serde_json::json!({"query": format!("tx.hash='{}'", hashes[0])}),
    );
    assert_eq!(r["total_count"], "1");
    assert_eq!(r["txs"][0]["height"], "1");
    assert_eq!(r["txs"][0]["tx_result"]["code"], 0);
    let h0: [u8; 32] = hex::decode(&hashes[0]).unwrap().try_into().unwrap();
    assert_eq!(node.with(|c| c.chain().find_tx(&h0)).unwrap().height, 1);
    // A client retrying broadcast_tx_commit is told the outcome of the copy that counted.
    let r = call(
        "broadcast_tx_commit",
        serde_json::json!({"tx": base64_of(&node.with(|c| c.chain().block(1).unwrap().block.data()[0].clone()))}),
    );
    assert_eq!(r["height"], "1");
    assert_eq!(r["tx_result"]["code"], 0);
    // By height: only that block is scanned.
    let r = call(
        "tx_search",
        serde_json::json!({"query": format!("tx.height={h_replay}")}),
    );
    assert_eq!(r["total_count"], "1");
    assert_eq!(r["txs"][0]["tx_result"]["code"], 4);
    let _ = &mut setup;
}

fn base64_of(b: &[u8]) -> String {
    #[derive(serde::Serialize)]
    struct W<'a>(#[serde(with = "tendermint::serializers::bytes::base64string")] &'a [u8]);
    serde_json::to_value(W(b))
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}
