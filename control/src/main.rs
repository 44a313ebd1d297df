//! The `ctrack` binary: the clap definitions (also the source of the man
//! page and shell completions), logging set-up, and the commands.
//!
//! Logs go to stderr through `tracing`, one line per event with a timestamp
//! and a level, plain or JSON (`--log-format`, `CTRACK_LOG_FORMAT`), without
//! colour unless stderr is a terminal: under systemd the journal takes them
//! as they are. Results (tables, listening addresses, the final totals) go to
//! stdout; a command that fails ends with one `ctrack: error: ...` line on
//! stderr, which scripts and tests look for.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use control::config::{ConfigFile, Listen, RunConfig};
use control::metrics::build;
use dataplane::conntrack::Duration;
use dataplane::conntrack::Settings;

/// `ctrack --version`: the version, the git commit and the DPDK version.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CTRACK_GIT_COMMIT"),
    ", DPDK ",
    env!("CTRACK_DPDK_VERSION"),
    ")"
);

#[derive(Parser)]
#[command(
    name = "ctrack",
    version = VERSION,
    about = "Connection-tracking dataplane on DPDK",
    long_about = "Connection tracking with RouterOS `/ip firewall connection` semantics \
                  and Linux nf_conntrack behaviour, on DPDK. See docs/operations.md for \
                  running it as a service."
)]
struct Cli {
    /// Log format: plain (timestamp, level, message) or json (one object a line).
    #[arg(
        long,
        global = true,
        env = "CTRACK_LOG_FORMAT",
        default_value = "plain"
    )]
    log_format: LogFormat,
    /// Log level or filter: error, warn, info, debug, trace, or per module
    /// (e.g. `info,control::api=debug`).
    #[arg(long, global = true, env = "CTRACK_LOG", default_value = "info")]
    log_level: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Plain,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the dataplane. DPDK EAL arguments go after `--`, e.g.
    /// `ctrack run -- --no-huge -m 1024 --no-pci --vdev net_ring0 --vdev net_ring1`.
    Run(Box<RunArgs>),
    /// Write a capture of synthetic connections (TCP, UDP, ICMP) to replay
    /// through `ctrack run` (net_pcap) or `ctrack replay`.
    Generate(GenerateArgs),
    /// Talk to a running dataplane as RouterOS's `/ip firewall connection`:
    /// `print [detail|stats|count-only] [where EXPR]`, `remove ID|[find where
    /// EXPR]`, `flush`, `stats`, `tracking print`, `tracking set KEY=VALUE ...`
    /// (docs/cli.md).
    Connection(control::client::ConnectionArgs),
    /// Other `/ip` menus of a running dataplane: `ip traffic-flow
    /// print|set KEY=VALUE ...`, `ip traffic-flow target print|add|set|remove`
    /// (docs/flow-export.md), `ip route print|add|remove`, `ip arp
    /// print|add|remove` (router mode, docs/nat.md).
    Ip(control::flow_client::IpArgs),
    /// `/ipv6` menus of a running dataplane: `ipv6 neighbor
    /// print|add|remove` (router mode's neighbour table; docs/nat.md).
    Ipv6(control::flow_client::Ipv6Args),
    /// Talk to a running dataplane's firewall as RouterOS's `/ip firewall
    /// filter|mangle|nat|address-list|layer7-protocol` (`--ipv6`: `/ipv6
    /// firewall`): `print [stats]`, `add KEY=VALUE...`, `set N|*ID
    /// KEY=VALUE...`, `remove N|*ID...`, `move N|*ID... [--destination
    /// N|*ID]`, `reset-counters [N|*ID...]`. Each change is compiled as a
    /// whole ruleset; nothing changes on an error.
    Firewall(control::fw_client::FirewallArgs),
    /// Print the running configuration of a dataplane as a RouterOS script
    /// (`/export`), which `ctrack run --rules` loads back to the same state.
    Export(control::fw_client::ExportArgs),
    /// Run the conntrack core over a capture (pcap or pcapng, gzip or not; Ethernet, raw IP or Linux
    /// cooked), using its timestamps as the clock, and print the connection
    /// table as it stands after the last packet.
    Replay(ReplayArgs),
    /// Validate a configuration file without starting DPDK: syntax, known
    /// keys, ranges, tracking settings, port pairing and the listening
    /// addresses. Exits 0 and prints a summary when the file is valid.
    Check(CheckArgs),
    /// Write the man pages (ctrack.1 and one per subcommand) to a directory.
    Man {
        /// Output directory (created if missing).
        #[arg(long, default_value = ".")]
        out_dir: PathBuf,
    },
    /// Print a shell completion script to stdout, e.g.
    /// `ctrack completions bash > /etc/bash_completion.d/ctrack`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

