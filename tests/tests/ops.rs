//! Operations, end to end: the host set-up script's dry run, `ctrack check`
//! on the shipped and on broken configurations, `--version`, the man pages
//! and completions, the log formats, and the systemd unit.

use std::path::{Path, PathBuf};
use std::process::Command;

use ctrack_tests::{ctrack, ctrack_bin, eal_base, scratch_dir, show};

/// The repository's root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn setup_host(a: &[&str]) -> std::process::Output {
    Command::new("bash")
        .arg(repo().join("scripts/setup-host.sh"))
        .args(a)
        .output()
        .expect("run setup-host.sh")
}

#[test]
fn setup_host_dry_run_prints_the_plan_and_changes_nothing() {
    let nr = "/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages";
    let before = std::fs::read_to_string(nr).ok();
    let out = setup_host(&[
        "--dry-run",
        "--hugepages",
        "1G",
        "--pagesize",
        "2M",
        "0000:01:00.0",
        "02:00.1",
    ]);
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for want in [
        "would run: dpdk-hugepages.py -p 2M --setup 1G",
        "would run: modprobe vfio-pci",
        "would run: dpdk-devbind.py -b vfio-pci 0000:01:00.0 02:00.1",
        "dry run: nothing was changed",
    ] {
        assert!(stdout.contains(want), "missing {want:?}\n{}", show(&out));
    }
    // The checks ran: IOMMU and CPU isolation are reported either way.
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("IOMMU"), "{}", show(&out));
    assert!(all.contains("isolated CPUs"), "{}", show(&out));
    assert_eq!(
        std::fs::read_to_string(nr).ok(),
        before,
        "hugepages changed"
    );

    // Another driver, no NIC: hugepages only.
    let out = setup_host(&["--dry-run", "--driver", "uio_pci_generic"]);
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("would run: modprobe uio_pci_generic"));
    assert!(!stdout.contains("dpdk-devbind.py -b"), "{stdout}");

    // Bad arguments: exit 2 with the reason.
    for (bad, reason) in [
        (&["--dry-run", "bogus"][..], "bad PCI address bogus"),
        (&["--dry-run", "--pagesize", "4M"][..], "bad --pagesize 4M"),
        (
            &["--dry-run", "--hugepages", "lots"][..],
            "bad --hugepages lots",
        ),
        (
            &["--dry-run", "--frobnicate"][..],
            "unknown option --frobnicate",
        ),
    ] {
        let out = setup_host(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}\n{}", show(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(reason),
            "{bad:?}: {}",
            show(&out)
        );
    }
}

#[test]
fn check_accepts_the_shipped_config_without_starting_dpdk() {
    let cfg = repo().join("dist/ctrack.toml");
    let out = ctrack(&args(&["check", "--config", cfg.to_str().unwrap()]));
    assert!(out.status.success(), "{}", show(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("configuration is valid"), "{stdout}");
    assert!(stdout.contains("workers:     3"), "{stdout}");
    assert!(stdout.contains("\"udp-timeout\":\"10s\""), "{stdout}");
    // DPDK did not start: the example names PCI devices this host lacks,
    // and EAL would have said so.
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("EAL"),
        "{}",
        show(&out)
    );

    // A --set is validated with it.
    let out = ctrack(&args(&[
        "check",
        "--config",
        cfg.to_str().unwrap(),
        "--set",
        "udp-timeout=1h",
    ]));
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"udp-timeout\":\"1h\""));
}

