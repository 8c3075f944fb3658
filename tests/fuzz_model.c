/* SPDX-License-Identifier: MIT */
/*
 * fuzz_model.c - libFuzzer target: bytes become allocator operations that
 * are checked against the reference model in model.h.
 *
 * The first byte of an input picks the configuration (2 or 256 units, vm
 * or km backend, robust mode, thread cache on or off); the rest is decoded
 * by model_step() into alloc (size, align), alloc_reserved, free, pattern
 * writes, verifies, pcpu_reclaim() and exit+init.  After every step the
 * touched object is compared with the model and pcpu_validate() must find
 * nothing; at the end everything is freed and nr_cur_alloc must be 0.  Any
 * mismatch aborts with a description, which libFuzzer records as a crash.
 *
 * Built only with -DPCPU_FUZZ=ON and clang (tests/fuzz.cmake); run with
 * `make fuzz FUZZ_SECONDS=N`.  Seeds live in tests/corpus/.
 */
#include "model.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static struct model m;

static void die(void)
{
    fprintf(stderr, "fuzz_model: after %lu operations: %s\n", m.ops, m.err);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct model_src src = {.data = data, .len = size, .pos = 1};
    uint8_t c = data[0];
    unsigned int flags = 0;
    if ((c & 0x0c) == 0x0c) /* robust mode validates on every call: keep it a quarter */
        flags |= PCPU_F_DEBUG;
    if (c & 0x10)
        flags |= PCPU_F_NO_CACHE;
    m.ops = 0;
    m.validate_each = true;
    if (model_init(&m, c & 1 ? 256 : 2, c & 2 ? PCPU_BACKEND_KM : PCPU_BACKEND_VM, flags) != 0)
        die();
    while (model_src_more(&src))
        if (model_step(&m, &src) != 0)
            die();
    if (model_finish(&m) != 0)
        die();
    return 0;
}
