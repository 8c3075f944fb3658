/* SPDX-License-Identifier: MIT */
/*
 * topology.c - which CPUs exist, which NUMA node each is on, and the
 * allocation info built from that (the kernel's pcpu_alloc_info).
 *
 * CPU ids from /sys/devices/system/cpu/possible may be sparse ("0-3,8-11");
 * the library numbers CPUs densely (CPU index 0..nr_units-1) by rank of
 * their OS id, and keeps a map from OS id to index for the this-CPU fast
 * path.  A configured nr_cpus larger than the machine adds simulated CPUs
 * (units nobody runs on, to test 256 or 4096 units on a small box); a
 * smaller one makes several CPUs share a unit.
 *
 * Units are grouped by NUMA node (all of node 0's units, then node 1's ...)
 * so that each group is one contiguous range of unit positions, as the
 * kernel lays out groups.  The KM backend cannot bind memory per unit and
 * so accepts one group only.
 *
 * The layout (topology.h) is what the rest of the library reads: it is
 * published here once per initialisation, with the per-CPU offsets that
 * the public inline functions use, and cleared at pcpu_exit().
 */
#include "topology.h"

#include "os.h"

#include <ctype.h>
#include <sched.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

intptr_t pcpu__cpu_offsets[PCPU_MAX_CPUS];
unsigned int pcpu__nr_units;
struct pcpu_layout pcpu__layout;

void pcpu__bad_cpu(unsigned int cpu)
{
    pcpu__die("percpu: pcpu_ptr: cpu %u out of range (pcpu_nr_cpus() is %u)", cpu,
              pcpu__nr_units);
}

static unsigned int fls_size(size_t v)
{
    return v ? (unsigned int)(64 - __builtin_clzll((unsigned long long)v)) : 0;
}

void pcpu__layout_set(struct pcpu_alloc_info *ai)
{
    struct pcpu_layout *l = &pcpu__layout;
    l->ai = ai;
    l->nr_units = ai->nr_units;
    l->unit_size = ai->unit_size;
    l->unit_bits = ai->unit_size / PCPU_GRANULE;
    l->chunk_span = ((size_t)ai->nr_units + 1) * ai->unit_size;
    l->chunk_shift = fls_size(l->chunk_span - 1);
    l->static_size = ai->static_size;
    l->reserved_off = ai->static_size;
    l->dyn_off = ai->static_size + ai->reserved_size;
    for (unsigned int i = 0; i < ai->nr_units; i++)
        pcpu__cpu_offsets[i] = (intptr_t)(ai->unit_pos[i] + 1) * (intptr_t)ai->unit_size;
    __atomic_store_n(&pcpu__nr_units, ai->nr_units, __ATOMIC_RELEASE);
}

void pcpu__layout_clear(void)
{
    struct pcpu_alloc_info *ai = (struct pcpu_alloc_info *)pcpu__layout.ai;
    if (ai)
        memset(pcpu__cpu_offsets, 0, sizeof(intptr_t) * ai->nr_units);
    __atomic_store_n(&pcpu__nr_units, 0, __ATOMIC_RELEASE);
    pcpu__free_alloc_info(ai);
    memset(&pcpu__layout, 0, sizeof(pcpu__layout));
}

int pcpu__parse_cpulist(const char *s, unsigned char *set, unsigned int max)
{
    int count = 0;
    while (*s && *s != '\n') {
        char *end;
        if (!isdigit((unsigned char)*s))
            return -1;
        unsigned long a = strtoul(s, &end, 10), b = a;
        s = end;
        if (*s == '-') {
            b = strtoul(s + 1, &end, 10);
            if (end == s + 1)
                return -1;
            s = end;
        }
        if (b < a || b >= max)
            return -1;
        for (unsigned long i = a; i <= b; i++) {
            if (!set[i])
                count++;
            set[i] = 1;
        }
        if (*s == ',')
            s++;
    }
    return count;
}

static int read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char *r = fgets(buf, (int)len, f);
    fclose(f);
    return r ? 0 : -1;
}

