/* SPDX-License-Identifier: MIT */
/* trace_hits.c - a run with a known number of allocator events, for counting USDT probe hits. */
/*
 * tests/trace.cmake runs this under bpftrace with every percpu:* probe
 * attached and compares the hits with the line this prints at the end:
 * what the program did (allocations on the thread-cache path and the
 * locked path, reserved ones, failures with EINVAL and ENOMEM, frees) and
 * what the allocator's statistics say it did (chunks created and
 * destroyed, populate and depopulate calls).  The background worker is
 * off so that nothing happens between the statistics and pcpu_exit(),
 * which destroys every chunk still there.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <percpu.h>

#define NR_SMALL 1000  /* 8 bytes: the thread cache's size classes */
#define NR_ODD 400     /* 260 bytes: no size class, the locked path */
#define NR_RESERVED 8

static void *objs[NR_SMALL + NR_ODD + NR_RESERVED + 4096];
static long nr_objs, nr_alloc, nr_fail, nr_reserved_calls;
static uint64_t size_sum;

static void *take(void *p, size_t size)
{
    if (!p) {
        nr_fail++;
        return NULL;
    }
    nr_alloc++;
    size_sum += size;
    objs[nr_objs++] = p;
    return p;
}

int main(void)
{
    struct pcpu_config cfg = {
        .nr_cpus = 4,
        .unit_size = 64 * 1024,    /* small chunks: a few get created */
        .max_memory = 2u << 20,    /* and then ENOMEM */
        .flags = PCPU_F_NO_RECLAIM,
    };
    if (pcpu_init(&cfg) != 0) {
        perror("pcpu_init");
        return 1;
    }
    for (int i = 0; i < NR_SMALL; i++)
        take(pcpu_alloc(8, 0), 8);
    for (int i = 0; i < NR_ODD; i++)
        take(pcpu_alloc(260, 0), 260);
    for (int i = 0; i < NR_RESERVED; i++, nr_reserved_calls++)
        take(pcpu_alloc_reserved(16, 8), 16);

    /* EINVAL: no size, a size no unit holds, an alignment that is not a
     * power of two; on both entry points. */
    int einval = 0;
    errno = 0;
    einval += take(pcpu_alloc(0, 0), 0) == NULL && errno == EINVAL;
    errno = 0;
    einval += take(pcpu_alloc(1u << 30, 0), 1u << 30) == NULL && errno == EINVAL;
    errno = 0;
    einval += take(pcpu_alloc(8, 3), 8) == NULL && errno == EINVAL;
    errno = 0;
    nr_reserved_calls++;
    einval += take(pcpu_alloc_reserved(0, 0), 0) == NULL && errno == EINVAL;
    if (einval != 4) {
        fprintf(stderr, "trace_hits: expected 4 EINVAL failures, got %d\n", einval);
        return 1;
    }
    /* ENOMEM: big objects until max_memory stops them. */
    long nomem = 0;
    for (int i = 0; i < 4096 && !nomem; i++) {
        errno = 0;
        if (!take(pcpu_alloc(32 * 1024, 0), 32 * 1024)) {
            if (errno != ENOMEM) {
                perror("trace_hits: big allocation");
                return 1;
            }
            nomem++;
        }
    }
    if (!nomem) {
        fprintf(stderr, "trace_hits: max_memory never refused an allocation\n");
        return 1;
    }

    for (long i = 0; i < nr_objs; i++)
        pcpu_free(objs[i]);
    pcpu_free(NULL);     /* no free event */
    pcpu_reclaim(true);  /* depopulate, destroy empty chunks */

    struct pcpu_stats st;
    if (pcpu_stats_get(&st) != 0) {
        perror("pcpu_stats_get");
        return 1;
    }
    if (st.nr_chunk_create < 2 || st.nr_depopulate == 0) {
        fprintf(stderr, "trace_hits: too little happened (%llu chunks, %llu depopulate)\n",
                (unsigned long long)st.nr_chunk_create, (unsigned long long)st.nr_depopulate);
        return 1;
    }
    unsigned int live_chunks = st.nr_chunks;
    uint64_t create = st.nr_chunk_create, destroy = st.nr_chunk_destroy;
    uint64_t populate = st.nr_populate, depopulate = st.nr_depopulate;
    pcpu_exit();    /* every chunk still there is destroyed */

    printf("expect alloc=%ld alloc_fail=%ld free=%ld create_chunk=%llu destroy_chunk=%llu "
           "populate=%llu depopulate=%llu alloc_bytes=%llu reserved=%ld\n",
           nr_alloc, nr_fail, nr_alloc, (unsigned long long)create,
           (unsigned long long)(destroy + live_chunks), (unsigned long long)populate,
           (unsigned long long)depopulate, (unsigned long long)size_sum, nr_reserved_calls);
    return 0;
}
