/* SPDX-License-Identifier: MIT */
/* test_plugin_copy.c - a plugin with its own copy of the library (libpercpu.a, symbols hidden) is loaded, used from threads and unloaded while the process lives on: nothing of the copy may run afterwards. */
/*
 * Plugin authors link their dependencies in (-Wl,--exclude-libs,ALL), so
 * one process holds several copies of the library: this program's own and
 * the plugin's.  When the plugin is dlclose()d, its copy's code is gone,
 * and every hook it left behind would kill the process the next time it
 * fires: the thread-cache key's destructor when a thread that allocated
 * through it exits, the background reclaim worker when its timed wait
 * ends, a fork handler at the next fork().  Each round here loads the
 * plugin, runs its workload on the main thread, on threads that exit
 * before the unload and on threads that exit after it, unloads it, waits
 * past the worker's wake-up, forks, and checks that this program's own
 * copy still works.  In a child, so that a crash is a failed test with a
 * message; three rounds, so that loading a fresh copy again works too.
 */
#include "testutil.h"

#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libs/pcpu_plugin_copy.h"

#define ROUNDS 3
#define WORK 40

struct plugin {
    void *h;
    plugin_copy_setup_fn setup;
    plugin_copy_work_fn work;
    plugin_copy_totals_fn totals;
};

/* Threads parked in this program's code across the unload. */
static pthread_mutex_t park_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t park_cond = PTHREAD_COND_INITIALIZER;
static int unloaded;

struct worker {
    struct plugin *p;
    bool park;
    long made;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    /* Released: the main thread polls it for the parked ones. */
    __atomic_store_n(&w->made, w->p->work(WORK), __ATOMIC_RELEASE);
    if (w->park) {
        pthread_mutex_lock(&park_lock);
        while (!unloaded)
            pthread_cond_wait(&park_cond, &park_lock);
        pthread_mutex_unlock(&park_lock);
    }
    /* Exits now: the copy's thread-exit hook must not run. */
    return NULL;
}

/* Threads of this process (or -1 without /proc). */
static int nr_tasks(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "round %d: ", round);                               \
            fprintf(stderr, __VA_ARGS__);                                       \
            fprintf(stderr, "\n");                                              \
            _exit(1);                                                           \
        }                                                                       \
    } while (0)

static void one_round(int round, long *own)
{
    int atomic = getenv("PCPU_TEST_ATOMIC") != NULL;
    int tasks_before = nr_tasks();
    struct plugin p;
    p.h = dlopen(PCPU_PLUGIN_COPY_PATH, RTLD_NOW | RTLD_LOCAL);
    CHECK(p.h, "dlopen: %s", dlerror());
    p.setup = (plugin_copy_setup_fn)dlsym(p.h, "plugin_copy_setup");
    p.work = (plugin_copy_work_fn)dlsym(p.h, "plugin_copy_work");
    p.totals = (plugin_copy_totals_fn)dlsym(p.h, "plugin_copy_totals");
    CHECK(p.setup && p.work && p.totals, "the plugin's entry points are missing");
    /* Its copy is its own: the library's symbols stay hidden in it. */
    CHECK(dlsym(p.h, "pcpu_alloc") == NULL, "the plugin exports pcpu_alloc");
    CHECK(p.setup(atomic) == 0, "the plugin's set-up failed");

    struct worker w[4];
    pthread_t t[4];
    unloaded = 0;
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.p = &p, .park = i >= 2};
        CHECK(pthread_create(&t[i], NULL, worker_main, &w[i]) == 0, "pthread_create");
    }
    long made = p.work(WORK);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    /* Wait for the parked ones to have done their work. */
    for (int i = 2; i < 4; i++)
        while (!__atomic_load_n(&w[i].made, __ATOMIC_ACQUIRE))
            usleep(1000);
    for (int i = 0; i < 4; i++) {
        CHECK(w[i].made == WORK, "thread %d made %ld", i, w[i].made);
        made += w[i].made;
    }
    struct plugin_copy_totals tot;
    p.totals(&tot);
    CHECK(tot.hits == made && tot.calls == made && tot.counter == made,
          "the copy counted %ld/%ld/%lld, expected %ld", tot.hits, tot.calls, tot.counter, made);
    int tasks_with = nr_tasks();

    CHECK(dlclose(p.h) == 0, "dlclose: %s", dlerror());
    CHECK(dlopen(PCPU_PLUGIN_COPY_PATH, RTLD_NOW | RTLD_NOLOAD) == NULL,
          "the plugin is still loaded after dlclose");
    /* No thread of the copy is left (its reclaim worker, if it ran):
     * this program's threads only, the two parked ones among them. */
    int tasks_after = nr_tasks();
    if (tasks_before >= 0)
        CHECK(tasks_after == tasks_before + 2, "%d threads before, %d with the plugin, %d after",
              tasks_before, tasks_with, tasks_after);

    pthread_mutex_lock(&park_lock);
    unloaded = 1;
    pthread_cond_broadcast(&park_cond);
    pthread_mutex_unlock(&park_lock);
    for (int i = 2; i < 4; i++)
        pthread_join(t[i], NULL);
    /* Past the worker's timed wait (100 ms). */
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0)
        _exit(0);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "the child of a fork after the unload did not exit cleanly (status 0x%x)", status);

    /* This program's own copy is untouched. */
    for (int i = 0; i < 1000; i++)
        pcpu_this_inc(own);
    CHECK(pcpu_sum(own) == 1000L * (round + 1), "own copy: %ld", pcpu_sum(own));
}

#ifdef TU_TSAN
static void *noop_thread(void *arg)
{
    return arg;
}
#endif

static void test_plugin_copy_unloaded_leaves_nothing_running(void **state)
{
    (void)state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* A crash is the failure looked for: reported as the signal, not
         * through the test framework's handlers. */
        static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
        for (unsigned int i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
            signal(sigs[i], SIG_DFL);
        long *own = PCPU_NEW(long);
        if (!own)
            _exit(2);
#ifdef TU_TSAN
        /* TSan starts its background thread at the first pthread_create()
         * of a forked child: before the count of this program's threads. */
        pthread_t tsan_first;
        if (pthread_create(&tsan_first, NULL, noop_thread, NULL) != 0 ||
            pthread_join(tsan_first, NULL) != 0)
            _exit(3);
#endif
        for (int round = 0; round < ROUNDS; round++)
            one_round(round, own);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (WIFSIGNALED(status))
        fail_msg("the process died from signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plugin_copy_unloaded_leaves_nothing_running),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
