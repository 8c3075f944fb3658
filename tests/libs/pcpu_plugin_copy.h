/* SPDX-License-Identifier: MIT */
/* pcpu_plugin_copy.h - the entry points of the plugin with its own copy of the library (pcpu_plugin_copy.c), as test_plugin_copy finds them with dlsym(). */
#ifndef PCPU_PLUGIN_COPY_H
#define PCPU_PLUGIN_COPY_H

struct plugin_copy_totals {
    long hits, calls;
    long long counter;
};

/* atomic: configure fewer units than CPUs, so the copy uses atomics. */
typedef int (*plugin_copy_setup_fn)(int atomic);
typedef long (*plugin_copy_work_fn)(unsigned int rounds);
typedef void (*plugin_copy_totals_fn)(struct plugin_copy_totals *t);

#endif
