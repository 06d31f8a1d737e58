//! Operator resolution costs: number validation, prefix and porting lookups on a
//! 1,000,000-prefix table, carrier ordering, and loading a 1,000,000-line prefix file.
//!
//! `cargo bench -p pigeon-engine --bench router -- --warm-up-time 1 --measurement-time 3`
//!
//! Also compares the chosen layout (sorted vectors per prefix length) with a
//! `HashMap<(u8, u64), u16>` on the same prefixes, and prints the tables' sizes.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::hint::black_box;
use std::io::Write;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use pigeon::routing::{Msisdn, OperatorId, Prefix, PrefixTable, RouteCursor, Router, RouterSpec};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const PREFIXES: usize = 1_000_000;
const OPERATORS: usize = 500;
const PORTED: usize = 100_000;

/// `n` distinct random prefixes of 4 to 9 digits, the first not zero.
fn random_prefixes(rng: &mut StdRng, n: usize) -> Vec<String> {
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let len = rng.random_range(4..=9u32);
        let p = rng
            .random_range(10u64.pow(len - 1)..10u64.pow(len))
            .to_string();
        if seen.insert(p.clone()) {
            out.push(p);
        }
    }
    out
}

/// Numbers of 11 or 12 digits, each extending a random prefix of the table (so lookups hit,
/// as they do in production), in shape-checked form.
fn numbers_under(rng: &mut StdRng, prefixes: &[String], n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let mut s = format!("+{}", prefixes[rng.random_range(0..prefixes.len())]);
            let len = rng.random_range(12..=13);
            while s.len() < len {
                s.push(char::from(b'0' + rng.random_range(0..10u8)));
            }
            s
        })
        .collect()
}

fn op_name(i: usize) -> String {
    format!("op{}", i % OPERATORS)
}

fn spec(prefixes: &[String]) -> RouterSpec {
    RouterSpec {
        carriers: vec!["a".into(), "b".into(), "c".into()],
        operators: (0..OPERATORS)
            .map(|i| {
                let tiers = vec![
                    vec![("a".into(), 3), ("b".into(), 1)],
                    vec![("c".into(), 1)],
                ];
                (op_name(i), tiers)
            })
            .collect(),
        default_route: Some(vec![vec![("c".into(), 1)]]),
        prefixes: prefixes
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), op_name(i)))
            .collect(),
        ..RouterSpec::default()
    }
}

/// A multiplicative hasher, to give the `HashMap` alternative a fair (non-SipHash) hash.
#[derive(Default)]
struct MulHasher(u64);

impl Hasher for MulHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

