//! The devnet over its RPC, read by tendermint-rpc's own HTTP client (what the hosts use against
//! a real CometBFT node): requests broadcast, a light client started from the genesis fetched
//! over RPC, proofs fetched over RPC and verified; then a restart resumes at the same height and
//! state, and an edited block log is refused.

use kms_chain_types::state::keys;
use kms_chain_types::tx::{Fulfillment, KmsRequest, MaterialItem, Msg};
use kms_devnet::dev::{DevSetup, Wallet};
use kms_devnet::{Node, PersistError, PersistentChain};
use kms_light_client::tx_proof::verify_tx_inclusion;
use kms_light_client::{verify_request_approved, LightBlock, LightClient, Options};
use kms_types::{CiphertextRef, FheType, KeyGenRequest, ParamSetName, PublicDecryptionRef};
use std::time::Duration;
use tendermint::block::Height;
use tendermint::Time;
use tendermint_rpc::{Client, HttpClient, Order, Paging};

const CHAIN: &str = "kms-devnet-rpc";

async fn commit(client: &HttpClient, tx: Vec<u8>) -> (u64, u32) {
    let r = client.broadcast_tx_commit(tx).await.unwrap();
    assert!(r.check_tx.code.is_ok(), "CheckTx: {}", r.check_tx.log);
    (r.height.value(), r.tx_result.code.value())
}

async fn light_block(client: &HttpClient, h: u64) -> LightBlock {
    let height = Height::try_from(h).unwrap();
    let sh = client.commit(height).await.unwrap().signed_header;
    let vals = client
        .validators(height, Paging::All)
        .await
        .unwrap()
        .validators;
    let set = tendermint::validator::Set::without_proposer(vals);
    LightBlock::new(sh, set.clone(), set, tendermint::node::Id::new([0; 20]))
}

