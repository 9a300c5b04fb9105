//! [`Fleet`]: N anvil replicas of one chain, mined in lockstep by the harness.
//!
//! The fleet owns the chain's history: for every block, its timestamp and the raw
//! transactions in it. Each replica only records how many history blocks it has
//! applied (`synced`). That one number makes every scenario a replay:
//!
//! - mining appends a block to the history and applies it to every live replica that is
//!   not held back;
//! - a held replica stops at the height where it was held; `release` replays what it
//!   missed;
//! - a restarted replica is a fresh anvil (same genesis, same port) that replays the
//!   history from block 1;
//! - a reorg reverts replicas to an `evm_snapshot`, truncates the history and mines
//!   new blocks with shifted timestamps, so the hashes at those heights change.
//!
//! What one replica does with a block (and why its pool is dropped first) lives in
//! `replica.rs`. Transactions sent straight to a node, e.g. through the gateway under
//! test, must also be given to [`Fleet::submit`], which tolerates that a node already
//! has them; otherwise they are not mined.
//!
//! State sits behind one tokio mutex, held across the RPC calls of an operation: this
//! is test support, and serialized operations are what make the replay reasoning hold.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::{join_all, try_join_all};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::anvil::{Anvil, AnvilOptions};
use super::autominer::{self, AutoMiner};
use super::replica::{replay, MinedBlock, Replica};
use super::rpc::{parse_quantity, RpcClient};
use super::FleetError;

/// Dev account 0 of anvil's default mnemonic; the harness signs transfers with it.
pub const DEV_ACCOUNT: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";
/// Dev account 1 of the same mnemonic, also funded: the receiver of the transfers
/// that the tests, the demo and the load tests make.
pub const RECEIVER_ACCOUNT: &str = "0x70997970C51812dc3A010C7d01b54e5C0979720C";
const TRANSFER_GAS: u64 = 21_000;
/// Far above anvil's base fee for the light traffic of tests, so transfers never stall.
const MAX_FEE_PER_GAS: u64 = 10_000_000_000;
const MAX_PRIORITY_FEE_PER_GAS: u64 = 1_000_000_000;

/// The fields of a plain transfer; `sign_locked` adds sender, nonce and fees.
fn transfer(to: &str, value_wei: u128) -> serde_json::Value {
    json!({ "to": to, "value": format!("{value_wei:#x}"), "gas": format!("{TRANSFER_GAS:#x}") })
}

/// How a fleet is started.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub replicas: usize,
    pub chain_id: u64,
    pub genesis_timestamp: u64,
    /// Block `n` gets timestamp `genesis_timestamp + n * block_time_secs` (plus one
    /// second per reorg so far, which is what makes reorged blocks differ).
    pub block_time_secs: u64,
}

impl Default for FleetOptions {
    fn default() -> Self {
        Self {
            replicas: 3,
            chain_id: 31337,
            genesis_timestamp: 1_700_000_000,
            block_time_secs: 12,
        }
    }
}

/// A block as one replica reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainTip {
    pub number: u64,
    pub hash: String,
}

/// A point in the fleet's history that [`Fleet::reorg_to`] can return to. It stays
/// usable after a reorg to it, but reorging to an earlier checkpoint discards it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    id: u64,
    height: u64,
}

impl Checkpoint {
    /// The fleet height when the checkpoint was taken.
    pub fn height(&self) -> u64 {
        self.height
    }
}

/// A lockstep fleet of anvil replicas. Cloning is cheap and shares the fleet; the
/// processes are killed when the last clone is dropped.
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    opts: FleetOptions,
    anvil_opts: AnvilOptions,
    ports: Vec<u16>,
    state: Mutex<State>,
}

struct State {
    replicas: Vec<Replica>,
    history: Vec<MinedBlock>,
    /// Raw transactions for the next block, in order.
    queue: Vec<String>,
    /// Next nonce of [`DEV_ACCOUNT`]: the harness is its only user.
    nonce: u64,
    reorgs: u64,
    /// Checkpoint id -> fleet height when taken.
    checkpoints: HashMap<u64, u64>,
    next_checkpoint: u64,
    /// Orders snapshots: anvil's `evm_revert` also deletes every later snapshot.
    next_snapshot_seq: u64,
}

