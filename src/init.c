/* SPDX-License-Identifier: MIT */
/*
 * init.c - the allocator's life: configuration, set-up, teardown, fork,
 * and the registration of modules (the program and its shared libraries).
 *
 * States.  OFF until something needs per-CPU memory.  The first module
 * with PCPU_DEFINE variables to register (a constructor, before main)
 * sets the allocator up for statics only: AUTO.  Everything that can
 * hand out, read or write per-CPU memory other than through pcpu_ptr()
 * (an allocation, a this-CPU operation -- their inline paths stay closed
 * in AUTO so that they come through here -- pcpu_sum(), introspection)
 * makes it USED, and from then on nothing moves.  pcpu_init() may still
 * lay everything out again with the program's configuration while the
 * state is AUTO and no unit differs from the templates; otherwise EBUSY.
 *
 * Set-up builds the layout (topology.c), the pool's first chunk, the
 * this-CPU tables (rseq.c) and places the statics; teardown undoes it in
 * the opposite order, and pcpu_exit() first checks everything in robust
 * mode (validate.c).  A fork() holds the allocator lock (and rseq.c's)
 * across it, so the child starts from consistent state and gives back the
 * thread caches of the threads that did not follow it.
 */
#include "init.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "os.h"
#include "pool.h"
#include "reclaim.h"
#include "rseq.h"
#include "statics.h"
#include "tcache.h"
#include "topology.h"
#include "units.h"
#include "usage.h"
#include "validate.h"

_Atomic int pcpu__state;
struct pcpu_settings pcpu__settings;
static struct pcpu_config config;    /* of the current initialisation */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static int parse_env_config(struct pcpu_config *cfg)
{
    const char *b = getenv("PERCPU_BACKEND");
    if (b && *b) {
        if (!strcmp(b, "vm"))
            cfg->backend = PCPU_BACKEND_VM;
        else if (!strcmp(b, "km"))
            cfg->backend = PCPU_BACKEND_KM;
        else {
            pcpu__warn("PERCPU_BACKEND=%s: expected vm or km", b);
            errno = EINVAL;
            return -1;
        }
    }
    const char *x = getenv("PERCPU_INDEX");
    if (x && *x) {
        if (!strcmp(x, "cpu"))
            cfg->index = PCPU_INDEX_CPU;
        else if (!strcmp(x, "cid"))
            cfg->index = PCPU_INDEX_CID;
        else {
            pcpu__warn("PERCPU_INDEX=%s: expected cpu or cid", x);
            errno = EINVAL;
            return -1;
        }
    }
    return 0;
}

/* Release everything (lock held).  keep_range: pcpu_exit(), where the
 * first chunk's addresses stay reserved so that cookies of static
 * variables computed from their old placement fault or get translated,
 * never land in memory that belongs to someone else (see statics.c). */
static void teardown_locked(bool keep_range)
{
    pcpu__tcache_drop_all_locked();
    pcpu__usage_reset_locked();
    pcpu__rseq_stop();
    char *old_first = NULL;
    size_t old_size = 0;
    pcpu__pool_exit_locked(keep_range, &old_first, &old_size);
    pcpu__statics_reset_locked(old_first, old_size);
    pcpu__layout_clear();
    memset(&config, 0, sizeof(config));
    memset(&pcpu__settings, 0, sizeof(pcpu__settings));
    atomic_store(&pcpu__state, PCPU_STATE_OFF);
}

/* fork(): both locks are held across it, so the child starts with
 * consistent state and the forking thread (the only one left) owns them. */
static void atfork_prepare(void)
{
    pcpu__pool_lock();
    pcpu__rseq_fork_prepare();
}

static void atfork_parent(void)
{
    pcpu__rseq_fork_parent();
    pcpu__pool_unlock();
}

static void atfork_child(void)
{
    /* Only this thread exists in the child: other threads' caches will
     * never be used or flushed by them, and the worker is gone.  The
     * pagemap descriptor still reads the parent's page tables, where the
     * child's own writes do not show: it must not decide what to zero. */
    pcpu__os_fork_child();
    pcpu__rseq_fork_child();
    pcpu__reclaim_forget();
    pcpu__tcache_flush_others_locked();
    pcpu__pool_fork_child();
}

