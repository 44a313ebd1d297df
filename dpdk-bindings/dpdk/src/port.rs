use std::cell::Cell;
use std::ffi::{CStr, c_char};
use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::eal::Live;
use crate::error::{DpdkError, Result, check};
use crate::{MbufBurst, Mempool};

/// An Ethernet port id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

impl fmt::Debug for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port{}", self.0)
    }
}

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A queue index on a port.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u16);

impl fmt::Debug for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "queue{}", self.0)
    }
}

/// What a port can do, from `rte_eth_dev_info_get`.
#[derive(Debug, Clone)]
pub struct PortInfo {
    pub name: String,
    pub driver: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    pub reta_size: u16,
    pub hash_key_size: u8,
    /// RSS hash functions the device supports (`RTE_ETH_RSS_*`).
    pub rss_offloads: u64,
    /// RX offloads the device supports (`RTE_ETH_RX_OFFLOAD_*`).
    pub rx_offloads: u64,
    pub socket: i32,
}

/// How to set a port up.
#[derive(Debug, Clone)]
pub struct PortConfig {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// The RSS key for multi-queue RX on a device whose key has `size`
    /// bytes (0 when the driver does not say); `None` if there is none of
    /// that size, and the driver keeps its own (the port's [`RssStatus`]
    /// says so). The symmetric Toeplitz key keeps both directions of a
    /// connection on one queue.
    pub rss_key: fn(size: usize) -> Option<Vec<u8>>,
    /// The redirection table to program when RSS is on, given the device's
    /// table size and the RX queue count; `None` leaves the driver's.
    pub reta: fn(size: usize, queues: u16) -> Option<Vec<u16>>,
    pub promiscuous: bool,
}

/// Per-port counters from `rte_eth_stats_get`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PortStats {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
}

/// What RSS a started port does, as configured and read back from the
/// device. `problem` says why it is not what [`PortConfig`] asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RssStatus {
    /// RSS spreads received packets over the RX queues.
    pub enabled: bool,
    /// The hash types in effect (`RTE_ETH_RSS_*`): read back from the
    /// device, or as asked when it cannot report them.
    pub hash_types: u64,
    /// The key in effect, read back from the device; `None` if it cannot
    /// report it (or RSS is off).
    pub key: Option<Vec<u8>>,
    /// The device hashes with the key [`PortConfig::rss_key`] gave: it took
    /// it, and read it back equal if it can report it.
    pub configured_key: bool,
    /// Why RSS is not as asked; `None` when it is, or when the port has one
    /// RX queue (nothing to spread).
    pub problem: Option<RssProblem>,
}

impl RssStatus {
    /// TCP and UDP ports are part of the hash, for IPv4 and IPv6.
    pub fn hashes_l4_ports(&self) -> bool {
        self.hash_types & Port::RSS_L4 == Port::RSS_L4
    }

    /// IPv6 packets with extension headers may be hashed over addresses
    /// taken from those headers (the `*_EX` types), not the header's own.
    pub fn hashes_ipv6_ext(&self) -> bool {
        self.hash_types & Port::RSS_IPV6_EX != 0
    }
}

/// Why a port's RSS is not as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RssProblem {
    /// Several RX queues, but the device hashes none of [`Port::RSS_HF`]:
    /// the driver picks the queue.
    #[error("the device supports none of the RSS hash types asked for")]
    NoHashTypes,
    /// The device hashes only some of TCP/UDP over IPv4/IPv6 with ports.
    #[error(
        "the device does not hash TCP and UDP ports for both IPv4 and IPv6 (hash types {0:#x})"
    )]
    PartialHashTypes(u64),
    /// [`PortConfig::rss_key`] has no key of the device's size: the driver
    /// keeps its own.
    #[error("no RSS key of the device's size ({0} bytes): the driver's own key is in use")]
    NoKeyOfSize(usize),
    /// The device refused the key: the driver keeps its own.
    #[error("the device refused the RSS key ({0}): the driver's own key is in use")]
    KeyRejected(DpdkError),
    /// The device reports another key than the one it was given.
    #[error("the device reports another RSS key than the one it was given")]
    KeyDiffers,
}

