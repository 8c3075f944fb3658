/* SPDX-License-Identifier: MIT */
/*
 * region.h - what the rest of the library needs from region.c (the
 * public functions are in include/percpu/region.h).
 */
#ifndef PCPU_REGION_INTERNAL_H
#define PCPU_REGION_INTERNAL_H

#include "internal.h"

/* pcpu_exit(): every open region loses its mappings and its exactness pin
 * (its cookies were made from the unit offsets about to be forgotten);
 * its addresses stay reserved, so stale cookies fault.  Only
 * pcpu_region_close() works on it afterwards. */
PCPU_HIDDEN void pcpu__regions_detach_all(void);

#endif
