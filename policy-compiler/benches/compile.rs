//! check + compile of a 1,000-rule policy (target: at most 50 ms).

use criterion::{Criterion, criterion_group, criterion_main};

/// A policy with `n` rules of every kind, distinct enough that the overlap lints do real work.
pub fn big_policy(n: usize) -> String {
    let mut s = String::from(
        "[policy]\nname = \"big\"\n\n[arms.stable]\n[arms.canary]\n[arms.canary2]\n\n[split]\nkey = [\"header:x-user-id\", \"cookie:sid\"]\nweights = { canary = 5, canary2 = 5 }\n\n[splits.beta]\nkey = [\"header:x-user-id\"]\nweights = { canary = 50 }\n",
    );
    for i in 0..n {
        s.push_str(&format!("\n[[rules]]\nname = \"rule {i}\"\n"));
        s.push_str(if i % 3 == 0 {
            "arm = \"canary\"\n"
        } else if i % 3 == 1 {
            "split = \"beta\"\n"
        } else {
            "arm = \"stable\"\n"
        });
        match i % 6 {
            0 => s.push_str(&format!("when.header.x-tenant = \"tenant-{i}\"\n")),
            1 => s.push_str(&format!("when.header.x-region = {{ one_of = [\"r{i}\", \"r{}\"] }}\n", i + 1)),
            2 => s.push_str(&format!("when.path_prefix = [\"/v{i}/predict\"]\nwhen.method = [\"POST\"]\n")),
            3 => s.push_str(&format!("when.cookie.beta = {{ prefix = \"b{i}-\" }}\n")),
            4 => s.push_str(&format!("when.source_cidr = [\"10.{}.{}.0/24\"]\n", i / 256 % 256, i % 256)),
            _ => s.push_str(&format!("when.users = {{ key = \"header:x-user-id\", allow = [\"u{i}\", \"v{i}\", \"w{i}\"] }}\n")),
        }
    }
    s
}

fn bench(c: &mut Criterion) {
    let src = big_policy(1_000);
    let compiled =
        serin_compiler::compile_str(&src, "big.toml").expect("the bench policy compiles");
    assert_eq!(compiled.plan.rules.len(), 1_000);
    c.bench_function("parse+lower 1000 rules", |b| {
        b.iter(|| {
            serin_compiler::parse_str(std::hint::black_box(&src), "big.toml").map(|p| p.rules.len())
        })
    });
    c.bench_function("check+compile 1000 rules", |b| {
        b.iter(|| {
            serin_compiler::compile_str(std::hint::black_box(&src), "big.toml")
                .map(|c| c.plan.rules.len())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
