//! One replica of the fleet: its anvil process, how far along the fleet's history it
//! is, and its snapshots for the fleet's checkpoints.
//!
//! Everything a replica does is a replay of [`MinedBlock`]s. Applying one is: drop the
//! transaction pool, send the block's raw transactions, `evm_mine` with the block's
//! timestamp. Dropping the pool first matters: a transaction sent straight to a node
//! (for instance through the gateway under test) must not slip into an earlier block on
//! that node only. But the node must not lose it either: a send the gateway handed to
//! this node just before the block, and that the fleet queues for the next one, stays
//! in the node's pool (its pending count includes it) as it would on a real node. So
//! mining a new block ([`Replica::apply`]) puts back the pool's other transactions after
//! `evm_mine`; a replay ([`Replica::sync_to`]) does not look (a replica catching up
//! serves no sends).

use std::collections::HashMap;

use serde_json::{json, Value};

use super::anvil::{Anvil, AnvilOptions};
use super::rpc::RpcClient;
use super::FleetError;

/// One block of the fleet's history: enough to mine it again, identically.
#[derive(Debug, Clone)]
pub(super) struct MinedBlock {
    pub(super) timestamp: u64,
    pub(super) txs: Vec<String>,
}

pub(super) struct Replica {
    pub(super) index: usize,
    pub(super) port: u16,
    pub(super) process: Option<Anvil>,
    pub(super) rpc: RpcClient,
    /// History blocks applied to this process.
    pub(super) synced: u64,
    /// Held back: never advanced past this height.
    pub(super) held_at: Option<u64>,
    /// Checkpoint id -> this process's snapshot for it.
    pub(super) snapshots: HashMap<u64, Snapshot>,
}

#[derive(Debug, Clone)]
pub(super) struct Snapshot {
    id: Value,
    synced: u64,
    seq: u64,
    /// Base fee of the block after the snapshot, as a hex quantity.
    next_base_fee: Value,
}

