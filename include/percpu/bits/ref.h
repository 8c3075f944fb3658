/* SPDX-License-Identifier: MIT */
/*
 * percpu/bits/ref.h - the inline gets and puts of <percpu/ref.h>; slow paths
 * in src/ref.c.  Machinery, not API.
 */
#ifndef PERCPU_BITS_REF_H
#define PERCPU_BITS_REF_H
#ifndef PERCPU_H
#error "<percpu/bits/ref.h> is not for direct inclusion: #include <percpu.h>"
#endif

#include "clients.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Where ThreadSanitizer is told about the puts' order (see
 * pcpu_ref_put_many): a field no atomic operation touches.  At the ref's
 * own address (the mode word) the switch's release store would replace
 * what the puts announced there, and a release would seem to race with
 * them.
 */
#define PCPU__REF_TSAN_SYNC(ref) ((void *)&(ref)->release)

/* Slow paths (src/ref.c): the atomic count. */
PCPU__PUBLIC void pcpu__ref_get_slow(struct pcpu_ref *ref, unsigned long n);
PCPU__PUBLIC void pcpu__ref_put_slow(struct pcpu_ref *ref, unsigned long n);
PCPU__PUBLIC bool pcpu__ref_tryget_slow(struct pcpu_ref *ref, bool live);


/* pcpu_ref_get_many() */
static PCPU__INLINE void pcpu_ref_get_many(struct pcpu_ref *ref, unsigned long n)
{
    if (PCPU__LIKELY(pcpu__gated_add(ref->pcpu, &ref->mode, n)))
        return;
    pcpu__ref_get_slow(ref, n);
}

/* pcpu_ref_get() */
static PCPU__INLINE void pcpu_ref_get(struct pcpu_ref *ref)
{
    pcpu_ref_get_many(ref, 1);
}

/* pcpu_ref_put_many() */
static PCPU__INLINE void pcpu_ref_put_many(struct pcpu_ref *ref, unsigned long n)
{
    /* ThreadSanitizer cannot see the sequences or membarrier: the put
     * announces itself after its last plain read of @ref, and the switch
     * to atomic mode (ref.c) takes that in, so a release that frees the
     * memory @ref lives in is ordered after this. */
    unsigned long *units = ref->pcpu;
    PCPU__TSAN_RELEASE(PCPU__REF_TSAN_SYNC(ref));
    if (PCPU__LIKELY(pcpu__gated_add(units, &ref->mode, (unsigned long)0 - n)))
        return;
    pcpu__ref_put_slow(ref, n);
}

/* pcpu_ref_put() */
static PCPU__INLINE void pcpu_ref_put(struct pcpu_ref *ref)
{
    pcpu_ref_put_many(ref, 1);
}

/* pcpu_ref_tryget() */
static PCPU__INLINE bool pcpu_ref_tryget(struct pcpu_ref *ref)
{
    if (PCPU__LIKELY(pcpu__gated_add(ref->pcpu, &ref->mode, 1)))
        return true;
    return pcpu__ref_tryget_slow(ref, false);
}

/* pcpu_ref_tryget_live() */
static PCPU__INLINE bool pcpu_ref_tryget_live(struct pcpu_ref *ref)
{
    if (PCPU__LIKELY(pcpu__gated_add(ref->pcpu, &ref->mode, 1)))
        return true;
    return pcpu__ref_tryget_slow(ref, true);
}

#ifdef __cplusplus
}
#endif

#endif /* PERCPU_BITS_REF_H */
