//! The `ctrack` binary.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use control::config::{ConfigFile, Listen, RunConfig};
use dataplane::conntrack::Duration;
use dataplane::conntrack::Settings;

#[derive(Parser)]
#[command(
    name = "ctrack",
    version,
    about = "Connection-tracking dataplane on DPDK"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the dataplane. DPDK EAL arguments go after `--`, e.g.
    /// `ctrack run -- --no-huge -m 1024 --no-pci --vdev net_ring0 --vdev net_ring1`.
    Run(RunArgs),
    /// Write a capture of synthetic connections (TCP, UDP, ICMP) to replay
    /// through `ctrack run` (net_pcap) or `ctrack replay`.
    Generate(GenerateArgs),
    /// Talk to a running dataplane: `connection print`, `connection remove ID`,
    /// `connection tracking print`, `connection tracking set KEY=VALUE ...`.
    Connection(control::client::ConnectionArgs),
    /// Run the conntrack core over a capture (Ethernet, raw IP or Linux
    /// cooked), using its timestamps as the clock, and print the connection
    /// table as it stands after the last packet.
    Replay(ReplayArgs),
}

#[derive(Args)]
struct ReplayArgs {
    /// The capture (classic pcap).
    file: PathBuf,
    /// Shards to split connections over, by the symmetric RSS hash.
    #[arg(long, default_value_t = 1)]
    workers: u16,
    /// A tracking setting, e.g. --set udp-timeout=30s (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Table capacity per shard (max-entries).
    #[arg(long, default_value_t = 1 << 20)]
    max_entries: u32,
    /// Print the table as a JSON array (counters go to stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct GenerateArgs {
    /// Output capture (both directions, or only the originators' packets
    /// with --reply-out).
    out: PathBuf,
    /// Write the responders' packets to this file instead (one capture per port).
    #[arg(long)]
    reply_out: Option<PathBuf>,
    /// TCP connections (handshake, data both ways, FIN close).
    #[arg(long, default_value_t = 64)]
    tcp: u32,
    /// UDP request/response flows.
    #[arg(long, default_value_t = 32)]
    udp: u32,
    /// ICMP echo flows.
    #[arg(long, default_value_t = 8)]
    icmp: u32,
    /// Exchanges per flow.
    #[arg(long, default_value_t = 4)]
    exchanges: u32,
    /// Payload bytes per data packet.
    #[arg(long, default_value_t = 200)]
    payload: usize,
    /// Leave the TCP connections open (no FIN).
    #[arg(long)]
    keep_open: bool,
    /// TCP connections seen mid-stream: data exchanges only, no handshake
    /// and no FIN (a tracker picks them up with loose-tcp-tracking=yes).
    #[arg(long)]
    midstream: bool,
}

#[derive(Args)]
struct RunArgs {
    /// TOML config file (see docs/configuration.md); flags override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Worker threads (default: one per EAL lcore beyond the main one, at least 1).
    #[arg(long)]
    workers: Option<u16>,
    /// RX descriptors per queue.
    #[arg(long)]
    rx_desc: Option<u16>,
    /// TX descriptors per queue.
    #[arg(long)]
    tx_desc: Option<u16>,
    /// Packets per RX burst (1..=64).
    #[arg(long)]
    burst: Option<u16>,
    /// Mbufs in the packet pool (default: sized from ports and queues).
    #[arg(long)]
    mbufs: Option<u32>,
    /// Stop after this long (e.g. 10s, 1m).
    #[arg(long)]
    duration: Option<Duration>,
    /// Stop once no packet has arrived for this long (e.g. 500ms).
    #[arg(long)]
    idle_exit: Option<Duration>,
    /// DPDK port ids to use, paired in this order, e.g. --ports 2,3
    /// (default: every probed port).
    #[arg(long, value_delimiter = ',')]
    ports: Option<Vec<u16>>,
    /// Connections per worker at most (the table's ceiling).
    #[arg(long)]
    max_entries: Option<u32>,
    /// Fast-track established TCP and UDP streams: no | established.
    #[arg(long)]
    fasttrack: Option<dataplane::policy::FastTrackMode>,
    /// Management API address (IP:PORT) or `off` [default: 127.0.0.1:8728].
    #[arg(long)]
    api: Option<Listen>,
    /// Bearer token for the API (required to bind beyond loopback).
    #[arg(long, env = "CTRACK_TOKEN", hide_env_values = true)]
    api_token: Option<String>,
    /// Prometheus metrics address (IP:PORT) or `off` [default: 127.0.0.1:9464].
    #[arg(long)]
    metrics: Option<Listen>,
    /// A tracking setting, e.g. --set udp-timeout=30s (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Also write the final totals as JSON to this file.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// DPDK EAL arguments.
    #[arg(last = true)]
    eal: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cmd_run(args),
        Command::Generate(args) => cmd_generate(args),
        Command::Replay(args) => cmd_replay(args),
        Command::Connection(args) => control::client::run_args(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ctrack: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Applies `--set KEY=VALUE` arguments to `settings`.
fn apply_sets(settings: &mut Settings, sets: &[String]) -> Result<()> {
    for kv in sets {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--set {kv:?}: expected KEY=VALUE"))?;
        settings.set(k.trim(), v.trim())?;
    }
    Ok(())
}

fn cmd_run(args: RunArgs) -> Result<()> {
    let file = match &args.config {
        Some(path) => ConfigFile::load(path)?,
        None => ConfigFile::default(),
    };
    let mut tracking = file.tracking;
    apply_sets(&mut tracking, &args.set)?;
    let cli = RunConfig {
        eal: args.eal,
        workers: args.workers,
        rx_desc: args.rx_desc,
        tx_desc: args.tx_desc,
        burst: args.burst,
        mbufs: args.mbufs,
        duration: args.duration,
        idle_exit: args.idle_exit,
        max_entries: args.max_entries,
        ports: args.ports,
        fasttrack: args.fasttrack,
        api: args.api,
        api_token: args.api_token,
        metrics: args.metrics,
    };
    cli.validate()?;
    let cfg = file.run.merge(cli);
    run_dataplane(&cfg, &tracking, args.summary_json)
}

fn cmd_replay(args: ReplayArgs) -> Result<()> {
    let mut settings = Settings::default();
    apply_sets(&mut settings, &args.set)?;
    if args.max_entries == 0 {
        anyhow::bail!("--max-entries must be at least 1");
    }
    let out = control::replay::replay_file(&args.file, args.workers, &settings, args.max_entries)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out.connections)?);
        eprint!("{}", out.counters.render());
    } else {
        print!("{}", dataplane::conntrack::format_table(&out.connections));
        println!();
        print!("{}", out.counters.render());
    }
    Ok(())
}