/* The highest CPU id this process may run on, or -1. */
static long highest_allowed_cpu(void)
{
    cpu_set_t *set = CPU_ALLOC(PCPU_MAX_CPUS);
    size_t size = CPU_ALLOC_SIZE(PCPU_MAX_CPUS);
    long top = -1;
    if (set && sched_getaffinity(0, size, set) == 0)
        for (long i = PCPU_MAX_CPUS - 1; i >= 0 && top < 0; i--)
            if (CPU_ISSET_S((size_t)i, size, set))
                top = i;
    if (set)
        CPU_FREE(set);
    return top;
}

bool pcpu__node_online(int node)
{
    char path[96];
    snprintf(path, sizeof(path), "/sys/devices/system/node/node%d", node);
    return access(path, F_OK) == 0;
}

/* The node of OS CPU id: the nodeN entry in its sysfs directory. */
static int os_cpu_node(int cpu)
{
    for (int node = 0; node < 64; node++) {
        char path[96];
        snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/node%d", cpu, node);
        if (access(path, F_OK) == 0)
            return node;
    }
    return 0;
}

void pcpu__free_alloc_info(struct pcpu_alloc_info *ai)
{
    if (!ai)
        return;
    free(ai->groups);
    free(ai->unit_pos);
    free(ai->node);
    free(ai->os_id);
    free(ai->index_of_os);
    free(ai);
}

static int fail(struct pcpu_alloc_info *ai, int err, const char *msg)
{
    if (msg)
        pcpu__warn("%s", msg);
    pcpu__free_alloc_info(ai);
    errno = err;
    return -1;
}

int pcpu__build_alloc_info(const struct pcpu_config *cfg, size_t static_size,
                           struct pcpu_alloc_info **out)
{
    char msg[256];
    char line[4096];
    struct pcpu_alloc_info *ai = calloc(1, sizeof(*ai));
    unsigned char *possible = calloc(PCPU_MAX_CPUS, 1);
    if (!ai || !possible) {
        free(possible);
        return fail(ai, ENOMEM, NULL);
    }
    int nr_possible = -1;
    if (read_line("/sys/devices/system/cpu/possible", line, sizeof(line)) == 0)
        nr_possible = pcpu__parse_cpulist(line, possible, PCPU_MAX_CPUS);
    if (nr_possible <= 0) {
        /* No sysfs (some containers): CPU ids 0 .. n-1, with n the
         * configured CPUs as the C library counts them (without sysfs,
         * glibc counts the CPUs the process may run on) or, if more, one
         * past the highest such CPU: a process confined to CPUs 6-7 must
         * have units 6 and 7.  CPUs a cpuset adds later beyond that share
         * units, and the this-CPU operations then use atomics. */
        long n = sysconf(_SC_NPROCESSORS_CONF);
        long top = highest_allowed_cpu();
        if (top + 1 > n)
            n = top + 1;
        if (n <= 0)
            n = 1;
        if (n > PCPU_MAX_CPUS)
            n = PCPU_MAX_CPUS;
        memset(possible, 1, (size_t)n);
        nr_possible = (int)n;
    }
    unsigned int nr_os_ids = 0;
    for (unsigned int i = 0; i < PCPU_MAX_CPUS; i++)
        if (possible[i])
            nr_os_ids = i + 1;

    if (cfg->nr_cpus > PCPU_MAX_CPUS) {
        free(possible);
        snprintf(msg, sizeof(msg), "nr_cpus %u is more than PCPU_MAX_CPUS (%u)", cfg->nr_cpus,
                 PCPU_MAX_CPUS);
        return fail(ai, EINVAL, msg);
    }
    unsigned int n = cfg->nr_cpus ? cfg->nr_cpus : (unsigned int)nr_possible;
    ai->nr_units = n;
    ai->nr_possible = (unsigned int)nr_possible;
    ai->nr_os_ids = nr_os_ids;
    ai->units_shared = n < (unsigned int)nr_possible;
    ai->unit_pos = calloc(n, sizeof(*ai->unit_pos));
    ai->node = calloc(n, sizeof(*ai->node));
    ai->os_id = calloc(n, sizeof(*ai->os_id));
    ai->index_of_os = calloc(nr_os_ids, sizeof(*ai->index_of_os));
    ai->groups = calloc(n, sizeof(*ai->groups));
    if (!ai->unit_pos || !ai->node || !ai->os_id || !ai->index_of_os || !ai->groups) {
        free(possible);
        return fail(ai, ENOMEM, NULL);
    }

