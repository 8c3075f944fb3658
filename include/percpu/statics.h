/* SPDX-License-Identifier: MIT */
/*
 * percpu/statics.h - static per-CPU variables.
 * Part of <percpu.h>: include that.
 *
 *     PCPU_DEFINE(type, name);                 zero in every unit
 *     PCPU_DEFINE(type, name) = initializer;   every unit starts with this
 *     PCPU_DECLARE(type, name);                defined in another file
 *     PCPU_VAR(name)                           the cookie, of type (type *)
 *
 * At file scope, in the program or any shared library (also one loaded
 * with dlopen()).  The initial value is copied into every unit before
 * main() (or before dlopen() returns); dlclose() gives the space back.
 * PCPU_VAR() costs one load and one add.  It is valid in the module that
 * defines the variable; to use a variable from another module, pass its
 * cookie.
 *
 * Once placed, a variable never moves while the allocator lives (modules
 * loaded later go to the static area while it has room, else to the
 * reserved area, else to dynamic space), so other threads may use it at
 * any time; pcpu_exit() is the only thing that moves them (see there).
 * dlclose() of a module is safe for every thread, whatever it did with
 * the module's this-CPU operations before (see <percpu/ops.h>, "Modules").
 *
 * Example:
 *     PCPU_DEFINE(long, nr_requests);
 *     ...  pcpu_this_inc(PCPU_VAR(nr_requests));
 *          long total = pcpu_sum(PCPU_VAR(nr_requests));
 */
#ifndef PERCPU_STATICS_H
#define PERCPU_STATICS_H
#ifndef PERCPU_H
#error "<percpu/statics.h> is not for direct inclusion: #include <percpu.h>"
#endif

#include "bits/statics.h"

#define PCPU_DEFINE(type, name) \
    __attribute__((section(PCPU__SECTION_NAME), used)) PCPU__TYPEOF(type) pcpu__var_##name
#define PCPU_DECLARE(type, name) extern PCPU__TYPEOF(type) pcpu__var_##name
#ifdef __cplusplus
#define PCPU_VAR(name) \
    (reinterpret_cast<decltype(&pcpu__var_##name)>((char *)&pcpu__var_##name + pcpu__module_delta))
#else
#define PCPU_VAR(name) \
    ((__typeof__(&pcpu__var_##name))((char *)&pcpu__var_##name + pcpu__module_delta))
#endif

#endif /* PERCPU_STATICS_H */
