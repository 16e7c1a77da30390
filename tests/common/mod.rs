//! Helpers shared by the integration tests (`mod common;`). Each test crate uses some of them.
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// `flowsentry replay [--config CFG] PCAP`, which must succeed: every event it printed, and its
/// stderr.
pub fn replay(config: Option<&Path>, pcap: &Path) -> (Vec<serde_json::Value>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowsentry"));
    cmd.arg("replay");
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let out = cmd.arg(pcap).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    let events = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (events, err)
}

/// A classic pcap (microseconds, Ethernet) of one-packet UDP datagrams 10.0.0.1:PORT →
/// 10.0.0.2:53 with one byte of payload, one per (time µs since the epoch, source port).
pub fn udp_pcap(path: &Path, packets: &[(i64, u16)]) {
    let mut b = Vec::new();
    b.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    for v in [0u32, 0, 65535, 1] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for (t, port) in packets {
        let mut frame = vec![0u8; 12];
        frame.extend_from_slice(&[0x08, 0x00]);
        frame.extend_from_slice(&[
            0x45, 0, 0, 29, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        frame.extend_from_slice(&port.to_be_bytes());
        frame.extend_from_slice(&[0x00, 0x35, 0, 9, 0, 0, 0x61]);
        b.extend_from_slice(&((t / 1_000_000) as u32).to_le_bytes());
        b.extend_from_slice(&((t % 1_000_000) as u32).to_le_bytes());
        b.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        b.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        b.extend_from_slice(&frame);
    }
    std::fs::write(path, b).unwrap();
}
