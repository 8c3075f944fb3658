/* SPDX-License-Identifier: MIT */
/*
 * model.h - a reference model of the allocator for fuzz_model.c and
 * test_longwalk.c (model.c).
 *
 * The model is deliberately naive: a fixed table of live allocations, each
 * with its size, alignment and, per unit, the one-byte seed of the pattern
 * that unit should hold (0: the unit must read zero).  A stream of bytes
 * (the fuzzer's input, or a seeded generator for the long walk) is decoded
 * into operations -- alloc(size, align), alloc_reserved, free, write a
 * pattern into one or all units, verify, pcpu_reclaim, pcpu_exit + pcpu_init
 * with 2 or 256 units on either backend, robust mode or no thread cache --
 * and after each one the library is compared with the model: the touched
 * object's bytes in every unit, zero on allocation, alignment, no overlap
 * with another live object, pcpu_addr_info() mapping every unit copy back
 * to its cookie, and pcpu_validate() == 0.
 *
 * A failed check returns -1 with a description in model.err.
 */
#ifndef TU_MODEL_H
#define TU_MODEL_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "percpu.h"

#define MODEL_SLOTS 64u
#define MODEL_MAX_UNITS 256u
#define MODEL_UNIT_SIZE (64u << 10) /* small units: chunks fill and come and go */

struct model_obj {
    unsigned char *cookie; /* NULL: slot free */
    size_t size;
    size_t align;
    uint8_t seed[MODEL_MAX_UNITS];
};

struct model {
    unsigned int nr_units;
    unsigned int flags;
    enum pcpu_backend backend;
    bool validate_each;       /* pcpu_validate() after every operation */
    unsigned int live;
    struct model_obj obj[MODEL_SLOTS];
    unsigned long ops, allocs, frees, reinits, enomem;
    char err[512];
};

/* The byte stream: fuzzer input, or a generator when data is NULL. */
struct model_src {
    const uint8_t *data;
    size_t len, pos;
    uint64_t rng;
};

static inline bool model_src_more(const struct model_src *s)
{
    return !s->data || s->pos < s->len;
}

static inline uint8_t model_byte(struct model_src *s)
{
    if (!s->data) {
        uint64_t x = s->rng ? s->rng : 0x9e3779b97f4a7c15ull;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s->rng = x;
        return (uint8_t)((x * 0x2545f4914f6cdd1dull) >> 56);
    }
    return s->pos < s->len ? s->data[s->pos++] : 0;
}

/* Start a run: pcpu_exit(), then pcpu_init() with these settings. */
int model_init(struct model *m, unsigned int nr_units, enum pcpu_backend backend,
               unsigned int flags);
/* Decode and apply one operation from src, then check what it touched. */
int model_step(struct model *m, struct model_src *src);
/* Every live object against the model; pcpu_validate(). */
int model_check_all(struct model *m);
int model_validate(struct model *m);
/* The end of a run: everything still matches, then free it all. */
int model_finish(struct model *m);

#endif
