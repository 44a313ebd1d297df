//! `ctrack run` configuration: a TOML file, overridden by command-line flags.
//!
//! ```toml
//! [run]
//! # DPDK EAL arguments (command-line arguments after `--` replace these).
//! eal = ["--no-huge", "-m", "1024", "--no-pci", "--no-shconf", "-l", "0-1",
//!        "--vdev", "net_ring0", "--vdev", "net_ring1"]
//! workers = 1          # default: one per EAL lcore beyond the main one (at least 1)
//! rx-desc = 1024       # RX descriptors per queue
//! tx-desc = 1024       # TX descriptors per queue
//! burst = 32           # packets per RX burst (1..=64)
//! mbufs = 16383        # mbufs in the pool (default: sized from ports and queues)
//! duration = "10s"     # stop after this long (default: run until SIGINT/SIGTERM)
//! idle-exit = "1s"     # stop once no packet arrived for this long
//! max-entries = 1048576  # connections per worker (the table's ceiling)
//! ports = [0, 1]       # DPDK port ids, paired in this order (default: all probed)
//! fasttrack = "no"     # or "established"
//! api = "127.0.0.1:8728"       # management API, or "off"
//! api-token = "..."            # required to bind the API beyond loopback
//! metrics = "127.0.0.1:9464"   # Prometheus /metrics, or "off"
//! rules = "defconf.rsc"        # RouterOS firewall script (relative to this file)
//! rules-lenient = false        # skip what ctrack does not implement, with warnings
//! reassembly = true            # reassemble IP fragments while tracking (docs/nat.md, Fragments)
//! frag-timeout = "30s"         # a datagram's fragments are dropped after this (Linux ipfrag_time)
//! frag-max-datagrams = 4096    # datagrams in reassembly per worker (rte_ip_frag max_entries)
//! frag-buckets = 1024          # the table's buckets per worker (bucket_num)
//! frag-bucket-entries = 4      # datagrams per bucket (bucket_entries: a power of 2, <= 16)
//! frag-mbufs = 64              # 64 KiB buffers for whole datagrams, per worker
//!
//! [api]                # who may use the management API (docs/api.md)
//! tls-cert = "/etc/ctrack/api.crt"   # PEM chain: serve HTTPS (www-ssl-like)
//! tls-key = "/etc/ctrack/api.key"    # PEM private key
//! [[api.users]]        # HTTP Basic, as RouterOS REST clients send it
//! name = "admin"
//! password-hash = "$argon2id$v=19$..."  # echo -n PASSWORD | argon2 SALT -id -e
//!
//! [tracking]           # /ip firewall connection tracking, the seed's names
//! udp-timeout = "10s"
//! tcp-established-timeout = "1d"
//!
//! [traffic-flow]       # /ip traffic-flow (see flow_export.rs)
//! enabled = "yes"
//! [[traffic-flow.target]]
//! dst-address = "192.0.2.10"
//! port = 2055
//! version = "ipfix"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::ApiUser;

use dataplane::conntrack::{Duration, Settings};
use dataplane::policy::FastTrackMode;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The config file is not valid TOML or has a bad field.
    #[error("bad config file {path}: {message}")]
    Parse { path: String, message: String },
    /// A value is out of its range.
    #[error("bad value for {field}: {message}")]
    Value {
        field: &'static str,
        message: String,
    },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub run: RunConfig,
    /// Connection tracking settings (the seed's names and defaults). Reading
    /// them validates them as `--set` and the API do
    /// ([`Settings::validate`]): a value they refuse is refused here, with a
    /// message naming the key.
    #[serde(default)]
    pub tracking: Settings,
    /// `/ip traffic-flow` and its targets (see [`crate::flow_export`]).
    #[serde(default, rename = "traffic-flow")]
    pub traffic_flow: crate::flow_export::TrafficFlow,
    /// Who may use the management API, and its TLS.
    #[serde(default)]
    pub api: ApiSection,
}

