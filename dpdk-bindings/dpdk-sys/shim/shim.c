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

static int ctrack_frag_off = -1;

int ctrack_frag_field(void)
{
	static const struct rte_mbuf_dynfield desc = {
		.name = "ctrack_frag_max",
		.size = sizeof(uint16_t),
		.align = __alignof__(uint16_t),
	};
	if (ctrack_frag_off < 0)
		ctrack_frag_off = rte_mbuf_dynfield_register(&desc);
	return ctrack_frag_off;
}

/* Whether `mb` is among the death row's entries from `from` on. */
static int ctrack_in_death_row(const struct rte_ip_frag_death_row *dr, uint32_t from,
                               const struct rte_mbuf *mb)
{
	for (uint32_t i = from; i < dr->cnt; i++)
		if (dr->row[i] == mb)
			return 1;
	return 0;
}

struct rte_mbuf *ctrack_ip_reassemble(struct rte_ip_frag_tbl *tbl,
                                      struct rte_ip_frag_death_row *dr,
                                      struct rte_mbuf *mb, uint64_t tms,
                                      uint16_t l2_len, struct rte_mempool *big,
                                      int *status, uint16_t *frag_max,
                                      uint32_t *expired)
{
	struct rte_mbuf *out;
	uint8_t *p;
	uint32_t before = dr->cnt;
	uint16_t ip_len;

	*expired = 0;
	*frag_max = 0;
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
		ip_len = rte_be_to_cpu_16(ip->total_length);
		if (ip_len <= mb->l3_len || rte_pktmbuf_data_len(mb) < l2_len + ip_len) {
			/* Empty or truncated: what DPDK would hold and never finish. */
			rte_pktmbuf_free(mb);
			*status = CTRACK_FRAG_BAD;
			return NULL;
		}
		/* Padding after the datagram (a short frame's) is not data. */
		rte_pktmbuf_trim(mb, rte_pktmbuf_data_len(mb) - l2_len - ip_len);
		out = rte_ipv4_frag_reassemble_packet(tbl, dr, mb, tms, ip);
	} else if ((p[0] >> 4) == 6) {
		struct rte_ipv6_hdr *ip = (struct rte_ipv6_hdr *)p;
		struct rte_ipv6_fragment_ext *fh = rte_ipv6_frag_get_ipv6_fragment_header(ip);
		if (fh == NULL) {
			*status = CTRACK_FRAG_NOT_FRAGMENT;
			return mb;
		}
		mb->l3_len = sizeof(*ip) + sizeof(*fh);
		ip_len = sizeof(*ip) + rte_be_to_cpu_16(ip->payload_len);
		if (ip_len <= mb->l3_len || rte_pktmbuf_data_len(mb) < l2_len + ip_len) {
			rte_pktmbuf_free(mb);
			*status = CTRACK_FRAG_BAD;
			return NULL;
		}
		rte_pktmbuf_trim(mb, rte_pktmbuf_data_len(mb) - l2_len - ip_len);
		out = rte_ipv6_frag_reassemble_packet(tbl, dr, mb, tms, ip, fh);
	} else {
		*status = CTRACK_FRAG_NOT_FRAGMENT;
		return mb;
	}
	if (out == NULL) {
		/* What the call put on the death row: stale datagrams it
		 * reclaimed (timed out), and our fragment if it was refused:
		 * alone when the table had no room, with its datagram's other
		 * fragments when the set was bad. */
		uint32_t given = dr->cnt - before;
		if (ctrack_in_death_row(dr, before, mb)) {
			*status = given == 1 ? CTRACK_FRAG_NO_SPACE : CTRACK_FRAG_BAD;
		} else {
			*expired = given;
			*status = CTRACK_FRAG_HELD;
		}
		return NULL;
	}
	*expired = dr->cnt - before;
	/* The largest fragment: each segment is one fragment's data, in
	 * order (the first behind the datagram's headers: IPv6's without the
	 * fragment header the fragment had; the others with their headers
	 * cut, l3_len long). */
	{
		uint32_t max = rte_pktmbuf_data_len(out) - out->l2_len;
		p = rte_pktmbuf_mtod_offset(out, uint8_t *, out->l2_len);
		if ((p[0] >> 4) == 6)
			max += sizeof(struct rte_ipv6_fragment_ext);
		for (struct rte_mbuf *s = out->next; s != NULL; s = s->next)
			if ((uint32_t)s->data_len + s->l3_len > max)
				max = (uint32_t)s->data_len + s->l3_len;
		*frag_max = max > UINT16_MAX ? UINT16_MAX : (uint16_t)max;
	}
	if (out->nb_segs > 1 && big != NULL) {
		struct rte_mbuf *m = rte_pktmbuf_alloc(big);
		if (m == NULL || out->pkt_len > rte_pktmbuf_tailroom(m)) {
			*status = m == NULL ? CTRACK_FRAG_NO_MBUF : CTRACK_FRAG_TOO_BIG;
			rte_pktmbuf_free(m);
			rte_pktmbuf_free(out);
			return NULL;
		}
		uint8_t *dst = (uint8_t *)rte_pktmbuf_append(m, (uint16_t)out->pkt_len);
		for (struct rte_mbuf *s = out; s != NULL; s = s->next) {
			rte_memcpy(dst, rte_pktmbuf_mtod(s, void *), s->data_len);
			dst += s->data_len;
		}
		m->l2_len = out->l2_len;
		m->l3_len = out->l3_len;
		m->port = out->port;
		rte_pktmbuf_free(out);
		out = m;
	} else if (out->nb_segs > 1 && rte_pktmbuf_linearize(out) != 0) {
		rte_pktmbuf_free(out);
		*status = CTRACK_FRAG_TOO_BIG;
		return NULL;
	}
	if (big != NULL && out->pool == big && ctrack_frag_off >= 0)
		*RTE_MBUF_DYNFIELD(out, ctrack_frag_off, uint16_t *) = *frag_max;
	p = rte_pktmbuf_mtod_offset(out, uint8_t *, out->l2_len);
	if ((p[0] >> 4) == 4) {
		/* DPDK leaves the checksum to TX offload; compute it here. */
		struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)p;
		ip->hdr_checksum = 0;
		ip->hdr_checksum = rte_ipv4_cksum(ip);
		out->ol_flags &= ~RTE_MBUF_F_TX_IP_CKSUM;
	}
	/* The NIC's word on checksums and its RSS hash were about a fragment,
	 * not the datagram. */
	out->ol_flags &= ~(RTE_MBUF_F_RX_IP_CKSUM_MASK | RTE_MBUF_F_RX_L4_CKSUM_MASK |
	                   RTE_MBUF_F_RX_RSS_HASH);
	*status = CTRACK_FRAG_DONE;
	return out;
}

void ctrack_ip_frag_expire(struct rte_ip_frag_tbl *tbl, struct rte_ip_frag_death_row *dr,
                           uint64_t tms)
{
	rte_ip_frag_table_del_expired_entries(tbl, dr, tms);
}
