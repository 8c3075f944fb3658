/* SPDX-License-Identifier: MIT */
/* test_ref.c - per-CPU reference counts: release exactly once, never while held, after confirm; kill/reinit/resurrect cycles and mode switches under threads and migration. */
/*
 * The object a ref guards carries a canary that its release function
 * poisons; every holder checks it while it holds a reference, and counts
 * itself in a holders count that the release function checks is zero.
 * Workers take references only through pcpu_ref_tryget_live() (or a get
 * while they hold one), as users of a killable ref must.  A mover thread
 * migrates them all the time.  Runs in every mode (tests/CMakeLists.txt).
 */
#include "clients_util.h"

#define ALIVE 0x600dcafeu
#define POISON 0xdeadbeefu

struct obj {
    struct pcpu_ref ref;
    _Atomic unsigned int canary;
    atomic_long holders;      /* threads holding a reference now */
    atomic_long releases;     /* release calls */
    atomic_long confirms;     /* confirm calls */
    atomic_bool confirmed;    /* of the current kill */
    atomic_long bad;          /* violations seen anywhere */
    atomic_long live_after_confirm;
    atomic_long revivals;     /* bumped just before each reinit/resurrect */
};

static struct obj *obj_of(struct pcpu_ref *r)
{
    return (struct obj *)((char *)r - offsetof(struct obj, ref));
}

static void obj_release(struct pcpu_ref *r)
{
    struct obj *o = obj_of(r);
    if (atomic_load(&o->holders) != 0 || atomic_load(&o->canary) != ALIVE)
        atomic_fetch_add(&o->bad, 1);
    /* confirm comes before release (when there is a confirm) */
    if (!atomic_load(&o->confirmed))
        atomic_fetch_add(&o->bad, 1);
    atomic_store(&o->canary, POISON);
    atomic_fetch_add(&o->releases, 1);
}

static void obj_confirm(struct pcpu_ref *r)
{
    struct obj *o = obj_of(r);
    atomic_fetch_add(&o->confirms, 1);
    atomic_store(&o->confirmed, true);
}

static void hold_check(struct obj *o)
{
    atomic_fetch_add(&o->holders, 1);
    if (atomic_load(&o->canary) != ALIVE)
        atomic_fetch_add(&o->bad, 1);
}

static void unhold(struct obj *o)
{
    if (atomic_load(&o->canary) != ALIVE)
        atomic_fetch_add(&o->bad, 1);
    atomic_fetch_sub(&o->holders, 1);
}

