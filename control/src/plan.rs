//! Which worker polls which queue, and which TX queue it sends on.
//!
//! Ports are paired in order (0<->1, 2<->3): what arrives on one leaves by the
//! other. When every port has at least one RX queue per worker, worker `w`
//! polls queue `w` of every port, so the symmetric RSS key keeps both
//! directions of a connection on one worker. Otherwise (single-queue virtual
//! devices) the RX queues are dealt round-robin to the workers. Each worker
//! transmits on a TX queue of its own on every port it sends to.

/// A port's queue counts, after configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortQueues {
    pub rx: u16,
    pub tx: u16,
}

/// One RX queue and where its packets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub rx_port: u16,
    pub rx_queue: u16,
    pub tx_port: u16,
    pub tx_queue: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Ports are forwarded in pairs.
    #[error("{0} ports were probed; ports are forwarded in pairs (0<->1, 2<->3), so an even number is needed")]
    OddPorts(usize),
    /// No port at all.
    #[error("no DPDK port was probed: name ports with --vdev (e.g. --vdev net_ring0 --vdev net_ring1) or bind a NIC")]
    NoPorts,
    /// More workers send to a port than it has TX queues.
    #[error("port {port} has {tx} TX queue(s) but {workers} workers send to it; use --workers {tx} or fewer")]
    TxQueues { port: u16, tx: u16, workers: usize },
}

/// The links of each worker (index = worker).
pub fn plan(ports: &[PortQueues], workers: usize) -> Result<Vec<Vec<Link>>, PlanError> {
    if ports.is_empty() {
        return Err(PlanError::NoPorts);
    }
    if ports.len() % 2 != 0 {
        return Err(PlanError::OddPorts(ports.len()));
    }
    let workers = workers.max(1);
    let per_queue = ports.iter().all(|p| p.rx as usize >= workers);
    let mut rx: Vec<Vec<(u16, u16)>> = vec![Vec::new(); workers];
    let mut k = 0;
    for q in 0..ports.iter().map(|p| p.rx).max().unwrap_or(0) {
        for (p, pq) in ports.iter().enumerate() {
            if q >= pq.rx {
                continue;
            }
            let w = if per_queue { q as usize % workers } else { k % workers };
            rx[w].push((p as u16, q));
            k += 1;
        }
    }
    // TX queue of worker w on port p: its rank among the workers sending to p.
    let mut senders: Vec<Vec<usize>> = vec![Vec::new(); ports.len()];
    for (w, links) in rx.iter().enumerate() {
        for &(p, _) in links {
            let peer = (p ^ 1) as usize;
            if !senders[peer].contains(&w) {
                senders[peer].push(w);
            }
        }
    }
    for (p, s) in senders.iter().enumerate() {
        if s.len() > ports[p].tx as usize {
            return Err(PlanError::TxQueues {
                port: p as u16,
                tx: ports[p].tx,
                workers: s.len(),
            });
        }
    }
    Ok(rx
        .into_iter()
        .enumerate()
        .map(|(w, links)| {
            links
                .into_iter()
                .map(|(p, q)| {
                    let peer = p ^ 1;
                    let rank = senders[peer as usize].iter().position(|&x| x == w).unwrap_or(0);
                    Link {
                        rx_port: p,
                        rx_queue: q,
                        tx_port: peer,
                        tx_queue: rank as u16,
                    }
                })
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SINGLE: PortQueues = PortQueues { rx: 1, tx: 1 };

    #[test]
    fn one_worker_polls_everything() {
        let p = plan(&[SINGLE, SINGLE], 1).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(
            p[0],
            vec![
                Link { rx_port: 0, rx_queue: 0, tx_port: 1, tx_queue: 0 },
                Link { rx_port: 1, rx_queue: 0, tx_port: 0, tx_queue: 0 },
            ]
        );
    }

    #[test]
    fn single_queue_ports_are_dealt_round_robin() {
        let p = plan(&[SINGLE, SINGLE], 2).unwrap();
        assert_eq!(p[0], vec![Link { rx_port: 0, rx_queue: 0, tx_port: 1, tx_queue: 0 }]);
        assert_eq!(p[1], vec![Link { rx_port: 1, rx_queue: 0, tx_port: 0, tx_queue: 0 }]);
    }

    #[test]
    fn multi_queue_ports_keep_queue_q_on_worker_q() {
        let mq = PortQueues { rx: 2, tx: 2 };
        let p = plan(&[mq, mq], 2).unwrap();
        for (w, links) in p.iter().enumerate() {
            assert_eq!(links.len(), 2);
            assert!(links.iter().all(|l| l.rx_queue as usize == w && l.tx_queue as usize == w));
        }
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(plan(&[], 1), Err(PlanError::NoPorts));
        assert_eq!(plan(&[SINGLE; 3], 1), Err(PlanError::OddPorts(3)));
        let many_rx = PortQueues { rx: 2, tx: 1 };
        assert!(matches!(plan(&[many_rx, many_rx], 2), Err(PlanError::TxQueues { .. })));
    }
}
