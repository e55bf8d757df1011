//! The ASC's sequencing of the CRS ceremony (issue 12): one proposal per turn and only by the
//! party whose turn it is, one vote per party on the current proposal, a turn accepted by
//! 2t + 1 valid votes, rejected by t + 1 invalid ones, skipped only after its deadline; material
//! reports refused until the ceremony ended with t + 1 accepted contributions; a ceremony with
//! fewer fails and refunds at once. Each refused transaction leaves the record as it was.
//! (The contents of contributions are checked by the parties: `enclave/runtime/tests`.)

use kms_chain_types::state::{CrsTurn, RequestRecord, RequestStatus, CRS_TURN_BLOCKS};
use kms_chain_types::tx::{Fulfillment, KmsRequest, MaterialItem, Msg};
use kms_devnet::dev::{DevSetup, ManualChain, Wallet};
use kms_eip712::DomainConfig;
use kms_types::{CrsGenRequest, ParamSetName, RequestId};
use tendermint::Time;

const CHAIN: &str = "kms-crs-chain";
const REJECTED: u32 = 12;
const INVALID: u32 = 13;

struct Net {
    m: ManualChain,
    setup: DevSetup,
    domain: DomainConfig,
}

impl Net {
    fn new() -> Self {
        let setup = DevSetup::new(
            CHAIN,
            4,
            1,
            4,
            Time::parse_from_rfc3339("2026-11-24T00:00:00Z").unwrap(),
        );
        let domain = setup.genesis.app_config.eip712_domain.clone();
        let mut net = Self {
            m: ManualChain::new(setup.genesis.clone()).unwrap(),
            setup,
            domain,
        };
        let faucet = net.setup.admin.tx(CHAIN, Msg::Faucet { amount: 1_000_000 });
        let app = net.setup.admin.tx(
            CHAIN,
            Msg::CreateApplication {
                app_id: "app".into(),
                admin: [1; 20],
            },
        );
        assert_eq!(net.m.include(vec![faucet, app]).1, vec![0, 0]);
        net
    }

    fn one(&mut self, tx: Vec<u8>) -> u32 {
        self.m.include(vec![tx]).1[0]
    }

    fn record(&self, id: &RequestId) -> RequestRecord {
        self.m.request_record(id).unwrap()
    }

    fn balance(&self, addr: &[u8; 20]) -> u128 {
        self.m.account(addr).balance
    }

    fn request(&mut self, label: &str) -> RequestId {
        let req = KmsRequest::CrsGen(CrsGenRequest {
            params: ParamSetName::TestInsecure,
            max_num_bits: 64,
            label: label.into(),
        });
        let id = req.request_id();
        let tx = self.setup.admin.tx(
            CHAIN,
            Msg::Request {
                app_id: "app".into(),
                request: req,
            },
        );
        assert_eq!(self.one(tx), 0);
        id
    }

    /// Party `p` (1-based) sends `f` for `id`.
    fn fulfill(&mut self, p: usize, id: RequestId, f: Fulfillment) -> u32 {
        let tx = self.setup.parties[p - 1].tx(
            CHAIN,
            Msg::Fulfill {
                request_id: id,
                fulfillment: f,
            },
        );
        self.one(tx)
    }

    fn propose(&mut self, p: usize, id: RequestId, turn: u32, digest: [u8; 32]) -> u32 {
        self.fulfill(p, id, Fulfillment::CrsContribution { turn, digest })
    }

    fn vote(&mut self, p: usize, id: RequestId, turn: u32, digest: [u8; 32], valid: bool) -> u32 {
        self.fulfill(
            p,
            id,
            Fulfillment::CrsVote {
                turn,
                digest,
                valid,
            },
        )
    }

    fn skip(&mut self, p: usize, id: RequestId, turn: u32) -> u32 {
        let tx = self.setup.parties[p - 1].tx(
            CHAIN,
            Msg::CrsSkipTurn {
                request_id: id,
                turn,
            },
        );
        self.one(tx)
    }

    fn material(&mut self, p: usize, id: RequestId, digest: [u8; 32]) -> u32 {
        let item = MaterialItem::signed(
            self.setup.parties[p - 1].key(),
            &self.domain,
            &id,
            "CRS",
            digest,
        )
        .unwrap();
        self.fulfill(p, id, Fulfillment::Material { items: vec![item] })
    }

    fn empty_blocks(&mut self, k: u64) {
        for _ in 0..k {
            self.m.include(vec![]);
        }
    }
}

fn turn(c: u32, accepted: Option<[u8; 32]>) -> CrsTurn {
    CrsTurn {
        contributor: c,
        accepted,
    }
}