    /* CPU index k is the k-th possible OS id; indexes past the machine's
     * CPUs are simulated; OS ids past the units share them round-robin. */
    unsigned int rank = 0;
    for (unsigned int i = 0; i < n; i++)
        ai->os_id[i] = -1;
    for (unsigned int id = 0; id < nr_os_ids; id++) {
        if (!possible[id])
            continue;
        ai->index_of_os[id] = rank % n;
        if (rank < n)
            ai->os_id[rank] = (int)id;
        rank++;
    }
    free(possible);

    for (unsigned int i = 0; i < n; i++) {
        if (cfg->cpu_node) {
            ai->node[i] = cfg->cpu_node[i];
            if (ai->node[i] < 0 || ai->node[i] >= 1024) {
                snprintf(msg, sizeof(msg), "cpu_node[%u] = %d is not a NUMA node number", i,
                         ai->node[i]);
                return fail(ai, EINVAL, msg);
            }
        } else {
            ai->node[i] = ai->os_id[i] >= 0 ? os_cpu_node(ai->os_id[i]) : 0;
        }
    }

    /* Group units by node, in order of first appearance. */
    unsigned int pos = 0;
    for (unsigned int i = 0; i < n; i++) {
        bool seen = false;
        for (unsigned int g = 0; g < ai->nr_groups; g++)
            if (ai->groups[g].node == ai->node[i])
                seen = true;
        if (seen)
            continue;
        struct pcpu_group *grp = &ai->groups[ai->nr_groups++];
        grp->node = ai->node[i];
        grp->first_unit = pos;
        for (unsigned int j = i; j < n; j++) {
            if (ai->node[j] == grp->node) {
                ai->unit_pos[j] = pos++;
                grp->nr_units++;
            }
        }
    }

    /* Every size is checked before any arithmetic on it, so that values
     * near SIZE_MAX cannot wrap around into something that looks fine. */
    size_t page = pcpu__page_size;
    size_t unit = cfg->unit_size ? cfg->unit_size : PCPU_DEFAULT_UNIT_SIZE;
    if (unit < PCPU_MIN_UNIT_SIZE || unit > PCPU_MAX_UNIT_SIZE) {
        snprintf(msg, sizeof(msg), "unit_size %zu is outside %u .. %zu bytes", cfg->unit_size,
                 PCPU_MIN_UNIT_SIZE, PCPU_MAX_UNIT_SIZE);
        return fail(ai, EINVAL, msg);
    }
    unit = (unit + page - 1) & ~(page - 1);
    size_t reserved = cfg->reserved_size ? cfg->reserved_size : PCPU_DEFAULT_RESERVED;
    /* The first chunk's dynamic area starts on the page after the static
     * and reserved areas and must hold at least PCPU_MIN_DYN_SIZE; sizes
     * that are too big for that are refused before they are rounded. */
    size_t head = unit + 1;
    if (reserved < unit && static_size < unit) {
        reserved = (reserved + PCPU_STATIC_ALIGN - 1) & ~(size_t)(PCPU_STATIC_ALIGN - 1);
        static_size = (static_size + PCPU_STATIC_ALIGN - 1) & ~(size_t)(PCPU_STATIC_ALIGN - 1);
        head = (static_size + reserved + page - 1) & ~(page - 1);
    }
    if (head > unit || unit - head < PCPU_MIN_DYN_SIZE) {
        snprintf(msg, sizeof(msg),
                 "static (%zu) + reserved_size (%zu) bytes, rounded up to a page, leave "
                 "%zu bytes of dynamic space in the %zu-byte unit; the first chunk needs "
                 "at least %u",
                 static_size, reserved, head > unit ? 0 : unit - head, unit,
                 PCPU_MIN_DYN_SIZE);
        return fail(ai, EINVAL, msg);
    }
    if ((size_t)n * unit / n != unit || ((size_t)n + 1) * unit > ((size_t)1 << 46)) {
        snprintf(msg, sizeof(msg), "%u units of %zu bytes do not fit in the address space", n,
                 unit);
        return fail(ai, EINVAL, msg);
    }
    ai->unit_size = unit;
    ai->atom_size = page;
    ai->static_size = static_size;
    ai->reserved_size = reserved;
    ai->dyn_size = unit - static_size - reserved;
    *out = ai;
    return 0;
}
