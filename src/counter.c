/* SPDX-License-Identifier: MIT */
/*
 * counter.c - per-CPU counters (the kernel's percpu_counter): the slow
 * paths of the add, sum, set, compare and limited_add.
 *
 * ---- the state -------------------------------------------------------------
 *
 * A counter is a shared int64_t count C and one int32_t delta L_u per unit;
 * its exact value is S = C + sum(L_u).  C changes only by atomic adds (so a
 * single load of it is a consistent value); the units change by this-CPU
 * operations.  Moving a delta into C (a fold: L_u -> 0, C += L_u) is done
 * under the counter's lock (a futex mutex), and so is everything that
 * reads C and the units together (sum, set, the exact check of
 * limited_add): such a reader never sees a delta in neither place nor in
 * both.  Adds of an amount outside the batch go straight to C with one
 * atomic add, without the lock: a single atomic is seen entirely or not
 * at all by the locked readers.
 *
 * ---- the add ----------------------------------------------------------------
 *
 * With rseq the add is one restartable sequence (percpu.h): load L_u, add
 * v, and store the result only if it stays strictly inside (-batch,
 * batch); otherwise leave without writing and come to
 * pcpu__counter_fold(), which under the lock exchanges the current unit's
 * delta for 0 and adds it and v to C.  Because an add that would reach the
 * batch writes nothing, |L_u| < batch holds for every unit at every
 * moment (for the largest batch used), whatever the migrations: that is
 * the error bound of read(), and it cannot be had with an add_return
 * followed by a fold (a thread that migrates between the two folds the
 * wrong unit and leaves the overfull one behind, forever if it is idle).
 * The unit the fold exchanges may be another than the one the sequence
 * looked at (migration): that is fine, the delta it takes is moved, not
 * lost.  Without rseq, the same with a compare-and-swap loop on the
 * current unit's delta.
 *
 * Signals: a handler's add that must fold while its thread is inside a
 * counter's lock (a TLS depth says so) must not wait for the lock; it
 * tries it once and otherwise adds v straight to C.  The calls that must
 * wait for the lock (sum, set, compare, limited_add) stop the process
 * there instead of deadlocking.
 *
 * ---- limited_add --------------------------------------------------------------
 *
 * The kernel's check ("C + batch * nr_cpus <= limit, then add locally")
 * reads C before the add: another CPU may fold meanwhile (C grows, its
 * delta restarts from 0 and may grow again), and the local add then lands
 * above the limit.  Here an increase through limited_add may be done
 * per-CPU only while a gate of the counter is open, and the gate keeps
 *
 *   (I_hi)  gate_hi open  =>  C + batch * nr_units <= limit_hi
 *
 * where limit_hi is the limit the gate was opened for (the last one
 * limited_add used).  Whenever C is about to grow past that (a fold of a
 * positive delta, an add under the lock), the lock holder first closes the
 * gate and calls membarrier(PRIVATE_EXPEDITED_RSEQ), which restarts every
 * sequence in flight: the fast path checks the gate inside its sequence,
 * so after the call none can commit on the strength of the open gate.  If
 * every increase goes through limited_add with one limit, each positive
 * delta is below the batch (the fast path keeps L_u + v < batch), so with
 * the gate open S < C + batch * nr_units <= limit at every moment; with
 * it closed, increases are made one at a time under the lock after
 * checking the exact sum S + v <= limit (meanwhile only decreases run
 * outside the lock, so the sum read unit by unit is at most S at the
 * start and at least S now: a failure means S + v was over the limit when
 * the call started, a success cannot overshoot).  The gate opens again
 * under the lock when C + 2 * batch * nr_units <= limit (twice, so that
 * it does not flap around the threshold, each close costing a
 * membarrier).  A new limit closes the gate first.  The lower limit has
 * its own gate, the mirror image.  Without rseq there is no per-CPU path
 * for limited_add: every call takes the lock and checks the exact sum.
 */
#include "clients.h"

/* The fields every add reads and the ones every fold writes never share a
 * cache line (see struct pcpu_counter). */
_Static_assert(offsetof(struct pcpu_counter, lock) >=
                   offsetof(struct pcpu_counter, flags) + sizeof(uint32_t) + 64,
               "a fold's writes would share a cache line with the adds' reads");
_Static_assert(offsetof(struct pcpu_counter, count) > offsetof(struct pcpu_counter, lock),
               "count is written by folds too: it belongs after the gap");
_Static_assert(sizeof(struct pcpu_counter) == 120, "percpu.h gives a counter's size");

#define GATE_HI 1u
#define GATE_LO 2u
#define GATE_BITS (GATE_HI | GATE_LO)

/* flags: the first counter of an init_many array (owns the allocation),
 * and the others. */