#[test]
fn the_chain_decides_each_turn_and_takes_material_only_after_an_ended_ceremony() {
    let mut net = Net::new();
    let id = net.request("ceremony");
    let start = net.record(&id);
    let c = start
        .ceremony
        .clone()
        .expect("a CRS request carries a ceremony");
    assert_eq!(
        (c.turn, c.turn_started, c.decided.len()),
        (0, start.height, 0)
    );

    // Turn 0 is party 1's: nobody else may propose, nobody may vote before the proposal.
    let d1 = [1; 32];
    assert_eq!(net.propose(2, id, 0, d1), REJECTED);
    assert_eq!(net.vote(2, id, 0, d1, true), REJECTED);
    assert_eq!(net.record(&id), start, "refusals change nothing");
    assert_eq!(net.propose(1, id, 0, d1), 0);
    assert_eq!(
        net.propose(1, id, 0, [9; 32]),
        REJECTED,
        "one proposal per turn"
    );
    // Votes name the current turn and proposal, once per party.
    assert_eq!(net.vote(2, id, 0, [9; 32], true), REJECTED);
    assert_eq!(net.vote(2, id, 1, d1, true), REJECTED);
    assert_eq!(net.vote(2, id, 0, d1, true), 0);
    assert_eq!(net.vote(2, id, 0, d1, true), REJECTED);
    assert_eq!(
        net.vote(1, id, 0, d1, true),
        REJECTED,
        "the proposal is its vote"
    );
    // Two valid votes are not 2t + 1 = 3; an outsider's does not count.
    let mut outsider = Wallet::random();
    let tx = outsider.tx(
        CHAIN,
        Msg::Fulfill {
            request_id: id,
            fulfillment: Fulfillment::CrsVote {
                turn: 0,
                digest: d1,
                valid: true,
            },
        },
    );
    assert_ne!(net.one(tx), 0);
    assert_eq!(net.record(&id).ceremony.unwrap().turn, 0);
    // Material before the end is refused.
    assert_eq!(net.material(1, id, [5; 32]), REJECTED);
    assert_eq!(net.vote(3, id, 0, d1, true), 0);
    let c = net.record(&id).ceremony.unwrap();
    assert_eq!((c.turn, c.decided.clone()), (1, vec![turn(1, Some(d1))]));
    assert_eq!(c.proposal, None);

    // Turn 1: party 2's proposal is voted invalid by t + 1 = 2 parties: rejected, even though
    // one more valid vote came first.
    let d2 = [2; 32];
    assert_eq!(net.propose(2, id, 1, d2), 0);
    assert_eq!(net.vote(4, id, 1, d2, true), 0);
    assert_eq!(net.vote(1, id, 1, d2, false), 0);
    assert_eq!(
        net.record(&id).ceremony.unwrap().turn,
        1,
        "one invalid vote is not t + 1"
    );
    assert_eq!(net.vote(3, id, 1, d2, false), 0);
    let c = net.record(&id).ceremony.unwrap();
    assert_eq!(c.decided[1], turn(2, None));

    // Turn 2: party 3 is silent. Skipping is refused in the block before the deadline (turn
    // start + CRS_TURN_BLOCKS) and taken in the deadline's block.
    let deadline = c.turn_started + CRS_TURN_BLOCKS;
    assert_eq!(c.deadline(), deadline);
    net.empty_blocks(deadline - 3 - net.m.chain.height());
    assert_eq!(net.skip(1, id, 3), INVALID, "only the current turn");
    assert_eq!(net.skip(1, id, 2), INVALID);
    assert_eq!(net.m.chain.height(), deadline - 1);
    assert_eq!(net.record(&id).ceremony.unwrap().turn, 2);
    assert_eq!(net.skip(1, id, 2), 0);
    assert_eq!(net.m.chain.height(), deadline);
    assert_eq!(net.skip(2, id, 2), INVALID, "a turn is skipped once");
    let c = net.record(&id).ceremony.unwrap();
    assert_eq!(c.decided[2], turn(3, None));
    // A late proposal for the skipped turn is refused.
    assert_eq!(net.propose(3, id, 2, [3; 32]), REJECTED);

    // Turn 3: party 4 proposes just before the turn's deadline; its proposal gets a full voting
    // window (the turn cannot be skipped at the old deadline), and is accepted: the ceremony has
    // ended with two accepted contributions (t + 1).
    let d4 = [4; 32];
    let c = net.record(&id).ceremony.unwrap();
    let old_deadline = c.deadline();
    net.empty_blocks(old_deadline - 2 - net.m.chain.height());
    assert_eq!(net.propose(4, id, 3, d4), 0);
    let proposed_at = net.m.chain.height();
    assert_eq!(
        net.record(&id).ceremony.unwrap().deadline(),
        proposed_at + CRS_TURN_BLOCKS
    );
    net.empty_blocks(1);
    assert!(net.m.chain.height() + 1 >= old_deadline);
    assert_eq!(
        net.skip(2, id, 3),
        INVALID,
        "the voting window runs from the proposal"
    );
    assert_eq!(net.vote(1, id, 3, d4, true), 0);
    assert_eq!(net.vote(3, id, 3, d4, true), 0);
    let r = net.record(&id);
    let c = r.ceremony.unwrap();
    assert!(c.finished(4));
    assert_eq!(
        c.accepted().collect::<Vec<_>>(),
        vec![(1, d1), (4, d4)],
        "the transcript the parties resume from"
    );
    assert_eq!(r.status, RequestStatus::Pending);
    assert_eq!(
        net.propose(1, id, 4, [6; 32]),
        REJECTED,
        "no turn after the last"
    );
    // Material now completes on t + 1 matching reports.
    let crs = [0xc5; 32];
    assert_eq!(net.material(1, id, crs), 0);
    assert_eq!(net.material(2, id, crs), 0);
    assert!(matches!(
        net.record(&id).status,
        RequestStatus::Completed { .. }
    ));
}

