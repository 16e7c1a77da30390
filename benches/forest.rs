//! Scoring speed of the shipped 100-tree forest: flows/s on one core, on real flows — every row
//! of the improved CIC-IDS2017 per-class CSVs in `../shared/data/cicids2017-improved/` (benign and
//! every attack class, shuffled with a fixed seed). Run by `.ci/run`; fails naming the path when
//! `../shared` is missing. `FLOWSENTRY_BENCH_MODEL=path` benchmarks another model file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flowsentry::features::{Feature, FlowRecord, NUM_FEATURES, dataset};
use flowsentry::forest::Model;
use flowsentry::forest::train::Rng;

fn records(model: &Model) -> Vec<FlowRecord> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/cicids2017-improved");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (the benchmark reads real flows from ../shared)",
                dir.display()
            )
        })
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "{}: no CSV files", dir.display());
    let features: Vec<Feature> = model.features().to_vec();
    let ds = dataset::read(&paths, &features, None, &|_| true).unwrap();
    let mut flows: Vec<FlowRecord> = (0..ds.rows())
        .map(|i| {
            let mut values = [0.0; NUM_FEATURES];
            for (f, v) in features.iter().zip(ds.row(i)) {
                values[*f as usize] = *v;
            }
            FlowRecord::from_values(values)
        })
        .collect();
    let mut rng = Rng::new(1);
    for i in (1..flows.len()).rev() {
        flows.swap(i, rng.below(i + 1));
    }
    flows
}

fn scoring(c: &mut Criterion) {
    let path = std::env::var_os("FLOWSENTRY_BENCH_MODEL").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("model/forest.json"),
        PathBuf::from,
    );
    let model = Model::load(&path).unwrap();
    let flows = records(&model);
    println!(
        "{}: {} real flows, {} trees",
        path.display(),
        flows.len(),
        model.trees()
    );
    let mut g = c.benchmark_group("forest");
    g.throughput(Throughput::Elements(flows.len() as u64));
    g.bench_function("score (one flow at a time)", |b| {
        b.iter(|| {
            let mut s = 0.0;
            for f in &flows {
                s += model.score(black_box(f));
            }
            s
        })
    });
    let mut out = vec![0.0; flows.len()];
    g.bench_function("score_many (batch)", |b| {
        b.iter(|| {
            model.score_many(black_box(&flows), &mut out);
            out[0]
        })
    });
    g.finish();
}

criterion_group!(benches, scoring);
criterion_main!(benches);
