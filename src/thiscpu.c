/* SPDX-License-Identifier: MIT */
/*
 * thiscpu.c - the slow paths of the this-CPU operations and pcpu_sum().
 *
 * The inline code of percpu.h comes here when its limits or the
 * sequences' table say no: the allocator is not in use yet (its first use
 * is right here: that is how statics stop being movable), the thread's
 * rseq area is not registered yet (with a C library that does not), or the
 * process runs on atomics.  Each path hands back the cookie to use:
 * a static variable's cookie computed before this call initialised the
 * allocator again (after pcpu_exit()) still points at its old placement,
 * and is moved to the new one.  errno is preserved: these run inside
 * arbitrary user code.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

#include "init.h"
#include "rseq.h"
#include "statics.h"

/* Make sure the allocator is set up and marked used; returns the cookie
 * the operation must use. */
static const void *need_init(const void *cookie)
{
    if (likely(pcpu__rseq_is_set_up()))
        return cookie;
    if (pcpu__ensure_init() != 0)
        pcpu__die("percpu: this-CPU operation, but the allocator cannot be initialised: %s",
                  strerror(errno));
    return pcpu__statics_translate(cookie);
}

struct pcpu__unit_at pcpu__thiscpu_slow(const void *cookie)
{
    int saved = errno;
    /* The sequence that sent the thread here armed rseq_cs and did not
     * reach the disarm after its commit. */
    pcpu__rseq_disarm();
    struct pcpu__unit_at r = pcpu__rseq_slow(need_init(cookie));
    errno = saved;
    return r;
}

void *pcpu__thiscpu_ptr_slow(const void *cookie)
{
    int saved = errno;
    cookie = need_init(cookie);
    void *p = (char *)(uintptr_t)cookie + pcpu__rseq_unit_off();
    errno = saved;
    return p;
}

const void *pcpu__sum_slow(const void *cookie)
{
    int saved = errno;
    cookie = need_init(cookie);
    errno = saved;
    return cookie;
}

int pcpu_this_cpu(void)
{
    if (pcpu__ensure_init() != 0)
        return -1;
    int saved = errno;
    unsigned int cpu = pcpu__rseq_unit_index();
    errno = saved;
    return (int)cpu;
}