impl Fleet {
    /// Starts `opts.replicas` anvil nodes concurrently, all at genesis.
    pub async fn start(opts: FleetOptions) -> Result<Self, FleetError> {
        if opts.replicas == 0 {
            return Err(FleetError::InvalidOptions(
                "replicas must be at least 1".into(),
            ));
        }
        if opts.block_time_secs == 0 {
            return Err(FleetError::InvalidOptions(
                "block_time_secs must be at least 1 (timestamps must increase)".into(),
            ));
        }
        let anvil_opts = AnvilOptions {
            chain_id: opts.chain_id,
            genesis_timestamp: opts.genesis_timestamp,
            ..AnvilOptions::default()
        };
        let processes = try_join_all((0..opts.replicas).map(|_| Anvil::spawn(&anvil_opts))).await?;
        let mut replicas = Vec::with_capacity(processes.len());
        for (index, process) in processes.into_iter().enumerate() {
            replicas.push(Replica {
                index,
                port: process.port(),
                rpc: RpcClient::new(&process.http_url())?,
                process: Some(process),
                synced: 0,
                held_at: None,
                snapshots: HashMap::new(),
            });
        }
        let ports = replicas.iter().map(|r| r.port).collect();
        tracing::info!(?ports, chain_id = opts.chain_id, "fleet started");
        let state = State {
            replicas,
            history: Vec::new(),
            queue: Vec::new(),
            nonce: 0,
            reorgs: 0,
            checkpoints: HashMap::new(),
            next_checkpoint: 0,
            next_snapshot_seq: 0,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                opts,
                anvil_opts,
                ports,
                state: Mutex::new(state),
            }),
        })
    }

    pub fn len(&self) -> usize {
        self.inner.ports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inner.ports.is_empty()
    }

    pub fn chain_id(&self) -> u64 {
        self.inner.opts.chain_id
    }

    pub fn options(&self) -> &FleetOptions {
        &self.inner.opts
    }

    /// HTTP URL of replica `i`; it stays the same across restarts.
    ///
    /// # Panics
    /// If `i >= self.len()`, like slice indexing.
    pub fn http_url(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.inner.ports[i])
    }

    /// WebSocket URL of replica `i` (anvil serves both on one port).
    ///
    /// # Panics
    /// If `i >= self.len()`, like slice indexing.
    pub fn ws_url(&self, i: usize) -> String {
        format!("ws://127.0.0.1:{}", self.inner.ports[i])
    }

    /// The fleet's height: blocks in its history, whatever any replica has applied.
    pub async fn height(&self) -> u64 {
        self.inner.state.lock().await.history.len() as u64
    }

    /// A client for replica `i`, for calls the harness has no helper for.
    pub async fn rpc(&self, i: usize) -> Result<RpcClient, FleetError> {
        let state = self.inner.state.lock().await;
        let replica = state.replica(i)?;
        if replica.process.is_none() {
            return Err(FleetError::ReplicaStopped(i));
        }
        Ok(replica.rpc.clone())
    }

    /// The latest block of replica `i`, as it reports it.
    pub async fn head(&self, i: usize) -> Result<ChainTip, FleetError> {
        let rpc = self.rpc(i).await?;
        let block = rpc
            .call("eth_getBlockByNumber", json!(["latest", false]))
            .await
            .map_err(|e| e.on_replica(i))?;
        chain_tip(&block).map_err(|e| e.on_replica(i))
    }

    /// The hash of block `n` on replica `i`, or `None` if that replica lacks it.
    pub async fn block_hash(&self, i: usize, n: u64) -> Result<Option<String>, FleetError> {
        let rpc = self.rpc(i).await?;
        let block = rpc
            .call("eth_getBlockByNumber", json!([format!("{n:#x}"), false]))
            .await
            .map_err(|e| e.on_replica(i))?;
        if block.is_null() {
            return Ok(None);
        }
        Ok(Some(chain_tip(&block).map_err(|e| e.on_replica(i))?.hash))
    }

    /// Queues a raw transaction for the next block. It may already sit in some node's
    /// pool (sent through the gateway, say); that is fine.
    pub async fn submit(&self, raw_tx: impl Into<String>) -> Result<(), FleetError> {
        let raw_tx = check_raw_tx(raw_tx.into())?;
        self.inner.state.lock().await.enqueue(raw_tx);
        Ok(())
    }

    /// Signs a transfer of `value_wei` from [`DEV_ACCOUNT`] to `to` and queues it for
    /// the next block. Returns the raw transaction and its hash.
    pub async fn transfer(
        &self,
        to: &str,
        value_wei: u128,
    ) -> Result<(String, String), FleetError> {
        let mut state = self.inner.state.lock().await;
        let (raw, hash) = self
            .sign_locked(&mut state, transfer(to, value_wei))
            .await?;
        state.enqueue(raw.clone());
        Ok((raw, hash))
    }

    /// Signs a contract creation with `init_code` (hex) from [`DEV_ACCOUNT`] and queues
    /// it for the next block. Returns the raw transaction and its hash.
    pub async fn deploy(&self, init_code: &str, gas: u64) -> Result<(String, String), FleetError> {
        let mut state = self.inner.state.lock().await;
        let tx = json!({ "data": init_code, "gas": format!("{gas:#x}"), "value": "0x0" });
        let (raw, hash) = self.sign_locked(&mut state, tx).await?;
        state.enqueue(raw.clone());
        Ok((raw, hash))
    }

    /// Signs a call of the contract at `to` with calldata `data` (hex) from
    /// [`DEV_ACCOUNT`] and queues it for the next block. Returns the raw
    /// transaction and its hash.
    pub async fn invoke(
        &self,
        to: &str,
        data: &str,
        gas: u64,
    ) -> Result<(String, String), FleetError> {
        let mut state = self.inner.state.lock().await;
        let tx = json!({ "to": to, "data": data, "gas": format!("{gas:#x}"), "value": "0x0" });
        let (raw, hash) = self.sign_locked(&mut state, tx).await?;
        state.enqueue(raw.clone());
        Ok((raw, hash))
    }

    /// Signs a transfer like [`Fleet::transfer`] but does not queue it: the caller sends
    /// it (and should [`Fleet::submit`] it before mining, or it is not mined). The nonce
    /// is used up either way, so later transfers wait for this one.
    pub async fn sign_transfer(
        &self,
        to: &str,
        value_wei: u128,
    ) -> Result<(String, String), FleetError> {
        let mut state = self.inner.state.lock().await;
        self.sign_locked(&mut state, transfer(to, value_wei)).await
    }

    async fn sign_locked(
        &self,
        state: &mut State,
        mut tx: serde_json::Value,
    ) -> Result<(String, String), FleetError> {
        let (index, rpc) = state
            .replicas
            .iter()
            .find(|r| r.process.is_some())
            .map(|r| (r.index, r.rpc.clone()))
            .ok_or(FleetError::NoLiveReplica)?;
        let common = json!({
            "from": DEV_ACCOUNT,
            "nonce": format!("{:#x}", state.nonce),
            "maxFeePerGas": format!("{MAX_FEE_PER_GAS:#x}"),
            "maxPriorityFeePerGas": format!("{MAX_PRIORITY_FEE_PER_GAS:#x}"),
            "chainId": format!("{:#x}", self.inner.opts.chain_id),
        });
        if let (Some(tx), serde_json::Value::Object(common)) = (tx.as_object_mut(), common) {
            tx.extend(common);
        }
        let raw = rpc
            .call("eth_signTransaction", json!([tx]))
            .await
            .map_err(|e| e.on_replica(index))?;
        let raw = raw.as_str().map(str::to_owned).ok_or_else(|| {
            FleetError::BadResponse {
                method: "eth_signTransaction".into(),
                detail: format!("expected a hex string, got {raw}"),
            }
            .on_replica(index)
        })?;
        state.nonce += 1;
        // A typed transaction's hash is keccak256 of its raw bytes; anvil computes it.
        let hash = rpc
            .call("web3_sha3", json!([raw]))
            .await
            .map_err(|e| e.on_replica(index))?;
        let hash = hash.as_str().map(str::to_owned).ok_or_else(|| {
            FleetError::BadResponse {
                method: "web3_sha3".into(),
                detail: format!("expected a hex string, got {hash}"),
            }
            .on_replica(index)
        })?;
        Ok((raw, hash))
    }

    /// Mines one block on every live replica that is not held back and returns the new
    /// fleet height. Replicas behind the previous height catch up first.
    pub async fn mine(&self) -> Result<u64, FleetError> {
        let mut state = self.inner.state.lock().await;
        state.mine(&self.inner.opts).await
    }

    /// Mines `n` blocks, one after the other; returns the new fleet height.
    pub async fn mine_blocks(&self, n: u64) -> Result<u64, FleetError> {
        let mut state = self.inner.state.lock().await;
        for _ in 0..n {
            state.mine(&self.inner.opts).await?;
        }
        Ok(state.history.len() as u64)
    }

    /// Holds replica `i` back: it keeps serving but receives no new blocks.
    pub async fn hold(&self, i: usize) -> Result<(), FleetError> {
        let mut state = self.inner.state.lock().await;
        let replica = state.replica_mut(i)?;
        replica.held_at = Some(replica.held_at.unwrap_or(replica.synced));
        tracing::info!(replica = i, at = replica.synced, "replica held back");
        Ok(())
    }

    /// Lets replica `i` follow the fleet again; it replays the blocks it missed now.
    pub async fn release(&self, i: usize) -> Result<(), FleetError> {
        let mut state = self.inner.state.lock().await;
        let (replica, history) = state.replica_and_history(i)?;
        replica.held_at = None;
        if replica.process.is_some() {
            replica.sync_to(history, history.len() as u64).await?;
        }
        tracing::info!(replica = i, height = history.len(), "replica released");
        Ok(())
    }

    /// Kills replica `i`'s process. Its URL refuses connections until [`Fleet::restart`].
    pub async fn stop(&self, i: usize) -> Result<(), FleetError> {
        let mut state = self.inner.state.lock().await;
        let replica = state.replica_mut(i)?;
        if let Some(mut process) = replica.process.take() {
            process.kill().await.map_err(|e| e.on_replica(i))?;
        }
        replica.snapshots.clear();
        tracing::info!(replica = i, "replica stopped");
        Ok(())
    }

    /// Starts replica `i` again on its port (killing it first if it runs) and replays
    /// the history, up to the fleet head or, if held, up to where it was held.
    pub async fn restart(&self, i: usize) -> Result<(), FleetError> {
        let mut state = self.inner.state.lock().await;
        let (replica, history) = state.replica_and_history(i)?;
        replica.respawn(&self.inner.anvil_opts).await?;
        let target = replica.target(history.len() as u64);
        replica.sync_to(history, target).await?;
        tracing::info!(replica = i, height = target, "replica restarted");
        Ok(())
    }

    /// Kills replica `i` and starts it again `behind` blocks below the height it had,
    /// held there (as a node restarted from an older disk would be) until
    /// [`Fleet::release`]. Returns the height it came back at.
    ///
    /// The replay of the history up to there (every block from genesis: seconds on a
    /// long chain) runs without holding the fleet, so the other replicas go on mining
    /// meanwhile, as a chain does while one of its nodes restarts (mining passes a held
    /// replica by). Should the fleet reorg meanwhile, the replica is rebuilt again with
    /// the fleet held.
    pub async fn restart_behind(&self, i: usize, behind: u64) -> Result<u64, FleetError> {
        let (at, rpc, blocks, reorgs) = {
            let mut state = self.inner.state.lock().await;
            let reorgs = state.reorgs;
            let (replica, history) = state.replica_and_history(i)?;
            let at = replica.synced.saturating_sub(behind);
            replica.respawn(&self.inner.anvil_opts).await?;
            replica.held_at = Some(at);
            (
                at,
                replica.rpc.clone(),
                history[..at as usize].to_vec(),
                reorgs,
            )
        };
        let replayed = replay(&rpc, i, &blocks).await;
        let mut state = self.inner.state.lock().await;
        let unchanged = state.reorgs == reorgs;
        let (replica, history) = state.replica_and_history(i)?;
        if unchanged && replica.synced == 0 && replica.held_at == Some(at) {
            replayed?;
            replica.synced = at;
        } else {
            let at = replica.held_at.unwrap_or(at).min(history.len() as u64);
            replica.respawn(&self.inner.anvil_opts).await?;
            replica.held_at = Some(at);
            replica.sync_to(history, at).await?;
        }
        tracing::info!(replica = i, height = at, "replica restarted behind");
        Ok(at)
    }

    /// Takes an `evm_snapshot` on every live replica at the current fleet height.
    pub async fn checkpoint(&self) -> Result<Checkpoint, FleetError> {
        let mut state = self.inner.state.lock().await;
        let id = state.next_checkpoint;
        state.next_checkpoint += 1;
        let height = state.history.len() as u64;
        let State {
            replicas,
            next_snapshot_seq,
            ..
        } = &mut *state;
        for replica in replicas.iter_mut().filter(|r| r.process.is_some()) {
            replica.snapshot(id, next_snapshot_seq, None).await?;
        }
        state.checkpoints.insert(id, height);
        Ok(Checkpoint { id, height })
    }

    /// Reorgs the fleet: returns every replica to `checkpoint`, forgets the blocks after
    /// it and mines `new_blocks` replacements. The replacements carry timestamps one
    /// second later than the blocks they replace, so their hashes differ even when they
    /// hold the same transactions; the forgotten blocks' transactions go back to the
    /// queue, as they would on a real chain, and land in the first replacement.
    ///
    /// Stopped replicas need no revert: a restart replays the (new) history. A replica
    /// restarted after the checkpoint has no snapshot for it and is rebuilt from genesis
    /// instead, which is slower but gives the same chain. Returns the new fleet height.
    pub async fn reorg_to(
        &self,
        checkpoint: &Checkpoint,
        new_blocks: u64,
    ) -> Result<u64, FleetError> {
        let mut state = self.inner.state.lock().await;
        let height = match state.checkpoints.get(&checkpoint.id) {
            Some(&h) if h == checkpoint.height && h <= state.history.len() as u64 => h,
            _ => return Err(FleetError::UnknownCheckpoint(checkpoint.id)),
        };
        let State {
            replicas,
            next_snapshot_seq,
            ..
        } = &mut *state;
        for replica in replicas.iter_mut() {
            replica.held_at = replica.held_at.map(|at| at.min(height));
            if replica.process.is_none() {
                replica.synced = replica.synced.min(height);
            } else if replica.synced > height {
                replica
                    .revert(checkpoint.id, next_snapshot_seq, &self.inner.anvil_opts)
                    .await?;
            }
        }

        state.checkpoints.retain(|_, &mut h| h <= height);
        let live_checkpoints = state.checkpoints.clone();
        for replica in &mut state.replicas {
            replica
                .snapshots
                .retain(|id, _| live_checkpoints.contains_key(id));
        }
        let orphaned = state.history.split_off(height as usize);
        let mut queue: Vec<String> = orphaned.into_iter().flat_map(|b| b.txs).collect();
        for raw in std::mem::take(&mut state.queue) {
            if !queue.contains(&raw) {
                queue.push(raw);
            }
        }
        state.queue = queue;
        state.reorgs += 1;
        tracing::info!(height, new_blocks, "fleet reorged");

        state.sync_live().await?;
        for _ in 0..new_blocks {
            state.mine(&self.inner.opts).await?;
        }
        Ok(state.history.len() as u64)
    }

    /// Mines a block every `interval` in the background, for the demo. With
    /// `lag_every: Some(n)`, every `n` blocks one random replica is held back for a few
    /// blocks and then released. The miner stops when the handle is dropped or the fleet
    /// is gone.
    pub fn spawn_autominer(&self, interval: Duration, lag_every: Option<u32>) -> AutoMiner {
        autominer::spawn(self.downgrade(), interval, lag_every)
    }

    pub(crate) fn downgrade(&self) -> Weak<Inner> {
        Arc::downgrade(&self.inner)
    }

    pub(crate) fn from_inner(inner: Arc<Inner>) -> Self {
        Self { inner }
    }

    /// Whether replica `i` is held back.
    pub async fn is_held(&self, i: usize) -> Result<bool, FleetError> {
        Ok(self.inner.state.lock().await.replica(i)?.held_at.is_some())
    }

    /// Whether replica `i`'s process is running.
    pub async fn is_running(&self, i: usize) -> Result<bool, FleetError> {
        Ok(self.inner.state.lock().await.replica(i)?.process.is_some())
    }
}

