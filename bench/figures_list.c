/* SPDX-License-Identifier: MIT */
/*
 * figures_list.c - one pop + push pair on a LIFO free list, ns per pair per
 * thread (each thread starts with 64 nodes of its own), at T=1 and T=all:
 *
 *   list.percpu.push_pop   pcpu_this_list_pop() + pcpu_this_list_push() on
 *                          a per-CPU list
 *   list.mutex.push_pop    one shared list under a pthread mutex
 *   list.treiber.push_pop  one shared lock-free Treiber stack whose head
 *                          carries a tag (16-byte compare-and-swap, no ABA)
 *   list.tls.push_pop      a thread-local list (plain loads and stores):
 *                          the floor
 *
 * The node is handed to an empty asm between pop and push in every
 * variant, as a user would touch it.  After each measurement every node
 * handed out must be found exactly once.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <pthread.h>
#include <stdlib.h>

#include "percpu.h"

#define LIST_NODES_PER_THREAD 64
#define LIST_MAX_THREADS 256

/* A node of every variant: the next pointer first, a payload after it. */
struct bench_node {
    struct pcpu_list_node link;
    long payload[3];
};
static struct bench_node *list_nodes;   /* LIST_MAX_THREADS * per thread */
static unsigned int list_nodes_out;     /* handed out by the setups      */

static struct bench_node *list_take_nodes(unsigned int tid)
{
    __atomic_fetch_add(&list_nodes_out, LIST_NODES_PER_THREAD, __ATOMIC_RELAXED);
    return list_nodes + (size_t)(tid % LIST_MAX_THREADS) * LIST_NODES_PER_THREAD;
}

/* Every figure checks that each node handed out is back exactly once. */
static void list_census(const struct loop *l, struct pcpu_list_node *(*next_chain)(void))
{
    unsigned int n = 0;
    for (struct pcpu_list_node *x; (x = next_chain()) != NULL;)
        for (; x; x = x->next)
            n++;
    if (n != list_nodes_out)
        fprintf(stderr, "percpu-bench: %s: %u nodes found, %u handed out: NODES LOST\n",
                l->name, n, list_nodes_out);
    list_nodes_out = 0;
}

/* -- percpu -- */
static struct pcpu_list *list_cookie;

static void *list_percpu_setup(const struct loop *l, unsigned int tid)
{
    (void)l;
    struct bench_node *nodes = list_take_nodes(tid);
    for (unsigned int i = 0; i < LIST_NODES_PER_THREAD; i++)
        pcpu_this_list_push(list_cookie, &nodes[i].link);
    return list_cookie;
}

static void list_percpu_run(void *p, uint64_t n)
{
    struct pcpu_list *l = p;
    for (uint64_t i = 0; i < n; i++) {
        struct pcpu_list_node *x = pcpu_this_list_pop(l);
        if (__builtin_expect(x != NULL, 1)) {
            escape(x);
            pcpu_this_list_push(l, x);
        }
    }
}

static unsigned int list_percpu_unit;
static struct pcpu_list_node *list_percpu_chain(void)
{
    while (list_percpu_unit < pcpu_nr_cpus()) {
        struct pcpu_list_node *x = pcpu_list_pop_all(list_cookie, list_percpu_unit++);
        if (x)
            return x;
    }
    return NULL;
}

static void list_percpu_check(const struct loop *l, uint64_t total)
{
    (void)total;
    list_percpu_unit = 0;
    list_census(l, list_percpu_chain);
}

/* -- one list under a mutex -- */
static struct {
    pthread_mutex_t lock;
    struct pcpu_list_node *head;
} list_mx = {PTHREAD_MUTEX_INITIALIZER, NULL};

static void mx_push(struct pcpu_list_node *x)
{
    pthread_mutex_lock(&list_mx.lock);
    x->next = list_mx.head;
    list_mx.head = x;
    pthread_mutex_unlock(&list_mx.lock);
}

static struct pcpu_list_node *mx_pop(void)
{
    pthread_mutex_lock(&list_mx.lock);
    struct pcpu_list_node *x = list_mx.head;
    if (x)
        list_mx.head = x->next;
    pthread_mutex_unlock(&list_mx.lock);
    return x;
}

static void *list_mutex_setup(const struct loop *l, unsigned int tid)
{
    (void)l;
    struct bench_node *nodes = list_take_nodes(tid);
    for (unsigned int i = 0; i < LIST_NODES_PER_THREAD; i++)
        mx_push(&nodes[i].link);
    return NULL;
}

static void list_mutex_run(void *p, uint64_t n)
{
    (void)p;
    for (uint64_t i = 0; i < n; i++) {
        struct pcpu_list_node *x = mx_pop();
        if (__builtin_expect(x != NULL, 1)) {
            escape(x);
            mx_push(x);
        }
    }
}

static struct pcpu_list_node *list_mutex_chain(void)
{
    struct pcpu_list_node *x = list_mx.head;
    list_mx.head = NULL;
    return x;
}

static void list_mutex_check(const struct loop *l, uint64_t total)
{
    (void)total;
    list_census(l, list_mutex_chain);
}

/* -- Treiber stack with a tag: {top, tag} swapped as one 16-byte word -- */
struct tagged {
    uintptr_t top;
    uintptr_t tag;
} __attribute__((aligned(16)));
static struct {
    struct tagged head;
    char pad[48];
} list_tr __attribute__((aligned(64)));

