/*
 * Exported wrappers for DPDK's static inline functions and thread-local
 * variables, which bindgen cannot bind (they have no symbol to link to).
 * Each wrapper is a plain call-through; see shim.c.
 */
#ifndef CTRACK_DPDK_SHIM_H
#define CTRACK_DPDK_SHIM_H

#include <stdint.h>
#include <rte_mbuf.h>
#include <rte_lpm.h>

uint16_t ctrack_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                                 struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t ctrack_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                                 struct rte_mbuf **tx_pkts, uint16_t nb_pkts);
struct rte_mbuf *ctrack_rte_pktmbuf_alloc(struct rte_mempool *mp);
int ctrack_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count);
void ctrack_rte_pktmbuf_free(struct rte_mbuf *m);
void ctrack_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned count);
char *ctrack_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
unsigned ctrack_rte_lcore_id(void);
int ctrack_rte_errno(void);
uint64_t ctrack_rte_rdtsc(void);
uint64_t ctrack_rte_get_tsc_hz(void);
unsigned ctrack_rte_mempool_avail_count(const struct rte_mempool *mp);
unsigned ctrack_rte_mempool_in_use_count(const struct rte_mempool *mp);
unsigned ctrack_rte_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n);
unsigned ctrack_rte_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n);
unsigned ctrack_rte_ring_count(const struct rte_ring *r);
void ctrack_rte_prefetch0(const void *p);
/* rte_hash_crc as a function with an address, for rte_hash_parameters.hash_func. */
uint32_t ctrack_rte_hash_crc(const void *data, uint32_t data_len, uint32_t init_val);
/* rte_lpm's lookups are static inline. */
int ctrack_rte_lpm_lookup(const struct rte_lpm *lpm, uint32_t ip, uint32_t *next_hop);
int ctrack_rte_lpm_lookup_bulk(const struct rte_lpm *lpm, const uint32_t *ips,
                               uint32_t *next_hops, unsigned n);

/* Reassembly through rte_ip_frag (see shim.c): the fragment's l2/l3
 * lengths set; a datagram made of several fragments copied into one mbuf of
 * `big` (or linearized in place when `big` is NULL), its IPv4 checksum
 * filled, the size of its largest fragment (IP header included) written to
 * *frag_max and, with `big`, into the mbuf's dynamic field (see
 * ctrack_frag_field). *expired counts the fragments of stale datagrams the
 * call freed (timed out). */
#include <rte_ip_frag.h>
enum {
	CTRACK_FRAG_DONE = 1,
	CTRACK_FRAG_HELD = 0,
	CTRACK_FRAG_TOO_BIG = -1,
	CTRACK_FRAG_NOT_FRAGMENT = -2,
	/* The table had no room for a new datagram: the fragment was freed. */
	CTRACK_FRAG_NO_SPACE = -3,
	/* A bad fragment (empty, beyond the fragment limit, or a set that does
	 * not add up: overlaps, duplicates): its datagram's fragments freed. */
	CTRACK_FRAG_BAD = -4,
	/* No mbuf of `big` was free: the datagram was freed. */
	CTRACK_FRAG_NO_MBUF = -5,
};
struct rte_mbuf *ctrack_ip_reassemble(struct rte_ip_frag_tbl *tbl,
                                      struct rte_ip_frag_death_row *dr,
                                      struct rte_mbuf *mb, uint64_t tms,
                                      uint16_t l2_len, struct rte_mempool *big,
                                      int *status, uint16_t *frag_max,
                                      uint32_t *expired);
void ctrack_ip_frag_expire(struct rte_ip_frag_tbl *tbl, struct rte_ip_frag_death_row *dr,
                           uint64_t tms);
/* The offset of the mbuf dynamic field (a uint16_t) holding a reassembled
 * datagram's largest fragment size, registered on the first call; < 0 on
 * failure (rte_errno set). */
int ctrack_frag_field(void);

#endif