#define MANY_HEAD 1u
#define MANY_MEMBER 2u

/* How deep the calling thread is in counters' locks (taking or holding):
 * more than 0 on entry means a signal handler interrupted it there. */
static __thread unsigned int lock_depth __attribute__((tls_model("initial-exec")));

int32_t pcpu_counter_batch(void)
{
    uint64_t b = 2 * (uint64_t)pcpu_nr_cpus();
    if (b < 256)
        b = 256;
    if (b > (uint64_t)PCPU_COUNTER_MAX_BATCH)
        b = (uint64_t)PCPU_COUNTER_MAX_BATCH;
    return (int32_t)b;
}

/* ---- the lock ---------------------------------------------------------------- */

/* For calls that must wait for the lock. */
static void lock_wait(struct pcpu_counter *c, const char *fn)
{
    if (unlikely(lock_depth != 0))
        pcpu__die("percpu: %s(%p) called from a signal handler that interrupted its thread "
                  "inside a counter's lock (not async-signal-safe)",
                  fn, (void *)c);
    lock_depth = 1;
    atomic_signal_fence(memory_order_seq_cst);
    pcpu__mutex_lock(&c->lock);
}

/* For folds, which must not wait in a handler: false if the lock could
 * not be had. */
static bool lock_fold(struct pcpu_counter *c)
{
    if (unlikely(lock_depth != 0)) {
        if (!pcpu__mutex_trylock(&c->lock))
            return false;
        lock_depth++;
        return true;
    }
    lock_depth = 1;
    atomic_signal_fence(memory_order_seq_cst);
    pcpu__mutex_lock(&c->lock);
    return true;
}

static void unlock(struct pcpu_counter *c)
{
    pcpu__mutex_unlock(&c->lock);
    atomic_signal_fence(memory_order_seq_cst);
    lock_depth--;
}

/* ---- helpers under the lock ------------------------------------------------ */

/* batch * nr_units: what the deltas may add up to, at most. */
static int64_t margin_of(const struct pcpu_counter *c)
{
    return (int64_t)pcpu_nr_cpus() * c->batch;
}

/* Comparisons against limits are made in 128 bits: a limit may be any
 * int64_t, INT64_MAX included. */
typedef __int128 wide;

/* Close the gates in @bits that are open, so that no limited fast path can
 * commit relying on them any more (see the top). */
static void close_gates_held(struct pcpu_counter *c, uint32_t bits)
{
    if (!(bits & ~__atomic_load_n(&c->gate, __ATOMIC_RELAXED)))
        return;
    __atomic_fetch_or(&c->gate, bits, __ATOMIC_SEQ_CST);
    pcpu__clients_flush();
}

/* C += d, closing first the gate whose invariant the new C would break. */
static void count_add_held(struct pcpu_counter *c, int64_t d)
{
    if (d == 0)
        return;
    wide now = (wide)__atomic_load_n(&c->count, __ATOMIC_RELAXED) + d;
    uint32_t open = ~__atomic_load_n(&c->gate, __ATOMIC_RELAXED) & GATE_BITS;
    int64_t m = margin_of(c);
    uint32_t close = 0;
    if ((open & GATE_HI) && d > 0 && now > (wide)c->limit_hi - m)
        close |= GATE_HI;
    if ((open & GATE_LO) && d < 0 && now < (wide)c->limit_lo + m)
        close |= GATE_LO;
    close_gates_held(c, close);
    __atomic_fetch_add(&c->count, d, __ATOMIC_RELAXED);
}

/* C plus every unit's delta. */
static int64_t sum_held(struct pcpu_counter *c)
{
    /* Unsigned: a count at the edge of the range wraps, as the adds that
     * took it there did, instead of overflowing (undefined). */
    uint64_t s = (uint64_t)__atomic_load_n(&c->count, __ATOMIC_RELAXED);
    unsigned int n = pcpu_nr_cpus();
    for (unsigned int cpu = 0; cpu < n; cpu++)
        s += (uint64_t)(int64_t)__atomic_load_n(PCPU_PTR(c->counters, cpu), __ATOMIC_RELAXED);
    return (int64_t)s;
}

/* ---- the add ------------------------------------------------------------------- */

/* Fold the current unit's delta and v into C: what an add does when the
 * two reach the batch (also when v alone does, as the kernel's add does,
 * so that a batch of 1 keeps every delta at 0 and read() exact). */