static inline bool cas16(struct tagged *p, struct tagged *old, struct tagged nv)
{
#if defined(__x86_64__)
    bool ok;
    __asm__ __volatile__("lock cmpxchg16b %1"
                         : "=@ccz"(ok), "+m"(*p), "+a"(old->top), "+d"(old->tag)
                         : "b"(nv.top), "c"(nv.tag)
                         : "memory");
    return ok;
#else
    /* __sync, not __atomic: compilers inline the 16-byte __sync forms
     * (aarch64: casp or ldaxp/stlxp) but call libatomic for __atomic */
    unsigned __int128 o = ((unsigned __int128)old->tag << 64) | old->top;
    unsigned __int128 n = ((unsigned __int128)nv.tag << 64) | nv.top;
    unsigned __int128 seen = __sync_val_compare_and_swap((unsigned __int128 *)(void *)p, o, n);
    old->top = (uintptr_t)seen;
    old->tag = (uintptr_t)(seen >> 64);
    return seen == o;
#endif
}

/* A torn read of the two halves only makes the compare-and-swap fail. */
static inline struct tagged tr_read(void)
{
    struct tagged t;
    t.tag = __atomic_load_n(&list_tr.head.tag, __ATOMIC_ACQUIRE);
    t.top = __atomic_load_n(&list_tr.head.top, __ATOMIC_ACQUIRE);
    return t;
}

static void tr_push(struct pcpu_list_node *x)
{
    struct tagged old = tr_read();
    for (;;) {
        __atomic_store_n(&x->next, (struct pcpu_list_node *)old.top, __ATOMIC_RELAXED);
        if (cas16(&list_tr.head, &old, (struct tagged){(uintptr_t)x, old.tag + 1}))
            return;
    }
}

static struct pcpu_list_node *tr_pop(void)
{
    struct tagged old = tr_read();
    for (;;) {
        struct pcpu_list_node *x = (struct pcpu_list_node *)old.top;
        if (!x)
            return NULL;
        /* x may be popped and pushed again meanwhile (the tag catches
         * that); nodes are never freed while the stack is in use */
        struct pcpu_list_node *next = __atomic_load_n(&x->next, __ATOMIC_RELAXED);
        if (cas16(&list_tr.head, &old, (struct tagged){(uintptr_t)next, old.tag + 1}))
            return x;
    }
}

static void *list_treiber_setup(const struct loop *l, unsigned int tid)
{
    (void)l;
    struct bench_node *nodes = list_take_nodes(tid);
    for (unsigned int i = 0; i < LIST_NODES_PER_THREAD; i++)
        tr_push(&nodes[i].link);
    return NULL;
}

static void list_treiber_run(void *p, uint64_t n)
{
    (void)p;
    for (uint64_t i = 0; i < n; i++) {
        struct pcpu_list_node *x = tr_pop();
        if (__builtin_expect(x != NULL, 1)) {
            escape(x);
            tr_push(x);
        }
    }
}

static struct pcpu_list_node *list_treiber_chain(void)
{
    struct pcpu_list_node *x = (struct pcpu_list_node *)list_tr.head.top;
    list_tr.head.top = 0;
    return x;
}

static void list_treiber_check(const struct loop *l, uint64_t total)
{
    (void)total;
    list_census(l, list_treiber_chain);
}

/* -- thread-local list -- */
static __thread struct pcpu_list_node *tls_head;
static struct pcpu_list_node *tls_gathered;

static void *list_tls_setup(const struct loop *l, unsigned int tid)
{
    (void)l;
    struct bench_node *nodes = list_take_nodes(tid);
    for (unsigned int i = 0; i < LIST_NODES_PER_THREAD; i++) {
        nodes[i].link.next = tls_head;
        tls_head = &nodes[i].link;
    }
    return NULL;
}

static void list_tls_run(void *p, uint64_t n)
{
    (void)p;
    for (uint64_t i = 0; i < n; i++) {
        struct pcpu_list_node *x = tls_head;
        if (__builtin_expect(x != NULL, 1)) {
            tls_head = x->next;
            escape(x);
            x->next = tls_head;
            tls_head = x;
        }
    }
}

/* Hand the thread's nodes over to the check. */
static pthread_mutex_t tls_gather_lock = PTHREAD_MUTEX_INITIALIZER;
static void list_tls_teardown(void *p)
{
    (void)p;
    pthread_mutex_lock(&tls_gather_lock);
    while (tls_head) {
        struct pcpu_list_node *x = tls_head;
        tls_head = x->next;
        x->next = tls_gathered;
        tls_gathered = x;
    }
    pthread_mutex_unlock(&tls_gather_lock);
}

static struct pcpu_list_node *list_tls_chain(void)
{
    struct pcpu_list_node *x = tls_gathered;
    tls_gathered = NULL;
    return x;
}

static void list_tls_check(const struct loop *l, uint64_t total)
{
    (void)total;
    list_census(l, list_tls_chain);
}

void figures_list(void)
{
    list_cookie = PCPU_NEW(struct pcpu_list);
    list_nodes = calloc((size_t)LIST_MAX_THREADS * LIST_NODES_PER_THREAD, sizeof(*list_nodes));
    if (!list_cookie || !list_nodes)
        die("allocating the lists");
    struct loop loops[] = {
        {.name = "list.percpu.push_pop", .setup = list_percpu_setup, .run = list_percpu_run,
         .check = list_percpu_check},
        {.name = "list.mutex.push_pop", .setup = list_mutex_setup, .run = list_mutex_run,
         .check = list_mutex_check},
        {.name = "list.treiber.push_pop", .setup = list_treiber_setup,
         .run = list_treiber_run, .check = list_treiber_check},
        {.name = "list.tls.push_pop", .setup = list_tls_setup, .run = list_tls_run,
         .teardown = list_tls_teardown, .check = list_tls_check},
    };
    for (size_t i = 0; i < sizeof(loops) / sizeof(loops[0]); i++)
        measure_1_n(&loops[i]);
    pcpu_free(list_cookie);
    free(list_nodes);
}
