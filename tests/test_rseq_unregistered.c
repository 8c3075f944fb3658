/* SPDX-License-Identifier: MIT */
/* test_rseq_unregistered.c - a thread whose rseq registration is taken away (its index word then reads -1) still gets exact this-CPU operations, alone or while other threads update the same objects. */
#include "child.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>

/*
 * Why this can break: the sequences use the thread's index word (rseq
 * cpu_id or mm_cid) without a bound check; the kernel writes -1 there
 * when a thread unregisters, and glibc writes -2 when its registration
 * failed, which must send the operation to the slow path (the library
 * then registers the thread itself or switches the process to atomics)
 * and never be taken as an index.  A user may unregister glibc's area
 * (a tracer, a runtime with its own rseq) at any time, so each scenario
 * does exactly that and then checks every kind of operation's effect.
 */

extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));

#define RSEQ_SIG 0x53053053
#define ROUNDS 20000
#define WORKERS 2

static char *rseq_area(void)
{
#if defined(__x86_64__)
    char *tp;
    __asm__("movq %%fs:0, %0" : "=r"(tp));
#elif defined(__aarch64__)
    char *tp = __builtin_thread_pointer();
#else
    char *tp = NULL;
    child_check(false, "no thread pointer on this architecture");
#endif
    return tp + __rseq_offset;
}

/* Unregister the calling thread's rseq area.  false: it was not
 * registered, or the kernel refused (then the scenario cannot run). */
static bool unregister_rseq(void)
{
    if (&__rseq_offset == NULL)
        return false;
    char *area = rseq_area();
    if (*(volatile int32_t *)(area + 4) < 0)
        return false;
    /* glibc registers 32 bytes, the library too; newer glibc may say a
     * larger size. */
    unsigned int sizes[2] = {32, &__rseq_size ? __rseq_size : 32};
    for (int i = 0; i < 2; i++)
        if (syscall(SYS_rseq, area, sizes[i], 1, RSEQ_SIG) == 0)
            return true;
    return false;
}

static int32_t index_word(void)
{
    return *(volatile int32_t *)(rseq_area() + 4);
}

struct objs {
    long *l;
    int *i;
    struct pcpu_list *list;
    int nodes; /* list nodes handed out (each thread holds one or none) */
    struct pcpu_counter counter;
    struct pcpu_ref ref;
};

/* A list node of the calling thread's own (a node may only be pushed by
 * whoever holds it: the thread then pushes what it popped, which may be
 * another thread's node). */
static struct pcpu_list_node *node_new(struct objs *o)
{
    struct pcpu_list_node *n = calloc(1, sizeof(*n));
    child_check(n != NULL, "calloc");
    __atomic_add_fetch(&o->nodes, 1, __ATOMIC_RELAXED);
    return n;
}

/* One round of each kind of operation: a net of +2 on l, +3 on i, +1 on
 * the counter, the reference as it was, and the node in *hand (if any)
 * pushed, then whatever the current unit's list gives back taken into
 * *hand (NULL when the thread moved to a unit whose list is empty). */
static void round_ops(struct objs *o, struct pcpu_list_node **hand)
{
    pcpu_this_inc(o->l);
    pcpu_this_add(o->l, 3L);
    (void)pcpu_this_sub_return(o->l, 1L);
    for (;;) {
        long seen = pcpu_this_read(o->l);
        if (pcpu_this_cmpxchg(o->l, seen, seen) == seen)
            break;
    }
    pcpu_this_dec(o->l);
    pcpu_this_add(o->i, 3);
    if (*hand)
        pcpu_this_list_push(o->list, *hand);
    *hand = pcpu_this_list_pop(o->list);
    pcpu_counter_add(&o->counter, 1);
    pcpu_ref_get(&o->ref);
    pcpu_ref_put(&o->ref);
}

static void objs_init(struct objs *o)
{
    o->l = PCPU_NEW(long);
    o->i = PCPU_NEW(int);
    o->list = PCPU_NEW(struct pcpu_list);
    o->nodes = 0;
    child_check(o->l && o->i && o->list, "pcpu_alloc: %s", strerror(errno));
    child_check(pcpu_counter_init(&o->counter, 0) == 0, "pcpu_counter_init: %s",
                strerror(errno));
    child_check(pcpu_ref_init(&o->ref, NULL, 0) == 0, "pcpu_ref_init: %s", strerror(errno));
}

/* After all threads are done and have pushed what they held: every
 * count exact, every node on some unit's list exactly once. */
static void objs_check(struct objs *o, long rounds)
{
    long l = pcpu_sum(o->l);
    long i = pcpu_sum(o->i);
    int64_t c = pcpu_counter_sum(&o->counter);
    child_check(l == 2 * rounds, "long sum %ld, want %ld", l, 2 * rounds);
    child_check(i == 3 * rounds, "int sum %ld, want %ld", i, 3 * rounds);
    child_check(c == rounds, "counter %lld, want %ld", (long long)c, rounds);
    child_check(!pcpu_ref_is_zero(&o->ref), "the reference lost its count");
    int nodes = 0;
    pcpu_for_each_cpu(cpu)
    {
        for (struct pcpu_list_node *x = pcpu_list_pop_all(o->list, cpu); x; x = x->next) {
            child_check(nodes < o->nodes, "more nodes on the lists than were handed out");
            nodes++;
        }
    }
    child_check(nodes == o->nodes, "%d nodes on the lists, want %d", nodes, o->nodes);
}