/// The `[api]` table: Basic users and TLS.
#[derive(Debug, Default, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ApiSection {
    #[serde(default)]
    pub users: Vec<ApiUser>,
    /// PEM certificate chain; with `tls-key`, the API speaks HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls-cert`.
    pub tls_key: Option<PathBuf>,
}

impl ApiSection {
    /// Every user's hash is an argon2 PHC string, names are unique, and
    /// the TLS paths come as a pair.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |message: String| ConfigError::Value {
            field: "api",
            message,
        };
        for (i, u) in self.users.iter().enumerate() {
            u.validate().map_err(bad)?;
            if self.users[..i].iter().any(|v| v.name == u.name) {
                return Err(bad(format!("api user {:?} is listed twice", u.name)));
            }
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(bad("tls-cert and tls-key go together".to_string()));
        }
        Ok(())
    }
}

/// A listening address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    Off,
    At(std::net::SocketAddr),
}

impl std::str::FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "off" {
            return Ok(Listen::Off);
        }
        s.parse().map(Listen::At).map_err(|_| {
            format!("bad address {s:?}: expected IP:PORT (e.g. 127.0.0.1:8728) or off")
        })
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Settings of `ctrack run`. `None` means "use the default".
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RunConfig {
    #[serde(default)]
    pub eal: Vec<String>,
    pub workers: Option<u16>,
    pub rx_desc: Option<u16>,
    pub tx_desc: Option<u16>,
    pub burst: Option<u16>,
    pub mbufs: Option<u32>,
    pub duration: Option<Duration>,
    pub idle_exit: Option<Duration>,
    pub max_entries: Option<u32>,
    /// DPDK port ids to use, paired in this order (default: every probed port).
    pub ports: Option<Vec<u16>>,
    #[serde(default, deserialize_with = "de_fasttrack")]
    pub fasttrack: Option<FastTrackMode>,
    pub api: Option<Listen>,
    pub api_token: Option<String>,
    pub metrics: Option<Listen>,
    /// The config file's `[api]` table (no command-line form).
    #[serde(skip)]
    pub api_access: ApiSection,
    /// A RouterOS firewall script (`.rsc`) to load (see docs/firewall.md).
    pub rules: Option<std::path::PathBuf>,
    /// Skip what ctrack does not implement in `rules`, with warnings.
    pub rules_lenient: Option<bool>,
    /// Reassemble IP fragments while tracking (default yes; see
    /// docs/nat.md, Fragments).
    pub reassembly: Option<bool>,
    /// How long a datagram's fragments wait for the rest (Linux's
    /// `ipfrag_time`, 30 s).
    pub frag_timeout: Option<Duration>,
    /// Datagrams in reassembly at once, per worker (`rte_ip_frag`'s
    /// `max_entries`; Linux bounds memory instead: `ipfrag_high_thresh`).
    pub frag_max_datagrams: Option<u32>,
    /// The reassembly table's buckets per worker (`bucket_num`).
    pub frag_buckets: Option<u32>,
    /// Datagrams per bucket (`bucket_entries`: a power of 2, at most 16).
    pub frag_bucket_entries: Option<u32>,
    /// Buffers (64 KiB each) for whole datagrams, per worker.
    pub frag_mbufs: Option<u32>,
}

fn de_fasttrack<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<FastTrackMode>, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map(Some).map_err(serde::de::Error::custom)
}