fn cmd_generate(args: GenerateArgs) -> Result<()> {
    use dataplane::io::pcap::{LinkType, PcapWriter};
    use dataplane::synth::{Mix, Side};
    let mix = Mix {
        tcp: args.tcp,
        udp: args.udp,
        icmp: args.icmp,
        exchanges: args.exchanges,
        payload: args.payload.min(1400),
        keep_open: args.keep_open,
        midstream: args.midstream,
    };
    let create = |path: &PathBuf| -> Result<PcapWriter<std::io::BufWriter<std::fs::File>>> {
        let f =
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Ok(PcapWriter::new(
            std::io::BufWriter::new(f),
            LinkType::Ethernet,
            false,
        )?)
    };
    let mut orig = create(&args.out)?;
    let mut reply = args.reply_out.as_ref().map(create).transpose()?;
    let packets = mix.packets();
    for p in &packets {
        let w = match (&mut reply, p.side) {
            (Some(r), Side::Reply) => r,
            _ => &mut orig,
        };
        w.write_packet(p.ts_nanos, &p.frame)?;
    }
    orig.flush()?;
    if let Some(r) = &mut reply {
        r.flush()?;
    }
    println!(
        "ctrack: wrote {} packets of {} connections",
        packets.len(),
        mix.tcp + mix.udp + mix.icmp
    );
    Ok(())
}

#[cfg(feature = "dpdk")]
fn run_dataplane(
    cfg: &RunConfig,
    tracking: &Settings,
    summary_json: Option<PathBuf>,
) -> Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = stop.clone();
    ctrlc::set_handler(move || on_signal.store(true, Ordering::SeqCst))
        .context("installing the SIGINT/SIGTERM handler")?;
    let summary = control::run::run(cfg, tracking, stop)?;
    print_summary(&summary);
    if let Some(path) = summary_json {
        let json = serde_json::to_string_pretty(&summary)?;
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(not(feature = "dpdk"))]
fn run_dataplane(_: &RunConfig, _: &Settings, _: Option<PathBuf>) -> Result<()> {
    anyhow::bail!("this ctrack was built without the `dpdk` feature; rebuild with default features")
}

#[cfg(feature = "dpdk")]
fn print_summary(s: &control::run::RunSummary) {
    println!(
        "ctrack: stopped ({}) after {:.3}s",
        s.stop_reason, s.elapsed_secs
    );
    println!(
        "{:<5} {:<16} {:<12} {:>3} {:>3} {:>3} {:>12} {:>12} {:>10} {:>10} {:>10}",
        "PORT",
        "NAME",
        "DRIVER",
        "RXQ",
        "TXQ",
        "RSS",
        "RX-PACKETS",
        "TX-PACKETS",
        "RX-MISSED",
        "RX-ERRORS",
        "RX-NOMBUF"
    );
    for p in &s.ports {
        let c = &p.counters;
        println!(
            "{:<5} {:<16} {:<12} {:>3} {:>3} {:>3} {:>12} {:>12} {:>10} {:>10} {:>10}",
            c.port,
            c.name,
            p.driver,
            p.rx_queues,
            p.tx_queues,
            if p.rss { "yes" } else { "no" },
            c.ipackets,
            c.opackets,
            c.imissed,
            c.ierrors,
            c.rx_nombuf
        );
    }
    println!(
        "{:<7} {:>4} {:>12} {:>12} {:>10} {:>10} {:>11} {:>9} {:>9} {:>6}  RX-QUEUES",
        "WORKER",
        "CPU",
        "RX-PACKETS",
        "TX-PACKETS",
        "TX-DROPPED",
        "HANDOFFS",
        "CONNECTIONS",
        "CREATED",
        "INVALID",
        "BUSY%"
    );
    for w in &s.workers {
        let busy = if w.loops == 0 {
            0.0
        } else {
            100.0 * w.busy_loops as f64 / w.loops as f64
        };
        println!(
            "{:<7} {:>4} {:>12} {:>12} {:>10} {:>10} {:>11} {:>9} {:>9} {:>6.2}  {}",
            w.worker,
            w.cpu.map_or("-".into(), |c| c.to_string()),
            w.rx_packets,
            w.tx_packets,
            w.tx_dropped,
            w.handoffs_out,
            w.connections,
            w.connections_created,
            w.invalid,
            busy,
            w.rx_queues.join(", ")
        );
    }
    println!(
        "mempool: {} mbufs, in use at start {}, at end {}",
        s.mempool_size, s.mempool_in_use_start, s.mempool_in_use_end
    );
}
