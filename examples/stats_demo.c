/* SPDX-License-Identifier: MIT */
/*
 * stats_demo.c - allocate per-CPU objects of a few sizes, free some, and
 * print the allocator's statistics and a picture of its chunks.
 *
 *   ./stats_demo [nr_cpus]     (e.g. 256 to simulate a big machine)
 */
#include <percpu.h>

#include <stdio.h>
#include <stdlib.h>

struct conn_stats {
    unsigned long requests;
    unsigned long bytes_in, bytes_out;
};

int main(int argc, char **argv)
{
    struct pcpu_config cfg = {.nr_cpus = argc > 1 ? (unsigned int)atoi(argv[1]) : 0};
    if (pcpu_init(&cfg) != 0) {
        perror("pcpu_init");
        return 1;
    }
    enum { N = 20000 };
    static struct conn_stats *conns[N];
    for (int i = 0; i < N; i++) {
        conns[i] = PCPU_NEW(struct conn_stats);
        if (!conns[i]) {
            perror("pcpu_alloc");
            return 1;
        }
        /* Touch the copy of one CPU, as a server thread on that CPU would. */
        PCPU_PTR(conns[i], (unsigned int)i % pcpu_nr_cpus())->requests = 1;
    }
    for (int i = 0; i < N; i += 3) {
        pcpu_free(conns[i]);
        conns[i] = NULL;
    }
    pcpu_stats_print(stdout);
    printf("\nChunk map (one character per page of a unit):\n");
    pcpu_chunk_map_print(stdout, 64);
    for (int i = 0; i < N; i++)
        pcpu_free(conns[i]);
    pcpu_exit();
    return 0;
}
