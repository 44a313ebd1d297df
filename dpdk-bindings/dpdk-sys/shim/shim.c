/* See shim.h. Compiled with the full `pkg-config --cflags libdpdk`. */
#define ALLOW_EXPERIMENTAL_API 1
#include <rte_config.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_prefetch.h>
#include <rte_ring.h>
#include <rte_hash_crc.h>
#include <rte_lpm.h>
#include <rte_ip.h>
#include <rte_ip_frag.h>

#include "shim.h"

uint16_t ctrack_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                                 struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
	return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t ctrack_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                                 struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
	return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *ctrack_rte_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int ctrack_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, count);
}

void ctrack_rte_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

void ctrack_rte_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned count)
{
	rte_pktmbuf_free_bulk(mbufs, count);
}

char *ctrack_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

unsigned ctrack_rte_lcore_id(void)
{
	return rte_lcore_id();
}

int ctrack_rte_errno(void)
{
	return rte_errno;
}

uint64_t ctrack_rte_rdtsc(void)
{
	return rte_rdtsc();
}

uint64_t ctrack_rte_get_tsc_hz(void)
{
	return rte_get_tsc_hz();
}

unsigned ctrack_rte_mempool_avail_count(const struct rte_mempool *mp)
{
	return rte_mempool_avail_count(mp);
}

unsigned ctrack_rte_mempool_in_use_count(const struct rte_mempool *mp)
{
	return rte_mempool_in_use_count(mp);
}

unsigned ctrack_rte_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n)
{
	return rte_ring_enqueue_burst(r, objs, n, NULL);
}

unsigned ctrack_rte_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n)
{
	return rte_ring_dequeue_burst(r, objs, n, NULL);
}

unsigned ctrack_rte_ring_count(const struct rte_ring *r)
{
	return rte_ring_count(r);
}

void ctrack_rte_prefetch0(const void *p)
{
	rte_prefetch0(p);
}

uint32_t ctrack_rte_hash_crc(const void *data, uint32_t data_len, uint32_t init_val)
{
	return rte_hash_crc(data, data_len, init_val);
}

int ctrack_rte_lpm_lookup(const struct rte_lpm *lpm, uint32_t ip, uint32_t *next_hop)
{
	return rte_lpm_lookup(lpm, ip, next_hop);
}

int ctrack_rte_lpm_lookup_bulk(const struct rte_lpm *lpm, const uint32_t *ips,
                               uint32_t *next_hops, unsigned n)
{
	return rte_lpm_lookup_bulk(lpm, ips, next_hops, n);
}

struct rte_mbuf *ctrack_ip_reassemble(struct rte_ip_frag_tbl *tbl,
                                      struct rte_ip_frag_death_row *dr,
                                      struct rte_mbuf *mb, uint64_t tms,
                                      uint16_t l2_len, int *status)
{
	struct rte_mbuf *out;
	uint8_t *p;

	if (rte_pktmbuf_data_len(mb) < l2_len + 40) {
		*status = CTRACK_FRAG_NOT_FRAGMENT;
		return mb;
	}
	p = rte_pktmbuf_mtod_offset(mb, uint8_t *, l2_len);
	mb->l2_len = l2_len;
	if ((p[0] >> 4) == 4) {
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)p;
		if (!rte_ipv4_frag_pkt_is_fragmented(ip)) {
			*status = CTRACK_FRAG_NOT_FRAGMENT;
			return mb;
		}
		mb->l3_len = rte_ipv4_hdr_len(ip);
		out = rte_ipv4_frag_reassemble_packet(tbl, dr, mb, tms, ip);
	} else if ((p[0] >> 4) == 6) {
		struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)p;
		struct rte_ipv6_fragment_ext *fh = rte_ipv6_frag_get_ipv6_fragment_header(ip);
		if (fh == NULL) {
			*status = CTRACK_FRAG_NOT_FRAGMENT;
			return mb;
		}
		mb->l3_len = sizeof(*ip) + sizeof(*fh);
		out = rte_ipv6_frag_reassemble_packet(tbl, dr, mb, tms, ip, fh);
	} else {
		*status = CTRACK_FRAG_NOT_FRAGMENT;
		return mb;
	}
	if (out == NULL) {
		*status = CTRACK_FRAG_HELD;
		return NULL;
	}
	if (out->nb_segs > 1 && rte_pktmbuf_linearize(out) != 0) {
		rte_pktmbuf_free(out);
		*status = CTRACK_FRAG_TOO_BIG;
		return NULL;
	}
	p = rte_pktmbuf_mtod_offset(out, uint8_t *, out->l2_len);
	if ((p[0] >> 4) == 4) {
		/* DPDK leaves the checksum to TX offload; compute it here. */
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)p;
		ip->hdr_checksum = 0;
		ip->hdr_checksum = rte_ipv4_cksum(ip);
		out->ol_flags &= ~RTE_MBUF_F_TX_IP_CKSUM;
	}
	*status = CTRACK_FRAG_DONE;
	return out;
}

void ctrack_ip_frag_expire(struct rte_ip_frag_tbl *tbl, struct rte_ip_frag_death_row *dr,
                           uint64_t tms)
{
	rte_ip_frag_table_del_expired_entries(tbl, dr, tms);
}
