use std::cell::Cell;
use std::ffi::{CStr, c_char};
use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::Arc;

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
    /// RSS key for multi-queue RX; the symmetric Toeplitz key keeps both
    /// directions of a connection on one queue.
    pub rss_key: Vec<u8>,
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

#[derive(Debug)]
struct PortShared {
    id: PortId,
    // Keeps the pool alive while the port's RX rings may hold its mbufs.
    _pool: Arc<Mempool>,
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
/// queue handles are dropped.
#[derive(Debug, Clone)]
pub struct Port {
    shared: Arc<PortShared>,
    info: PortInfo,
    rss_enabled: bool,
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

    /// The RSS hash functions we ask for: IPv4/IPv6 with TCP and UDP ports.
    pub const RSS_HF: u64 =
        dpdk_sys::RTE_ETH_RSS_IP | dpdk_sys::RTE_ETH_RSS_TCP | dpdk_sys::RTE_ETH_RSS_UDP;

    /// Configures queues, enables RSS when the device supports it and more
    /// than one RX queue is asked for, programs an even RETA, and starts the port.
    pub fn configure(id: PortId, cfg: &PortConfig, pool: Arc<Mempool>) -> Result<Port> {
        let info = Port::info(id)?;
        let rx_queues = cfg.rx_queues.clamp(1, info.max_rx_queues.max(1));
        let tx_queues = cfg.tx_queues.clamp(1, info.max_tx_queues.max(1));
        let rss_hf = info.rss_offloads & Self::RSS_HF;
        let rss_enabled = rx_queues > 1 && rss_hf != 0;

        // SAFETY: rte_eth_conf is plain data; all-zero is DPDK's documented default.
        let mut conf: dpdk_sys::rte_eth_conf = unsafe { MaybeUninit::zeroed().assume_init() };
        let mut key = cfg.rss_key.clone();
        if rss_enabled {
            conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
            if !key.is_empty()
                && (info.hash_key_size == 0 || key.len() == info.hash_key_size as usize)
            {
                conf.rx_adv_conf.rss_conf.rss_key = key.as_mut_ptr();
                conf.rx_adv_conf.rss_conf.rss_key_len = key.len() as u8;
            }
        }
        // RX checksum verification where the device has it: the NIC then
        // flags each mbuf (`RTE_MBUF_F_RX_{IP,L4}_CKSUM_*`, see
        // `MbufBurst::rx_cksum`) and software skips that work.
        conf.rxmode.offloads |= info.rx_offloads & dpdk_sys::RTE_ETH_RX_OFFLOAD_CHECKSUM;
        // SAFETY: valid port, conf outlives the call (DPDK copies the key).
        check("rte_eth_dev_configure", unsafe {
            dpdk_sys::rte_eth_dev_configure(id.0, rx_queues, tx_queues, &conf)
        })?;
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
                    pool.as_ptr(),
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
        let port = Port {
            shared: Arc::new(PortShared { id, _pool: pool }),
            info,
            rss_enabled,
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

    pub fn rss_enabled(&self) -> bool {
        self.rss_enabled
    }

    pub fn rx_queue_count(&self) -> u16 {
        self.rx_queues
    }

    pub fn tx_queue_count(&self) -> u16 {
        self.tx_queues
    }

    /// A handle for polling RX queue `q`. Exactly one thread should own it.
    pub fn rx_queue(&self, q: u16) -> Option<RxQueue> {
        (q < self.rx_queues).then(|| RxQueue {
            port: self.shared.clone(),
            queue: QueueId(q),
            _not_sync: PhantomData,
        })
    }

    /// A handle for transmitting on TX queue `q`. Exactly one thread should own it.
    pub fn tx_queue(&self, q: u16) -> Option<TxQueue> {
        (q < self.tx_queues).then(|| TxQueue {
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

/// An RX queue handle: `Send`, not `Sync` (one poller per queue).
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
        // SAFETY: started port and a queue owned by this handle alone
        // (!Sync); `slots` has room for `room` pointers.
        let n =
            unsafe { dpdk_sys::ctrack_rte_eth_rx_burst(self.port.id.0, self.queue.0, slots, room) };
        // SAFETY: the driver filled n slots with mbufs it hands over to us.
        unsafe { burst.set_filled(n as usize) };
        n as usize
    }
}

/// A TX queue handle: `Send`, not `Sync` (one sender per queue).
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

    /// Sends from the front of `burst`; the driver takes what it accepts and
    /// the rest stays in `burst` (freed when it is cleared or dropped).
    /// Returns how many were sent.
    #[inline]
    pub fn tx_burst(&mut self, burst: &mut MbufBurst) -> usize {
        let (ptrs, n) = burst.ptrs_mut();
        if n == 0 {
            return 0;
        }
        // SAFETY: started port, queue owned by this handle alone; ptrs holds
        // n owned mbufs; the driver takes ownership of the first `sent`.
        let sent =
            unsafe { dpdk_sys::ctrack_rte_eth_tx_burst(self.port.id.0, self.queue.0, ptrs, n) };
        burst.consume_front(sent as usize);
        sent as usize
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
