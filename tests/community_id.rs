//! `flows --community-id [--community-id-seed N]` adds a last CSV column with each flow's Community ID v1. The
//! expected values come from the reference implementation (`communityid` 1.5.0 on PyPI);
//! `tests/parity/communityid_parity.py` (CI) checks every flow of the shared captures.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

fn flows(args: &[&str]) -> Vec<Vec<String>> {
    let pcap =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/nfstream__WebattackSQLinj.pcap");
    let out = Command::new(env!("CARGO_BIN_EXE_flowsentry"))
        .args(["flows", "--columns", "cfm4"])
        .args(args)
        .arg(pcap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

fn id_of(rows: &[Vec<String>], flow_id: &str) -> String {
    let row = rows.iter().find(|r| r[0] == flow_id).unwrap();
    row.last().unwrap().clone()
}

#[test]
fn community_id_column_matches_the_reference_for_seed_0_and_7() {
    let rows = flows(&["--community-id"]);
    assert_eq!(rows[0].last().unwrap(), "Community ID");
    assert_eq!(rows.len(), 10);
    for r in &rows[1..] {
        let id = r.last().unwrap();
        assert!(id.starts_with("1:") && id.len() == 30, "{id}");
    }
    let flow = "172.16.0.1-192.168.10.50-36202-80-6";
    assert_eq!(id_of(&rows, flow), "1:F1yECjBg8GRayAhhSLvACIOtYB4=");
    let seeded = flows(&["--community-id", "--community-id-seed", "7"]);
    assert_eq!(id_of(&seeded, flow), "1:52fOKdENtNC+lrXWUi1xObIZB2E=");
    // Without the flag, no column.
    let plain = flows(&[]);
    assert_eq!(plain[0].len() + 1, rows[0].len());
}