impl RunConfig {
    pub const DEFAULT_RX_DESC: u16 = 1024;
    pub const DEFAULT_TX_DESC: u16 = 1024;
    pub const DEFAULT_BURST: u16 = 32;
    pub const DEFAULT_MAX_ENTRIES: u32 = 1 << 20;
    pub const DEFAULT_API: &str = "127.0.0.1:8728";
    pub const DEFAULT_METRICS: &str = "127.0.0.1:9464";
    pub const DEFAULT_FRAG_TIMEOUT_SECS: u64 = 30;
    pub const DEFAULT_FRAG_MAX_DATAGRAMS: u32 = 4096;
    pub const DEFAULT_FRAG_BUCKETS: u32 = 1024;
    pub const DEFAULT_FRAG_BUCKET_ENTRIES: u32 = 4;
    pub const DEFAULT_FRAG_MBUFS: u32 = 64;

    pub fn load(path: &Path) -> Result<RunConfig, ConfigError> {
        ConfigFile::load(path).map(|f| f.run)
    }
}

impl ConfigFile {
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let file: ConfigFile = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: shown,
            message: e.message().to_owned(),
        })?;
        file.run.validate()?;
        file.traffic_flow
            .validate()
            .map_err(|e| ConfigError::Value {
                field: e.field,
                message: e.message,
            })?;
        file.api.validate()?;
        let mut file = file;
        file.run.api_access = file.api.clone();
        // A script named in the file is found beside it.
        if let (Some(r), Some(dir)) = (&file.run.rules, path.parent())
            && r.is_relative()
        {
            file.run.rules = Some(dir.join(r));
        }
        Ok(file)
    }
}

impl RunConfig {
    /// Fields of `over` that are set replace ours.
    pub fn merge(mut self, over: RunConfig) -> RunConfig {
        if !over.eal.is_empty() {
            self.eal = over.eal;
        }
        self.workers = over.workers.or(self.workers);
        self.rx_desc = over.rx_desc.or(self.rx_desc);
        self.tx_desc = over.tx_desc.or(self.tx_desc);
        self.burst = over.burst.or(self.burst);
        self.mbufs = over.mbufs.or(self.mbufs);
        self.duration = over.duration.or(self.duration);
        self.idle_exit = over.idle_exit.or(self.idle_exit);
        self.max_entries = over.max_entries.or(self.max_entries);
        self.ports = over.ports.or(self.ports);
        self.fasttrack = over.fasttrack.or(self.fasttrack);
        self.api = over.api.or(self.api);
        self.api_token = over.api_token.or(self.api_token);
        self.metrics = over.metrics.or(self.metrics);
        if over.api_access != ApiSection::default() {
            self.api_access = over.api_access;
        }
        self.rules = over.rules.or(self.rules);
        self.rules_lenient = over.rules_lenient.or(self.rules_lenient);
        self.reassembly = over.reassembly.or(self.reassembly);
        self.frag_timeout = over.frag_timeout.or(self.frag_timeout);
        self.frag_max_datagrams = over.frag_max_datagrams.or(self.frag_max_datagrams);
        self.frag_buckets = over.frag_buckets.or(self.frag_buckets);
        self.frag_bucket_entries = over.frag_bucket_entries.or(self.frag_bucket_entries);
        self.frag_mbufs = over.frag_mbufs.or(self.frag_mbufs);
        self
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(w) = self.workers {
            check_workers(w)?;
        }
        if let Some(m) = self.max_entries {
            check_max_entries(m)?;
        }
        let opt = |field, v: Option<u64>, lo, hi| v.map_or(Ok(()), |v| range(field, v, lo, hi));
        opt("rx-desc", self.rx_desc.map(u64::from), 32, 32768)?;
        opt("tx-desc", self.tx_desc.map(u64::from), 32, 32768)?;
        opt("burst", self.burst.map(u64::from), 1, 64)?;
        opt("mbufs", self.mbufs.map(u64::from), 1024, 1 << 26)?;
        opt(
            "frag-max-datagrams",
            self.frag_max_datagrams.map(u64::from),
            1,
            1 << 20,
        )?;
        opt("frag-buckets", self.frag_buckets.map(u64::from), 1, 1 << 20)?;
        opt("frag-mbufs", self.frag_mbufs.map(u64::from), 1, 1 << 16)?;
        if let Some(e) = self.frag_bucket_entries
            && (!e.is_power_of_two() || e > 16)
        {
            return Err(ConfigError::Value {
                field: "frag-bucket-entries",
                message: format!("{e}: a power of 2 up to 16"),
            });
        }
        if let Some(t) = self.frag_timeout
            && (t.as_nanos() == 0 || t > Duration::from_secs(3600))
        {
            return Err(ConfigError::Value {
                field: "frag-timeout",
                message: "between 1ns and 1h".into(),
            });
        }
        let buckets =
            u64::from(self.frag_buckets.unwrap_or(Self::DEFAULT_FRAG_BUCKETS)).next_power_of_two();
        let entries = u64::from(
            self.frag_bucket_entries
                .unwrap_or(Self::DEFAULT_FRAG_BUCKET_ENTRIES),
        );
        let max = u64::from(
            self.frag_max_datagrams
                .unwrap_or(Self::DEFAULT_FRAG_MAX_DATAGRAMS),
        );
        if max > buckets * entries {
            return Err(ConfigError::Value {
                field: "frag-max-datagrams",
                message: format!(
                    "{max} is more than the table holds: frag-buckets (rounded up to a power of 2: \
                     {buckets}) x frag-bucket-entries ({entries})"
                ),
            });
        }
        if let Some(p) = &self.ports {
            let mut sorted = p.clone();
            sorted.sort_unstable();
            sorted.dedup();
            if sorted.len() != p.len() || p.is_empty() {
                return Err(ConfigError::Value {
                    field: "ports",
                    message: format!("{p:?}: list each port id once, at least one"),
                });
            }
        }
        Ok(())
    }
}

