//! The argon2 bound: password checks per second with the server's own parameters and its
//! own hasher (one check per core at a time, on its own threads), every core busy. The
//! password grant's rate in the load test is read against this figure.
//!
//! `cargo bench --bench password` (the `thrpt` line is checks per second)

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use latchkey::crypto::password::PasswordHasher;
use latchkey::model::Password;

fn bound(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let hasher = PasswordHasher::new(cores);
    let password = Password::candidate("correct horse battery staple".into()).unwrap();
    let hash = rt.block_on(hasher.hash(&password)).unwrap();

    let mut group = c.benchmark_group("password");
    group.sample_size(10);
    group.throughput(Throughput::Elements(cores as u64));
    group.bench_function(format!("verify_{cores}_at_once"), |b| {
        b.to_async(&rt).iter(|| async {
            let checks = (0..cores).map(|_| hasher.verify(&password, Some(&hash)));
            for matched in futures::future::join_all(checks).await {
                assert!(matched.unwrap());
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bound);
criterion_main!(benches);
