//! The CometBFT JSON-RPC subset the hosts use, served as CometBFT 0.38 serves it: JSON-RPC 2.0
//! over HTTP POST at `/`, and URI style (`GET /commit?height=5`). Responses are serialized with
//! tendermint-rpc's own response types, so a tendermint-rpc client (or any CometBFT client) reads
//! them unchanged. Events are delivered by polling (`tx_search`, `block_results`); the websocket
//! `subscribe` endpoint is not served.

use crate::node::Node;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::Duration;
use tendermint::abci::types::ExecTxResult;
use tendermint::block::Height;
use tendermint_proto::v0_38::abci as pb;
use tendermint_rpc::endpoint;

impl Node {
    /// Serves the RPC on `addr`; returns the bound address and the server task.
    pub async fn serve_rpc(
        &self,
        addr: std::net::SocketAddr,
    ) -> std::io::Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        self.set_rpc_address(format!("tcp://{bound}"));
        let app = router(self.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!("devnet RPC server stopped: {e}");
            }
        });
        Ok((bound, task))
    }
}

/// How long `broadcast_tx_commit` waits for the block.
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

/// A JSON-RPC error.
#[derive(Debug)]
pub struct RpcError {
    code: i64,
    message: &'static str,
    data: String,
}

impl RpcError {
    fn invalid_params(data: impl ToString) -> Self {
        Self {
            code: -32602,
            message: "Invalid params",
            data: data.to_string(),
        }
    }
    fn internal(data: impl ToString) -> Self {
        Self {
            code: -32603,
            message: "Internal error",
            data: data.to_string(),
        }
    }
    fn not_found(method: &str) -> Self {
        Self {
            code: -32601,
            message: "Method not found",
            data: format!("{method} is not served by the devnet"),
        }
    }
}

/// The HTTP router.
pub fn router(node: Node) -> Router {
    Router::new()
        .route("/", post(json_rpc))
        .route("/{method}", get(uri_rpc))
        .with_state(node)
}

fn envelope(id: Value, r: Result<Value, RpcError>) -> Value {
    match r {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(e) => json!({"jsonrpc": "2.0", "id": id, "error": {
            "code": e.code, "message": e.message, "data": e.data}}),
    }
}

async fn json_rpc(State(node): State<Node>, body: axum::body::Bytes) -> Json<Value> {
    // Like CometBFT, accept the body whatever its declared content type.
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return Json(envelope(
                Value::Null,
                Err(RpcError {
                    code: -32700,
                    message: "Parse error",
                    data: e.to_string(),
                }),
            ))
        }
    };
    let id = req.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = req.get("method").and_then(Value::as_str) else {
        return Json(envelope(
            id,
            Err(RpcError {
                code: -32600,
                message: "Invalid Request",
                data: "no method".into(),
            }),
        ));
    };
    let params = req.get("params").cloned().unwrap_or(json!({}));
    Json(envelope(id, dispatch(&node, method, params).await))
}

async fn uri_rpc(
    State(node): State<Node>,
    Path(method): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Json<Value> {
    // URI arguments: strings may be quoted, bytes may be 0x-hex; pass them as JSON strings.
    let params: serde_json::Map<String, Value> = q
        .into_iter()
        .map(|(k, v)| {
            let v = v.trim_matches('"').to_string();
            let v = match v.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::String(v.strip_prefix("0x").map(str::to_string).unwrap_or(v)),
            };
            (k, v)
        })
        .collect();
    Json(envelope(
        json!(-1),
        dispatch(&node, &method, Value::Object(params)).await,
    ))
}

/// CometBFT treats these parameters as optional; tendermint-rpc's request types require them.
fn with_defaults(mut params: Value, defaults: &[(&str, Value)]) -> Value {
    if let Value::Object(m) = &mut params {
        for (k, v) in defaults {
            m.entry(k.to_string()).or_insert_with(|| v.clone());
        }
    }
    params
}

