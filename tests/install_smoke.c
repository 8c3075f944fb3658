/* SPDX-License-Identifier: MIT */
/*
 * install_smoke.c - a program built outside the tree against an installed
 * percpu (tests/install.cmake): compiled with only
 * `pkg-config --cflags --libs percpu`, or by the outside CMake project
 * tests/install_project with find_package(percpu), it uses the allocator, a static
 * per-CPU variable and this-CPU operations from several threads, checks
 * the sums, and prints which shared library it really ran against and
 * the version it was compiled with (the header) and runs with (the
 * library's pcpu_version()), for the tests to compare with percpu.pc, the
 * CMake package and the Debian packages.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include <percpu.h>

PCPU_DEFINE(long, nr_events) = 0;

static long *hits;

static void *worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100000; i++) {
        pcpu_this_inc(hits);
        pcpu_this_add(PCPU_VAR(nr_events), 2);
    }
    return NULL;
}

int main(void)
{
    hits = PCPU_NEW(long);
    if (!hits) {
        perror("pcpu_alloc");
        return 1;
    }
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    long h = pcpu_sum(hits), e = pcpu_sum(PCPU_VAR(nr_events));
    pcpu_free(hits);

    struct pcpu_stats st;
    pcpu_stats_get(&st);
    Dl_info di;
    const char *lib = dladdr((void *)pcpu_alloc, &di) && di.dli_fname ? di.dli_fname : "?";
    printf("library: %s\n", lib);
    printf("units %u, rseq %d, hits %ld, events %ld\n", st.nr_units, (int)st.rseq, h, e);
    printf("version: header %s (%u), library %s (%u)\n", PCPU_VERSION,
           (unsigned int)PCPU_VERSION_NUMBER, pcpu_version_string(), pcpu_version());
    if (h != 400000 || e != 800000) {
        fprintf(stderr, "install_smoke: wrong sums\n");
        return 1;
    }
    return 0;
}