static void test_basics(void **state)
{
    (void)state;
    struct obj o;
    memset(&o, 0, sizeof(o));
    atomic_store(&o.canary, ALIVE);
    pcpu_ref_exit(&o.ref); /* zero-filled: nothing to do */
    assert_int_equal(pcpu_ref_init(&o.ref, obj_release, 0), 0);
    assert_false(pcpu_ref_is_dying(&o.ref));
    assert_false(pcpu_ref_is_zero(&o.ref));
    pcpu_ref_get(&o.ref);
    pcpu_ref_get_many(&o.ref, 10);
    assert_true(pcpu_ref_tryget(&o.ref));
    assert_true(pcpu_ref_tryget_live(&o.ref));
    pcpu_ref_put_many(&o.ref, 13);
    pcpu_ref_switch_to_atomic_sync(&o.ref);
    pcpu_ref_get(&o.ref);
    pcpu_ref_switch_to_percpu(&o.ref);
    pcpu_ref_put(&o.ref);
    atomic_store(&o.confirmed, true);
    pcpu_ref_kill(&o.ref); /* drops the initial reference: released */
    assert_int_equal(atomic_load(&o.releases), 1);
    assert_true(pcpu_ref_is_dying(&o.ref));
    assert_true(pcpu_ref_is_zero(&o.ref));
    assert_false(pcpu_ref_tryget(&o.ref));
    assert_false(pcpu_ref_tryget_live(&o.ref));
    pcpu_ref_exit(&o.ref);

    /* held across the kill: released by the last put */
    memset(&o, 0, sizeof(o));
    atomic_store(&o.canary, ALIVE);
    assert_int_equal(pcpu_ref_init(&o.ref, obj_release, PCPU_REF_ALLOW_REINIT), 0);
    pcpu_ref_get_many(&o.ref, 3);
    pcpu_ref_kill_and_confirm(&o.ref, obj_confirm);
    assert_int_equal(atomic_load(&o.confirms), 1);
    assert_int_equal(atomic_load(&o.releases), 0);
    assert_false(pcpu_ref_tryget_live(&o.ref));
    assert_true(pcpu_ref_tryget(&o.ref)); /* count not zero yet */
    pcpu_ref_put_many(&o.ref, 3);
    assert_int_equal(atomic_load(&o.releases), 0);
    pcpu_ref_put(&o.ref);
    assert_int_equal(atomic_load(&o.releases), 1);
    /* reinit: live and per-CPU again */
    atomic_store(&o.canary, ALIVE);
    atomic_store(&o.confirmed, false);
    pcpu_ref_reinit(&o.ref);
    assert_false(pcpu_ref_is_dying(&o.ref));
    assert_true(pcpu_ref_tryget_live(&o.ref));
    pcpu_ref_put(&o.ref);
    /* resurrect while a reference is held */
    pcpu_ref_get(&o.ref);
    atomic_store(&o.confirmed, true);
    pcpu_ref_kill(&o.ref);
    assert_true(pcpu_ref_is_dying(&o.ref));
    pcpu_ref_resurrect(&o.ref);
    assert_false(pcpu_ref_is_dying(&o.ref));
    pcpu_ref_put(&o.ref);
    assert_int_equal(atomic_load(&o.releases), 1);
    pcpu_ref_kill(&o.ref);
    assert_int_equal(atomic_load(&o.releases), 2);
    pcpu_ref_exit(&o.ref);
    assert_int_equal(atomic_load(&o.bad), 0);

    /* started dead: count 0, every tryget fails until reinit */
    memset(&o, 0, sizeof(o));
    atomic_store(&o.canary, ALIVE);
    assert_int_equal(pcpu_ref_init(&o.ref, obj_release, PCPU_REF_INIT_DEAD), 0);
    assert_true(pcpu_ref_is_dying(&o.ref));
    assert_true(pcpu_ref_is_zero(&o.ref));
    assert_false(pcpu_ref_tryget(&o.ref));
    assert_false(pcpu_ref_tryget_live(&o.ref));
    pcpu_ref_reinit(&o.ref);
    assert_true(pcpu_ref_tryget_live(&o.ref));
    pcpu_ref_put(&o.ref);
    atomic_store(&o.confirmed, true);
    pcpu_ref_kill(&o.ref);
    assert_int_equal(atomic_load(&o.releases), 1);
    pcpu_ref_exit(&o.ref);

    /* started atomic */
    memset(&o, 0, sizeof(o));
    atomic_store(&o.canary, ALIVE);
    assert_int_equal(pcpu_ref_init(&o.ref, obj_release, PCPU_REF_INIT_ATOMIC), 0);
    pcpu_ref_get(&o.ref);
    pcpu_ref_put(&o.ref);
    atomic_store(&o.confirmed, true);
    pcpu_ref_kill(&o.ref);
    assert_int_equal(atomic_load(&o.releases), 1);
    pcpu_ref_exit(&o.ref);
    assert_int_equal(atomic_load(&o.bad), 0);
}

/* ---- kill under load, then cycles -------------------------------------------- */

struct load {
    struct obj o;
    struct cu_mover mover;
    atomic_bool stop;
    atomic_ulong ops;
    unsigned int nthreads;
};

struct load_worker {
    struct load *l;
    unsigned int id;
};

static void *load_worker_main(void *arg)
{
    struct load_worker *w = arg;
    struct load *l = w->l;
    struct obj *o = &l->o;
    uint64_t seed = 31 + w->id;
    unsigned long ops = 0;
    cu_mover_enrol(&l->mover, w->id);
    while (!atomic_load_explicit(&l->stop, memory_order_relaxed)) {
        /* every kill is confirmed, then followed by a revival: more
         * confirms than revivals means "killed and confirmed" */
        long r1 = atomic_load(&o->revivals);
        bool dead = atomic_load(&o->confirms) > r1;
        if (!pcpu_ref_tryget_live(&o->ref)) {
            sched_yield(); /* dying: let the main thread get on */
            continue;
        }
        if (dead && atomic_load(&o->revivals) == r1)
            atomic_fetch_add(&o->live_after_confirm, 1);
        hold_check(o);
        /* gets and puts while holding: always allowed */
        unsigned int k = (unsigned int)(tu_rand(&seed) % 4);
        for (unsigned int i = 0; i < k; i++)
            pcpu_ref_get(&o->ref);
        if (k)
            pcpu_ref_put_many(&o->ref, k);
        if (pcpu_ref_tryget(&o->ref))
            pcpu_ref_put(&o->ref);
        ops++;
        unhold(o);
        pcpu_ref_put(&o->ref); /* may be the last: release runs here */
        /* more threads than CPUs: give the killer its turn now and then */
        if (ops % 1024 == 0)
            sched_yield();
    }
    atomic_fetch_add(&l->ops, ops);
    cu_mover_leave(&l->mover, w->id);
    return NULL;
}

