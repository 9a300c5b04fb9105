//! A small authoritative DNS server on a loopback UDP port, for tests of DNS
//! discovery: it answers A queries from a table the test changes, the way a
//! headless Service's records change as a StatefulSet scales. TTLs are one
//! second; unknown names get NXDOMAIN. Real DNS wire format (hickory-proto),
//! queried by the gateway's real resolver.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use parking_lot::Mutex;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use super::FleetError;

type Table = Arc<Mutex<HashMap<String, Vec<Ipv4Addr>>>>;

/// The server; stops when dropped.
pub struct DnsServer {
    addr: SocketAddr,
    table: Table,
    task: JoinHandle<()>,
}

impl DnsServer {
    pub async fn start() -> Result<DnsServer, FleetError> {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .map_err(|e| FleetError::Dns(format!("bind: {e}")))?;
        let addr = socket
            .local_addr()
            .map_err(|e| FleetError::Dns(e.to_string()))?;
        let table = Table::default();
        let task = tokio::spawn(serve(socket, table.clone()));
        Ok(DnsServer { addr, table, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the A records of `name` (no records: the name has none, NOERROR).
    pub fn set(&self, name: &str, addresses: &[Ipv4Addr]) {
        self.table.lock().insert(fqdn(name), addresses.to_vec());
    }

    /// Removes `name`: it gets NXDOMAIN, as a cluster DNS answers for a pod
    /// name once the StatefulSet scaled below that ordinal.
    pub fn remove(&self, name: &str) {
        self.table.lock().remove(&fqdn(name));
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn fqdn(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    if name.ends_with('.') {
        name
    } else {
        format!("{name}.")
    }
}

async fn serve(socket: UdpSocket, table: Table) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let Ok(query) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let answer = respond(&query, &table);
        if let Ok(bytes) = answer.to_vec() {
            let _ = socket.send_to(&bytes, peer).await;
        }
    }
}

fn respond(query: &Message, table: &Table) -> Message {
    let mut answer = Message::response(query.metadata.id, query.metadata.op_code);
    answer.metadata.authoritative = true;
    answer.metadata.recursion_desired = query.metadata.recursion_desired;
    answer.metadata.recursion_available = true;
    let table = table.lock();
    for q in &query.queries {
        answer.add_query(q.clone());
        match table.get(&fqdn(&q.name().to_ascii())) {
            None => {
                answer.metadata.response_code = ResponseCode::NXDomain;
            }
            Some(addresses) if q.query_type() == RecordType::A => {
                for ip in addresses {
                    answer.add_answer(Record::from_rdata(q.name().clone(), 1, RData::A(A(*ip))));
                }
            }
            Some(_) => {}
        }
    }
    answer
}