fn options() -> Options {
    Options {
        trust_threshold: Default::default(),
        trusting_period: Duration::from_secs(24 * 3600),
        clock_drift: Duration::from_secs(5),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_read_the_devnet_through_tendermint_rpc() {
    let dir = tempfile::tempdir().unwrap();
    let mut setup = DevSetup::new(CHAIN, 4, 1, 4, Time::now());
    let genesis = setup.genesis.clone();
    let chain = PersistentChain::open_or_create(dir.path(), || genesis).unwrap();
    let node = Node::new(chain);
    let (addr, server) = node
        .serve_rpc("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let producer = node.spawn_producer(Duration::from_millis(150));
    let client = HttpClient::new(format!("http://{addr}").as_str()).unwrap();

    let status = client.status().await.unwrap();
    assert_eq!(status.node_info.network.as_str(), CHAIN);
    let genesis: tendermint::Genesis<serde_json::Value> = client.genesis().await.unwrap();
    assert_eq!(genesis.validators.len(), 4);

    // Requests.
    let domain = setup.genesis.app_config.eip712_domain.clone();
    let mut user = Wallet::random();
    let (_, code) = commit(&client, user.tx(CHAIN, Msg::Faucet { amount: 5_000 })).await;
    assert_eq!(code, 0);
    let (_, code) = commit(
        &client,
        setup.admin.tx(CHAIN, Msg::Faucet { amount: 5_000 }),
    )
    .await;
    assert_eq!(code, 0);
    let (_, code) = commit(
        &client,
        setup.admin.tx(
            CHAIN,
            Msg::CreateApplication {
                app_id: "app".into(),
                admin: user.address(),
            },
        ),
    )
    .await;
    assert_eq!(code, 0);
    let keygen = KmsRequest::KeyGen(KeyGenRequest {
        params: ParamSetName::TestInsecure,
        label: "k".into(),
    });
    let key_id = keygen.request_id();
    let (_, code) = commit(
        &client,
        setup.admin.tx(
            CHAIN,
            Msg::Request {
                app_id: "app".into(),
                request: keygen,
            },
        ),
    )
    .await;
    assert_eq!(code, 0);
    for p in &mut setup.parties[..2] {
        let item = MaterialItem::signed(p.key(), &domain, &key_id, "PublicKey", [3; 32]);
        let f = Fulfillment::Material {
            items: vec![item.unwrap()],
        };
        let (_, code) = commit(
            &client,
            p.tx(
                CHAIN,
                Msg::Fulfill {
                    request_id: key_id,
                    fulfillment: f,
                },
            ),
        )
        .await;
        assert_eq!(code, 0);
    }
    let handle = [0x5au8; 32];
    let (_, code) = commit(
        &client,
        user.tx(
            CHAIN,
            Msg::AclGrant {
                app_id: "app".into(),
                handles: vec![handle],
                addresses: vec![user.address()],
            },
        ),
    )
    .await;
    assert_eq!(code, 0);
    let req = KmsRequest::PublicDecrypt(PublicDecryptionRef {
        key_id,
        ciphertexts: vec![CiphertextRef {
            fhe_type: FheType::Uint32,
            digest: handle,
        }],
    });
    let id = req.request_id();
    let req_tx = user.tx(
        CHAIN,
        Msg::Request {
            app_id: "app".into(),
            request: req,
        },
    );
    let (h_req, code) = commit(&client, req_tx.clone()).await;
    assert_eq!(code, 0);

    // Event polling: the request event is searchable.
    let found = client
        .tx_search(
            format!("kms_request.request_id='{id}'").parse().unwrap(),
            true,
            1,
            10,
            Order::Ascending,
        )
        .await
        .unwrap();
    assert_eq!(found.total_count, 1);
    assert_eq!(found.txs[0].height.value(), h_req);

    // The enclave's light client, fed only by RPC answers.
    while client
        .status()
        .await
        .unwrap()
        .sync_info
        .latest_block_height
        .value()
        <= h_req
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let now = Time::now();
    let first = light_block(&client, 1).await;
    let gset = tendermint::validator::Set::without_proposer(genesis.validators.clone());
    let (mut lc, _) = LightClient::from_genesis(CHAIN, 1, &gset, first, options(), now).unwrap();
    let req_header = lc.verify(&light_block(&client, h_req).await, now).unwrap();
    let header = lc
        .update(light_block(&client, h_req + 1).await, now)
        .unwrap();
    let tx = client
        .tx(tendermint::Hash::Sha256(sha256(&req_tx)), true)
        .await
        .unwrap();
    verify_tx_inclusion(&req_header, &tx.tx, &tx.proof.unwrap()).unwrap();
    let q = client
        .abci_query(
            Some("store".into()),
            keys::request(&id),
            Some(Height::try_from(h_req).unwrap()),
            true,
        )
        .await
        .unwrap();
    let approved = verify_request_approved(&header, &id, &q.value, &q.proof.unwrap()).unwrap();
    assert_eq!(approved.record.requester, user.address());

    // Blocks and results as CometBFT serves them.
    let b = client
        .block(Height::try_from(h_req).unwrap())
        .await
        .unwrap();
    assert_eq!(b.block.header.hash(), b.block_id.hash);
    assert!(b.block.data.contains(&req_tx));
    let results = client
        .block_results(Height::try_from(h_req).unwrap())
        .await
        .unwrap();
    let txs_results = results.txs_results.unwrap();
    assert_eq!(txs_results.len(), b.block.data.len());
    assert!(txs_results.iter().all(|r| r.code.is_ok()));
    let next = client
        .block(Height::try_from(h_req + 1).unwrap())
        .await
        .unwrap();
    assert_eq!(
        next.block.header.app_hash.as_bytes(),
        results.app_hash.as_bytes()
    );
    assert_eq!(next.block.header.last_block_id, Some(b.block_id));
    let info = client.abci_info().await.unwrap();
    assert!(info.last_block_height.value() >= h_req);

    // Plain HTTP as curl sends it: a JSON-RPC body without a JSON content type, URI style, and
    // garbage (a parse error, not a crash).
    let post = raw_http(
        addr,
        "POST / HTTP/1.1",
        "text/plain",
        r#"{"jsonrpc":"2.0","id":7,"method":"commit","params":{"height":"2"}}"#,
    )
    .await;
    assert!(
        post.contains(r#""id":7"#) && post.contains("signed_header"),
        "{post}"
    );
    let get = raw_http(addr, "GET /validators?height=2 HTTP/1.1", "text/plain", "").await;
    assert!(get.contains(r#""total":"4""#), "{get}");
    let search = raw_http(
        addr,
        &format!("GET /tx_search?query=%22kms_request.request_id=%27{id}%27%22 HTTP/1.1"),
        "text/plain",
        "",
    )
    .await;
    assert!(search.contains(r#""total_count":"1""#), "{search}");
    let bad = raw_http(addr, "POST / HTTP/1.1", "text/plain", "{not json").await;
    assert!(bad.contains("-32700"), "{bad}");

    // Restart: same height, same blocks, same state.
    producer.abort();
    let _ = producer.await;
    let (height, hash, app) = node.with(|c| {
        let h = c.chain().height();
        (
            h,
            c.chain().block(h).unwrap().block_id,
            c.chain().app().last_committed(),
        )
    });
    server.abort();
    drop(node);
    drop(client);
    let reopened = PersistentChain::open_or_create(dir.path(), || unreachable!()).unwrap();
    assert_eq!(reopened.chain().height(), height);
    assert_eq!(reopened.chain().block(height).unwrap().block_id, hash);
    assert_eq!(reopened.chain().app().last_committed(), app);
    drop(reopened);

    // An edited log is refused.
    let log = dir.path().join("blocks.jsonl");
    let text = std::fs::read_to_string(&log).unwrap();
    let tampered = text.replacen("\"txs\":[\"", "\"txs\":[\"00", 1);
    assert_ne!(tampered, text);
    std::fs::write(&log, tampered).unwrap();
    assert!(matches!(
        PersistentChain::open_or_create(dir.path(), || unreachable!()),
        Err(PersistError::Diverged { .. })
    ));
}

async fn raw_http(addr: std::net::SocketAddr, line: &str, ctype: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{line}\r\nHost: devnet\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

fn sha256(b: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(b).into()
}
