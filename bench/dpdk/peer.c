/* SPDX-License-Identifier: MIT OR Apache-2.0
 *
 * DPDK peer for sluice-bench: rte_ring SP/SC between two lcores, and rte_mempool get+put and
 * rte_pktmbuf alloc+free on one lcore, measured the same way as the Rust side (see bench/README.md). sluice-bench
 * compiles this at run time against the installed libdpdk and parses the lines that start
 * with "SLUICE_PEER"; everything else on stdout is ignored.
 *
 * Usage: peer <EAL args> -- <items at burst 1> <items> <reps> <ring_capacity> <pool_objs>
 * (fewer items at burst 1, where every item is a cache-line round trip, as on the Rust side)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>
#include <rte_version.h>

#define MAX_BURST 32
#define POOL_OBJS 8191   /* 2^n - 1: the size DPDK recommends for a ring-backed pool */
#define POOL_OBJ_SIZE 2176 /* a PktBuf: 128 B headroom + 2048 B data room */
#define POOL_CACHE 512

struct ring_job {
	struct rte_ring *ring;
	uint64_t items;
	unsigned int burst;
	int bulk;            /* 1: all-or-nothing bulk calls; 0: best-effort burst calls */
	uint64_t cycles;     /* consumer: first item to last item */
	int in_order;        /* consumer: every item arrived, in order */
};

/* Consumer, on the worker lcore: pops bursts of up to `burst`, checks the sequence, and times
 * from the first item to the last one, like the Rust consumers. */
static int ring_consumer(void *arg)
{
	struct ring_job *job = arg;
	void *objs[MAX_BURST];
	uint64_t expected = 0, start = 0;
	int in_order = 1;

	while (expected < job->items) {
		unsigned int n = job->bulk
			? (rte_ring_sc_dequeue_bulk(job->ring, objs, job->burst, NULL) ? job->burst : 0)
			: rte_ring_sc_dequeue_burst(job->ring, objs, job->burst, NULL);
		if (n == 0)
			continue;
		if (expected == 0)
			start = rte_rdtsc_precise();
		for (unsigned int i = 0; i < n; i++)
			in_order &= (uintptr_t)objs[i] == expected + i;
		expected += n;
	}
	job->cycles = rte_rdtsc_precise() - start;
	job->in_order = in_order && expected == job->items;
	return 0;
}

/* Producer, on the main lcore: pushes bursts of `burst` sequence numbers as fast as it can;
 * whatever a burst call did not take is offered again. */
static void ring_producer(struct ring_job *job)
{
	void *objs[MAX_BURST];
	uint64_t next = 0;

	while (next < job->items) {
		uint64_t left = job->items - next;
		unsigned int n = left < job->burst ? (unsigned int)left : job->burst;
		for (unsigned int i = 0; i < n; i++)
			objs[i] = (void *)(uintptr_t)(next + i);
		next += job->bulk ? (rte_ring_sp_enqueue_bulk(job->ring, objs, n, NULL) ? n : 0)
				  : rte_ring_sp_enqueue_burst(job->ring, objs, n, NULL);
	}
}

static int bench_ring(uint64_t items1, uint64_t items, unsigned int reps, unsigned int capacity, double ns_per_cycle)
{
	static const unsigned int bursts[] = {1, 8, 32};
	unsigned int worker = rte_get_next_lcore(-1, 1, 0);
	/* RING_F_EXACT_SZ: usable capacity exactly `capacity`, like the Rust rings. */
	struct rte_ring *ring = rte_ring_create("sluice_bench", capacity, rte_socket_id(),
						RING_F_SP_ENQ | RING_F_SC_DEQ | RING_F_EXACT_SZ);
	if (worker >= RTE_MAX_LCORE) {
		/* One core only: there is no second lcore to pop on. */
		printf("SLUICE_PEER ring skipped=no-worker-lcore\n");
		rte_ring_free(ring);
		return 0;
	}
	if (ring == NULL) {
		fprintf(stderr, "peer: rte_ring_create: %s\n", rte_strerror(rte_errno));
		return -1;
	}
	for (int bulk = 0; bulk <= 1; bulk++)
		for (unsigned int b = 0; b < RTE_DIM(bursts); b++)
			for (unsigned int rep = 0; rep < reps; rep++) {
				struct ring_job job = {.ring = ring, .items = bursts[b] == 1 ? items1 : items,
						       .burst = bursts[b], .bulk = bulk};
				rte_eal_remote_launch(ring_consumer, &job, worker);
				ring_producer(&job);
				rte_eal_wait_lcore(worker);
				printf("SLUICE_PEER ring mode=%s burst=%u rep=%u items=%" PRIu64
				       " ns_per_obj=%.4f ok=%d\n",
				       bulk ? "bulk" : "burst", bursts[b], rep, job.items,
				       (double)job.cycles * ns_per_cycle / (double)job.items, job.in_order);
			}
	rte_ring_free(ring);
	return 0;
}