static void wait_until(atomic_long *v, long want)
{
    double t0 = tu_now();
    while (atomic_load(v) != want) {
        if (tu_now() - t0 > 30)
            fail_msg("waited 30 s for %ld (is %ld)", want, atomic_load(v));
        sched_yield();
    }
}

/* Kills while nthreads workers get and put; every cycle either reinit
 * (the count reached zero) or resurrect (the main thread held one across
 * the kill, so it did not). */
static void kill_cycles(unsigned int flags, unsigned int nthreads, unsigned int cycles)
{
    struct load *l = calloc(1, sizeof(*l));
    assert_non_null(l);
    struct obj *o = &l->o;
    atomic_store(&o->canary, ALIVE);
    assert_int_equal(pcpu_ref_init(&o->ref, obj_release, flags | PCPU_REF_ALLOW_REINIT), 0);
    l->nthreads = nthreads;
    cu_mover_start(&l->mover);
    pthread_t t[16];
    struct load_worker w[16];
    for (unsigned int i = 0; i < nthreads; i++) {
        w[i] = (struct load_worker){.l = l, .id = i};
        assert_int_equal(pthread_create(&t[i], NULL, load_worker_main, &w[i]), 0);
    }
    long releases = 0;
    for (unsigned int c = 0; c < cycles; c++) {
        /* let the workers run a little in the live state */
        for (int i = 0; i < 3; i++)
            sched_yield();
        bool resurrect = c % 3 == 2;
        if (resurrect)
            assert_true(pcpu_ref_tryget_live(&o->ref));
        pcpu_ref_kill_and_confirm(&o->ref, obj_confirm);
        assert_true(pcpu_ref_is_dying(&o->ref));
        if (resurrect) {
            atomic_fetch_add(&o->revivals, 1);
            pcpu_ref_resurrect(&o->ref);
            atomic_store(&o->confirmed, false);
            pcpu_ref_put(&o->ref);
            assert_int_equal(atomic_load(&o->releases), releases);
            continue;
        }
        /* the last holder releases; then nothing can get it any more */
        wait_until(&o->releases, ++releases);
        assert_true(pcpu_ref_is_zero(&o->ref));
        assert_false(pcpu_ref_tryget(&o->ref));
        atomic_store(&o->canary, ALIVE);
        atomic_store(&o->confirmed, false);
        atomic_fetch_add(&o->revivals, 1);
        pcpu_ref_reinit(&o->ref);
    }
    atomic_store(&l->stop, true);
    for (unsigned int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    unsigned long moves = cu_mover_stop(&l->mover);
    pcpu_ref_kill_and_confirm(&o->ref, obj_confirm);
    assert_int_equal(atomic_load(&o->releases), releases + 1);
    assert_int_equal(atomic_load(&o->confirms), cycles + 1);
    print_message("%u threads%s: %u kills, %ld releases, %lu get/put rounds, %lu migrations\n",
                  nthreads, flags & PCPU_REF_INIT_ATOMIC ? " (atomic mode)" : "", cycles + 1,
                  releases + 1, atomic_load(&l->ops), moves);
    if (atomic_load(&o->live_after_confirm))
        fail_msg("%ld tryget_live calls succeeded after confirm had run",
                 atomic_load(&o->live_after_confirm));
    assert_int_equal(atomic_load(&o->bad), 0);
    pcpu_ref_exit(&o->ref);
    free(l);
}

static void test_kill_under_load_releases_once_never_while_held(void **state)
{
    (void)state;
    static const unsigned int threads[] = {2, 4, 8, 16};
    for (unsigned int i = 0; i < 4; i++)
        kill_cycles(0, threads[i], OPS_SCALE(250));
}

static void test_kill_under_load_in_atomic_mode(void **state)
{
    (void)state;
    kill_cycles(PCPU_REF_INIT_ATOMIC, 4, OPS_SCALE(200));
}

/* ---- mode switches lose nothing ------------------------------------------------- */

struct switch_load {
    struct obj o;
    struct cu_mover mover;
    atomic_bool stop;
};

static void *switch_worker_main(void *arg)
{
    struct switch_load *s = arg;
    static atomic_uint next;
    unsigned int id = atomic_fetch_add(&next, 1);
    uint64_t seed = 5 + id;
    cu_mover_enrol(&s->mover, id);
    /* each worker holds one reference for the whole run, and takes and
     * drops others around it */
    pcpu_ref_get(&s->o.ref);
    while (!atomic_load_explicit(&s->stop, memory_order_relaxed)) {
        unsigned long k = 1 + tu_rand(&seed) % 5;
        pcpu_ref_get_many(&s->o.ref, k);
        if (atomic_load(&s->o.canary) != ALIVE)
            atomic_fetch_add(&s->o.bad, 1);
        for (unsigned long i = 0; i < k; i++)
            pcpu_ref_put(&s->o.ref);
    }
    pcpu_ref_put(&s->o.ref);
    cu_mover_leave(&s->mover, id);
    return NULL;
}

static void test_mode_switches_lose_no_reference(void **state)
{
    (void)state;
    struct switch_load *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    atomic_store(&s->o.canary, ALIVE);
    assert_int_equal(pcpu_ref_init(&s->o.ref, obj_release, 0), 0);
    cu_mover_start(&s->mover);
    enum { T = 4 };
    pthread_t t[T];
    for (int i = 0; i < T; i++)
        assert_int_equal(pthread_create(&t[i], NULL, switch_worker_main, s), 0);
    unsigned int n = OPS_SCALE(400);
    for (unsigned int i = 0; i < n; i++) {
        pcpu_ref_switch_to_atomic_sync(&s->o.ref);
        sched_yield();
        pcpu_ref_switch_to_percpu(&s->o.ref);
        sched_yield();
    }
    atomic_store(&s->stop, true);
    for (int i = 0; i < T; i++)
        pthread_join(t[i], NULL);
    cu_mover_stop(&s->mover);
    /* every worker's references are back: the kill's put is the last */
    assert_int_equal(atomic_load(&s->o.releases), 0);
    atomic_store(&s->o.confirmed, true);
    pcpu_ref_kill(&s->o.ref);
    assert_int_equal(atomic_load(&s->o.releases), 1);
    assert_int_equal(atomic_load(&s->o.bad), 0);
    pcpu_ref_exit(&s->o.ref);
    free(s);
}

/* ---- misuse ------------------------------------------------------------------------ */

static struct pcpu_ref *victim;
static char victim_name[32];

static void put_below_zero_atomic(void *arg)
{
    (void)arg;
    pcpu_ref_put(victim); /* the initial reference: count 0 */
    pcpu_ref_put(victim); /* below zero */
}

static void put_below_zero_percpu(void *arg)
{
    (void)arg;
    pcpu_ref_put(victim);
    pcpu_ref_put(victim);
    pcpu_ref_kill(victim); /* the switch finds the sum below zero */
}

static void test_put_below_zero_stops_naming_the_ref(void **state)
{
    (void)state;
    static struct pcpu_ref r;
    victim = &r;
    snprintf(victim_name, sizeof(victim_name), "%p", (void *)&r);
    const char *const need[] = {"below zero", victim_name, NULL};
    assert_int_equal(pcpu_ref_init(&r, NULL, PCPU_REF_INIT_ATOMIC), 0);
    assert_true(tu_dies_with(put_below_zero_atomic, NULL, need, NULL, 0));
    pcpu_ref_exit(&r);
    assert_int_equal(pcpu_ref_init(&r, NULL, 0), 0);
    assert_true(tu_dies_with(put_below_zero_percpu, NULL, need, NULL, 0));
    pcpu_ref_exit(&r);
}

static void kill_twice(void *arg)
{
    (void)arg;
    pcpu_ref_get(victim);
    pcpu_ref_kill(victim);
    pcpu_ref_kill(victim);
}

static void test_kill_twice_stops(void **state)
{
    (void)state;
    static struct pcpu_ref r;
    victim = &r;
    snprintf(victim_name, sizeof(victim_name), "%p", (void *)&r);
    const char *const need[] = {"dying", victim_name, NULL};
    assert_int_equal(pcpu_ref_init(&r, NULL, 0), 0);
    assert_true(tu_dies_with(kill_twice, NULL, need, NULL, 0));
    pcpu_ref_exit(&r);
}

/* ENOMEM: with the per-CPU memory used up, init fails cleanly. */
static void test_init_enomem(void **state)
{
    (void)state;
    struct cu_exhausted e = cu_exhaust();
    uint64_t before = tu_stats().nr_cur_alloc;
    struct pcpu_ref r, zero;
    memset(&r, 0, sizeof(r));
    memset(&zero, 0, sizeof(zero));
    errno = 0;
    assert_int_equal(pcpu_ref_init(&r, obj_release, 0), -1);
    assert_int_equal(errno, ENOMEM);
    assert_memory_equal(&r, &zero, sizeof(r));
    assert_int_equal(tu_stats().nr_cur_alloc, before);
    cu_unexhaust(&e);
}

int main(void)
{
    if (ops_cannot_run())
        return 0;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_kill_under_load_releases_once_never_while_held),
        cmocka_unit_test(test_kill_under_load_in_atomic_mode),
        cmocka_unit_test(test_mode_switches_lose_no_reference),
        cmocka_unit_test(test_put_below_zero_stops_naming_the_ref),
        cmocka_unit_test(test_kill_twice_stops),
        cmocka_unit_test(test_init_enomem),
    };
    return cmocka_run_group_tests(tests, ops_group_setup, ops_group_teardown);
}
