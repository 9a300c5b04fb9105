//! The demo's background miner: a block every interval, and now and then one replica
//! lagging behind for a few blocks, so a gateway in front of the fleet has something to
//! route around.
//!
//! The task holds only a weak reference to the fleet: the autominer must not keep the
//! nodes alive after the demo drops its [`Fleet`].

use std::sync::Weak;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use super::lockstep::{Fleet, Inner};

/// How many blocks a lagging replica misses, at least and at most.
const LAG_BLOCKS: std::ops::RangeInclusive<u64> = 2..=4;

/// Handle to a running autominer. Dropping it aborts the task at once (a replica it
/// held back then stays held); [`AutoMiner::stop`] releases that replica first.
pub struct AutoMiner {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl AutoMiner {
    /// Stops mining, releases a replica held back by the miner, and waits for the task.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for AutoMiner {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

struct Lag {
    replica: usize,
    until_height: u64,
}

pub(crate) fn spawn(fleet: Weak<Inner>, interval: Duration, lag_every: Option<u32>) -> AutoMiner {
    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let lag_every = lag_every.filter(|&n| n > 0).map(u64::from);
    let task = tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        ticker.tick().await; // the first tick is immediate
        let mut lag: Option<Lag> = None;
        let mut mined: u64 = 0;
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                _ = ticker.tick() => {}
            }
            let Some(inner) = fleet.upgrade() else { return };
            let fleet = Fleet::from_inner(inner);
            let height = match fleet.mine().await {
                Ok(height) => height,
                Err(error) => {
                    tracing::warn!(%error, "autominer: mining failed");
                    continue;
                }
            };
            mined += 1;
            tracing::info!(height, "autominer: block mined");
            lag = step_lag(&fleet, lag, height, mined, lag_every).await;
        }
        if let (Some(lag), Some(inner)) = (lag, fleet.upgrade()) {
            if let Err(error) = Fleet::from_inner(inner).release(lag.replica).await {
                tracing::warn!(%error, replica = lag.replica, "autominer: release failed");
            }
        }
    });
    AutoMiner {
        stop: Some(stop_tx),
        task: Some(task),
    }
}

/// Ends a lag that has lasted long enough, or starts one every `lag_every` blocks.
async fn step_lag(
    fleet: &Fleet,
    lag: Option<Lag>,
    height: u64,
    mined: u64,
    lag_every: Option<u64>,
) -> Option<Lag> {
    if let Some(lag) = lag {
        if height < lag.until_height {
            return Some(lag);
        }
        return match fleet.release(lag.replica).await {
            Ok(()) => {
                tracing::info!(
                    replica = lag.replica,
                    height,
                    "autominer: lagging replica caught up"
                );
                None
            }
            Err(error) => {
                tracing::warn!(%error, replica = lag.replica, "autominer: release failed");
                Some(lag)
            }
        };
    }
    let every = lag_every?;
    // Holding the only replica would stop the whole chain, not lag one node.
    if !mined.is_multiple_of(every) || fleet.len() < 2 {
        return None;
    }
    let replica = fastrand::usize(..fleet.len());
    if fleet.is_held(replica).await.unwrap_or(true) {
        return None;
    }
    match fleet.hold(replica).await {
        Ok(()) => {
            let blocks = fastrand::u64(LAG_BLOCKS);
            tracing::info!(replica, height, blocks, "autominer: replica lagging");
            Some(Lag {
                replica,
                until_height: height + blocks,
            })
        }
        Err(error) => {
            tracing::warn!(%error, replica, "autominer: hold failed");
            None
        }
    }
}