impl State {
    fn replica(&self, i: usize) -> Result<&Replica, FleetError> {
        let len = self.replicas.len();
        self.replicas
            .get(i)
            .ok_or(FleetError::NoSuchReplica { index: i, len })
    }

    fn replica_mut(&mut self, i: usize) -> Result<&mut Replica, FleetError> {
        Ok(self.replica_and_history(i)?.0)
    }

    /// Replica `i` and the history it replays, borrowed together.
    fn replica_and_history(
        &mut self,
        i: usize,
    ) -> Result<(&mut Replica, &[MinedBlock]), FleetError> {
        let len = self.replicas.len();
        let replica = self
            .replicas
            .get_mut(i)
            .ok_or(FleetError::NoSuchReplica { index: i, len })?;
        Ok((replica, &self.history))
    }

    fn enqueue(&mut self, raw_tx: String) {
        if !self.queue.contains(&raw_tx) {
            self.queue.push(raw_tx);
        }
    }

    async fn mine(&mut self, opts: &FleetOptions) -> Result<u64, FleetError> {
        let height = self.history.len() as u64;
        let block = MinedBlock {
            timestamp: opts.genesis_timestamp + (height + 1) * opts.block_time_secs + self.reorgs,
            txs: self.queue.clone(),
        };
        let history = &self.history;
        let new_block = &block;
        let results = join_all(
            self.replicas
                .iter_mut()
                .filter(|r| r.process.is_some() && r.held_at.is_none())
                .map(|replica| async move {
                    replica.sync_to(history, height).await?;
                    replica.apply(new_block).await
                }),
        )
        .await;
        let mined_somewhere = self.replicas.iter().any(|r| r.synced > height);
        let first_error = results.into_iter().find_map(Result::err);
        // A block mined on any replica is part of the chain now; the replicas that
        // failed replay it on their next catch-up.
        if mined_somewhere || first_error.is_none() {
            tracing::debug!(height = height + 1, txs = block.txs.len(), "block mined");
            self.history.push(block);
            self.queue.clear();
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(height + 1),
        }
    }

