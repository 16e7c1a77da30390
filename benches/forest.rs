//! Scoring speed of the shipped 100-tree forest: flows/s on one core.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flowsentry::features::{EndReason, FlowRecord, NUM_FEATURES};
use flowsentry::forest::Model;
use flowsentry::forest::train::Rng;

fn records(n: usize) -> Vec<FlowRecord> {
    let mut rng = Rng::new(1);
    (0..n)
        .map(|_| {
            let mut values = [0.0; NUM_FEATURES];
            for v in values.iter_mut() {
                *v = (rng.unit() * 1e6).floor();
            }
            FlowRecord {
                src_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                dst_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
                src_port: 1,
                dst_port: 2,
                protocol: 6,
                start_us: 0,
                end_us: 0,
                end_reason: EndReason::Flushed,
                values,
            }
        })
        .collect()
}

fn scoring(c: &mut Criterion) {
    let model =
        Model::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("model/forest.json")).unwrap();
    let flows = records(10_000);
    let mut g = c.benchmark_group("forest");
    g.throughput(Throughput::Elements(flows.len() as u64));
    g.bench_function("score 10k flows, 100 trees", |b| {
        b.iter(|| {
            let mut s = 0.0;
            for f in &flows {
                s += model.score(black_box(f));
            }
            s
        })
    });
    let mut out = vec![0.0; flows.len()];
    g.bench_function("score_many 10k flows, 100 trees", |b| {
        b.iter(|| {
            model.score_many(black_box(&flows), &mut out);
            out[0]
        })
    });
    g.finish();
}

criterion_group!(benches, scoring);
criterion_main!(benches);