#[derive(Args)]
struct CheckArgs {
    /// The TOML config file to validate.
    #[arg(long, short)]
    config: PathBuf,
    /// A tracking setting to validate with it, as `ctrack run --set` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[derive(Args)]
struct ReplayArgs {
    /// The capture (classic pcap): the conntrack core alone, no interfaces.
    #[arg(required_unless_present = "inputs", conflicts_with = "inputs")]
    file: Option<PathBuf>,
    /// A capture arriving on an interface, INTERFACE=FILE.pcap (repeatable,
    /// e.g. --in ether1=lan.pcap --in ether2=wan.pcap): the worker's
    /// pipeline with the rules; needs --out-dir.
    #[arg(long = "in", value_name = "IFACE=FILE", requires = "out_dir")]
    inputs: Vec<String>,
    /// With --in: where to write IFACE.pcap, every frame ctrack transmits
    /// on each interface.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// With --in: a RouterOS firewall script (.rsc), as `ctrack run --rules`.
    #[arg(long, value_name = "FILE.rsc", requires = "inputs")]
    rules: Option<PathBuf>,
    /// With --rules: skip what ctrack does not implement, with warnings.
    #[arg(long, requires = "rules")]
    lenient: bool,
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
    /// RouterOS firewall script (.rsc, `/export` form) to load: filter and
    /// mangle rules, address lists, interface lists, tracking settings.
    #[arg(long, value_name = "FILE.rsc")]
    rules: Option<PathBuf>,
    /// Skip what ctrack does not implement in the rules script (menus such
    /// as /interface bridge, rules with unknown properties), one warning
    /// per skipped line, instead of refusing it.
    #[arg(long)]
    lenient: bool,
    /// Reassemble IP fragments while tracking: yes | no [default: yes]
    /// (docs/nat.md, Fragments).
    #[arg(long, value_name = "yes|no", value_parser = parse_yes_no)]
    reassembly: Option<bool>,
    /// How long a datagram's fragments wait for the rest [default: 30s].
    #[arg(long)]
    frag_timeout: Option<Duration>,
    /// Datagrams in reassembly at once, per worker [default: 4096].
    #[arg(long)]
    frag_max_datagrams: Option<u32>,
    /// Buckets of the reassembly table, per worker [default: 1024].
    #[arg(long)]
    frag_buckets: Option<u32>,
    /// Datagrams per bucket, a power of 2 up to 16 [default: 4].
    #[arg(long)]
    frag_bucket_entries: Option<u32>,
    /// 64 KiB buffers for reassembled datagrams, per worker [default: 64].
    #[arg(long)]
    frag_mbufs: Option<u32>,
    /// Also write the final totals as JSON to this file.
    #[arg(long)]
    summary_json: Option<PathBuf>,
    /// DPDK EAL arguments.
    #[arg(last = true)]
    eal: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_logging(cli.log_format, &cli.log_level) {
        eprintln!("ctrack: error: {e:#}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Run(args) => cmd_run(*args),
        Command::Generate(args) => cmd_generate(args),
        Command::Replay(args) => cmd_replay(args),
        Command::Connection(args) => control::client::run_args(args),
        Command::Ip(args) => control::flow_client::run_args(args),
        Command::Ipv6(args) => control::flow_client::run_ipv6_args(args),
        Command::Firewall(args) => control::fw_client::run_args(args),
        Command::Export(args) => control::fw_client::run_export(args),
        Command::Check(args) => cmd_check(args),
        Command::Man { out_dir } => cmd_man(&out_dir),
        Command::Completions { shell } => {
            // Into memory first: clap_complete panics on a failed write.
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "ctrack", &mut script);
            std::io::Write::write_all(&mut std::io::stdout(), &script)
                .context("writing the completion script")
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // stdout was closed (`| head -1`): the reader wanted no more.
        Err(e) if control::out::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ctrack: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Sets up the `tracing` subscriber: stderr, a timestamp and level on every
/// line, colour only on a terminal.
fn init_logging(format: LogFormat, filter: &str) -> Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .with_context(|| format!("bad --log-level / CTRACK_LOG {filter:?}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let r = match format {
        LogFormat::Plain => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    r.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

/// Writes `ctrack.1` and `ctrack-SUB.1` for every subcommand to `dir`.
fn cmd_man(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let cmd = Cli::command();
    let mut written = Vec::new();
    let mut write = |name: String, c: clap::Command| -> Result<()> {
        let path = dir.join(format!("{name}.1"));
        let mut out = Vec::new();
        clap_mangen::Man::new(c).render(&mut out)?;
        std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
        Ok(())
    };
    write("ctrack".into(), cmd.clone())?;
    for sub in cmd.get_subcommands() {
        let name = format!("ctrack-{}", sub.get_name());
        write(name.clone(), sub.clone().name(name))?;
    }
    for p in &written {
        control::outln!("{}", p.display());
    }
    Ok(())
}

/// `ctrack check`: everything `ctrack run` checks before DPDK starts, and
/// what it would only find out later (odd port lists, an API beyond
/// loopback without a token, the API and metrics on one address).
fn cmd_check(args: CheckArgs) -> Result<()> {
    let shown = args.config.display().to_string();
    let file = ConfigFile::load(&args.config)?;
    let mut tracking = file.tracking;
    let run = &file.run;
    let mut rules_summary = None;
    // `ctrack run`'s port count for the interface names (at least two).
    let ports = run.ports.as_ref().map_or(2, |p| p.len().max(2));
    let mut flow = file.traffic_flow.clone();
    let mut if_names = control::firewall::default_interfaces(ports);
    let mut router = false;
    if let Some(p) = &run.rules {
        let cfg = control::firewall::load_script(p, run.rules_lenient.unwrap_or(false))?;
        tracking =
            ctrack_model::settings::apply(&tracking, &control::firewall::tracking_changes(&cfg))
                .with_context(|| format!("{}: /ip firewall connection tracking", p.display()))?;
        // Compiled as `run` would (interface names of as many ports as
        // listed, at least two).
        flow =
            control::flow_ops::of_run(&file.traffic_flow, Some(&args.config), Some(&cfg), Some(p))
                .map_err(anyhow::Error::msg)?;
        // Router mode's addresses, routes and neighbours (router.rs).
        router = control::router::RouterSetup::from_config(&cfg, ports)
            .with_context(|| p.display().to_string())?
            .is_some();
        let mut fw = control::firewall::Firewall::new(cfg, ports)
            .with_context(|| p.display().to_string())?;
        if flow.enabled {
            fw.also_needed_by(control::flow_ops::NEEDS_TRACKING);
        }
        if_names = fw.interfaces().to_vec();
        rules_summary = Some(format!(
            "{} ({} rules; tracking needed by {})",
            p.display(),
            fw.ruleset().len(),
            if fw.auto_tracking() {
                fw.needed_by().join(", ")
            } else {
                "no rule".to_string()
            }
        ));
    }
    apply_sets(&mut tracking, &args.set)?;
    control::flow_export::resolve_interfaces(&flow.interfaces, &if_names)
        .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    if let Some(p) = &run.ports
        && p.len() % 2 != 0
        && !router
    {
        anyhow::bail!(
            "{shown}: ports {p:?}: ports are paired in order (0<->1, 2<->3), so list an even number"
        );
    }
    let default = |s: &str| -> Result<Listen> { s.parse().map_err(anyhow::Error::msg) };
    let api = match run.api {
        Some(l) => l,
        None => default(RunConfig::DEFAULT_API)?,
    };
    let metrics = match run.metrics {
        Some(l) => l,
        None => default(RunConfig::DEFAULT_METRICS)?,
    };
    let token = run.api_token.is_some()
        || std::env::var_os("CTRACK_TOKEN").is_some()
        || !run.api_access.users.is_empty();
    if let Listen::At(addr) = api
        && !addr.ip().is_loopback()
        && !token
    {
        anyhow::bail!(
            "{shown}: {}",
            control::api::ApiError::TokenRequired { addr }
        );
    }
    if let (Listen::At(a), Listen::At(m)) = (api, metrics)
        && a == m
        && a.port() != 0
    {
        anyhow::bail!("{shown}: api and metrics both on {a}: give them different ports");
    }
    let mut warnings = Vec::new();
    if run.eal.is_empty() {
        warnings.push(
            "eal is empty: DPDK will use every NIC bound to a DPDK driver and its default \
             memory; list the lcores (-l) and NICs (-a) explicitly"
                .to_string(),
        );
    }
    if let Some(d) = run.duration {
        warnings.push(format!(
            "duration = {d}: ctrack will stop by itself after that"
        ));
    }
    if let Some(d) = run.idle_exit {
        warnings.push(format!(
            "idle-exit = {d}: ctrack will stop once no packet arrives for that long"
        ));
    }
    for w in &warnings {
        eprintln!("ctrack: warning: {shown}: {w}");
    }
    let listen = |l: Listen| match l {
        Listen::Off => "off".to_string(),
        Listen::At(a) => a.to_string(),
    };
    control::outln!("ctrack: {shown}: configuration is valid");
    control::outln!("  eal:         {}", run.eal.join(" "));
    control::outln!(
        "  workers:     {}",
        run.workers
            .map_or("one per EAL lcore beyond the main one".into(), |w| w
                .to_string())
    );
    control::outln!(
        "  ports:       {}",
        run.ports
            .as_ref()
            .map_or("every probed port".into(), |p| format!("{p:?}"))
    );
    control::outln!(
        "  max-entries: {} per worker",
        run.max_entries.unwrap_or(RunConfig::DEFAULT_MAX_ENTRIES)
    );
    control::outln!("  api:         {}", listen(api));
    control::outln!("  metrics:     {}", listen(metrics));
    if let Some(r) = &rules_summary {
        control::outln!("  rules:       {r}");
    }
    control::outln!(
        "  tracking:    {}",
        serde_json::to_string(&tracking).unwrap_or_default()
    );
    if flow.enabled {
        let targets: Vec<String> = flow
            .targets
            .iter()
            .filter(|t| !t.disabled)
            .map(|t| {
                format!(
                    "{}:{} (version {})",
                    t.dst_address,
                    t.port,
                    t.version.name()
                )
            })
            .collect();
        control::outln!(
            "  traffic-flow: interfaces {}, to {}",
            flow.interfaces,
            targets.join(", ")
        );
    }
    Ok(())
}

/// Applies `--set KEY=VALUE` arguments to `settings`, all or nothing,
/// through the one validation ([`ctrack_model::settings::apply`]).
fn apply_sets(settings: &mut Settings, sets: &[String]) -> Result<()> {
    let mut changes = Vec::with_capacity(sets.len());
    for kv in sets {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("--set {kv:?}: expected KEY=VALUE"))?;
        changes.push((k.trim().to_string(), v.trim().to_string()));
    }
    *settings = ctrack_model::settings::apply(settings, &changes)?;
    Ok(())
}

fn cmd_run(args: RunArgs) -> Result<()> {
    let file = match &args.config {
        Some(path) => ConfigFile::load(path)?,
        None => ConfigFile::default(),
    };
    let mut tracking = file.tracking;
    let cli_rules = args.rules.clone();
    let rules_path = cli_rules.as_ref().or(file.run.rules.as_ref()).cloned();
    let lenient = args.lenient || file.run.rules_lenient.unwrap_or(false);
    // The script's `/ip firewall connection tracking` lines, then `--set`.
    let rules = match &rules_path {
        Some(p) => {
            let cfg = control::firewall::load_script(p, lenient)?;
            tracking = ctrack_model::settings::apply(
                &tracking,
                &control::firewall::tracking_changes(&cfg),
            )
            .with_context(|| format!("{}: /ip firewall connection tracking", p.display()))?;
            Some(cfg)
        }
        None => None,
    };
    // `[traffic-flow]` or the script's `/ip traffic-flow`, not both.
    let traffic_flow = control::flow_ops::of_run(
        &file.traffic_flow,
        args.config.as_deref(),
        rules.as_ref(),
        rules_path.as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
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
        api_access: Default::default(),
        rules: args.rules,
        rules_lenient: args.lenient.then_some(true),
        reassembly: args.reassembly,
        frag_timeout: args.frag_timeout,
        frag_max_datagrams: args.frag_max_datagrams,
        frag_buckets: args.frag_buckets,
        frag_bucket_entries: args.frag_bucket_entries,
        frag_mbufs: args.frag_mbufs,
    };
    cli.validate()?;
    let cfg = file.run.merge(cli);
    tracing::info!(
        version = build::VERSION,
        commit = build::COMMIT,
        dpdk = build::DPDK,
        config = args.config.as_ref().map(|p| p.display().to_string()),
        "starting ctrack"
    );
    if control::auth::token_on_command_line(std::env::args()) {
        tracing::warn!(
            "--api-token on the command line shows in `ps` and shell history: \
             set CTRACK_TOKEN or api-token in the config file instead"
        );
    }
    run_dataplane(&cfg, &tracking, &traffic_flow, rules, args.summary_json)
}

fn cmd_replay(args: ReplayArgs) -> Result<()> {
    let mut settings = Settings::default();
    if args.max_entries == 0 {
        anyhow::bail!("--max-entries must be at least 1");
    }
    let Some(file) = &args.file else {
        return cmd_replay_interfaces(&args, settings);
    };
    apply_sets(&mut settings, &args.set)?;
    let out = control::replay::replay_file(file, args.workers, &settings, args.max_entries)?;
    // A closed stdout (`| head -1`) ends the listing quietly.
    control::out::quiet_broken_pipe(print_replay(&out, args.json))
}

fn print_replay(out: &control::replay::ReplayOutcome, json: bool) -> Result<()> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::io::stdout().lock());
    if json {
        serde_json::to_writer_pretty(&mut w, &out.connections)?;
        writeln!(w)?;
        w.flush()?;
        eprint!("{}", out.counters.render());
    } else {
        w.write_all(ctrack_model::format_table(&out.connections).as_bytes())?;
        writeln!(w)?;
        w.write_all(out.counters.render().as_bytes())?;
        w.flush()?;
    }
    Ok(())
}

/// `ctrack replay --in IFACE=FILE ... --out-dir DIR [--rules R.rsc]`.
fn cmd_replay_interfaces(args: &ReplayArgs, mut settings: Settings) -> Result<()> {
    if args.workers != 1 {
        anyhow::bail!("--in replays through one worker: drop --workers");
    }
    let inputs = args
        .inputs
        .iter()
        .map(|s| control::bridge_replay::parse_input(s))
        .collect::<Result<Vec<_>>>()?;
    let rules = match &args.rules {
        Some(p) => {
            let cfg = control::firewall::load_script(p, args.lenient)?;
            settings = ctrack_model::settings::apply(
                &settings,
                &control::firewall::tracking_changes(&cfg),
            )
            .with_context(|| format!("{}: /ip firewall connection tracking", p.display()))?;
            Some(cfg)
        }
        None => None,
    };
    apply_sets(&mut settings, &args.set)?;
    let out_dir = args.out_dir.as_ref().context("--in needs --out-dir DIR")?;
    let out = control::bridge_replay::replay_interfaces(
        &inputs,
        rules,
        &settings,
        args.max_entries,
        out_dir,
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", ctrack_model::format_table(&out.connections));
        println!();
        print!("{}", out.render());
    }
    Ok(())
}

fn cmd_generate(args: GenerateArgs) -> Result<()> {
    use ctrack_traffic::pcap::{LinkType, PcapWriter};
    use ctrack_traffic::synth::{Mix, Side};
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
    // One packet at a time: memory stays flat whatever the capture's size.
    let mut packets = 0u64;
    for p in mix.iter() {
        let w = match (&mut reply, p.side) {
            (Some(r), Side::Reply) => r,
            _ => &mut orig,
        };
        w.write_packet(p.ts_nanos, &p.frame)?;
        packets += 1;
    }
    orig.flush()?;
    if let Some(r) = &mut reply {
        r.flush()?;
    }
    control::outln!(
        "ctrack: wrote {} packets of {} connections",
        packets,
        mix.tcp + mix.udp + mix.icmp
    );
    Ok(())
}

#[cfg(feature = "dpdk")]
fn run_dataplane(
    cfg: &RunConfig,
    tracking: &Settings,
    traffic_flow: &control::flow_export::TrafficFlow,
    rules: Option<ctrack_rules::Config>,
    summary_json: Option<PathBuf>,
) -> Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = Arc::new(AtomicBool::new(false));
    let on_signal = stop.clone();
    ctrlc::set_handler(move || on_signal.store(true, Ordering::SeqCst))
        .context("installing the SIGINT/SIGTERM handler")?;
    let summary = control::run::run_with_export(cfg, tracking, rules, traffic_flow, stop)?;
    print_summary(&summary);
    if let Some(path) = summary_json {
        let json = serde_json::to_string_pretty(&summary)?;
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

#[cfg(not(feature = "dpdk"))]
fn run_dataplane(
    _: &RunConfig,
    _: &Settings,
    _: &control::flow_export::TrafficFlow,
    _: Option<ctrack_rules::Config>,
    _: Option<PathBuf>,
) -> Result<()> {
    anyhow::bail!("this ctrack was built without the `dpdk` feature; rebuild with default features")
}

#[cfg(feature = "dpdk")]
fn print_summary(s: &control::run::RunSummary) {
    control::outln!(
        "ctrack: stopped ({}) after {:.3}s",
        s.stop_reason,
        s.elapsed_secs
    );
    control::outln!(
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
        control::outln!(
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
    control::outln!(
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
        control::outln!(
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
    control::outln!(
        "mempool: {} mbufs, in use at start {}, at end {}",
        s.mempool_size,
        s.mempool_in_use_start,
        s.mempool_in_use_end
    );
    if !s.firewall_rules.is_empty() {
        let dropped: u64 = s.workers.iter().map(|w| w.firewall_dropped).sum();
        let rejected: u64 = s.workers.iter().map(|w| w.firewall_rejected).sum();
        let tarpitted: u64 = s.workers.iter().map(|w| w.firewall_tarpitted).sum();
        println!("firewall: {dropped} packets dropped, {rejected} rejected, {tarpitted} tarpitted");
        println!(
            "{:<20} {:>3} {:<12} {:<22} {:>12} {:>14}  COMMENT",
            "TABLE", "#", "CHAIN", "ACTION", "PACKETS", "BYTES"
        );
        for r in &s.firewall_rules {
            println!(
                "{:<20} {:>3} {:<12} {:<22} {:>12} {:>14}  {}",
                format!("/{} firewall {}", r.family, r.table),
                r.position,
                r.chain,
                r.action,
                r.packets,
                r.bytes,
                r.comment.as_deref().unwrap_or("")
            );
        }
    }
}

/// `yes` / `no` (RouterOS's booleans), `true` / `false`.
fn parse_yes_no(s: &str) -> Result<bool, String> {
    match s {
        "yes" | "true" => Ok(true),
        "no" | "false" => Ok(false),
        _ => Err(format!("{s:?}: expected yes or no")),
    }
}