fn benches(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(7);
    let prefixes = random_prefixes(&mut rng, PREFIXES);
    let numbers = numbers_under(&mut rng, &prefixes, 4096);
    let msisdns: Vec<Msisdn> = numbers
        .iter()
        .map(|n| Msisdn::parse_shape(n).expect("shape"))
        .collect();

    // Layouts compared on the same prefixes.
    let entries: Vec<(Prefix, OperatorId)> = prefixes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                Prefix::parse(p).expect("prefix"),
                OperatorId((i % OPERATORS) as u16),
            )
        })
        .collect();
    let table = PrefixTable::from_entries(entries.clone());
    type Fast = BuildHasherDefault<MulHasher>;
    let mut map: HashMap<(u8, u64), u16, Fast> = HashMap::default();
    for (p, op) in &entries {
        let v: u64 = p.digits().parse().expect("digits");
        map.insert((p.digit_count(), v), op.0);
    }
    let map_bytes = map.capacity() * (size_of::<((u8, u64), u16)>() + 1);
    eprintln!(
        "1,000,000 prefixes: sorted vectors {} bytes ({:.1} per prefix); HashMap {} bytes ({:.1} per prefix)",
        table.heap_bytes(),
        table.heap_bytes() as f64 / PREFIXES as f64,
        map_bytes,
        map_bytes as f64 / PREFIXES as f64,
    );

    let mut g = c.benchmark_group("lookup_1m_prefixes");
    let mut i = 0;
    g.bench_function("sorted_vectors", |b| {
        b.iter(|| {
            i = (i + 1) % msisdns.len();
            black_box(table.longest(black_box(&msisdns[i])))
        })
    });
    let digits: Vec<(u8, u64)> = numbers
        .iter()
        .map(|n| (n.len() as u8 - 1, n[1..].parse().expect("digits")))
        .collect();
    g.bench_function("hashmap_fast_hash", |b| {
        b.iter(|| {
            i = (i + 1) % digits.len();
            let (len, value) = black_box(digits[i]);
            (1..=len.min(9))
                .rev()
                .find_map(|l| map.get(&(l, value / 10u64.pow(u32::from(len - l)))))
                .copied()
        })
    });
    g.finish();

    // A router over the same prefixes, plus porting of 100,000 of the numbers' kind.
    let mut ported = numbers_under(&mut rng, &prefixes, PORTED);
    let mut once = HashSet::new();
    ported.retain(|n| once.insert(n.clone()));
    let porting_text: String = ported
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{n},{}\n", op_name(i * 7)))
        .collect();
    let porting_path =
        std::env::temp_dir().join(format!("pigeon-bench-{}-porting.csv", std::process::id()));
    std::fs::write(&porting_path, porting_text).expect("write porting");
    let mut router_spec = spec(&prefixes);
    router_spec.porting_files = vec![porting_path.clone()];
    let router = match Router::from_config(&router_spec) {
        Ok(r) => r,
        Err(e) => panic!("{}", e.join("\n")),
    };
    let ported: Vec<Msisdn> = ported
        .iter()
        .map(|n| Msisdn::parse_shape(n).expect("shape"))
        .collect();
    eprintln!("router tables: {:?}", router.stats());

    let mut g = c.benchmark_group("resolve_validated");
    g.bench_function("porting_miss_then_prefix", |b| {
        b.iter(|| {
            i = (i + 1) % msisdns.len();
            black_box(router.resolve(black_box(msisdns[i])))
        })
    });
    g.bench_function("porting_hit", |b| {
        b.iter(|| {
            i = (i + 1) % 4096;
            black_box(router.resolve(black_box(ported[i])))
        })
    });
    g.finish();

    // Validation: shape alone, then shape and plan, on numbers the plan accepts.
    let valid = [
        "+447911123456",
        "+33612345678",
        "+12125550123",
        "+8613800138000",
        "+491701234567",
        "+5511987654321",
    ];
    for n in valid {
        Msisdn::parse(n).expect("valid in plan");
    }
    let mut g = c.benchmark_group("validate");
    g.bench_function("shape_only", |b| {
        b.iter(|| {
            i = (i + 1) % valid.len();
            black_box(Msisdn::parse_shape(black_box(valid[i])))
        })
    });
    g.bench_function("shape_and_phonenumber", |b| {
        b.iter(|| {
            i = (i + 1) % valid.len();
            black_box(Msisdn::parse(black_box(valid[i])))
        })
    });
    g.bench_function("phonenumber_rejects", |b| {
        b.iter(|| black_box(Msisdn::parse(black_box("+440000000000"))))
    });
    g.bench_function("route_full", |b| {
        b.iter(|| {
            i = (i + 1) % valid.len();
            black_box(router.route(black_box(valid[i])))
        })
    });
    g.finish();

    let route = router.route("+447911123456").expect("routable").route;
    let mut cursor = RouteCursor::new();
    let mut out = Vec::with_capacity(4);
    c.bench_function("candidates_two_tiers", |b| {
        b.iter(|| {
            router.candidates(&mut cursor, route, |c| c != 1, &mut out);
            black_box(out.first().copied())
        })
    });
    drop(router);

    // Loading: a 1,000,000-line prefix file.
    let path =
        std::env::temp_dir().join(format!("pigeon-bench-{}-prefixes.csv", std::process::id()));
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
        writeln!(f, "prefix,operator").expect("write");
        for (i, p) in prefixes.iter().enumerate() {
            writeln!(f, "+{p},{}", op_name(i)).expect("write");
        }
    }
    let mut file_spec = spec(&[]);
    file_spec.prefix_files = vec![path.clone()];
    let before = resident_bytes();
    let loaded = Router::from_config(&file_spec).expect("valid file");
    let after = resident_bytes();
    eprintln!(
        "loaded {} prefixes: table {} bytes; resident before {:?}, after {:?} bytes",
        loaded.stats().prefixes,
        loaded.stats().table_bytes,
        before,
        after,
    );
    drop(loaded);
    let mut g = c.benchmark_group("load");
    g.sample_size(10);
    g.bench_function("csv_1m_prefixes", |b| {
        b.iter_batched(
            || (),
            |()| Router::from_config(&file_spec).map(|r| r.stats().prefixes),
            BatchSize::PerIteration,
        )
    });
    g.finish();
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&porting_path);
}

criterion_group!(router, benches);
criterion_main!(router);
