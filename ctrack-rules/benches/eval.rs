//! Rule evaluation cost: a burst of 32 packets through the defconf forward
//! chain, and through a 1000-rule chain (which the classifier and
//! integer matchers are for).
//!
//! `cargo bench -p ctrack-rules --bench eval`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ctrack_core::conntrack::Instant;
use ctrack_core::flow::{Addr, Family, proto};
use ctrack_rules::*;

fn packets() -> Vec<PacketCtx<'static>> {
    (0..32u32)
        .map(|i| {
            let mut p = PacketCtx {
                family: Family::V4,
                src: Addr::from_v4([192, 168, 88, (i % 200) as u8 + 2]),
                dst: Addr::from_v4([8, 8, (i % 7) as u8, 8]),
                proto: if i % 3 == 0 { proto::UDP } else { proto::TCP },
                src_port: 40000 + i as u16,
                dst_port: [443, 80, 53, 22][i as usize % 4],
                ttl: 64,
                size: 1500,
                in_iface: 2,
                out_iface: 0,
                ..PacketCtx::default()
            };
            p.conn.state = if i % 8 == 0 {
                ConnState::New
            } else {
                ConnState::Established
            };
            p
        })
        .collect()
}

fn bench(c: &mut Criterion, name: &str, script: &str) {
    let cfg = parse_with(script, Options { lenient: true })
        .unwrap()
        .config;
    let ifaces: Vec<String> = ["ether1", "ether2", "bridge"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let rs = Ruleset::compile(&cfg, &ifaces, &mut Names::default()).unwrap();
    let mut ws = WorkerState::new(&rs, Instant::ZERO, 1024, 64);
    let pkts = packets();
    let mut out = vec![Verdict::default(); pkts.len()];
    let mut g = c.benchmark_group("rules");
    g.throughput(Throughput::Elements(pkts.len() as u64));
    g.bench_function(name, |b| {
        b.iter(|| {
            rs.evaluate_burst(
                Hook::FilterForward,
                Instant::ZERO,
                &pkts,
                &mut ws,
                &NoEnv,
                &mut out,
            );
            std::hint::black_box(&out);
        })
    });
    g.finish();
}

fn big() -> String {
    let mut s = String::from("/ip firewall filter\n");
    for i in 0..1000u32 {
        let proto = ["tcp", "udp", "gre", "icmp"][i as usize % 4];
        let port = if proto == "tcp" || proto == "udp" {
            format!(" dst-port={}", 1000 + i)
        } else {
            String::new()
        };
        s.push_str(&format!(
            "add chain=forward action=drop protocol={proto} src-address=10.{}.{}.0/24{port}\n",
            i / 256,
            i % 256
        ));
    }
    s
}

fn benches(c: &mut Criterion) {
    bench(
        c,
        "defconf_forward_burst32",
        include_str!("../tests/defconf.rsc"),
    );
    bench(c, "1000_rules_burst32", &big());
}

criterion_group!(g, benches);
criterion_main!(g);