#[derive(Debug)]
struct PortShared {
    id: PortId,
    // Whether a handle for each queue is out (see Port::take_rx_queue).
    rx_taken: Box<[AtomicBool]>,
    tx_taken: Box<[AtomicBool]>,
    // Keeps the pool alive while the port's RX rings may hold its mbufs;
    // also where packets made to be sent on the port come from.
    pool: Arc<Mempool>,
    // Last: counted until the port is closed.
    _live: Live,
}

impl Drop for PortShared {
    fn drop(&mut self) {
        // SAFETY: the last handle to the port is going away: no queue is
        // polled any more, so stopping and closing is safe. Errors on
        // shutdown are not actionable.
        unsafe {
            dpdk_sys::rte_eth_dev_stop(self.id.0);
            dpdk_sys::rte_eth_dev_close(self.id.0);
        }
    }
}

/// A configured and started port. Stopped and closed when it and all its
/// queue handles are dropped. Clones share the port, and its queues: each
/// queue is handed out to one handle at a time, whichever clone asks.
#[derive(Debug, Clone)]
pub struct Port {
    shared: Arc<PortShared>,
    info: PortInfo,
    rss: RssStatus,
    rx_queues: u16,
    tx_queues: u16,
}

impl Port {
    /// Reads a port's capabilities. Errors if the port does not exist.
    pub fn info(id: PortId) -> Result<PortInfo> {
        // SAFETY: any id is accepted; returns 0 for an invalid one.
        if unsafe { dpdk_sys::rte_eth_dev_is_valid_port(id.0) } == 0 {
            return Err(DpdkError::new("rte_eth_dev_info_get", libc::ENODEV));
        }
        let mut raw = MaybeUninit::<dpdk_sys::rte_eth_dev_info>::zeroed();
        // SAFETY: valid port id and a writable struct of the right type.
        check("rte_eth_dev_info_get", unsafe {
            dpdk_sys::rte_eth_dev_info_get(id.0, raw.as_mut_ptr())
        })?;
        // SAFETY: initialised by the successful call (and zeroed before).
        let raw = unsafe { raw.assume_init() };
        let mut name = [0 as c_char; 64];
        // SAFETY: DPDK writes at most RTE_ETH_NAME_MAX_LEN (64) bytes incl. NUL.
        let rc = unsafe { dpdk_sys::rte_eth_dev_get_name_by_port(id.0, name.as_mut_ptr()) };
        let name = if rc == 0 {
            // SAFETY: NUL-terminated on success.
            unsafe { CStr::from_ptr(name.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        } else {
            format!("port{}", id.0)
        };
        let driver = if raw.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: a static NUL-terminated string owned by the driver.
            unsafe { CStr::from_ptr(raw.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        // SAFETY: valid port id.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(id.0) };
        Ok(PortInfo {
            name,
            driver,
            max_rx_queues: raw.max_rx_queues,
            max_tx_queues: raw.max_tx_queues,
            reta_size: raw.reta_size,
            hash_key_size: raw.hash_key_size,
            rss_offloads: raw.flow_type_rss_offloads,
            rx_offloads: raw.rx_offload_capa,
            socket,
        })
    }

    /// The RSS hash types we ask for: IPv4/IPv6 addresses, with TCP and UDP
    /// ports, as [`RssStatus`] users mirror in software. Not the `*_EX`
    /// types, which may hash addresses from IPv6 extension headers instead.
    pub const RSS_HF: u64 =
        (dpdk_sys::RTE_ETH_RSS_IP | dpdk_sys::RTE_ETH_RSS_TCP | dpdk_sys::RTE_ETH_RSS_UDP)
            & !Self::RSS_IPV6_EX;
    /// TCP and UDP ports over IPv4 and IPv6 (unfragmented).
    pub const RSS_L4: u64 = dpdk_sys::RTE_ETH_RSS_NONFRAG_IPV4_TCP
        | dpdk_sys::RTE_ETH_RSS_NONFRAG_IPV4_UDP
        | dpdk_sys::RTE_ETH_RSS_NONFRAG_IPV6_TCP
        | dpdk_sys::RTE_ETH_RSS_NONFRAG_IPV6_UDP;
    /// The hash types over IPv6 extension headers' addresses.
    pub const RSS_IPV6_EX: u64 = dpdk_sys::RTE_ETH_RSS_IPV6_EX
        | dpdk_sys::RTE_ETH_RSS_IPV6_TCP_EX
        | dpdk_sys::RTE_ETH_RSS_IPV6_UDP_EX;

    /// Configures queues, enables RSS when the device supports it and more
    /// than one RX queue is asked for (with the key of the device's size
    /// from `cfg.rss_key`, read back after start: see [`Port::rss`]),
    /// programs the RETA, and starts the port. Fails with `ENODEV` if the
    /// EAL is not running.
    pub fn configure(id: PortId, cfg: &PortConfig, pool: Arc<Mempool>) -> Result<Port> {
        let info = Port::info(id)?;
        let rx_queues = cfg.rx_queues.clamp(1, info.max_rx_queues.max(1));
        let tx_queues = cfg.tx_queues.clamp(1, info.max_tx_queues.max(1));
        let rss_hf = info.rss_offloads & Self::RSS_HF;
        let rss_enabled = rx_queues > 1 && rss_hf != 0;
        let mut problem = (rx_queues > 1 && rss_hf == 0).then_some(RssProblem::NoHashTypes);
        let flags = |n: u16| (0..n).map(|_| AtomicBool::new(false)).collect();
        // From here on, a failure closes the port again (PortShared's drop).
        let shared = Arc::new(PortShared {
            id,
            rx_taken: flags(rx_queues),
            tx_taken: flags(tx_queues),
            pool,
            _live: Live::enter("rte_eth_dev_configure")?,
        });

        // SAFETY: rte_eth_conf is plain data; all-zero is DPDK's documented default.
        let mut conf: dpdk_sys::rte_eth_conf = unsafe { MaybeUninit::zeroed().assume_init() };
        let mut key = None;
        if rss_enabled {
            conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            let size = usize::from(info.hash_key_size);
            key = (cfg.rss_key)(size).filter(|k| !k.is_empty() && k.len() <= usize::from(u8::MAX));
            if key.is_none() {
                problem = Some(RssProblem::NoKeyOfSize(size));
            }
        }
        // RX checksum verification where the device has it: the NIC then
        // flags each mbuf (`RTE_MBUF_F_RX_{IP,L4}_CKSUM_*`, see
        // `MbufBurst::rx_cksum`) and software skips that work.
        conf.rxmode.offloads |= info.rx_offloads & dpdk_sys::RTE_ETH_RX_OFFLOAD_CHECKSUM;
        let configure = |conf: &dpdk_sys::rte_eth_conf| {
            // SAFETY: valid port; conf (and the key it points to) outlives
            // the call, and DPDK copies the key.
            check("rte_eth_dev_configure", unsafe {
                dpdk_sys::rte_eth_dev_configure(id.0, rx_queues, tx_queues, conf)
            })
        };
        if let Some(k) = key.as_mut() {
            conf.rx_adv_conf.rss_conf.rss_key = k.as_mut_ptr();
            conf.rx_adv_conf.rss_conf.rss_key_len = k.len() as u8;
            if let Err(e) = configure(&conf) {
                // Again with the driver's key: RSS without our key beats no port.
                conf.rx_adv_conf.rss_conf.rss_key = std::ptr::null_mut();
                conf.rx_adv_conf.rss_conf.rss_key_len = 0;
                configure(&conf).map_err(|_| e.clone())?;
                key = None;
                problem = Some(RssProblem::KeyRejected(e));
            }
        } else {
            configure(&conf)?;
        }
        let mut rx_desc = cfg.rx_desc;
        let mut tx_desc = cfg.tx_desc;
        // SAFETY: valid port, writable u16s.
        check("rte_eth_dev_adjust_nb_rx_tx_desc", unsafe {
            dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(id.0, &mut rx_desc, &mut tx_desc)
        })?;
        let socket = if info.socket < 0 {
            0
        } else {
            info.socket as u32
        };
        for q in 0..rx_queues {
            // SAFETY: configured port, queue index below the configured count,
            // NULL rxconf = driver defaults, a live mempool (kept alive by PortShared).
            check("rte_eth_rx_queue_setup", unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    id.0,
                    q,
                    rx_desc,
                    socket,
                    std::ptr::null(),
                    shared.pool.as_ptr(),
                )
            })?;
        }
        for q in 0..tx_queues {
            // SAFETY: as above, for TX.
            check("rte_eth_tx_queue_setup", unsafe {
                dpdk_sys::rte_eth_tx_queue_setup(id.0, q, tx_desc, socket, std::ptr::null())
            })?;
        }
        // SAFETY: fully configured port.
        check("rte_eth_dev_start", unsafe {
            dpdk_sys::rte_eth_dev_start(id.0)
        })?;
        let rss = if rss_enabled {
            rss_status(id, &info, rss_hf, key, problem)
        } else {
            RssStatus {
                enabled: false,
                hash_types: 0,
                key: None,
                configured_key: false,
                problem,
            }
        };
        let port = Port {
            shared,
            info,
            rss,
            rx_queues,
            tx_queues,
        };
        if cfg.promiscuous {
            // SAFETY: started port. Virtual devices may not support it: ignored.
            unsafe { dpdk_sys::rte_eth_promiscuous_enable(id.0) };
        }
        if rss_enabled
            && port.info.reta_size > 0
            && let Some(entries) = (cfg.reta)(usize::from(port.info.reta_size), rx_queues)
        {
            port.set_reta(&entries)?;
        }
        Ok(port)
    }

    /// Programs the redirection table: entry `i` sends hash `i` (low bits)
    /// to queue `entries[i]`. `entries` must have the device's RETA size.
    pub fn set_reta(&self, entries: &[u16]) -> Result<()> {
        if entries.len() != usize::from(self.info.reta_size) {
            return Err(DpdkError::new("rte_eth_dev_rss_reta_update", libc::EINVAL));
        }
        let mut conf = reta_groups(entries);
        // SAFETY: conf holds entries.len() (= reta_size) entries in 64-entry
        // groups, as required.
        check("rte_eth_dev_rss_reta_update", unsafe {
            dpdk_sys::rte_eth_dev_rss_reta_update(
                self.id().0,
                conf.as_mut_ptr(),
                entries.len() as u16,
            )
        })
        .map(|_| ())
    }

    pub fn id(&self) -> PortId {
        self.shared.id
    }

    pub fn port_info(&self) -> &PortInfo {
        &self.info
    }

    /// The port's MAC address (`rte_eth_macaddr_get`): router mode's
    /// source address on this port (`net_af_packet`: the interface's).
    pub fn mac_address(&self) -> Result<[u8; 6]> {
        let mut a = MaybeUninit::<dpdk_sys::rte_ether_addr>::zeroed();
        // SAFETY: a configured port's id and a writable struct of the right
        // type.
        check("rte_eth_macaddr_get", unsafe {
            dpdk_sys::rte_eth_macaddr_get(self.shared.id.0, a.as_mut_ptr())
        })?;
        // SAFETY: zeroed, and written by the successful call.
        Ok(unsafe { a.assume_init() }.addr_bytes)
    }

    /// Whether RSS spreads packets over the RX queues.
    pub fn rss_enabled(&self) -> bool {
        self.rss.enabled
    }

    /// The RSS in effect, and why it is not as asked.
    pub fn rss(&self) -> &RssStatus {
        &self.rss
    }

    pub fn rx_queue_count(&self) -> u16 {
        self.rx_queues
    }

    pub fn tx_queue_count(&self) -> u16 {
        self.tx_queues
    }

    /// The one handle for polling RX queue `q`; `None` if the port has no
    /// such queue or its handle is out (on this port or a clone). Dropping
    /// the handle gives the queue back.
    pub fn take_rx_queue(&self, q: u16) -> Option<RxQueue> {
        take(&self.shared.rx_taken, q).then(|| RxQueue {
            port: self.shared.clone(),
            queue: QueueId(q),
            _not_sync: PhantomData,
        })
    }

    /// The one handle for transmitting on TX queue `q`; as
    /// [`Port::take_rx_queue`].
    pub fn take_tx_queue(&self, q: u16) -> Option<TxQueue> {
        take(&self.shared.tx_taken, q).then(|| TxQueue {
            port: self.shared.clone(),
            queue: QueueId(q),
            _not_sync: PhantomData,
        })
    }

    pub fn stats(&self) -> Result<PortStats> {
        let mut raw = MaybeUninit::<dpdk_sys::rte_eth_stats>::zeroed();
        // SAFETY: valid port, writable struct.
        check("rte_eth_stats_get", unsafe {
            dpdk_sys::rte_eth_stats_get(self.id().0, raw.as_mut_ptr())
        })?;
        // SAFETY: initialised by the call.
        let s = unsafe { raw.assume_init() };
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }
}

/// Marks queue `q` taken; false if it does not exist or already was.
/// Acquire pairs with the Release of the previous handle's drop, so the new
/// owner sees everything the old one did to the queue.
fn take(taken: &[AtomicBool], q: u16) -> bool {
    taken
        .get(usize::from(q))
        .is_some_and(|t| !t.swap(true, Ordering::Acquire))
}

/// Reads back what RSS a started port does: the hash types and key, when
/// the device reports them. `key` is the one configured (`None`: the
/// driver's), `problem` what configuring already found. Some drivers ignore
/// the key given at configure time (`net_null` does): if the key reads back
/// different, or cannot be read, it is set again with
/// `rte_eth_dev_rss_hash_update`, which fails where a driver takes no key.
fn rss_status(
    id: PortId,
    info: &PortInfo,
    rss_hf: u64,
    key: Option<Vec<u8>>,
    mut problem: Option<RssProblem>,
) -> RssStatus {
    let asked_len = usize::from(info.hash_key_size).max(key.as_ref().map_or(0, Vec::len));
    let mut read = read_rss(id, asked_len);
    let mut configured_key = key.is_some();
    if let Some(k) = &key
        && !read.as_ref().is_some_and(|(_, r)| r.starts_with(k))
    {
        let mut k = k.clone();
        // SAFETY: rte_eth_rss_conf is plain data; all-zero is valid.
        let mut upd: dpdk_sys::rte_eth_rss_conf = unsafe { MaybeUninit::zeroed().assume_init() };
        upd.rss_key = k.as_mut_ptr();
        upd.rss_key_len = k.len() as u8;
        upd.rss_hf = rss_hf;
        // SAFETY: started port; upd and its key outlive the call.
        let rc = unsafe { dpdk_sys::rte_eth_dev_rss_hash_update(id.0, &mut upd) };
        if rc != 0 {
            configured_key = false;
            problem = Some(RssProblem::KeyRejected(DpdkError::new(
                "rte_eth_dev_rss_hash_update",
                rc,
            )));
        } else if read.is_some() {
            read = read_rss(id, asked_len);
            if !read.as_ref().is_some_and(|(_, r)| r.starts_with(&k)) {
                configured_key = false;
                problem = Some(RssProblem::KeyDiffers);
            }
        }
    }
    let (hash_types, read_key) = match read {
        Some((hf, key)) => (hf, Some(key)),
        None => (rss_hf, None),
    };
    let status = RssStatus {
        enabled: hash_types != 0,
        hash_types,
        key: read_key,
        configured_key,
        problem: None,
    };
    let problem = problem.or(if !status.enabled {
        Some(RssProblem::NoHashTypes)
    } else if !status.hashes_l4_ports() {
        Some(RssProblem::PartialHashTypes(hash_types))
    } else {
        None
    });
    RssStatus { problem, ..status }
}

/// The hash types and key a port reports (`rte_eth_dev_rss_hash_conf_get`),
/// asking for `key_len` key bytes; `None` if it cannot report them.
fn read_rss(id: PortId, key_len: usize) -> Option<(u64, Vec<u8>)> {
    let mut buf = [0u8; 256];
    // SAFETY: rte_eth_rss_conf is plain data; all-zero is valid.
    let mut conf: dpdk_sys::rte_eth_rss_conf = unsafe { MaybeUninit::zeroed().assume_init() };
    conf.rss_key = buf.as_mut_ptr();
    conf.rss_key_len = key_len.clamp(1, usize::from(u8::MAX)) as u8;
    // SAFETY: started port; the key buffer has 256 bytes, more than any key
    // length (a u8) a driver can write.
    let rc = unsafe { dpdk_sys::rte_eth_dev_rss_hash_conf_get(id.0, &mut conf) };
    let len = usize::from(conf.rss_key_len).min(buf.len());
    (rc == 0).then(|| (conf.rss_hf, buf[..len].to_vec()))
}

/// RETA entries in DPDK's 64-entry groups, every entry marked for update.
fn reta_groups(entries: &[u16]) -> Vec<dpdk_sys::rte_eth_rss_reta_entry64> {
    let mut conf = vec![
        dpdk_sys::rte_eth_rss_reta_entry64 {
            mask: u64::MAX,
            reta: [0; 64]
        };
        entries.len().div_ceil(64)
    ];
    for (i, &q) in entries.iter().enumerate() {
        conf[i / 64].reta[i % 64] = q;
    }
    conf
}

/// The RX queue handle, the only one for its queue at any time
/// ([`Port::take_rx_queue`]): `Send`, not `Sync` nor `Clone` (one poller per
/// queue).
///
/// ```compile_fail
/// fn clone_it(q: &dpdk::RxQueue) -> dpdk::RxQueue { q.clone() }
/// ```
/// ```compile_fail
/// fn sync<T: Sync>() {}
/// sync::<dpdk::RxQueue>();
/// ```
#[derive(Debug)]
pub struct RxQueue {
    port: Arc<PortShared>,
    queue: QueueId,
    _not_sync: PhantomData<Cell<()>>,
}

impl RxQueue {
    pub fn port(&self) -> PortId {
        self.port.id
    }

    pub fn queue(&self) -> QueueId {
        self.queue
    }

    /// Receives into the free slots of `burst`; returns how many arrived.
    #[inline]
    pub fn rx_burst(&mut self, burst: &mut MbufBurst) -> usize {
        let (slots, room) = burst.spare_ptrs();
        if room == 0 {
            return 0;
        }
        let (port, queue) = (self.port.id.0, self.queue.0);
        // SAFETY: started port (the handle keeps it open) and a queue only
        // this handle polls (handed out once, and not Sync); `slots` has
        // room for `room` pointers.
        let n = unsafe { dpdk_sys::ctrack_rte_eth_rx_burst(port, queue, slots, room) };
        // SAFETY: the driver filled n slots with mbufs it hands over to us.
        unsafe { burst.set_filled(n as usize) };
        n as usize
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        // Release: the next owner sees what this one did (see take()).
        self.port.rx_taken[usize::from(self.queue.0)].store(false, Ordering::Release);
    }
}

/// The TX queue handle, the only one for its queue at any time
/// ([`Port::take_tx_queue`]): `Send`, not `Sync` nor `Clone` (one sender per
/// queue).
///
/// ```compile_fail
/// fn sync<T: Sync>() {}
/// sync::<dpdk::TxQueue>();
/// ```
#[derive(Debug)]
pub struct TxQueue {
    port: Arc<PortShared>,
    queue: QueueId,
    _not_sync: PhantomData<Cell<()>>,
}

impl TxQueue {
    pub fn port(&self) -> PortId {
        self.port.id
    }

    pub fn queue(&self) -> QueueId {
        self.queue
    }

    /// The pool the port was configured with, which packets to be sent on
    /// it (generated ones) may be allocated from.
    pub fn mempool(&self) -> &Mempool {
        &self.port.pool
    }

    /// Sends from the front of `burst`; the driver takes what it accepts and
    /// the rest stays in `burst` (freed when it is cleared or dropped).
    /// Returns how many were sent.
    #[inline]
    pub fn tx_burst(&mut self, burst: &mut MbufBurst) -> usize {
        let (ptrs, n) = burst.ptrs_mut();
        if n == 0 {
            return 0;
        }
        let (port, queue) = (self.port.id.0, self.queue.0);
        // SAFETY: started port, a queue only this handle sends on (handed
        // out once, not Sync); ptrs holds n owned mbufs; the driver takes
        // ownership of the first `sent`.
        let sent = unsafe { dpdk_sys::ctrack_rte_eth_tx_burst(port, queue, ptrs, n) };
        burst.consume_front(sent as usize);
        sent as usize
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        // Release: as for RxQueue.
        self.port.tx_taken[usize::from(self.queue.0)].store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reta_groups_of_64_keep_every_entry_in_place() {
        let entries: Vec<u16> = (0..128).map(|i| i % 3).collect();
        let g = reta_groups(&entries);
        assert_eq!(g.len(), 2);
        assert_eq!(&g[0].reta[..6], &[0, 1, 2, 0, 1, 2]);
        assert_eq!(g[1].reta[0], entries[64]);
        assert!(g.iter().all(|x| x.mask == u64::MAX));
        assert_eq!(reta_groups(&[0; 512]).len(), 8);
    }
}