static void register_atfork(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* Initialise with the lock held.  cfg NULL: defaults and environment. */
static int init_locked(const struct pcpu_config *user_cfg, enum pcpu_state state)
{
    struct pcpu_config cfg = {0};
    if (user_cfg) {
        cfg = *user_cfg;
    } else if (parse_env_config(&cfg) != 0) {
        return -1;
    }
    if ((unsigned int)cfg.backend > PCPU_BACKEND_KM || (unsigned int)cfg.index > PCPU_INDEX_CID) {
        pcpu__warn("unknown backend (%d) or index mode (%d)", (int)cfg.backend, (int)cfg.index);
        errno = EINVAL;
        return -1;
    }
    if (cfg.flags & ~(PCPU_F_DEBUG | PCPU_F_NO_RECLAIM | PCPU_F_NO_CACHE | PCPU_F_REPORT_LEAKS)) {
        pcpu__warn("unknown flags 0x%x", cfg.flags);
        errno = EINVAL;
        return -1;
    }
    /* Robust mode can be asked for from outside any program. */
    const char *d = getenv("PERCPU_DEBUG");
    if (d && *d && strcmp(d, "0") != 0)
        cfg.flags |= PCPU_F_DEBUG;
    const char *lk = getenv("PERCPU_LEAKS");
    if (lk && *lk && strcmp(lk, "0") != 0)
        cfg.flags |= PCPU_F_REPORT_LEAKS;
    pthread_once(&atfork_once, register_atfork);
    pcpu__os_init();

    /* Statics only: leave room for the libraries that load after this
     * one at start-up (nothing may move once placed). */
    size_t static_room = pcpu__statics_size_locked();
    if (state == PCPU_STATE_AUTO)
        static_room += PCPU_STATIC_SLACK;
    struct pcpu_alloc_info *ai;
    if (pcpu__build_alloc_info(&cfg, static_room, &ai) != 0)
        return -1;
    const struct pcpu_backend_ops *ops =
        cfg.backend == PCPU_BACKEND_KM ? &pcpu__backend_km : &pcpu__backend_vm;
    if (ops->verify_alloc_info(ai) != 0) {
        pcpu__free_alloc_info(ai);
        errno = EINVAL;
        return -1;
    }
    config = cfg;
    config.cpu_node = NULL; /* the caller's array need not outlive us */
    pcpu__layout_set(ai);
    pcpu__units_init(cfg.flags & PCPU_F_DEBUG);
    if (pcpu__pool_init_locked(ops, cfg.max_memory) != 0) {
        int err = errno ? errno : ENOMEM;
        teardown_locked(false);
        errno = err;
        return -1;
    }
    pcpu__settings.tcache = !(cfg.flags & PCPU_F_NO_CACHE);
    pcpu__settings.robust = (cfg.flags & PCPU_F_DEBUG) != 0;
    pcpu__settings.backend = cfg.backend;
    pcpu__settings.fast_alloc = pcpu__settings.tcache && !pcpu__units_hooked;
    pcpu__settings.free_batched = pcpu__units_many();
    pcpu__reclaim_enable(!(cfg.flags & PCPU_F_NO_RECLAIM));
    pcpu__rseq_setup(ai, cfg.index);
    pcpu__statics_place_locked(pcpu__pool_anchor.first->base, ai->static_size);
    atomic_store_explicit(&pcpu__state, state, memory_order_release);
    if (state == PCPU_STATE_USED)
        pcpu__rseq_start();
    return 0;
}

int pcpu__ensure_init_slow(void)
{
    int ret = 0;
    pcpu__pool_lock();
    int st = atomic_load(&pcpu__state);
    if (st == PCPU_STATE_OFF) {
        ret = init_locked(NULL, PCPU_STATE_USED);
    } else if (st == PCPU_STATE_AUTO) {
        atomic_store_explicit(&pcpu__state, PCPU_STATE_USED, memory_order_release);
        pcpu__rseq_start();
    }
    pcpu__pool_unlock();
    return ret;
}

static int init_impl(const struct pcpu_config *cfg)
{
    pcpu__pool_lock();
    int st = atomic_load(&pcpu__state);
    /* Only registered statics, untouched: they may still be laid out
     * again with this configuration.  Anything else that used them makes
     * this too late, as any other use does. */
    if (st == PCPU_STATE_USED || (st == PCPU_STATE_AUTO && !pcpu__statics_pristine_locked())) {
        pcpu__pool_unlock();
        errno = EBUSY;
        return -1;
    }
    if (st == PCPU_STATE_AUTO)
        teardown_locked(false);
    int ret = init_locked(cfg, PCPU_STATE_USED);
    if (ret != 0 && st == PCPU_STATE_AUTO) {
        /* Keep the statics usable with the defaults. */
        int err = errno;
        (void)init_locked(NULL, PCPU_STATE_AUTO);
        errno = err;
    }
    pcpu__pool_unlock();
    return ret;
}

static void (*exit_hook)(void);

void pcpu__on_exit(void (*fn)(void))
{
    __atomic_store_n(&exit_hook, fn, __ATOMIC_RELEASE);
}

static void exit_impl(void)
{
    void (*hook)(void) = __atomic_load_n(&exit_hook, __ATOMIC_ACQUIRE);
    if (hook)
        hook();
    pcpu__reclaim_stop();
    pcpu__pool_lock();
    if (atomic_load(&pcpu__state) != PCPU_STATE_OFF) {
        pcpu__validate_at_exit_locked(pcpu__settings.robust,
                                      (config.flags & PCPU_F_REPORT_LEAKS) != 0);
        teardown_locked(true);
    }
    pcpu__pool_unlock();
}

int pcpu_init(const struct pcpu_config *cfg)
{
    pcpu__enter("pcpu_init");
    int r = init_impl(cfg);
    pcpu__leave();
    return r;
}

void pcpu_exit(void)
{
    pcpu__enter("pcpu_exit");
    exit_impl();
    pcpu__leave();
}

unsigned int pcpu_nr_cpus(void)
{
    if (pcpu__ensure_init() != 0)
        return 0;
    return pcpu__nr_units;
}

size_t pcpu_max_alloc_size(void)
{
    if (pcpu__ensure_init() != 0)
        return 0;
    return pcpu__layout.unit_size;
}

/*
 * This copy of the library is being unloaded: dlclose() of a plugin that
 * was linked with libpercpu.a, or of the last user of libpercpu.so (or the
 * process exits).  Nothing of it may run afterwards: no background worker,
 * no thread-exit hook.  (The fork handlers go with the object: glibc drops
 * the pthread_atfork() handlers of an object it unloads.)  The memory
 * stays mapped: other threads may still hold cookies at process exit, and
 * a plugin that wants its copy's memory back calls pcpu_exit() first.
 * Priority 101: after the destructors that unregister the object's own
 * static variables, which may kick the worker.
 */
__attribute__((destructor(101))) static void library_unload(void)
{
    int saved = errno;
    pcpu__reclaim_unload();
    pcpu__tcache_unload();
    errno = saved;
}

/* ---- modules ------------------------------------------------------------- */

void pcpu__module_register(struct pcpu__module *mod)
{
    if (!mod || mod->stop <= mod->start)
        return;
    pcpu__pool_lock();
    if (pcpu__statics_add_locked(mod)) {
        switch (atomic_load(&pcpu__state)) {
        case PCPU_STATE_OFF:
            /* The first chunk comes to life with this section in it. */
            if (init_locked(NULL, PCPU_STATE_AUTO) != 0)
                pcpu__warn("cannot set up per-CPU memory for static variables: %s",
                           strerror(errno));
            break;
        case PCPU_STATE_AUTO:
            pcpu__statics_place_one_locked(mod, true);
            break;
        default:
            pcpu__statics_place_one_locked(mod, false);
            break;
        }
    }
    pcpu__pool_unlock();
}

void pcpu__module_unregister(struct pcpu__module *mod)
{
    if (!mod || mod->stop <= mod->start)
        return;
    pcpu__pool_lock();
    if (pcpu__statics_remove_locked(mod))
        pcpu__reclaim_kick_locked();
    pcpu__pool_unlock();
}
