use std::ffi::{CString, c_char, c_int};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{DpdkError, Result, check};

/// An EAL logical core id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LcoreId(pub u32);

impl fmt::Debug for LcoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lcore{}", self.0)
    }
}

impl LcoreId {
    /// The CPU the EAL assigned to this lcore.
    pub fn cpu(self) -> Option<usize> {
        // SAFETY: plain lookup in EAL's lcore config; any id is accepted and
        // an invalid one returns -1.
        let cpu = unsafe { dpdk_sys::rte_lcore_to_cpu_id(self.0 as c_int) };
        usize::try_from(cpu).ok()
    }
}

static EAL_STARTED: AtomicBool = AtomicBool::new(false);

/// The initialised Environment Abstraction Layer. One per process: DPDK's EAL
/// cannot be initialised twice, not even after cleanup.
#[derive(Debug)]
pub struct Eal {
    _private: (),
}

impl Eal {
    /// Initialises the EAL with `args` (without the program name). Errors are
    /// returned, never a process exit.
    pub fn init<S: AsRef<str>>(args: &[S]) -> Result<Eal> {
        if EAL_STARTED.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::new("rte_eal_init", libc::EALREADY));
        }
        let mut owned = Vec::with_capacity(args.len() + 1);
        owned.push(CString::new("ctrack").expect("no NUL"));
        for a in args {
            owned.push(
                CString::new(a.as_ref())
                    .map_err(|_| DpdkError::new("rte_eal_init", libc::EINVAL))?,
            );
        }
        // EAL may keep pointers into argv (e.g. for the program name), so the
        // strings live for the rest of the process.
        let owned: &'static [CString] = Vec::leak(owned);
        let argv: &'static mut [*mut c_char] =
            Vec::leak(owned.iter().map(|s| s.as_ptr() as *mut c_char).collect());
        // SAFETY: argv holds argc valid NUL-terminated strings that outlive the
        // process; EAL is initialised at most once (checked above).
        let rc = unsafe { dpdk_sys::rte_eal_init(argv.len() as c_int, argv.as_mut_ptr()) };
        if rc < 0 {
            return Err(DpdkError::from_rte_errno("rte_eal_init"));
        }
        Ok(Eal { _private: () })
    }

    /// Releases EAL resources. Drop every port, queue, mempool and mbuf first.
    pub fn cleanup(self) -> Result<()> {
        // SAFETY: consumes the only Eal; the caller has released DPDK objects.
        check("rte_eal_cleanup", unsafe { dpdk_sys::rte_eal_cleanup() }).map(|_| ())
    }

    /// Number of Ethernet ports the EAL probed.
    pub fn port_count(&self) -> u16 {
        // SAFETY: EAL is initialised (we hold an Eal).
        unsafe { dpdk_sys::rte_eth_dev_count_avail() }
    }
}

/// The main lcore (the one that called [`Eal::init`]).
pub fn main_lcore() -> LcoreId {
    // SAFETY: reads EAL configuration; valid after init, returns 0 before.
    LcoreId(unsafe { dpdk_sys::rte_get_main_lcore() })
}

/// The enabled lcores other than the main one, in id order.
pub fn worker_lcores() -> Vec<LcoreId> {
    let main = main_lcore();
    let mut out = Vec::new();
    for id in 0..dpdk_sys::RTE_MAX_LCORE {
        // SAFETY: any id below RTE_MAX_LCORE is a valid argument.
        let enabled = unsafe { dpdk_sys::rte_lcore_is_enabled(id) } != 0;
        if enabled && id != main.0 {
            out.push(LcoreId(id));
        }
    }
    out
}

/// Registers the calling (non-EAL) thread with DPDK, so that it gets an lcore
/// id and mempool per-lcore caches work for it.
pub fn register_thread() -> Result<LcoreId> {
    // SAFETY: registers the calling thread; fails cleanly if no lcore id is free.
    let rc = unsafe { dpdk_sys::rte_thread_register() };
    if rc < 0 {
        return Err(DpdkError::from_rte_errno("rte_thread_register"));
    }
    Ok(lcore_id())
}

/// The calling thread's lcore id (`LCORE_ID_ANY` for unregistered threads).
pub fn lcore_id() -> LcoreId {
    // SAFETY: reads a thread-local through the shim.
    LcoreId(unsafe { dpdk_sys::ctrack_rte_lcore_id() })
}

/// The time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: reads the TSC; no memory is touched.
    unsafe { dpdk_sys::ctrack_rte_rdtsc() }
}

/// TSC ticks per second, as calibrated by EAL.
pub fn tsc_hz() -> u64 {
    // SAFETY: reads EAL's calibration result.
    unsafe { dpdk_sys::ctrack_rte_get_tsc_hz() }
}

/// Nanoseconds from the TSC: one `rdtsc` and a multiply, for reading the time
/// once per burst.
#[derive(Debug, Clone, Copy)]
pub struct TscClock {
    base: u64,
    /// Nanoseconds per tick, as a 32.32 fixed-point number.
    mult: u64,
}

impl TscClock {
    /// A clock starting at 0 now. Needs an initialised EAL (for the TSC rate).
    pub fn new() -> TscClock {
        let hz = tsc_hz().max(1);
        TscClock {
            base: rdtsc(),
            mult: ((1_000_000_000u128 << 32) / u128::from(hz)) as u64,
        }
    }

    /// Nanoseconds since [`TscClock::new`].
    #[inline]
    pub fn now_nanos(&self) -> u64 {
        let ticks = rdtsc().wrapping_sub(self.base);
        ((u128::from(ticks) * u128::from(self.mult)) >> 32) as u64
    }
}

impl Default for TscClock {
    fn default() -> Self {
        Self::new()
    }
}