#[test]
fn a_ceremony_without_t_plus_one_accepted_contributions_fails_and_refunds_at_once() {
    let mut net = Net::new();
    let admin = net.setup.admin.address();
    let before = net.balance(&admin);
    let id = net.request("too-few");
    let fee = net.record(&id).fee;
    assert!(fee > 0);
    // Turn 0 accepted; turns 1, 2, 3 rejected.
    assert_eq!(net.propose(1, id, 0, [1; 32]), 0);
    assert_eq!(net.vote(2, id, 0, [1; 32], true), 0);
    assert_eq!(net.vote(3, id, 0, [1; 32], true), 0);
    for (t, p) in [(1u32, 2usize), (2, 3), (3, 4)] {
        let d = [p as u8; 32];
        assert_eq!(net.propose(p, id, t, d), 0);
        let voters: Vec<usize> = (1..=4).filter(|&q| q != p).take(2).collect();
        for q in voters {
            assert_eq!(net.vote(q, id, t, d, false), 0);
        }
    }
    let r = net.record(&id);
    assert!(matches!(r.status, RequestStatus::Expired { .. }));
    assert_eq!(r.ceremony.unwrap().accepted().count(), 1);
    // The fee came back (the admin pays no transaction fees).
    assert_eq!(net.balance(&admin), before);
    assert_eq!(net.material(1, id, [5; 32]), REJECTED);
}

#[test]
fn only_votes_of_parties_still_registered_count() {
    use kms_chain_types::state::Party;
    use kms_chain_types::tx::ConfigUpdate;
    let mut net = Net::new();
    let id = net.request("deregistered");
    let d = [1; 32];
    assert_eq!(net.propose(1, id, 0, d), 0);
    assert_eq!(net.vote(2, id, 0, d, true), 0);
    // Governance replaces party 2's key: its vote stops counting.
    let mut parties: Vec<Party> = net.setup.genesis.app_config.parties.clone();
    parties[1].signer = Wallet::random().address();
    let change = net.setup.admin.tx(
        CHAIN,
        Msg::UpdateConfig(ConfigUpdate::SetParties {
            parties,
            threshold: 1,
        }),
    );
    assert_eq!(net.one(change), 0);
    // Party 1's proposal and party 3's vote are two counted valid votes, not 2t + 1 = 3.
    assert_eq!(net.vote(3, id, 0, d, true), 0);
    assert_eq!(net.record(&id).ceremony.unwrap().turn, 0);
    assert_eq!(net.vote(4, id, 0, d, true), 0);
    let c = net.record(&id).ceremony.unwrap();
    assert_eq!(c.decided, vec![turn(1, Some(d))]);
}

#[test]
fn a_running_ceremony_expires_from_its_current_turn_not_its_approval() {
    use kms_chain_types::state::REQUEST_TIMEOUT_BLOCKS;
    let mut net = Net::new();
    let id = net.request("slow");
    let approved = net.record(&id).height;
    // Turn 0 decided some blocks later.
    net.empty_blocks(20);
    assert_eq!(net.propose(1, id, 0, [1; 32]), 0);
    assert_eq!(net.vote(2, id, 0, [1; 32], true), 0);
    assert_eq!(net.vote(3, id, 0, [1; 32], true), 0);
    let started = net.record(&id).ceremony.unwrap().turn_started;
    assert!(started > approved + 20);
    let expire = |net: &mut Net| {
        let tx = net.setup.admin.tx(CHAIN, Msg::Expire { request_id: id });
        net.one(tx)
    };
    // At approval + timeout the ceremony is still running: not expired.
    net.empty_blocks(approved + REQUEST_TIMEOUT_BLOCKS - 1 - net.m.chain.height());
    assert_eq!(expire(&mut net), INVALID);
    assert_eq!(net.record(&id).status, RequestStatus::Pending);
    // From its current turn's start + timeout it may be expired (the fee goes back).
    net.empty_blocks(started + REQUEST_TIMEOUT_BLOCKS - 1 - net.m.chain.height());
    assert_eq!(expire(&mut net), 0);
    assert!(matches!(
        net.record(&id).status,
        RequestStatus::Expired { .. }
    ));
}