#[test]
fn check_refuses_bad_configs_naming_the_problem() {
    let dir = scratch_dir("check");
    let cases = [
        ("[run]\nports = [0, 1, 2]\n", "list an even number"),
        ("[run]\nbogus = 1\n", "unknown field `bogus`"),
        ("[run]\nworkers = 0\n", "bad value for workers"),
        ("[run]\nburst = 65\n", "bad value for burst"),
        ("[run]\napi = \"0.0.0.0:8728\"\n", "without a token"),
        (
            "[run]\napi = \"127.0.0.1:9000\"\nmetrics = \"127.0.0.1:9000\"\n",
            "api and metrics both on 127.0.0.1:9000",
        ),
        ("[run]\nmetrics = \"localhost\"\n", "bad address"),
        (
            "[tracking]\nudp-timeout = \"soon\"\n",
            "bad time value \"soon\"",
        ),
        ("[run\n", "bad config file"),
        (
            "[[api.users]]\nname = \"ops\"\npassword-hash = \"hunter2\"\n",
            "api user \"ops\": password-hash is not a PHC string",
        ),
        (
            "[api]\ntls-cert = \"/c.pem\"\n",
            "tls-cert and tls-key go together",
        ),
    ];
    for (i, (text, reason)) in cases.iter().enumerate() {
        let path = dir.join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = Command::new(ctrack_bin())
            .args(["check", "--config", path.to_str().unwrap()])
            .env_remove("CTRACK_TOKEN")
            .output()
            .expect("spawn ctrack");
        assert_eq!(out.status.code(), Some(1), "{text:?}\n{}", show(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        // The error (it may go on over more lines).
        let err = stderr.find("ctrack: error:").map_or("", |i| &stderr[i..]);
        assert!(
            err.contains(reason),
            "{text:?}: want {reason:?}\n{}",
            show(&out)
        );
        assert!(!stderr.contains("panicked"), "{}", show(&out));
    }
    // A token (here from the environment) allows the API beyond loopback.
    let path = dir.join("token.toml");
    std::fs::write(&path, "[run]\napi = \"0.0.0.0:8728\"\n").unwrap();
    let out = Command::new(ctrack_bin())
        .args(["check", "--config", path.to_str().unwrap()])
        .env("CTRACK_TOKEN", "secret")
        .output()
        .expect("spawn ctrack");
    assert!(out.status.success(), "{}", show(&out));
    // A missing file.
    let out = ctrack(&args(&["check", "--config", "/nonexistent/ctrack.toml"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read config file"));
}

#[test]
fn version_names_the_commit_and_the_dpdk_version() {
    let out = ctrack(&args(&["--version"]));
    assert!(out.status.success(), "{}", show(&out));
    let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let dpdk = Command::new("pkg-config")
        .args(["--modversion", "libdpdk"])
        .output()
        .expect("pkg-config");
    let dpdk = String::from_utf8_lossy(&dpdk.stdout).trim().to_string();
    assert!(!dpdk.is_empty(), "pkg-config knows no libdpdk");
    let want_tail = format!(", DPDK {dpdk})");
    assert!(v.starts_with("ctrack 0.") && v.ends_with(&want_tail), "{v}");
    let commit = v
        .split("(commit ")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or("");
    // A 12-digit hex commit when built in a git checkout (as here).
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(repo())
        .output();
    if let Ok(h) = head
        && h.status.success()
    {
        assert_eq!(commit.len(), 12, "{v}");
        assert!(commit.chars().all(|c| c.is_ascii_hexdigit()), "{v}");
    }
}

#[test]
fn man_pages_and_completions_come_from_the_cli() {
    let dir = scratch_dir("man");
    let out = ctrack(&args(&["man", "--out-dir", dir.to_str().unwrap()]));
    assert!(out.status.success(), "{}", show(&out));
    for sub in ["", "-run", "-check", "-generate", "-replay", "-connection"] {
        let page = dir.join(format!("ctrack{sub}.1"));
        let text =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "{}",
            page.display()
        );
    }
    let main = std::fs::read_to_string(dir.join("ctrack.1")).unwrap();
    assert!(main.contains("check"), "the man page lists the subcommands");
    let run = std::fs::read_to_string(dir.join("ctrack-run.1")).unwrap();
    assert!(
        run.contains("max\\-entries"),
        "ctrack-run.1 documents --max-entries"
    );

    for (shell, marker) in [
        ("bash", "_ctrack()"),
        ("zsh", "#compdef ctrack"),
        ("fish", "complete -c ctrack"),
    ] {
        let out = ctrack(&args(&["completions", shell]));
        assert!(out.status.success(), "{shell}: {}", show(&out));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(marker), "{shell}: no {marker:?}");
        assert!(text.contains("check"), "{shell} completes `check`");
    }
    let out = ctrack(&args(&["completions", "tcsh"]));
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}

/// `ctrack run` on two ring ports for a moment, with the given log settings.
fn short_run(env: &[(&str, &str)]) -> std::process::Output {
    let mut a = args(&[
        "run",
        "--duration",
        "200ms",
        "--api",
        "off",
        "--metrics",
        "off",
        "--",
    ]);
    a.extend(eal_base());
    a.extend(args(&["--vdev", "net_ring0", "--vdev", "net_ring1"]));
    let mut cmd = Command::new(ctrack_bin());
    cmd.args(&a)
        .env_remove("CTRACK_LOG")
        .env_remove("CTRACK_LOG_FORMAT");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("spawn ctrack run")
}

#[test]
fn logs_carry_timestamps_and_levels_plain_or_json() {
    // JSON: one object per line, with timestamp, level and the build.
    let out = short_run(&[("CTRACK_LOG_FORMAT", "json")]);
    assert!(out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let start = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "starting ctrack")
        .unwrap_or_else(|| panic!("no JSON start line\n{}", show(&out)));
    assert_eq!(start["level"], "INFO", "{start}");
    let ts = start["timestamp"].as_str().unwrap_or("");
    assert!(ts.len() >= 20 && ts.contains('T'), "timestamp {ts:?}");
    assert!(start["commit"].as_str().is_some_and(|c| !c.is_empty()));
    assert!(start["dpdk"].as_str().is_some_and(|c| !c.is_empty()));

    // Plain (the default): timestamp, level, message; no colour codes in a pipe.
    let out = short_run(&[]);
    assert!(out.status.success(), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = stderr
        .lines()
        .find(|l| l.contains("starting ctrack"))
        .unwrap_or_else(|| panic!("no start line\n{}", show(&out)));
    assert!(line.contains(" INFO "), "{line}");
    assert!(
        line.as_bytes()[..4].iter().all(u8::is_ascii_digit),
        "{line}"
    );
    assert!(!stderr.contains('\u{1b}'), "colour codes in a pipe");

    // The level filter: warn hides the start line.
    let out = short_run(&[("CTRACK_LOG", "warn")]);
    assert!(out.status.success(), "{}", show(&out));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("starting ctrack"));
    // A bad filter is refused with the reason.
    let out = short_run(&[("CTRACK_LOG", "control=loud")]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad --log-level"));
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: systemd-analyze is not installed");
        return;
    };
    if !probe.status.success() {
        eprintln!("skipped: systemd-analyze does not run here");
        return;
    }
    // The unit as shipped, with its paths pointed at this build and the
    // example config, so that verify can check that the binaries exist.
    let dir = scratch_dir("unit");
    let unit = std::fs::read_to_string(repo().join("dist/ctrack.service")).unwrap();
    let bin = ctrack_bin();
    let unit = unit
        .replace("/usr/local/bin/ctrack", bin.to_str().unwrap())
        .replace(
            "/etc/ctrack/ctrack.toml",
            repo().join("dist/ctrack.toml").to_str().unwrap(),
        );
    for key in [
        "LimitMEMLOCK=infinity",
        "Restart=on-failure",
        "ExecStartPre=",
    ] {
        assert!(unit.contains(key), "the unit has no {key}");
    }
    let path = dir.join("ctrack.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Lines about ctrack.service itself (verify also reports on the host's
    // other units, which are not ours).
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("ctrack.service"))
        .collect();
    assert!(ours.is_empty(), "{}", show(&out));
}

/// `ctrack check` reads router mode's menus as `run` would: an address on
/// an interface the run does not have is an error naming it; in router
/// mode an odd port list is fine (ports are not paired).
#[test]
fn check_validates_router_mode() {
    let dir = scratch_dir("check-router");
    let check = |toml: &str, rsc: &str| {
        std::fs::write(dir.join("r.rsc"), rsc).unwrap();
        let path = dir.join("c.toml");
        std::fs::write(&path, toml).unwrap();
        Command::new(ctrack_bin())
            .args(["check", "--config", path.to_str().unwrap()])
            .env_remove("CTRACK_TOKEN")
            .output()
            .expect("spawn ctrack")
    };
    let out = check(
        "[run]\nrules = \"r.rsc\"\n",
        "/ip address\nadd address=10.0.0.1/24 interface=ether7\n",
    );
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("interface=ether7"), "{}", show(&out));
    let three = "[run]\nrules = \"r.rsc\"\nports = [0, 1, 2]\n";
    let out = check(
        three,
        "/ip address\nadd address=10.0.0.1/24 interface=ether3\n\
         /ip route\nadd gateway=10.0.0.254\n",
    );
    assert!(out.status.success(), "{}", show(&out));
    // Without addresses the same three ports are refused (bridge mode).
    let out = check(three, "/ip route\nadd gateway=10.0.0.254\n");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
}