impl Replica {
    pub(super) fn target(&self, fleet_height: u64) -> u64 {
        self.held_at.map_or(fleet_height, |at| at.min(fleet_height))
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, FleetError> {
        self.rpc
            .call(method, params)
            .await
            .map_err(|e| e.on_replica(self.index))
    }

    pub(super) async fn sync_to(
        &mut self,
        history: &[MinedBlock],
        target: u64,
    ) -> Result<(), FleetError> {
        while self.synced < target {
            let block = &history[self.synced as usize];
            self.mine_exactly(block).await?;
        }
        Ok(())
    }

    /// Mines `block` on top of this replica's head, keeping the other
    /// transactions its pool had (see the module docs).
    pub(super) async fn apply(&mut self, block: &MinedBlock) -> Result<(), FleetError> {
        let kept = self.pool_raws().await?;
        self.mine_exactly(block).await?;
        for raw in kept {
            if block.txs.iter().any(|tx| tx.eq_ignore_ascii_case(&raw)) {
                continue;
            }
            // Best effort, as gossip is: a transaction the new block made
            // invalid is refused, and that is the node's business.
            let _ = self.call("eth_sendRawTransaction", json!([raw])).await;
        }
        Ok(())
    }

    /// The raw transactions in this replica's pool (pending and queued).
    async fn pool_raws(&self) -> Result<Vec<String>, FleetError> {
        let content = self.call("txpool_content", json!([])).await?;
        let hashes: Vec<String> = ["pending", "queued"]
            .iter()
            .filter_map(|part| content[part].as_object())
            .flat_map(|by_sender| by_sender.values())
            .filter_map(|by_nonce| by_nonce.as_object())
            .flat_map(|txs| txs.values())
            .filter_map(|tx| tx["hash"].as_str().map(str::to_owned))
            .collect();
        let mut raws = Vec::with_capacity(hashes.len());
        for hash in hashes {
            if let Value::String(raw) = self
                .call("eth_getRawTransactionByHash", json!([hash]))
                .await?
            {
                raws.push(raw);
            }
        }
        Ok(raws)
    }

    /// Drops the pool, sends `block`'s transactions and mines them alone.
    async fn mine_exactly(&mut self, block: &MinedBlock) -> Result<(), FleetError> {
        mine_exactly(&self.rpc, self.index, block).await?;
        self.synced += 1;
        Ok(())
    }

    /// Takes an `evm_snapshot` for `checkpoint`. `next_base_fee` is what the next
    /// block's base fee must be; `None` asks the node, which knows it except right
    /// after an `evm_revert`.
    pub(super) async fn snapshot(
        &mut self,
        checkpoint: u64,
        seq: &mut u64,
        next_base_fee: Option<Value>,
    ) -> Result<(), FleetError> {
        let next_base_fee = match next_base_fee {
            Some(fee) => fee,
            None => self.next_base_fee().await?,
        };
        let id = self.call("evm_snapshot", json!([])).await?;
        self.snapshots.insert(
            checkpoint,
            Snapshot {
                id,
                synced: self.synced,
                seq: *seq,
                next_base_fee,
            },
        );
        *seq += 1;
        Ok(())
    }

    /// The base fee the next block will get: the last entry of `eth_feeHistory`.
    async fn next_base_fee(&self) -> Result<Value, FleetError> {
        let history = self
            .call("eth_feeHistory", json!(["0x1", "latest", []]))
            .await?;
        history["baseFeePerGas"]
            .as_array()
            .and_then(|fees| fees.last())
            .cloned()
            .ok_or_else(|| {
                FleetError::BadResponse {
                    method: "eth_feeHistory".into(),
                    detail: format!("no baseFeePerGas in {history}"),
                }
                .on_replica(self.index)
            })
    }

    /// Returns this replica to its snapshot for `checkpoint` (then takes a fresh one, as
    /// `evm_revert` consumes it), or rebuilds it from genesis when it has none.
    ///
    /// `evm_revert` restores the chain but not anvil's base fee tracker, which keeps the
    /// value computed after the reverted blocks; left alone, the next block would get a
    /// different base fee (and hash) than on a replica that replays from genesis. So the
    /// base fee recorded with the snapshot is set again.
    pub(super) async fn revert(
        &mut self,
        checkpoint: u64,
        seq: &mut u64,
        anvil_opts: &AnvilOptions,
    ) -> Result<(), FleetError> {
        if let Some(snapshot) = self.snapshots.get(&checkpoint).cloned() {
            let reverted = self.call("evm_revert", json!([snapshot.id])).await;
            // anvil deletes the reverted snapshot and every later one.
            self.snapshots.retain(|_, s| s.seq < snapshot.seq);
            if let Ok(Value::Bool(true)) = reverted {
                self.synced = snapshot.synced;
                self.call(
                    "anvil_setNextBlockBaseFeePerGas",
                    json!([snapshot.next_base_fee]),
                )
                .await?;
                return self
                    .snapshot(checkpoint, seq, Some(snapshot.next_base_fee))
                    .await;
            }
            tracing::warn!(
                replica = self.index,
                ?reverted,
                "evm_revert failed, rebuilding"
            );
        }
        self.respawn(anvil_opts).await
    }

    /// Replaces the process by a fresh one at genesis on the same port.
    pub(super) async fn respawn(&mut self, anvil_opts: &AnvilOptions) -> Result<(), FleetError> {
        if let Some(mut process) = self.process.take() {
            process.kill().await.map_err(|e| e.on_replica(self.index))?;
        }
        self.snapshots.clear();
        self.synced = 0;
        let process = Anvil::spawn_on_port(anvil_opts, self.port)
            .await
            .map_err(|e| e.on_replica(self.index))?;
        // A new client: pooled connections to the old process are dead.
        self.rpc = RpcClient::new(&process.http_url())?;
        self.process = Some(process);
        Ok(())
    }
}

/// Replays `history` on the node behind `rpc` (replica `index`, fresh, at
/// genesis): what [`Replica::sync_to`] does, without borrowing the replica,
/// so that the fleet can go on mining meanwhile.
pub(super) async fn replay(
    rpc: &RpcClient,
    index: usize,
    history: &[MinedBlock],
) -> Result<(), FleetError> {
    for block in history {
        mine_exactly(rpc, index, block).await?;
    }
    Ok(())
}

/// Drops the pool of the node behind `rpc`, sends `block`'s transactions and
/// mines them alone.
async fn mine_exactly(rpc: &RpcClient, index: usize, block: &MinedBlock) -> Result<(), FleetError> {
    let call = |method: &'static str, params: Value| async move {
        rpc.call(method, params)
            .await
            .map_err(|e| e.on_replica(index))
    };
    call("anvil_dropAllTransactions", json!([])).await?;
    for raw in &block.txs {
        match call("eth_sendRawTransaction", json!([raw])).await {
            Ok(_) => {}
            Err(FleetError::Replica { source, .. }) if is_already_known(&source) => {}
            Err(error) => return Err(error),
        }
    }
    call("evm_mine", json!([block.timestamp])).await?;
    Ok(())
}

fn is_already_known(error: &FleetError) -> bool {
    match error {
        FleetError::Rpc { message, .. } => {
            let message = message.to_ascii_lowercase();
            message.contains("already imported") || message.contains("already known")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn already_known_errors_are_recognised() {
        let rpc = |message: &str| FleetError::Rpc {
            method: "eth_sendRawTransaction".into(),
            code: -32003,
            message: message.into(),
        };
        assert!(is_already_known(&rpc("transaction already imported")));
        assert!(is_already_known(&rpc("Already known")));
        assert!(!is_already_known(&rpc("nonce too low")));
    }

    #[test]
    fn held_replica_targets_its_hold_height() {
        let replica = Replica {
            index: 0,
            port: 1,
            process: None,
            rpc: RpcClient::new("http://127.0.0.1:1").unwrap(),
            synced: 4,
            held_at: Some(4),
            snapshots: HashMap::new(),
        };
        assert_eq!(replica.target(10), 4);
        assert_eq!(replica.target(2), 2);
        let free = Replica {
            held_at: None,
            ..replica
        };
        assert_eq!(free.target(10), 10);
    }
}