static void fold_with(struct pcpu_counter *c, int64_t v)
{
    int saved = errno;
    if (!lock_fold(c)) {
        /* A handler while its thread holds a counter's lock: v was not
         * written anywhere, so one atomic add to C is the whole add. */
        __atomic_fetch_add(&c->count, v, __ATOMIC_RELAXED);
        errno = saved;
        return;
    }
    int32_t x = pcpu_this_xchg(c->counters, 0);
    count_add_held(c, (int64_t)((uint64_t)(int64_t)x + (uint64_t)v)); /* wraps, as C does */
    unlock(c);
    errno = saved;
}

void pcpu__counter_fold(struct pcpu_counter *c, int32_t v, int32_t batch)
{
    (void)batch;
    fold_with(c, v);
}

bool pcpu__counter_slow(struct pcpu_counter *c, int64_t v, int32_t batch)
{
    if (v <= -(int64_t)batch || v >= (int64_t)batch) {
        fold_with(c, v);
        return false;
    }
    int32_t *p = pcpu__clients_unit(c->counters);
    if (!p)
        return true; /* rseq is usable now: run the sequence */
    /* Atomic fallback: the sequence's rule with a compare-and-swap. */
    int32_t old = __atomic_load_n(p, __ATOMIC_RELAXED);
    for (;;) {
        int64_t nv = (int64_t)old + v;
        if (nv <= -(int64_t)batch || nv >= (int64_t)batch) {
            pcpu__counter_fold(c, (int32_t)v, batch);
            return false;
        }
        if (__atomic_compare_exchange_n(p, &old, (int32_t)nv, true, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
            return false;
    }
}

void pcpu__counter_note_batch(struct pcpu_counter *c, int32_t batch)
{
    if (batch < 1)
        batch = 1;
    if (batch > PCPU_COUNTER_MAX_BATCH)
        batch = PCPU_COUNTER_MAX_BATCH;
    int32_t cur = __atomic_load_n(&c->max_batch, __ATOMIC_RELAXED);
    while (cur < batch &&
           !__atomic_compare_exchange_n(&c->max_batch, &cur, batch, true, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED))
        ;
}

/* ---- set-up ------------------------------------------------------------------ */

int pcpu_counter_init_many(struct pcpu_counter *c, int64_t value, unsigned int n)
{
    if (n == 0) {
        errno = EINVAL;
        return -1;
    }
    /* 0: the allocator cannot be set up, and says why in errno (ENOMEM
     * when the OS refuses the first chunk). */
    size_t max = pcpu_max_alloc_size();
    if (max == 0)
        return -1;
    if (n > max / sizeof(int32_t)) {
        errno = EINVAL;
        return -1;
    }
    int32_t *base = pcpu_alloc((size_t)n * sizeof(int32_t), 0);
    if (!base)
        return -1;
    int32_t batch = pcpu_counter_batch();
    for (unsigned int i = 0; i < n; i++) {
        memset(&c[i], 0, sizeof(c[i]));
        c[i].count = value;
        c[i].counters = base + i;
        c[i].batch = batch;
        c[i].max_batch = batch;
        /* Closed until a limited_add opens them for its limit. */
        c[i].gate = GATE_BITS;
        c[i].flags = n == 1 ? 0 : i == 0 ? MANY_HEAD : MANY_MEMBER;
    }
    return 0;
}

int pcpu_counter_init(struct pcpu_counter *c, int64_t value)
{
    return pcpu_counter_init_many(c, value, 1);
}

void pcpu_counter_destroy(struct pcpu_counter *c)
{
    if (!c->counters)
        return;
    if (c->flags & (MANY_HEAD | MANY_MEMBER))
        pcpu__die("percpu: pcpu_counter_destroy(%p): the counter is one of an array set up by "
                  "pcpu_counter_init_many(); destroy the array with pcpu_counter_destroy_many()",
                  (void *)c);
    pcpu_free(c->counters);
    c->counters = NULL;
}

void pcpu_counter_destroy_many(struct pcpu_counter *c, unsigned int n)
{
    for (unsigned int i = 0; i < n; i++) {
        if (c[i].counters && !(c[i].flags & MANY_MEMBER))
            pcpu_free(c[i].counters);
        c[i].counters = NULL;
    }
}

/* ---- readers ------------------------------------------------------------------ */

int64_t pcpu_counter_sum(struct pcpu_counter *c)
{
    int saved = errno;
    lock_wait(c, "pcpu_counter_sum");
    int64_t s = sum_held(c);
    unlock(c);
    errno = saved;
    return s;
}

int64_t pcpu_counter_sum_positive(struct pcpu_counter *c)
{
    int64_t s = pcpu_counter_sum(c);
    return s > 0 ? s : 0;
}

void pcpu_counter_set(struct pcpu_counter *c, int64_t value)
{
    int saved = errno;
    lock_wait(c, "pcpu_counter_set");
    count_add_held(c, (int64_t)((uint64_t)value - (uint64_t)sum_held(c)));
    unlock(c);
    errno = saved;
}

int pcpu_counter_compare(struct pcpu_counter *c, int64_t rhs)
{
    int64_t r = pcpu_counter_read(c);
    uint64_t bound = (uint64_t)pcpu_nr_cpus() *
                     (uint64_t)__atomic_load_n(&c->max_batch, __ATOMIC_RELAXED);
    /* |read - sum| < bound (the top of percpu.h's section). */
    if (r > rhs && (uint64_t)r - (uint64_t)rhs >= bound)
        return 1;
    if (r < rhs && (uint64_t)rhs - (uint64_t)r >= bound)
        return -1;
    int64_t s = pcpu_counter_sum(c);
    return s > rhs ? 1 : s < rhs ? -1 : 0;
}

/* ---- limited_add ------------------------------------------------------------------ */

/*
 * The fast path: one sequence that checks the gate @bit, then adds v to the
 * unit's delta if that stays inside the batch.  true: added.
 */
static bool limited_fast(struct pcpu_counter *c, int32_t v, int32_t batch, uint32_t bit)
{
#if PCPU__RSEQ_ASM
    const void *ck = c->counters;
    uint32_t bias = (uint32_t)batch - 1, range = 2 * (uint32_t)batch - 1;
    for (;;) {
        uintptr_t tmp;
        uint32_t nv, t2;
        PCPU__CLIENT_SEQ_ANY("testl %[bit], %[gate]\n\t"
                             "jnz %l[out]\n\t" PCPU__COUNTER_ADD_BODY("out"),
                             (PCPU__COUNTER_ADD_OUTS(ck)),
                             (PCPU__CLIENT_INPUTS(ck), [gate] "m"(c->gate), [bit] "ir"(bit),
                              [v] "r"(v), [bias] "r"(bias), [range] "ir"(range)),
                             ("cc"), slow, out);
        return true;
    out:
        PCPU__RSEQ_LEFT();
        return false;
    slow:
        if (pcpu__clients_unit(ck) != NULL)
            return false; /* atomic fallback: the locked path */
    }
#else
    (void)c;
    (void)v;
    (void)batch;
    (void)bit;
    return false;
#endif
}

static bool limited_slow(struct pcpu_counter *c, int64_t limit, int64_t v)
{
    bool up = v > 0, ok;
    uint32_t bit = up ? GATE_HI : GATE_LO;
    int64_t *lim = up ? &c->limit_hi : &c->limit_lo;
    int64_t m = margin_of(c);
    bool rseq = pcpu__rseq_runs_sequences();

    lock_wait(c, "pcpu_counter_limited_add");
    if (*lim != limit) {
        /* A new limit: the open gate promised nothing about it. */
        close_gates_held(c, bit);
        __atomic_store_n(lim, limit, __ATOMIC_RELAXED);
    }
    if (rseq && !(__atomic_load_n(&c->gate, __ATOMIC_RELAXED) & bit)) {
        /* Gate open, far from the limit: fold this unit's delta with v if
         * the count stays far enough. */
        int64_t x = pcpu_this_xchg(c->counters, 0);
        wide nc = (wide)__atomic_load_n(&c->count, __ATOMIC_RELAXED) + x + v;
        if (up ? nc <= (wide)limit - m : nc >= (wide)limit + m) {
            count_add_held(c, x + v);
            ok = true;
            goto out;
        }
        count_add_held(c, x);
        close_gates_held(c, bit);
    }
    /* Gate closed (or no rseq): no increase (decrease) runs outside the
     * lock; check the exact value. */
    wide s = sum_held(c);
    ok = up ? s + v <= limit : s + v >= limit;
    if (ok)
        count_add_held(c, v);
    if (rseq) {
        wide cnt = __atomic_load_n(&c->count, __ATOMIC_RELAXED);
        if (up ? cnt <= (wide)limit - 2 * m : cnt >= (wide)limit + 2 * m)
            __atomic_fetch_and(&c->gate, ~bit, __ATOMIC_RELEASE);
    }
out:
    unlock(c);
    return ok;
}

bool pcpu_counter_limited_add(struct pcpu_counter *c, int64_t limit, int64_t v)
{
    if (v == 0)
        return true;
    int saved = errno;
    bool up = v > 0;
    int32_t batch = (int32_t)c->batch;
    if (v > -(int64_t)batch && v < (int64_t)batch &&
        __atomic_load_n(up ? &c->limit_hi : &c->limit_lo, __ATOMIC_RELAXED) == limit &&
        limited_fast(c, (int32_t)v, batch, up ? GATE_HI : GATE_LO))
        return true;
    bool ok = limited_slow(c, limit, v);
    errno = saved;
    return ok;
}
