//! Connection helpers (RouterOS `/ip firewall service-port`, Linux's
//! conntrack helpers): parsers that read a control connection's payload
//! and say which data connection it announces. Sans-io like the rest of
//! the core: they see bytes and return values; the table
//! ([`crate::conntrack::Shard::help`]) turns what they find into
//! expectations ([`crate::conntrack::expect`]).
//!
//! - [`ftp`]: `PORT`, `EPRT`, `227`, `229` (Linux `nf_conntrack_ftp`);
//! - [`tftp`]: read/write requests (Linux `nf_conntrack_tftp`);
//! - [`pptp`]: call management (Linux `nf_conntrack_pptp`), expecting GRE;
//!   [`pptp_nat`]: its call ids through source NAT (Linux `nf_nat_pptp`).
//!
//! A helper runs only on connections whose first packet went to one of its
//! [`ServicePorts`] (the table records the helper in the entry; nothing
//! else pays for it), and only once the connection has seen a reply (Linux
//! helps only `IP_CT_ESTABLISHED*` packets). See `docs/helpers.md`.

pub mod ftp;
pub mod pptp;
pub mod pptp_nat;
pub mod tftp;

use crate::flow::{FlowRepr, L4, proto};

/// A helper, as the entry stores it (`u8`, 0 for none) and RouterOS names it
/// (`connection-type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum HelperKind {
    Ftp = 1,
    Tftp = 2,
    Pptp = 3,
}

impl HelperKind {
    pub const ALL: [HelperKind; 3] = [HelperKind::Ftp, HelperKind::Tftp, HelperKind::Pptp];

    pub const fn from_u8(v: u8) -> Option<HelperKind> {
        match v {
            1 => Some(HelperKind::Ftp),
            2 => Some(HelperKind::Tftp),
            3 => Some(HelperKind::Pptp),
            _ => None,
        }
    }

    /// The RouterOS name (`service-port` item, `connection-type` value).
    pub const fn name(self) -> &'static str {
        match self {
            HelperKind::Ftp => "ftp",
            HelperKind::Tftp => "tftp",
            HelperKind::Pptp => "pptp",
        }
    }

    pub fn from_name(s: &str) -> Option<HelperKind> {
        HelperKind::ALL.into_iter().find(|k| k.name() == s)
    }

    /// The protocol of its control connection.
    pub const fn proto(self) -> u8 {
        match self {
            HelperKind::Ftp | HelperKind::Pptp => proto::TCP,
            HelperKind::Tftp => proto::UDP,
        }
    }

    /// RouterOS's default `ports`.
    pub const fn default_port(self) -> u16 {
        match self {
            HelperKind::Ftp => 21,
            HelperKind::Tftp => 69,
            HelperKind::Pptp => 1723,
        }
    }

    /// Expectations one master may hold at once (Linux's helper policy
    /// `max_expected`: ftp 1, tftp 1, pptp 2); a new one beyond it evicts
    /// the master's oldest, as Linux does.
    pub const fn max_expected(self) -> usize {
        match self {
            HelperKind::Ftp | HelperKind::Tftp => 1,
            HelperKind::Pptp => 2,
        }
    }

    /// How long an expectation waits (Linux's policy: 5 minutes for all three).
    pub const fn expect_timeout_ns(self) -> u64 {
        300 * 1_000_000_000
    }
}

/// Most port ranges [`ServicePorts`] holds.
pub const SERVICE_PORT_RANGES: usize = 16;

/// Which destination ports get which helper (`/ip firewall service-port`):
/// by default ftp 21, tftp 69 and pptp 1723, all enabled. A small fixed
/// array, scanned when a connection is created (a handful of entries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServicePorts {
    ranges: [(HelperKind, u16, u16); SERVICE_PORT_RANGES],
    n: u8,
}

impl Default for ServicePorts {
    fn default() -> Self {
        let mut s = ServicePorts::none();
        for k in HelperKind::ALL {
            s.push(k, k.default_port(), k.default_port());
        }
        s
    }
}

impl ServicePorts {
    /// No helper anywhere.
    pub const fn none() -> ServicePorts {
        ServicePorts {
            ranges: [(HelperKind::Ftp, 0, 0); SERVICE_PORT_RANGES],
            n: 0,
        }
    }

    /// Adds `lo..=hi` for `kind`; false when full (or an empty range).
    pub fn push(&mut self, kind: HelperKind, lo: u16, hi: u16) -> bool {
        if usize::from(self.n) >= SERVICE_PORT_RANGES || lo > hi {
            return false;
        }
        self.ranges[usize::from(self.n)] = (kind, lo, hi);
        self.n += 1;
        true
    }