fn parse<T: serde::de::DeserializeOwned>(params: Value) -> Result<T, RpcError> {
    serde_json::from_value(params).map_err(RpcError::invalid_params)
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, RpcError> {
    serde_json::to_value(v).map_err(RpcError::internal)
}

fn exec_result(r: &pb::ExecTxResult) -> Result<ExecTxResult, RpcError> {
    ExecTxResult::try_from(r.clone()).map_err(RpcError::internal)
}

fn stored(chain: &crate::Chain, h: u64) -> Result<&crate::StoredBlock, RpcError> {
    chain
        .block(h)
        .ok_or_else(|| RpcError::internal(format!("no block at height {h}")))
}

fn height_or_latest(node: &Node, h: Option<Height>) -> Result<u64, RpcError> {
    let latest = node.with(|c| c.chain().height());
    let h = h.map(|h| h.value()).unwrap_or(latest);
    if h == 0 || h > latest {
        return Err(RpcError::internal(format!(
            "height {h} must be less than or equal to the current blockchain height {latest}"
        )));
    }
    Ok(h)
}

/// Handles one call.
pub async fn dispatch(node: &Node, method: &str, params: Value) -> Result<Value, RpcError> {
    match method {
        "health" => Ok(json!({})),
        "status" => status(node),
        "genesis" => genesis(node),
        "abci_info" => {
            let (h, hash) = node.with(|c| c.chain().app().last_committed());
            Ok(json!({"response": {
                "data": "kms-chain-app",
                "version": env!("CARGO_PKG_VERSION"),
                "app_version": kms_chain_app::abci::APP_VERSION.to_string(),
                "last_block_height": h.to_string(),
                "last_block_app_hash": base64(&hash),
            }}))
        }
        "block" => {
            let req: endpoint::block::Request = parse(params)?;
            let h = height_or_latest(node, req.height)?;
            node.with(|c| {
                let b = stored(c.chain(), h)?;
                to_json(&endpoint::block::Response {
                    block_id: b.block_id,
                    block: b.block.clone(),
                })
            })
        }
        "commit" => {
            let req: endpoint::commit::Request = parse(params)?;
            let h = height_or_latest(node, req.height)?;
            node.with(|c| {
                let sh = c
                    .chain()
                    .signed_header(h)
                    .ok_or_else(|| RpcError::internal("no commit"))?;
                to_json(&endpoint::commit::Response {
                    signed_header: sh,
                    canonical: true,
                })
            })
        }
        "validators" => {
            let params = with_defaults(params, &[("page", Value::Null), ("per_page", Value::Null)]);
            let req: endpoint::validators::Request = parse(params)?;
            let h = height_or_latest(node, req.height)?;
            node.with(|c| {
                let vals = c.chain().validators().validators().clone();
                to_json(&endpoint::validators::Response::new(
                    Height::try_from(h).map_err(RpcError::internal)?,
                    vals.clone(),
                    vals.len() as i32,
                ))
            })
        }
        "block_results" => {
            let req: endpoint::block_results::Request = parse(params)?;
            let h = height_or_latest(node, req.height)?;
            node.with(|c| {
                let b = stored(c.chain(), h)?;
                let txs = b
                    .results
                    .tx_results
                    .iter()
                    .map(exec_result)
                    .collect::<Result<Vec<_>, _>>()?;
                to_json(&endpoint::block_results::Response {
                    height: b.block.header.height,
                    txs_results: Some(txs),
                    finalize_block_events: Vec::new(),
                    begin_block_events: None,
                    end_block_events: None,
                    validator_updates: Vec::new(),
                    consensus_param_updates: None,
                    app_hash: b
                        .results
                        .app_hash
                        .to_vec()
                        .try_into()
                        .map_err(RpcError::internal)?,
                })
            })
        }
        "tx" => {
            let req: endpoint::tx::Request = parse(params)?;
            let hash: [u8; 32] = req
                .hash
                .as_bytes()
                .try_into()
                .map_err(|_| RpcError::invalid_params("hash must be 32 bytes"))?;
            node.with(|c| {
                let loc = c.chain().find_tx(&hash).ok_or_else(|| {
                    RpcError::internal(format!("tx ({}) not found", hex::encode_upper(hash)))
                })?;
                to_json(&tx_response(c.chain(), loc, req.prove)?)
            })
        }
        "tx_search" => {
            let params = with_defaults(
                params,
                &[
                    ("prove", Value::Bool(false)),
                    ("page", json!("1")),
                    ("per_page", json!("30")),
                    ("order_by", json!("asc")),
                ],
            );
            let req: endpoint::tx_search::Request = parse(params)?;
            let conds = parse_query(&req.query)?;
            node.with(|c| {
                let chain = c.chain();
                // Match on locations only (no proofs, no copies), then build the page alone.
                let mut locs = matching_txs(chain, &conds);
                if matches!(req.order_by, tendermint_rpc::Order::Descending) {
                    locs.reverse();
                }
                let total = u32::try_from(locs.len()).unwrap_or(u32::MAX);
                let per = req.per_page.clamp(1, 100) as usize;
                let page = req.page.max(1) as usize;
                let txs = locs
                    .into_iter()
                    .skip((page - 1).saturating_mul(per))
                    .take(per)
                    .map(|loc| tx_response(chain, loc, req.prove))
                    .collect::<Result<Vec<_>, _>>()?;
                to_json(&endpoint::tx_search::Response {
                    txs,
                    total_count: total,
                })
            })
        }
        "abci_query" => {
            let req: endpoint::abci_query::Request = parse(params)?;
            let r = node.with(|c| {
                c.chain().query(
                    req.path.as_deref().unwrap_or(""),
                    req.data.clone(),
                    req.height.map_or(0, |h| h.value() as i64),
                    req.prove,
                )
            });
            Ok(json!({"response": {
                "code": r.code,
                "log": r.log,
                "info": r.info,
                "index": r.index.to_string(),
                "key": base64(&r.key),
                "value": base64(&r.value),
                "proofOps": r.proof_ops.map(|p| json!({"ops": p.ops.iter().map(|o| json!({
                    "type": o.r#type, "key": base64(&o.key), "data": base64(&o.data)})).collect::<Vec<_>>()})),
                "height": r.height.to_string(),
                "codespace": r.codespace,
            }}))
        }
        "broadcast_tx_sync" | "broadcast_tx_async" => {
            let req: endpoint::broadcast::tx_sync::Request = parse(params)?;
            let hash: [u8; 32] = Sha256::digest(&req.tx).into();
            let r = node.with(|c| c.chain_mut().submit(req.tx));
            Ok(json!({
                "code": r.code, "data": base64(&r.data), "log": r.log,
                "codespace": r.codespace, "hash": hex::encode_upper(hash),
            }))
        }
        "broadcast_tx_commit" => {
            let req: endpoint::broadcast::tx_commit::Request = parse(params)?;
            let hash: [u8; 32] = Sha256::digest(&req.tx).into();
            // A retry of a transaction already included: report the copy that counted rather
            // than the retry's CheckTx refusal (stale nonce).
            if let Some(loc) = node.with(|c| c.chain().find_tx(&hash)) {
                return node.with(|c| {
                    let r = tx_response(c.chain(), loc, false)?;
                    Ok(json!({
                        "check_tx": {"code": 0, "data": "", "log": "already included", "info": "",
                            "gas_wanted": "0", "gas_used": "0", "events": [], "codespace": ""},
                        "tx_result": to_json(&r.tx_result)?,
                        "hash": hex::encode_upper(hash),
                        "height": loc.height.to_string(),
                    }))
                });
            }
            let check = node.with(|c| c.chain_mut().submit(req.tx));
            let check_json = json!({
                "code": check.code, "data": base64(&check.data), "log": check.log,
                "info": check.info, "gas_wanted": check.gas_wanted.to_string(),
                "gas_used": check.gas_used.to_string(), "events": [], "codespace": check.codespace,
            });
            if check.code != 0 {
                return Ok(
                    json!({"check_tx": check_json, "tx_result": {}, "hash": hex::encode_upper(hash), "height": "0"}),
                );
            }
            let deadline = tokio::time::Instant::now() + COMMIT_TIMEOUT;
            loop {
                if let Some(loc) = node.with(|c| c.chain().find_tx(&hash)) {
                    return node.with(|c| {
                        let r = tx_response(c.chain(), loc, false)?;
                        Ok(json!({
                            "check_tx": check_json,
                            "tx_result": to_json(&r.tx_result)?,
                            "hash": hex::encode_upper(hash),
                            "height": loc.height.to_string(),
                        }))
                    });
                }
                if tokio::time::Instant::now() > deadline {
                    return Err(RpcError::internal(
                        "timed out waiting for tx to be included in a block",
                    ));
                }
                node.wait_for_block(Duration::from_millis(200)).await;
            }
        }
        other => Err(RpcError::not_found(other)),
    }
}

fn base64(b: &[u8]) -> String {
    #[derive(serde::Serialize)]
    struct W<'a>(#[serde(with = "tendermint::serializers::bytes::base64string")] &'a [u8]);
    serde_json::to_value(W(b))
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn tx_response(
    chain: &crate::Chain,
    loc: crate::chain::TxLocation,
    prove: bool,
) -> Result<endpoint::tx::Response, RpcError> {
    let b = stored(chain, loc.height)?;
    let tx = b
        .block
        .data()
        .get(loc.index as usize)
        .ok_or_else(|| RpcError::internal("no tx"))?
        .clone();
    let r = b
        .results
        .tx_results
        .get(loc.index as usize)
        .ok_or_else(|| RpcError::internal("no tx result"))?;
    let hash: [u8; 32] = Sha256::digest(&tx).into();
    Ok(endpoint::tx::Response {
        hash: tendermint::Hash::Sha256(hash),
        height: b.block.header.height,
        index: loc.index,
        tx_result: exec_result(r)?,
        tx,
        proof: if prove { chain.tx_proof(loc) } else { None },
    })
}

fn status(node: &Node) -> Result<Value, RpcError> {
    node.with(|c| {
        let chain = c.chain();
        let latest = chain.latest();
        let first = chain.block(1);
        let (app_height, app_hash) = chain.app().last_committed();
        let hash_of = |b: Option<&crate::StoredBlock>| {
            b.map(|b| b.block_id.hash.to_string()).unwrap_or_default()
        };
        let time_of = |b: Option<&crate::StoredBlock>| {
            b.map(|b| b.block.header.time)
                .unwrap_or(chain.genesis().genesis_time)
                .to_rfc3339()
        };
        let v = chain
            .validators()
            .validators()
            .first()
            .cloned()
            .ok_or_else(|| RpcError::internal("no validators"))?;
        let s = json!({
            "node_info": {
                "protocol_version": {"p2p": "8", "block": crate::chain::BLOCK_PROTOCOL.to_string(),
                    "app": kms_chain_app::abci::APP_VERSION.to_string()},
                "id": hex::encode(&v.address.as_bytes()[..20]),
                "listen_addr": "tcp://127.0.0.1:26656",
                "network": chain.chain_id().to_string(),
                "version": "0.38.17",
                "channels": "40202122233038606100",
                "moniker": "kms-devnet",
                "other": {"tx_index": "on", "rpc_address": node.rpc_address()},
            },
            "sync_info": {
                "earliest_block_hash": hash_of(first),
                "earliest_app_hash": first.map(|b| b.block.header.app_hash.to_string()).unwrap_or_default(),
                "earliest_block_height": first.map_or(0, |_| 1).to_string(),
                "earliest_block_time": time_of(first),
                "latest_block_hash": hash_of(latest),
                "latest_app_hash": hex::encode_upper(&app_hash),
                "latest_block_height": app_height.to_string(),
                "latest_block_time": time_of(latest),
                "catching_up": false,
            },
            "validator_info": to_json(&v)?,
        });
        // Serialize through the typed response so the shape is exactly tendermint-rpc's.
        let typed: endpoint::status::Response = parse(s)?;
        to_json(&typed)
    })
}

fn genesis(node: &Node) -> Result<Value, RpcError> {
    node.with(|c| {
        let chain = c.chain();
        let g = chain.genesis();
        let validators: Vec<Value> = chain
            .validators()
            .validators()
            .iter()
            .map(|v| {
                Ok(json!({
                    "address": v.address.to_string(),
                    "pub_key": to_json(&v.pub_key)?,
                    "power": v.power.value().to_string(),
                    "name": "",
                }))
            })
            .collect::<Result<_, RpcError>>()?;
        Ok(json!({"genesis": {
            "genesis_time": g.genesis_time.to_rfc3339(),
            "chain_id": g.chain_id,
            "initial_height": "1",
            "consensus_params": {
                "block": {"max_bytes": crate::chain::BLOCK_MAX_BYTES.to_string(),
                          "max_gas": crate::chain::BLOCK_MAX_GAS.to_string(), "time_iota_ms": "1000"},
                "evidence": {"max_age_num_blocks": "100000", "max_age_duration": "172800000000000",
                             "max_bytes": "1048576"},
                "validator": {"pub_key_types": ["ed25519"]},
                "version": {"app": kms_chain_app::abci::APP_VERSION.to_string()},
            },
            "validators": validators,
            "app_hash": "",
            "app_state": serde_json::to_value(&g.app_config).map_err(RpcError::internal)?,
        }}))
    })
}

/// Locations of the transactions matching every condition, ascending. A `tx.hash` condition is
/// answered from the index, a `tx.height` condition scans that block only.
fn matching_txs(chain: &crate::Chain, conds: &[Cond]) -> Vec<crate::chain::TxLocation> {
    if let Some(c) = conds.iter().find(|c| c.key == "tx.hash") {
        let Some(hash) = hex::decode(&c.value)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
        else {
            return Vec::new();
        };
        return chain
            .find_tx(&hash)
            .filter(|loc| {
                chain.block(loc.height).is_some_and(|b| {
                    let tx = b.block.data().get(loc.index as usize);
                    let r = b.results.tx_results.get(loc.index as usize);
                    match (tx, r) {
                        (Some(tx), Some(r)) => {
                            conds.iter().all(|cond| cond.matches(loc.height, tx, r))
                        }
                        _ => false,
                    }
                })
            })
            .into_iter()
            .collect();
    }
    let heights = match conds.iter().find(|c| c.key == "tx.height") {
        Some(c) => match c.value.parse::<u64>() {
            Ok(h) if h >= 1 && h <= chain.height() => h..=h,
            _ => return Vec::new(),
        },
        None => 1..=chain.height(),
    };
    let mut locs = Vec::new();
    for h in heights {
        let Some(b) = chain.block(h) else { continue };
        for (i, (tx, r)) in b.block.data().iter().zip(&b.results.tx_results).enumerate() {
            if conds.iter().all(|cond| cond.matches(h, tx, r)) {
                locs.push(crate::chain::TxLocation {
                    height: h,
                    index: i as u32,
                });
            }
        }
    }
    locs
}

/// One condition of a `tx_search` query.
struct Cond {
    key: String,
    value: String,
}

impl Cond {
    fn matches(&self, height: u64, tx: &[u8], r: &pb::ExecTxResult) -> bool {
        match self.key.as_str() {
            "tx.height" => self.value == height.to_string(),
            "tx.hash" => {
                let h: [u8; 32] = Sha256::digest(tx).into();
                self.value.eq_ignore_ascii_case(&hex::encode(h))
            }
            key => {
                let Some((kind, attr)) = key.split_once('.') else {
                    return false;
                };
                r.events.iter().any(|e| {
                    e.r#type == kind
                        && e.attributes
                            .iter()
                            .any(|a| a.key == attr && a.value == self.value)
                })
            }
        }
    }
}

/// Parses `a.b = 'x' AND c.d = 5` (the equality subset of CometBFT's query language).
fn parse_query(q: &str) -> Result<Vec<Cond>, RpcError> {
    q.split(" AND ")
        .map(|part| {
            let (k, v) = part.split_once('=').ok_or_else(|| {
                RpcError::invalid_params(format!(
                    "unsupported condition {part:?}: only '=' is served"
                ))
            })?;
            Ok(Cond {
                key: k.trim().to_string(),
                value: v.trim().trim_matches('\'').to_string(),
            })
        })
        .collect()
}
