//! Which worker polls which RX queue, and which TX queues it owns.
//!
//! Ports are paired in order (0<->1, 2<->3): what arrives on one leaves by the
//! other. When every port has at least one RX queue per worker, worker `w`
//! polls queue `w` of every port (RSS with the symmetric key spreads
//! connections over the queues). Otherwise (single-queue virtual devices) the
//! RX queues are dealt round-robin to the workers, and software dispatch hands
//! each packet to the worker owning its connection.
//!
//! A port with a TX queue per worker gives every worker one. Otherwise only
//! the workers that receive from its peer get one (by rank); the others hand
//! what they must send there to the port's TX owner.
//!
//! Router mode ([`plan_router`]) routes between any ports: any number of
//! them, and a port short of TX queues gives them to the first workers.

/// A port's queue counts, after configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortQueues {
    pub rx: u16,
    pub tx: u16,
}

/// One worker's queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerPlan {
    /// `(port, queue)` RX queues it polls.
    pub rx: Vec<(u16, u16)>,
    /// Its TX queue on each port, if any.
    pub tx: Vec<Option<u16>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub workers: Vec<WorkerPlan>,
    /// For each port, the worker that transmits for workers without a queue there.
    pub tx_owner: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// Ports are forwarded in pairs.
    #[error(
        "{0} ports were probed; ports are forwarded in pairs (0<->1, 2<->3), so an even number is needed"
    )]
    OddPorts(usize),
    /// No port at all.
    #[error(
        "no DPDK port was probed: name ports with --vdev (e.g. --vdev net_ring0 --vdev net_ring1) or bind a NIC"
    )]
    NoPorts,
    /// More workers send to a port than it has TX queues.
    #[error(
        "port {port} has {tx} TX queue(s) but {workers} workers send to it; use --workers {tx} or fewer"
    )]
    TxQueues { port: u16, tx: u16, workers: usize },
}

/// The plan of bridge mode: ports paired (an even number of them).
pub fn plan(ports: &[PortQueues], workers: usize) -> Result<Plan, PlanError> {
    if !ports.is_empty() && !ports.len().is_multiple_of(2) {
        return Err(PlanError::OddPorts(ports.len()));
    }
    plan_with(ports, workers, true)
}

/// The plan of router mode (docs/nat.md): any number of ports, and any
/// worker may send out of any port, so a port with fewer TX queues than
/// workers gives them to the first workers (the others hand over to its
/// TX owner).
pub fn plan_router(ports: &[PortQueues], workers: usize) -> Result<Plan, PlanError> {
    plan_with(ports, workers, false)
}

fn plan_with(ports: &[PortQueues], workers: usize, paired: bool) -> Result<Plan, PlanError> {
    if ports.is_empty() {
        return Err(PlanError::NoPorts);
    }
    let workers = workers.max(1);
    let per_queue = ports.iter().all(|p| p.rx as usize >= workers);
    let mut out: Vec<WorkerPlan> = (0..workers)
        .map(|_| WorkerPlan {
            rx: Vec::new(),
            tx: vec![None; ports.len()],
        })
        .collect();
    let mut k = 0;
    for q in 0..ports.iter().map(|p| p.rx).max().unwrap_or(0) {
        for (p, pq) in ports.iter().enumerate() {
            if q >= pq.rx {
                continue;
            }
            let w = if per_queue {
                q as usize % workers
            } else {
                k % workers
            };
            out[w].rx.push((p as u16, q));
            k += 1;
        }
    }
    let mut tx_owner = Vec::with_capacity(ports.len());
    for (p, pq) in ports.iter().enumerate() {
        let peer = (p ^ 1) as u16;
        let senders: Vec<usize> = if pq.tx as usize >= workers {
            (0..workers).collect()
        } else if !paired {
            (0..usize::from(pq.tx).min(workers)).collect()
        } else {
            (0..workers)
                .filter(|&w| out[w].rx.iter().any(|&(rp, _)| rp == peer))
                .collect()
        };
        if senders.len() > pq.tx as usize {
            return Err(PlanError::TxQueues {
                port: p as u16,
                tx: pq.tx,
                workers: senders.len(),
            });
        }
        for (rank, &w) in senders.iter().enumerate() {
            out[w].tx[p] = Some(rank as u16);
        }
        tx_owner.push(senders.first().copied().unwrap_or(0) as u16);
    }
    Ok(Plan {
        workers: out,
        tx_owner,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SINGLE: PortQueues = PortQueues { rx: 1, tx: 1 };

    #[test]
    fn one_worker_polls_everything() {
        let p = plan(&[SINGLE, SINGLE], 1).unwrap();
        assert_eq!(p.workers.len(), 1);
        assert_eq!(p.workers[0].rx, vec![(0, 0), (1, 0)]);
        assert_eq!(p.workers[0].tx, vec![Some(0), Some(0)]);
        assert_eq!(p.tx_owner, vec![0, 0]);
    }

    #[test]
    fn single_queue_ports_are_dealt_round_robin_with_tx_owners() {
        let p = plan(&[SINGLE, SINGLE], 2).unwrap();
        assert_eq!(p.workers[0].rx, vec![(0, 0)]);
        assert_eq!(p.workers[1].rx, vec![(1, 0)]);
        // Worker 0 receives on port 0 and sends on port 1; worker 1 the reverse.
        assert_eq!(p.workers[0].tx, vec![None, Some(0)]);
        assert_eq!(p.workers[1].tx, vec![Some(0), None]);
        assert_eq!(p.tx_owner, vec![1, 0]);
    }

    #[test]
    fn multi_queue_ports_keep_queue_q_on_worker_q() {
        let mq = PortQueues { rx: 2, tx: 2 };
        let p = plan(&[mq, mq], 2).unwrap();
        for (w, wp) in p.workers.iter().enumerate() {
            assert_eq!(wp.rx, vec![(0, w as u16), (1, w as u16)]);
            assert_eq!(wp.tx, vec![Some(w as u16), Some(w as u16)]);
        }
    }

    /// Router mode: three single-queue ports, two workers; every port has
    /// a TX owner with a queue there.
    #[test]
    fn router_mode_takes_any_number_of_ports() {
        let p = plan_router(&[SINGLE; 3], 2).unwrap();
        assert_eq!(p.workers[0].rx, vec![(0, 0), (2, 0)]);
        assert_eq!(p.workers[1].rx, vec![(1, 0)]);
        assert_eq!(p.tx_owner, vec![0, 0, 0]);
        assert_eq!(p.workers[0].tx, vec![Some(0); 3]);
        assert_eq!(p.workers[1].tx, vec![None; 3]);
        let mq = PortQueues { rx: 2, tx: 2 };
        let p = plan_router(&[mq], 2).unwrap();
        assert_eq!(p.workers[1].tx, vec![Some(1)]);
        assert_eq!(plan_router(&[], 1), Err(PlanError::NoPorts));
    }

    #[test]
    fn errors_name_the_problem() {
        assert_eq!(plan(&[], 1), Err(PlanError::NoPorts));
        assert_eq!(plan(&[SINGLE; 3], 1), Err(PlanError::OddPorts(3)));
        let many_rx = PortQueues { rx: 2, tx: 1 };
        assert!(matches!(
            plan(&[many_rx, many_rx], 2),
            Err(PlanError::TxQueues { .. })
        ));
    }
}