/// Most workers `run` and `replay` take.
pub const MAX_WORKERS: u16 = 128;
/// Largest `max-entries` (per worker) `run` and `replay` take: a table's
/// index is allocated whole for its ceiling (about 7 bytes a connection),
/// so the bound keeps a typo from asking for gigabytes.
pub const MAX_MAX_ENTRIES: u32 = 1 << 28;

/// `workers` is within 1..=[`MAX_WORKERS`] (`run` and `replay`).
pub fn check_workers(workers: u16) -> Result<(), ConfigError> {
    range("workers", u64::from(workers), 1, u64::from(MAX_WORKERS))
}

/// `max-entries` is within 1..=[`MAX_MAX_ENTRIES`] (`run` and `replay`).
pub fn check_max_entries(max_entries: u32) -> Result<(), ConfigError> {
    range(
        "max-entries",
        u64::from(max_entries),
        1,
        u64::from(MAX_MAX_ENTRIES),
    )
}

fn range(field: &'static str, v: u64, lo: u64, hi: u64) -> Result<(), ConfigError> {
    if v < lo || v > hi {
        return Err(ConfigError::Value {
            field,
            message: format!("{v} is outside {lo}..={hi}"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kebab_case_and_rejects_unknown_fields() {
        let f: ConfigFile =
            toml::from_str("[run]\nworkers = 2\nrx-desc = 512\nidle-exit = \"500ms\"\n").unwrap();
        assert_eq!(f.run.workers, Some(2));
        assert_eq!(f.run.rx_desc, Some(512));
        assert_eq!(f.run.idle_exit, Some(Duration::from_millis(500)));
        let err = toml::from_str::<ConfigFile>("[run]\nwrokers = 2\n").unwrap_err();
        assert!(err.message().contains("wrokers"), "{}", err.message());
    }

    #[test]
    fn a_tracking_value_the_api_refuses_is_refused_in_the_file_too() {
        // serde reaches the same validation as `--set` and the API.
        let err = toml::from_str::<ConfigFile>("[tracking]\nudp-timeout = \"0s\"\n").unwrap_err();
        assert!(err.message().contains("udp-timeout"), "{}", err.message());
        let dir = std::env::temp_dir().join(format!("ctrack-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("zero-timeout.toml");
        std::fs::write(&path, "[tracking]\nicmp-timeout = \"0s\"\n").unwrap();
        let e = ConfigFile::load(&path).unwrap_err().to_string();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(e.contains("icmp-timeout") && e.contains("0s"), "{e}");
        let ok: ConfigFile = toml::from_str("[tracking]\nudp-timeout = \"30s\"\n").unwrap();
        assert_eq!(ok.tracking.udp_timeout, Duration::from_secs(30));
    }

    #[test]
    fn api_users_and_tls_are_read_and_checked() {
        let h = crate::auth::tests::hash("pw");
        let text = format!(
            "[api]\ntls-cert = \"/c.pem\"\ntls-key = \"/k.pem\"\n\
             [[api.users]]\nname = \"admin\"\npassword-hash = \"{h}\"\n"
        );
        let f: ConfigFile = toml::from_str(&text).unwrap();
        f.api.validate().unwrap();
        assert_eq!(f.api.users[0].name, "admin");
        assert_eq!(f.api.tls_key.as_deref(), Some(Path::new("/k.pem")));
        let twice = ApiSection {
            users: vec![f.api.users[0].clone(), f.api.users[0].clone()],
            ..ApiSection::default()
        };
        assert!(twice.validate().unwrap_err().to_string().contains("twice"));
        let half = ApiSection {
            tls_cert: Some("/c.pem".into()),
            ..ApiSection::default()
        };
        assert!(half.validate().unwrap_err().to_string().contains("tls-key"));
        let clear: ConfigFile =
            toml::from_str("[[api.users]]\nname = \"ops\"\npassword-hash = \"hunter2\"\n").unwrap();
        let e = clear.api.validate().unwrap_err().to_string();
        assert!(e.contains("ops") && e.contains("PHC"), "{e}");
    }

    #[test]
    fn validation_names_the_field() {
        let c = RunConfig {
            burst: Some(65),
            ..Default::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("burst"), "{e}");
    }

    #[test]
    fn fragment_settings_parse_and_are_checked() {
        let f: ConfigFile = toml::from_str(
            "[run]\nreassembly = false\nfrag-timeout = \"5s\"\nfrag-max-datagrams = 64\n\
             frag-buckets = 16\nfrag-bucket-entries = 4\nfrag-mbufs = 8\n",
        )
        .unwrap();
        f.run.validate().unwrap();
        assert_eq!(f.run.reassembly, Some(false));
        assert_eq!(f.run.frag_timeout, Some(Duration::from_secs(5)));
        assert_eq!(
            (
                f.run.frag_max_datagrams,
                f.run.frag_buckets,
                f.run.frag_mbufs
            ),
            (Some(64), Some(16), Some(8))
        );
        let bad = |c: RunConfig, field: &str| {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        };
        bad(
            RunConfig {
                frag_bucket_entries: Some(3),
                ..Default::default()
            },
            "frag-bucket-entries",
        );
        // 100 buckets round up to 128; 128 x 4 < 1000.
        bad(
            RunConfig {
                frag_buckets: Some(100),
                frag_max_datagrams: Some(1000),
                ..Default::default()
            },
            "frag-max-datagrams",
        );
        bad(
            RunConfig {
                frag_timeout: Some(Duration::ZERO),
                ..Default::default()
            },
            "frag-timeout",
        );
    }

    #[test]
    fn flags_override_file() {
        let file = RunConfig {
            eal: vec!["-l".into(), "0".into()],
            workers: Some(1),
            burst: Some(16),
            ..Default::default()
        };
        let cli = RunConfig {
            workers: Some(2),
            ..Default::default()
        };
        let m = file.merge(cli);
        assert_eq!(m.workers, Some(2));
        assert_eq!(m.burst, Some(16));
        assert_eq!(m.eal, vec!["-l", "0"]);
    }
}
