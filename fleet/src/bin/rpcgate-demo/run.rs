//! The demo itself: the gateway's main job on a ready local fleet.
//!
//! Starts a lockstep fleet of real anvil replicas (see [`rpcgate_fleet::Fleet`]) that
//! produces a block every `block_time` and now and then holds one replica
//! back, puts a gateway in front of it, and prints what to try. Every few
//! seconds it prints the gateway's view, so the routing decisions can be
//! watched: the lagging replica loses its eligibility and gets it back.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rpcgate::config::Config;
use rpcgate::edge::Server;
use rpcgate_fleet::{Fleet, FleetError, FleetOptions};

pub struct DemoOptions {
    pub listen: SocketAddr,
    pub replicas: usize,
    pub block_time: Duration,
    /// Hold one replica back every this many blocks (`None`: never).
    pub lag_every: Option<u32>,
    /// Raise the connection caps and the anonymous budget for this many
    /// clients from one host (a load test); `None`: the demo's own limits.
    pub load_clients: Option<usize>,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("starting the anvil fleet: {0}")]
    Fleet(#[from] FleetError),
    #[error("the demo config is invalid: {0}")]
    Config(#[from] rpcgate::config::ConfigError),
    #[error("cannot listen on {addr}: {source} (choose another with --listen)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Runs until `shutdown` completes; everything started is stopped on return.
pub async fn run(
    opts: DemoOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DemoError> {
    let block_secs = opts.block_time.as_secs().max(1);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1_700_000_000, |d| d.as_secs());
    let fleet = Fleet::start(FleetOptions {
        replicas: opts.replicas,
        chain_id: 31337,
        // Block n is stamped genesis + n * block_time: close to the wall clock.
        genesis_timestamp: now,
        block_time_secs: block_secs,
    })
    .await?;
    fleet
        .transfer(rpcgate_fleet::RECEIVER_ACCOUNT, 10u128.pow(18))
        .await?;
    fleet.mine().await?;

    let yaml = demo_yaml(&fleet, opts.listen, opts.load_clients);
    let config = Config::from_yaml(&yaml)?;
    let server = Server::bind(&config)
        .await
        .map_err(|source| DemoError::Bind {
            addr: opts.listen,
            source,
        })?;
    let addr = server.local_addr();
    let admin = server.admin_addr();
    let gateway = server.gateway();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(
        async move {
            let _ = stop_rx.await;
        },
        Duration::from_secs(5),
    ));
    let miner = fleet.spawn_autominer(Duration::from_secs(block_secs), opts.lag_every);

    println!(
        "\nrpcgate-demo: {} anvil replicas, a block every {block_secs}s{}.",
        opts.replicas,
        if opts.lag_every.is_some() {
            ", one replica lagging now and then"
        } else {
            ""
        }
    );
    println!("The gateway's config:\n\n{yaml}");
    println!("JSON-RPC at http://{addr}/  (also http://{addr}/dev)");
    println!("Try:\n  curl -s -H 'content-type: application/json' \\\n    -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_getBlockByNumber\",\"params\":[\"latest\",false]}}' http://{addr}/");
    println!("Status of every replica as the gateway sees it: curl -s http://{admin}/status");
    println!("Ctrl-C stops the gateway and the replicas.\n");

    let status = async {
        let mut tick = tokio::time::interval(Duration::from_secs(block_secs));
        loop {
            tick.tick().await;
            let routes = gateway.table();
            let Some(net) = routes.resolve("/").map(|(network, _)| network) else {
                continue;
            };
            let view = net.view();
            let mut line = format!(
                "served head {:>5} |",
                view.served_head.map_or("-".into(), |h| h.to_string())
            );
            for b in &view.backends {
                let state = match &b.ineligible {
                    None => "eligible".to_string(),
                    Some(why) => why.to_string(),
                };
                line.push_str(&format!(" {} head {} ({state}) |", b.backend.name, b.head));
            }
            println!("{line}");
        }
    };
    tokio::select! {
        _ = shutdown => {}
        _ = status => {}
    }
    println!("\nstopping the demo");
    miner.stop().await;
    let _ = stop_tx.send(());
    let _ = serving.await;
    drop(fleet);
    Ok(())
}

fn demo_yaml(fleet: &Fleet, listen: SocketAddr, load_clients: Option<usize>) -> String {
    let upstreams: Vec<(String, String)> = (0..fleet.len())
        .map(|i| (fleet.http_url(i), fleet.ws_url(i)))
        .collect();
    match load_clients {
        Some(n) => rpcgate_fleet::demo_config::load_yaml(fleet.chain_id(), listen, &upstreams, n),
        None => rpcgate_fleet::demo_config::demo_yaml(fleet.chain_id(), listen, &upstreams),
    }
}