/* Give the node in *hand back to the lists. */
static void hand_back(struct objs *o, struct pcpu_list_node **hand)
{
    if (*hand)
        pcpu_this_list_push(o->list, *hand);
    *hand = NULL;
}

/* a) The only thread: operations, unregistration, operations. */
static void alone_child(void *arg)
{
    (void)arg;
    struct objs o;
    objs_init(&o);
    struct pcpu_list_node *hand = node_new(&o);
    for (int r = 0; r < ROUNDS; r++)
        round_ops(&o, &hand);
    if (!unregister_rseq())
        _exit(CHILD_SKIP);
    child_check(index_word() < 0, "the index word reads %d after unregistration", index_word());
    for (int r = 0; r < ROUNDS; r++)
        round_ops(&o, &hand);
    hand_back(&o, &hand);
    objs_check(&o, 2L * ROUNDS);
}

/* b) Workers update the same objects all along; one of them unregisters
 * half-way (the process may switch to atomics under the others). */
struct shared {
    struct objs o;
    int unregistered; /* 1 done, -1 not possible */
};

struct worker_arg {
    struct shared *s;
    int id;
};

static void *worker(void *arg)
{
    struct worker_arg *w = arg;
    struct pcpu_list_node *hand = node_new(&w->s->o);
    for (int r = 0; r < ROUNDS; r++) {
        if (w->id == 0 && r == ROUNDS / 2)
            __atomic_store_n(&w->s->unregistered, unregister_rseq() ? 1 : -1, __ATOMIC_RELEASE);
        round_ops(&w->s->o, &hand);
    }
    hand_back(&w->s->o, &hand);
    return NULL;
}

static void shared_child(void *arg)
{
    (void)arg;
    static struct shared s;
    objs_init(&s.o);
    pthread_t t[WORKERS];
    struct worker_arg wa[WORKERS];
    for (int k = 0; k < WORKERS; k++) {
        wa[k] = (struct worker_arg){&s, k};
        child_check(pthread_create(&t[k], NULL, worker, &wa[k]) == 0, "pthread_create");
    }
    struct pcpu_list_node *hand = node_new(&s.o);
    for (int r = 0; r < ROUNDS; r++)
        round_ops(&s.o, &hand);
    hand_back(&s.o, &hand);
    for (int k = 0; k < WORKERS; k++)
        child_check(pthread_join(t[k], NULL) == 0, "pthread_join");
    if (__atomic_load_n(&s.unregistered, __ATOMIC_ACQUIRE) < 0)
        _exit(CHILD_SKIP);
    objs_check(&s.o, (long)(WORKERS + 1) * ROUNDS);
}

/* In PCPU_INDEX_CID mode an unregistered thread reads mm_cid 0, a valid
 * index: the header documents that its updates race with the others'
 * (see enum pcpu_index), so the scenario with other threads runs in CPU
 * mode only. */
static bool cid_mode(void)
{
    const char *x = getenv("PERCPU_INDEX");
    return x && strcmp(x, "cid") == 0;
}

/* c) A thread unregisters and exits; the others go on (its slow path
 * left nothing behind that a later thread trips on). */
static void *unregister_and_go(void *arg)
{
    struct objs *o = arg;
    struct pcpu_list_node *hand = node_new(o);
    round_ops(o, &hand);
    bool done = unregister_rseq();
    round_ops(o, &hand);
    hand_back(o, &hand);
    return (void *)(uintptr_t)done;
}

static void exit_child(void *arg)
{
    (void)arg;
    static struct objs o;
    objs_init(&o);
    long rounds = 0;
    for (int k = 0; k < 8; k++) {
        pthread_t t;
        void *done;
        child_check(pthread_create(&t, NULL, unregister_and_go, &o) == 0, "pthread_create");
        child_check(pthread_join(t, &done) == 0, "pthread_join");
        if (!done)
            _exit(CHILD_SKIP);
        rounds += 2;
        struct pcpu_list_node *hand = NULL;
        for (int r = 0; r < 100; r++, rounds++)
            round_ops(&o, &hand);
        hand_back(&o, &hand);
    }
    objs_check(&o, rounds);
}

static void test_ops_after_unregistering_alone_are_exact(void **state)
{
    (void)state;
    run_in_child(__func__, alone_child, NULL);
}

static void test_ops_while_one_thread_unregisters_are_exact(void **state)
{
    (void)state;
    if (cid_mode()) {
        print_message("PERCPU_INDEX=cid: a documented limitation, not run\n");
        skip();
    }
    run_in_child(__func__, shared_child, NULL);
}

static void test_threads_that_unregister_and_exit_leave_ops_exact(void **state)
{
    (void)state;
    run_in_child(__func__, exit_child, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ops_after_unregistering_alone_are_exact),
        cmocka_unit_test(test_ops_while_one_thread_unregisters_are_exact),
        cmocka_unit_test(test_threads_that_unregister_and_exit_leave_ops_exact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