static int bench_mempool(uint64_t iters, unsigned int reps, double ns_per_cycle)
{
	static const unsigned int caches[] = {POOL_CACHE, 0};
	static const unsigned int bulks[] = {1, 32};
	void *objs[MAX_BURST];

	for (unsigned int c = 0; c < RTE_DIM(caches); c++) {
		char name[32];
		snprintf(name, sizeof(name), "sluice_bench_mp%u", caches[c]);
		struct rte_mempool *mp = rte_mempool_create(name, POOL_OBJS, POOL_OBJ_SIZE, caches[c], 0,
							    NULL, NULL, NULL, NULL, SOCKET_ID_ANY, 0);
		if (mp == NULL) {
			fprintf(stderr, "peer: rte_mempool_create: %s\n", rte_strerror(rte_errno));
			return -1;
		}
		for (unsigned int k = 0; k < RTE_DIM(bulks); k++)
			for (unsigned int rep = 0; rep < reps; rep++) {
				unsigned int n = bulks[k];
				uint64_t rounds = iters / n, failed = 0;
				uint64_t start = rte_rdtsc_precise();
				for (uint64_t i = 0; i < rounds; i++) {
					if (rte_mempool_get_bulk(mp, objs, n) != 0) {
						failed++;
						continue;
					}
					rte_mempool_put_bulk(mp, objs, n);
				}
				uint64_t cycles = rte_rdtsc_precise() - start;
				printf("SLUICE_PEER mempool cache=%u bulk=%u rep=%u objs=%" PRIu64
				       " ns_per_obj=%.4f ok=%d\n",
				       caches[c], n, rep, rounds * n,
				       (double)cycles * ns_per_cycle / (double)(rounds * n), failed == 0);
			}
		rte_mempool_free(mp);
	}
	return 0;
}

/* rte_pktmbuf: alloc + free of packet buffers, the like-for-like peer of sluice's PktPool
 * (both reset each buffer's header on alloc, which plain rte_mempool get/put does not). */
static int bench_pktmbuf(uint64_t iters, unsigned int reps, double ns_per_cycle)
{
	static const unsigned int caches[] = {POOL_CACHE, 0};
	static const unsigned int bulks[] = {1, 32};
	struct rte_mbuf *mbufs[MAX_BURST];

	for (unsigned int c = 0; c < RTE_DIM(caches); c++) {
		char name[32];
		snprintf(name, sizeof(name), "sluice_bench_mb%u", caches[c]);
		/* 2048 B data room after RTE_PKTMBUF_HEADROOM (128): the PktBuf layout. */
		struct rte_mempool *mp = rte_pktmbuf_pool_create(name, POOL_OBJS, caches[c], 0,
								 RTE_PKTMBUF_HEADROOM + 2048, SOCKET_ID_ANY);
		if (mp == NULL) {
			fprintf(stderr, "peer: rte_pktmbuf_pool_create: %s\n", rte_strerror(rte_errno));
			return -1;
		}
		for (unsigned int k = 0; k < RTE_DIM(bulks); k++)
			for (unsigned int rep = 0; rep < reps; rep++) {
				unsigned int n = bulks[k];
				uint64_t rounds = iters / n, failed = 0;
				uint64_t start = rte_rdtsc_precise();
				for (uint64_t i = 0; i < rounds; i++) {
					if (n == 1) {
						struct rte_mbuf *m = rte_pktmbuf_alloc(mp);
						if (m == NULL) {
							failed++;
							continue;
						}
						rte_pktmbuf_free(m);
					} else {
						if (rte_pktmbuf_alloc_bulk(mp, mbufs, n) != 0) {
							failed++;
							continue;
						}
						rte_pktmbuf_free_bulk(mbufs, n);
					}
				}
				uint64_t cycles = rte_rdtsc_precise() - start;
				printf("SLUICE_PEER pktmbuf cache=%u bulk=%u rep=%u objs=%" PRIu64
				       " ns_per_obj=%.4f ok=%d\n",
				       caches[c], n, rep, rounds * n,
				       (double)cycles * ns_per_cycle / (double)(rounds * n), failed == 0);
			}
		rte_mempool_free(mp);
	}
	return 0;
}

int main(int argc, char **argv)
{
	int eal_args = rte_eal_init(argc, argv);
	if (eal_args < 0) {
		fprintf(stderr, "peer: rte_eal_init failed: %s\n", rte_strerror(rte_errno));
		return 1;
	}
	argc -= eal_args;
	argv += eal_args;
	if (argc != 6) {
		fprintf(stderr, "usage: peer <EAL args> -- <items at burst 1> <items> <reps> "
				"<ring_capacity> <pool_objs>\n");
		return 2;
	}
	uint64_t items1 = strtoull(argv[1], NULL, 10);
	uint64_t items = strtoull(argv[2], NULL, 10);
	unsigned int reps = (unsigned int)strtoul(argv[3], NULL, 10);
	unsigned int capacity = (unsigned int)strtoul(argv[4], NULL, 10);
	uint64_t pool_iters = strtoull(argv[5], NULL, 10);
	uint64_t hz = rte_get_tsc_hz();
	double ns_per_cycle = 1e9 / (double)hz;

	printf("SLUICE_PEER tsc_hz=%" PRIu64 " dpdk=%s\n", hz, rte_version());
	int rc = bench_ring(items1, items, reps, capacity, ns_per_cycle);
	if (rc == 0)
		rc = bench_mempool(pool_iters, reps, ns_per_cycle);
	if (rc == 0)
		rc = bench_pktmbuf(pool_iters, reps, ns_per_cycle);
	fflush(stdout);
	rte_eal_cleanup();
	return rc == 0 ? 0 : 1;
}
