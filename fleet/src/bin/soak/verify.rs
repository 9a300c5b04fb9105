//! The streams checked against the chain as it ended: the canonical block of
//! every height and the contract's canonical logs, read from a replica once
//! every replica is back at the head.
//!
//! Within a segment of a stream, from the lowest to the highest canonical item
//! it delivered, every canonical block (or log) must have been delivered, and
//! nothing twice; a log of a block that left the chain must have been taken
//! back (`removed: true`) once the stream had moved past it.

use std::collections::{HashMap, HashSet};

use rpcgate_fleet::Fleet;
use serde_json::{json, Value};

use super::context::quantity;
use super::record::{Count, Record};
use super::streams::{Item, Kind, Stream};

pub struct Chain {
    /// Height -> canonical hash (index 0: genesis).
    hashes: Vec<String>,
    numbers: HashMap<String, u64>,
    /// (block hash, log index) -> block number, for the contract's logs.
    logs: HashMap<(String, u64), u64>,
}

impl Chain {
    pub async fn read(fleet: &Fleet, contract: &str) -> Result<Chain, String> {
        let rpc = fleet.rpc(0).await.map_err(|e| e.to_string())?;
        let height = fleet.height().await;
        let mut hashes = Vec::with_capacity(height as usize + 1);
        for n in 0..=height {
            let block = rpc
                .call("eth_getBlockByNumber", json!([format!("{n:#x}"), false]))
                .await
                .map_err(|e| e.to_string())?;
            let hash = block
                .get("hash")
                .and_then(Value::as_str)
                .ok_or(format!("no block {n}"))?;
            hashes.push(hash.to_owned());
        }
        let numbers = hashes
            .iter()
            .enumerate()
            .map(|(n, h)| (h.clone(), n as u64))
            .collect();
        let found = rpc
            .call(
                "eth_getLogs",
                json!([{ "fromBlock": "0x0", "toBlock": "latest", "address": contract }]),
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut logs = HashMap::new();
        for log in found.as_array().into_iter().flatten() {
            let hash = log.get("blockHash").and_then(Value::as_str);
            let index = log.get("logIndex").and_then(quantity);
            let number = log.get("blockNumber").and_then(quantity);
            if let (Some(hash), Some(index), Some(number)) = (hash, index, number) {
                logs.insert((hash.to_owned(), index), number);
            }
        }
        Ok(Chain {
            hashes,
            numbers,
            logs,
        })
    }

    pub fn height(&self) -> usize {
        self.hashes.len().saturating_sub(1)
    }
}

pub fn check(stream: &Stream, chain: &Chain, record: &Record) {
    let (dup, miss, not_removed) = match stream.kind {
        Kind::Heads => (Count::HeadsDuplicates, Count::HeadsGaps, None),
        Kind::BlockFilter => (Count::BlockFilterDuplicates, Count::BlockFilterMisses, None),
        Kind::Logs => (
            Count::LogsDuplicates,
            Count::LogsGaps,
            Some(Count::LogsNotRemoved),
        ),
        Kind::LogFilter => (
            Count::LogFilterDuplicates,
            Count::LogFilterMisses,
            Some(Count::LogFilterNotRemoved),
        ),
    };
    for segment in &stream.segments {
        match not_removed {
            None => check_blocks(stream, segment, chain, record, dup, miss),
            Some(not_removed) => check_logs(stream, segment, chain, record, dup, miss, not_removed),
        }
    }
}

/// When a miss of height `n` showed: the first later delivery above it.
fn noticed(segment: &[Item], chain: &Chain, n: u64) -> f64 {
    segment
        .iter()
        .find(|i| number_of(i, chain).is_some_and(|m| m > n))
        .or(segment.last())
        .map_or(0.0, |i| i.at)
}

fn number_of(item: &Item, chain: &Chain) -> Option<u64> {
    item.number
        .or_else(|| chain.numbers.get(&item.block_hash).copied())
}

fn check_blocks(
    stream: &Stream,
    segment: &[Item],
    chain: &Chain,
    record: &Record,
    dup: Count,
    miss: Count,
) {
    let mut seen = HashSet::new();
    for item in segment {
        if !seen.insert(item.block_hash.as_str()) {
            record.fail_at(
                dup,
                item.at,
                format!(
                    "{}: block {:?} {} again",
                    stream.name, item.number, item.block_hash
                ),
            );
        }
    }
    let canonical: Vec<u64> = segment
        .iter()
        .filter_map(|i| chain.numbers.get(&i.block_hash).copied())
        .collect();
    let (Some(&lo), Some(&hi)) = (canonical.iter().min(), canonical.iter().max()) else {
        return;
    };
    for n in lo..=hi {
        let hash = &chain.hashes[n as usize];
        if !seen.contains(hash.as_str()) {
            record.fail_at(
                miss,
                noticed(segment, chain, n),
                format!(
                    "{}: canonical block {n} {hash} never delivered",
                    stream.name
                ),
            );
        }
    }
}

fn check_logs(
    stream: &Stream,
    segment: &[Item],
    chain: &Chain,
    record: &Record,
    dup: Count,
    miss: Count,
    not_removed: Count,
) {
    // What the client holds at the end: delivered, minus what was taken back.
    let mut live: HashMap<(String, u64), &Item> = HashMap::new();
    for item in segment {
        let Some(index) = item.log_index else {
            continue;
        };
        let key = (item.block_hash.clone(), index);
        if item.removed {
            live.remove(&key);
        } else if live.insert(key, item).is_some() {
            record.fail_at(
                dup,
                item.at,
                format!(
                    "{}: log {index} of block {:?} {} again",
                    stream.name, item.number, item.block_hash
                ),
            );
        }
    }
    let canonical: Vec<u64> = live
        .keys()
        .filter_map(|k| chain.logs.get(k).copied())
        .collect();
    let (Some(&lo), Some(&hi)) = (canonical.iter().min(), canonical.iter().max()) else {
        return;
    };
    let mut missing: Vec<(u64, &(String, u64))> = chain
        .logs
        .iter()
        .filter(|(k, &n)| n >= lo && n <= hi && !live.contains_key(*k))
        .map(|(k, &n)| (n, k))
        .collect();
    missing.sort();
    for (n, (hash, index)) in missing {
        record.fail_at(
            miss,
            noticed(segment, chain, n),
            format!(
                "{}: canonical log {index} of block {n} {hash} never delivered",
                stream.name
            ),
        );
    }
    let mut stale: Vec<&&Item> = live
        .iter()
        .filter(|(k, i)| !chain.logs.contains_key(*k) && i.number.is_some_and(|n| n < hi))
        .map(|(_, i)| i)
        .collect();
    stale.sort_by(|a, b| a.at.total_cmp(&b.at));
    for item in stale {
        record.fail_at(
            not_removed,
            item.at,
            format!(
                "{}: log of block {:?} {} left the chain, never removed",
                stream.name, item.number, item.block_hash
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks 0..=5, and one log in each of blocks 1..=5.
    fn chain() -> Chain {
        let hashes: Vec<String> = (0..=5).map(|n| format!("0xc{n}")).collect();
        let numbers = hashes
            .iter()
            .enumerate()
            .map(|(n, h)| (h.clone(), n as u64))
            .collect();
        let logs = (1..=5u64).map(|n| ((format!("0xc{n}"), 0), n)).collect();
        Chain {
            hashes,
            numbers,
            logs,
        }
    }

    fn block(n: u64, hash: &str) -> Item {
        Item {
            at: n as f64,
            block_hash: hash.into(),
            number: Some(n),
            log_index: None,
            removed: false,
        }
    }

    fn log(n: u64, hash: &str, removed: bool) -> Item {
        Item {
            log_index: Some(0),
            removed,
            ..block(n, hash)
        }
    }

    fn counts(stream: Stream) -> BTreeMap<Count, u64> {
        let record = Record::new();
        check(&stream, &chain(), &record);
        record
            .tallies()
            .into_iter()
            .map(|(c, t)| (c, t.n))
            .collect()
    }

    use std::collections::BTreeMap;

    #[test]
    fn heads_in_order_and_a_reorg_are_clean() {
        let heads = vec![
            block(1, "0xc1"),
            block(2, "0xorphan"),
            block(2, "0xc2"),
            block(3, "0xc3"),
        ];
        assert!(counts(Stream::recorded(Kind::Heads, vec![heads])).is_empty());
    }

    #[test]
    fn a_missing_head_is_a_gap_and_a_repeated_one_a_duplicate() {
        let heads = vec![block(1, "0xc1"), block(3, "0xc3"), block(3, "0xc3")];
        let found = counts(Stream::recorded(Kind::Heads, vec![heads]));
        assert_eq!(found.get(&Count::HeadsGaps), Some(&1));
        assert_eq!(found.get(&Count::HeadsDuplicates), Some(&1));
    }

    #[test]
    fn gaps_are_not_looked_for_across_segments() {
        let stream = Stream::recorded(
            Kind::Heads,
            vec![vec![block(1, "0xc1")], vec![block(4, "0xc4")]],
        );
        assert!(counts(stream).is_empty());
    }

    #[test]
    fn a_reorged_log_must_be_removed() {
        let taken_back = vec![
            log(1, "0xc1", false),
            log(2, "0xorphan", false),
            log(2, "0xorphan", true),
            log(2, "0xc2", false),
            log(3, "0xc3", false),
        ];
        assert!(counts(Stream::recorded(Kind::Logs, vec![taken_back])).is_empty());
        let left = vec![
            log(1, "0xc1", false),
            log(2, "0xorphan", false),
            log(2, "0xc2", false),
            log(3, "0xc3", false),
        ];
        let found = counts(Stream::recorded(Kind::LogFilter, vec![left]));
        assert_eq!(found.get(&Count::LogFilterNotRemoved), Some(&1));
    }

    #[test]
    fn a_missing_log_is_a_gap_and_a_repeated_one_a_duplicate() {
        let logs = vec![
            log(1, "0xc1", false),
            log(1, "0xc1", false),
            log(3, "0xc3", false),
        ];
        let found = counts(Stream::recorded(Kind::Logs, vec![logs]));
        assert_eq!(found.get(&Count::LogsGaps), Some(&1));
        assert_eq!(found.get(&Count::LogsDuplicates), Some(&1));
    }
}
