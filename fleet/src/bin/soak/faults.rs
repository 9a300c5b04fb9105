//! The chain and what goes wrong with it: the miner (one contract event and
//! one block a second on every replica), and a fault every 4-10 s chosen by
//! the seed: a replica killed and restarted behind the head it had, a replica
//! lagging, a reorg of 1-3 blocks, Redis SIGKILLed and restarted from its
//! append-only file, a config reload of both gateways, a burst of silent
//! sockets; and once, mid-run, one gateway restarted by SIGTERM.
//!
//! Faults run one after the other, each undone before the next starts, so
//! that at most one replica is away at a time: the fleet of three keeps a
//! majority serving, as an operator's would.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rpcgate_fleet::RedisServer;
use tokio::sync::Mutex;

use super::context::Soak;
use super::gateway::Setup;

/// One block a second, each with one event of the contract.
pub async fn miner(soak: Arc<Soak>, done: Arc<AtomicBool>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    loop {
        ticker.tick().await;
        if done.load(Ordering::Relaxed) {
            return;
        }
        n += 1;
        let _chain = soak.chain.lock().await;
        let data = format!("0x{n:064x}");
        if let Err(error) = soak.fleet.invoke(&soak.contract, &data, 100_000).await {
            eprintln!("soak: the block's event was not queued: {error}");
        }
        match soak.fleet.mine().await {
            Ok(height) => {
                soak.record.note("blocks mined", 1);
                tracing::debug!(height, "soak: mined");
            }
            // The harness's own trouble, not the gateway's: shown in the totals.
            Err(error) => {
                soak.record.note("fleet: mining failed on a replica", 1);
                eprintln!("soak: mining failed: {error}");
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    RestartBehind,
    Lag,
    Reorg,
    Redis,
    Reload,
    Silent,
}

const FAULTS: [Fault; 6] = [
    Fault::RestartBehind,
    Fault::Lag,
    Fault::Reorg,
    Fault::Redis,
    Fault::Reload,
    Fault::Silent,
];

/// Runs faults until `until` seconds; the gateway restart at `restart_at` seconds.
pub async fn scheduler(
    soak: Arc<Soak>,
    setup: Arc<Setup>,
    redis: Arc<Mutex<RedisServer>>,
    seed: u64,
    restart_at: f64,
    until: f64,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut restarted = false;
    let mut outage_done = false;
    loop {
        let gap = Duration::from_millis(rng.u64(4_000..=10_000));
        let started = tokio::time::Instant::now();
        if !restarted && soak.record.now() >= restart_at {
            restarted = true;
            restart_gateway(&soak, &setup).await;
        } else if soak.inject.outage && !outage_done && soak.record.now() > 15.0 {
            outage_done = true;
            outage(&soak).await;
        } else {
            let fault = FAULTS[rng.usize(..FAULTS.len())];
            // SOAK_ONLY_RESTARTS=1: every fault a restart behind (to chase
            // a case that follows restarts); the seed still picks the rest.
            let fault = if std::env::var_os("SOAK_ONLY_RESTARTS").is_some() {
                Fault::RestartBehind
            } else {
                fault
            };
            run(&soak, &setup, &redis, &mut rng, fault).await;
        }
        let rest = gap.saturating_sub(started.elapsed());
        if soak.record.now() + rest.as_secs_f64() >= until || !soak.pause(rest).await {
            return;
        }
    }
}

async fn run(
    soak: &Soak,
    setup: &Setup,
    redis: &Mutex<RedisServer>,
    rng: &mut fastrand::Rng,
    fault: Fault,
) {
    let record = &soak.record;
    let replica = rng.usize(..soak.fleet.len());
    match fault {
        Fault::RestartBehind => {
            let behind = rng.u64(1..=3);
            let f = record.fault_start(format!(
                "replica {replica} killed, restarted {behind} blocks behind"
            ));
            // Not under `soak.chain`: the fleet replays the restarted replica
            // while the others go on mining (and the wallet sending), as a
            // chain does while one node restarts; the gateway sends nothing
            // to a node it has not probed since it came back.
            let restarted = soak.fleet.restart_behind(replica, behind).await;
            match restarted {
                Ok(at) => tracing::info!(replica, at, "soak: replica back behind"),
                Err(error) => eprintln!("soak: restart behind failed: {error}"),
            }
            soak.pause(Duration::from_millis(rng.u64(1_000..=3_000)))
                .await;
            release(soak, replica).await;
            record.fault_end(f);
        }
        Fault::Lag => {
            let secs = rng.u64(2..=5);
            let f = record.fault_start(format!("replica {replica} lagging for {secs}s"));
            if let Err(error) = soak.fleet.hold(replica).await {
                eprintln!("soak: hold failed: {error}");
            }
            soak.pause(Duration::from_secs(secs)).await;
            release(soak, replica).await;
            record.fault_end(f);
        }
        Fault::Reorg => {
            let depth = rng.u64(1..=3);
            let f = record.fault_start(format!("reorg of {depth} block(s)"));
            match soak.fleet.checkpoint().await {
                Ok(checkpoint) => {
                    // The miner adds `depth` blocks on top of the checkpoint; then
                    // they are replaced by as many others.
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(depth * 3 + 5);
                    while soak.fleet.height().await < checkpoint.height() + depth
                        && tokio::time::Instant::now() < deadline
                        && soak.pause(Duration::from_millis(100)).await
                    {}
                    let _chain = soak.chain.lock().await;
                    if let Err(error) = soak.fleet.reorg_to(&checkpoint, depth).await {
                        eprintln!("soak: reorg failed: {error}");
                    }
                }
                Err(error) => eprintln!("soak: checkpoint failed: {error}"),
            }
            record.fault_end(f);
        }
        Fault::Redis => {
            let f = record.fault_start("redis SIGKILLed, restarted from its AOF");
            let mut server = redis.lock().await;
            if let Err(error) = server.kill().await {
                eprintln!("soak: redis kill failed: {error}");
            }
            soak.pause(Duration::from_millis(rng.u64(200..=1_500)))
                .await;
            if let Err(error) = server.restart().await {
                eprintln!("soak: redis did not come back: {error}");
            }
            record.fault_end(f);
        }
        Fault::Reload => {
            let f = record.fault_start("config reload (SIGHUP) of both gateways");
            for gateway in &soak.gateways {
                if let Err(error) = gateway.reload(setup) {
                    eprintln!("soak: reload failed: {error}");
                }
            }
            record.fault_end(f);
        }
        Fault::Silent => {
            let per_gateway = 100;
            let f = record.fault_start(format!("{per_gateway} silent sockets on each gateway"));
            let mut held = Vec::new();
            for gateway in &soak.gateways {
                for _ in 0..per_gateway {
                    if let Ok(socket) =
                        tokio::net::TcpStream::connect(("127.0.0.1", gateway.port)).await
                    {
                        held.push(socket);
                    }
                }
            }
            soak.pause(Duration::from_secs(3)).await;
            drop(held);
            record.fault_end(f);
        }
    }
}

async fn release(soak: &Soak, replica: usize) {
    let _chain = soak.chain.lock().await;
    if let Err(error) = soak.fleet.release(replica).await {
        eprintln!("soak: release failed: {error}");
    }
}

async fn restart_gateway(soak: &Soak, setup: &Setup) {
    let Some(gateway) = soak.gateways.last() else {
        return;
    };
    let f = soak.record.fault_start(format!(
        "gateway {} restarted (SIGTERM, drain, start)",
        gateway.index
    ));
    match gateway.restart(setup).await {
        Ok(status) => eprintln!("soak: gateway restarted (the old process: {status})"),
        Err(error) => eprintln!("soak: gateway restart failed: {error}"),
    }
    soak.record.fault_end(f);
}

/// Every replica away for 3 s: no gateway can answer (INJECT=outage).
async fn outage(soak: &Soak) {
    let f = soak
        .record
        .fault_start("INJECTED: every replica stopped for 3s");
    for i in 0..soak.fleet.len() {
        let _ = soak.fleet.stop(i).await;
    }
    soak.pause(Duration::from_secs(3)).await;
    let _chain = soak.chain.lock().await;
    for i in 0..soak.fleet.len() {
        if let Err(error) = soak.fleet.restart(i).await {
            eprintln!("soak: restart after outage failed: {error}");
        }
    }
    soak.record.fault_end(f);
}

/// Brings every replica back and up to the head, before the chain is checked.
pub async fn heal(soak: &Soak) {
    for i in 0..soak.fleet.len() {
        if !soak.fleet.is_running(i).await.unwrap_or(true) {
            let _chain = soak.chain.lock().await;
            let _ = soak.fleet.restart(i).await;
        }
        release(soak, i).await;
    }
}
