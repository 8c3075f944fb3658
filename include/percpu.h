/* SPDX-License-Identifier: MIT */
/*
 * percpu.h - per-CPU memory for Linux programs: the one header to include.
 *
 * A per-CPU allocation ("cookie") names one object that exists once per CPU
 * unit, at the same offset in every unit, so one cookie plus a per-CPU
 * offset gives any CPU's copy:
 *
 *      cookie ---------+
 *                      |   chunk: [guard][unit 0][unit 1] ... [unit N-1]
 *                      v           ^       ^                   ^
 *      pcpu_ptr(c, cpu) = c + offset[cpu]            (one load, one add)
 *
 * Memory is zero in every unit when handed out; pages become resident only
 * in the units that are written.  The this-CPU operations update the
 * calling thread's current unit with restartable sequences (rseq), or
 * atomics where rseq cannot be used.  How it works: docs/design.md.
 *
 * Errors: NULL or -1 with errno.  Misuse that cannot be answered (double
 * free, foreign pointer) stops the process with a one-line message naming
 * the pointer.  Every function may be called from any thread unless its
 * comment says otherwise.
 *
 * Async-signal safety: the this-CPU operations, pcpu_ptr(), pcpu_this_ptr(),
 * pcpu_sum(), pcpu_nr_cpus(), pcpu_this_cpu(), the per-CPU list operations
 * and the counter, reference and reader fast paths may be called from a
 * signal handler once the interrupted thread has made one this-CPU
 * operation.  Nothing else is.  A handler that calls a function marked
 * "not async-signal-safe" while its thread was inside one of them stops
 * the process with a one-line message naming both calls (never a hang,
 * never one object handed out twice).
 *
 * Contents (each header documents its functions; "man FUNCTION" too):
 *
 *   <percpu/version.h>  the library's version at run time
 *       PCPU_VERSION  pcpu_version  pcpu_version_string
 *   <percpu/alloc.h>    pointers, allocation, set-up
 *       pcpu_ptr  PCPU_PTR  pcpu_nr_cpus  pcpu_this_cpu  pcpu_for_each_cpu
 *       pcpu_alloc  pcpu_alloc_reserved  pcpu_free  pcpu_max_alloc_size
 *       PCPU_NEW  struct pcpu_config  pcpu_init  pcpu_exit  pcpu_reclaim
 *   <percpu/stats.h>    introspection
 *       pcpu_stats_get  pcpu_stats_print  pcpu_chunk_map_print
 *       pcpu_chunk_info  pcpu_is_percpu_address  pcpu_addr_info
 *       pcpu_validate  pcpu_fault_inject
 *   <percpu/statics.h>  static per-CPU variables
 *       PCPU_DEFINE  PCPU_DECLARE  PCPU_VAR
 *   <percpu/ops.h>      this-CPU operations
 *       pcpu_this_ptr  PCPU_THIS_PTR  pcpu_this_add  pcpu_this_sub
 *       pcpu_this_inc  pcpu_this_dec  pcpu_this_read  pcpu_this_write
 *       pcpu_this_xchg  pcpu_this_and  pcpu_this_or  pcpu_this_cmpxchg
 *       pcpu_this_try_cmpxchg  pcpu_this_add_return  pcpu_this_sub_return
 *       pcpu_this_inc_return  pcpu_this_dec_return  pcpu_sum
 *   <percpu/list.h>     per-CPU lists
 *       pcpu_this_list_push  pcpu_this_list_pop  pcpu_list_pop_all
 *   <percpu/counter.h>  counters (the kernel's percpu_counter)
 *       pcpu_counter_init  pcpu_counter_init_many  pcpu_counter_destroy
 *       pcpu_counter_destroy_many  pcpu_counter_add  pcpu_counter_add_batch
 *       pcpu_counter_inc  pcpu_counter_dec  pcpu_counter_read
 *       pcpu_counter_read_positive  pcpu_counter_sum
 *       pcpu_counter_sum_positive  pcpu_counter_set  pcpu_counter_compare
 *       pcpu_counter_limited_add  pcpu_counter_batch
 *   <percpu/ref.h>      reference counts (the kernel's percpu_ref)
 *       pcpu_ref_init  pcpu_ref_exit  pcpu_ref_get  pcpu_ref_get_many
 *       pcpu_ref_tryget  pcpu_ref_tryget_live  pcpu_ref_put
 *       pcpu_ref_put_many  pcpu_ref_kill  pcpu_ref_kill_and_confirm
 *       pcpu_ref_switch_to_atomic_sync  pcpu_ref_switch_to_percpu
 *       pcpu_ref_resurrect  pcpu_ref_reinit  pcpu_ref_is_zero
 *       pcpu_ref_is_dying
 *   <percpu/rwsem.h>    reader-writer semaphore (the kernel's percpu-rwsem)
 *       pcpu_rwsem_init  pcpu_rwsem_destroy  pcpu_rwsem_down_read
 *       pcpu_rwsem_down_read_trylock  pcpu_rwsem_up_read
 *       pcpu_rwsem_down_write  pcpu_rwsem_down_write_trylock
 *       pcpu_rwsem_up_write  pcpu_rwsem_is_read_locked
 *   <percpu/region.h>   per-CPU memory shared between processes (regions)
 *       pcpu_region_open  pcpu_region_close  pcpu_region_unlink
 *       pcpu_region_alloc  pcpu_region_find  pcpu_region_free
 *       pcpu_region_foreach  pcpu_region_info  pcpu_region_check
 *       PCPU_REGION_CREATE  PCPU_REGION_EXCL  PCPU_REGION_RDONLY
 *
 * The headers under percpu/bits/ are machinery: not for direct inclusion,
 * and none of their names is API.
 */
#ifndef PERCPU_H
#define PERCPU_H

/* The version of this header and of the library built with it, defined
 * here and nowhere else (CMakeLists.txt reads the three numbers).  What
 * the numbers promise: see pcpu_version(). */
#define PCPU_VERSION_MAJOR 0 /* 0: the API may still change between minor versions */
#define PCPU_VERSION_MINOR 3 /* new features (while the major is 0: any API change) */
#define PCPU_VERSION_PATCH 0 /* fixes only: no change to the API or the ABI */
/* The version as one number, major * 10000 + minor * 100 + patch, for
 * "#if PCPU_VERSION_NUMBER >= 300". */
#define PCPU_VERSION_NUMBER \
    (PCPU_VERSION_MAJOR * 10000 + PCPU_VERSION_MINOR * 100 + PCPU_VERSION_PATCH)
/* The version as a string, "major.minor.patch". */
#define PCPU_VERSION                                                   \
    PCPU__STR(PCPU_VERSION_MAJOR) "." PCPU__STR(PCPU_VERSION_MINOR) "." \
    PCPU__STR(PCPU_VERSION_PATCH)

/* Largest number of units (CPUs) a chunk can have. */
#define PCPU_MAX_CPUS 8192

#include "percpu/bits/common.h"

#include "percpu/version.h"
#include "percpu/alloc.h"
#include "percpu/stats.h"
#include "percpu/statics.h"
#include "percpu/ops.h"
#include "percpu/list.h"
#include "percpu/counter.h"
#include "percpu/ref.h"
#include "percpu/rwsem.h"
#include "percpu/region.h"

#endif /* PERCPU_H */