    /// Brings every live replica to its target height (the head, or where it is held).
    async fn sync_live(&mut self) -> Result<(), FleetError> {
        let history = &self.history;
        let len = history.len() as u64;
        try_join_all(
            self.replicas
                .iter_mut()
                .filter(|r| r.process.is_some())
                .map(|replica| async move {
                    let target = replica.target(len);
                    replica.sync_to(history, target).await
                }),
        )
        .await?;
        Ok(())
    }
}

fn check_raw_tx(raw: String) -> Result<String, FleetError> {
    let valid = raw
        .strip_prefix("0x")
        .is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()));
    if valid {
        Ok(raw)
    } else {
        Err(FleetError::InvalidRawTx(raw))
    }
}

fn chain_tip(block: &Value) -> Result<ChainTip, FleetError> {
    const METHOD: &str = "eth_getBlockByNumber";
    let number = parse_quantity(METHOD, block.get("number").unwrap_or(&Value::Null))?;
    let hash =
        block
            .get("hash")
            .and_then(Value::as_str)
            .ok_or_else(|| FleetError::BadResponse {
                method: METHOD.into(),
                detail: format!("block without hash: {block}"),
            })?;
    Ok(ChainTip {
        number,
        hash: hash.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_tx_must_be_hex() {
        assert!(check_raw_tx("0x02f8".into()).is_ok());
        assert!(check_raw_tx("02f8".into()).is_err());
        assert!(check_raw_tx("0x".into()).is_err());
        assert!(check_raw_tx("0xzz".into()).is_err());
    }
}