    /// Drops every range of `kind` (`disabled=yes`, or before new `ports`).
    pub fn clear(&mut self, kind: HelperKind) {
        let mut w = 0;
        for r in 0..usize::from(self.n) {
            if self.ranges[r].0 != kind {
                self.ranges[w] = self.ranges[r];
                w += 1;
            }
        }
        self.n = w as u8;
    }

    /// The ranges, in order.
    pub fn ranges(&self) -> &[(HelperKind, u16, u16)] {
        &self.ranges[..usize::from(self.n)]
    }

    /// The helper for a connection of protocol `proto` to port `dport`.
    #[inline]
    pub fn helper_for(&self, proto: u8, dport: u16) -> Option<HelperKind> {
        self.ranges()
            .iter()
            .find(|&&(k, lo, hi)| k.proto() == proto && (lo..=hi).contains(&dport))
            .map(|r| r.0)
    }
}

/// A helper's per-connection state (Linux's helper extension of the
/// master). Kept by the table for connections with a helper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HelperState {
    Ftp(ftp::FtpState),
    Tftp,
    Pptp(pptp::PptpState),
}

impl HelperState {
    pub fn new(kind: HelperKind) -> HelperState {
        match kind {
            HelperKind::Ftp => HelperState::Ftp(ftp::FtpState::default()),
            HelperKind::Tftp => HelperState::Tftp,
            HelperKind::Pptp => HelperState::Pptp(pptp::PptpState::default()),
        }
    }
}

/// The layer-4 payload of `frame` (an Ethernet frame, as `repr` was parsed
/// from): TCP and UDP only. `None` when there is none or it cannot be
/// found (UDP over IPv6 with extension headers: the helpers skip it).
pub fn l4_payload<'a>(frame: &'a [u8], repr: &FlowRepr) -> Option<&'a [u8]> {
    let ip = crate::packet::ethernet::strip(frame).ok()?.payload;
    let ip = ip.get(..repr.ip_len as usize)?;
    match repr.l4 {
        L4::Tcp(t) => {
            let n = t.payload_len as usize;
            (n > 0)
                .then(|| ip.get(ip.len().checked_sub(n)?..))
                .flatten()
        }
        L4::Udp => {
            let hl = match ip.first()? >> 4 {
                4 => usize::from(ip[0] & 0x0f) * 4,
                6 if ip.get(6) == Some(&proto::UDP) => 40,
                _ => return None,
            };
            ip.get(hl + 8..).filter(|p| !p.is_empty())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ports_default_and_changes() {
        let mut s = ServicePorts::default();
        assert_eq!(s.helper_for(proto::TCP, 21), Some(HelperKind::Ftp));
        assert_eq!(s.helper_for(proto::UDP, 21), None);
        assert_eq!(s.helper_for(proto::UDP, 69), Some(HelperKind::Tftp));
        assert_eq!(s.helper_for(proto::TCP, 1723), Some(HelperKind::Pptp));
        assert_eq!(s.helper_for(proto::TCP, 80), None);
        s.clear(HelperKind::Ftp);
        assert_eq!(s.helper_for(proto::TCP, 21), None);
        assert!(s.push(HelperKind::Ftp, 2121, 2122));
        assert_eq!(s.helper_for(proto::TCP, 2122), Some(HelperKind::Ftp));
        assert_eq!(s.helper_for(proto::TCP, 1723), Some(HelperKind::Pptp));
        assert!(!s.push(HelperKind::Ftp, 5, 4));
        for k in HelperKind::ALL {
            assert_eq!(HelperKind::from_name(k.name()), Some(k));
            assert_eq!(HelperKind::from_u8(k as u8), Some(k));
        }
    }

    #[test]
    fn payloads_of_tcp_and_udp() {
        use crate::packet::parse_ethernet;
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        // IPv4 + UDP 4 bytes of payload.
        let mut ip = vec![
            0x45, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        ip.extend_from_slice(&[0x30, 0x39, 0, 69, 0, 12, 0, 0, 0, 1, b'a', 0]);
        crate::packet::checksum::fill_ip(&mut ip);
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0xee; 6]); // Ethernet padding is not payload
        let r = parse_ethernet(&f).unwrap();
        assert_eq!(l4_payload(&f, &r), Some(&b"\x00\x01a\x00"[..]));
    }
}
