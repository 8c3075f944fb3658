/* SPDX-License-Identifier: MIT */
/*
 * model.c - the reference model of the allocator (see model.h for what it
 * checks and how operations are decoded).
 */
#include "model.h"

static int model_fail(struct model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int model_fail(struct model *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->err, sizeof(m->err), fmt, ap);
    va_end(ap);
    return -1;
}

/* The byte at offset i of a unit holding pattern seed v. */
static inline uint8_t model_pat(uint8_t v, size_t i)
{
    return v ? (uint8_t)(v * 37u + i * 7u + (i >> 8) + 1u) : 0;
}

/* Compare unit u of slot o with the model (all of it, or a sample of
 * lines for big objects). */
static int model_check_unit(struct model *m, unsigned int slot, unsigned int u, bool sample)
{
    struct model_obj *o = &m->obj[slot];
    const uint8_t *p = pcpu_ptr(o->cookie, u);
    uint8_t v = o->seed[u];
    size_t step = sample && o->size > 512 ? 61 : 1;
    for (size_t i = 0; i < o->size; i += step)
        if (p[i] != model_pat(v, i))
            return model_fail(m, "slot %u cookie %p size %zu: cpu %u offset %zu holds 0x%02x, "
                              "expected 0x%02x (seed %u)", slot, (void *)o->cookie, o->size, u, i,
                              p[i], model_pat(v, i), v);
    if (o->size && p[o->size - 1] != model_pat(v, o->size - 1))
        return model_fail(m, "slot %u: cpu %u last byte wrong", slot, u);
    return 0;
}

static int model_check_obj(struct model *m, unsigned int slot)
{
    /* Every unit, but big objects in many units only by sampling. */
    bool sample = m->obj[slot].size * m->nr_units > (64u << 10);
    for (unsigned int u = 0; u < m->nr_units; u++)
        if (model_check_unit(m, slot, u, sample) != 0)
            return -1;
    return 0;
}

int model_check_all(struct model *m)
{
    for (unsigned int s = 0; s < MODEL_SLOTS; s++)
        if (m->obj[s].cookie && model_check_obj(m, s) != 0)
            return -1;
    return 0;
}

int model_validate(struct model *m)
{
    int v = pcpu_validate();
    if (v != 0)
        return model_fail(m, "pcpu_validate() found %d problems", v);
    return 0;
}

int model_init(struct model *m, unsigned int nr_units, enum pcpu_backend backend,
                      unsigned int flags)
{
    /* Robust mode stops a process that leaks at pcpu_exit(); elsewhere
     * exiting with live objects is allowed and exercised. */
    if (m->flags & PCPU_F_DEBUG)
        for (unsigned int s = 0; s < MODEL_SLOTS; s++)
            if (m->obj[s].cookie)
                pcpu_free(m->obj[s].cookie);
    pcpu_exit();
    memset(m->obj, 0, sizeof(m->obj));
    m->live = 0;
    m->nr_units = nr_units;
    m->backend = backend;
    m->flags = flags | PCPU_F_NO_RECLAIM; /* reclaim only when the stream says */
    struct pcpu_config cfg = {
        .backend = backend,
        .nr_cpus = nr_units,
        .unit_size = MODEL_UNIT_SIZE,
        .flags = m->flags,
    };
    if (pcpu_init(&cfg) != 0)
        return model_fail(m, "pcpu_init(%u units, %s, flags 0x%x): %s", nr_units,
                          backend == PCPU_BACKEND_KM ? "km" : "vm", m->flags, strerror(errno));
    if (pcpu_nr_cpus() != nr_units)
        return model_fail(m, "pcpu_nr_cpus() %u, configured %u", pcpu_nr_cpus(), nr_units);
    m->reinits++;
    return 0;
}

static unsigned int model_pick_live(struct model *m, uint8_t b)
{
    if (!m->live)
        return MODEL_SLOTS;
    unsigned int k = b % m->live;
    for (unsigned int s = 0; s < MODEL_SLOTS; s++)
        if (m->obj[s].cookie && k-- == 0)
            return s;
    return MODEL_SLOTS;
}

static size_t model_natural_align(size_t size)
{
    size_t low = size & (~size + 1);
    if (low < 4)
        low = 4;
    return low > 16 ? 16 : low;
}

static int model_alloc(struct model *m, struct model_src *src, bool reserved)
{
    unsigned int slot = MODEL_SLOTS;
    for (unsigned int s = 0; s < MODEL_SLOTS; s++)
        if (!m->obj[s].cookie) {
            slot = s;
            break;
        }
    uint8_t cls = model_byte(src), lo = model_byte(src), hi = model_byte(src);
    uint8_t ab = model_byte(src);
    size_t size;
    unsigned int c = cls % 16;
    if (c < 10)
        size = 1 + lo % 64;                          /* the thread-cache range */
    else if (c < 14)
        size = 1 + ((size_t)hi << 8 | lo) % 1024;
    else if (c < 15)
        size = 1 + ((size_t)hi << 8 | lo) % (16u << 10);
    else
        size = 1 + (((size_t)hi << 8 | lo) * 7) % MODEL_UNIT_SIZE; /* up to a whole unit */
    /* Big objects in 256 units cost 256 times their size to check. */
    if (m->nr_units > 8 && size > (16u << 10))
        size = 1 + size % (16u << 10);
    size_t align = ab % 4 == 0 ? (size_t)1 << (ab / 4 % 13) : 0; /* 1 .. 4096, or natural */
    if (align > 4096)
        align = 4096;
    errno = 0;
    unsigned char *p = reserved ? pcpu_alloc_reserved(size, align) : pcpu_alloc(size, align);
    if (!p) {
        if (errno == ENOMEM) {
            m->enomem++;
            return 0;
        }
        return model_fail(m, "pcpu_alloc%s(%zu, %zu) failed: %s", reserved ? "_reserved" : "",
                          size, align, strerror(errno));
    }
    size_t want = align ? (align < 4 ? 4 : align) : model_natural_align(size);
    if ((uintptr_t)p % want)
        return model_fail(m, "pcpu_alloc(%zu, %zu) = %p is not %zu-aligned", size, align,
                          (void *)p, want);
    /* No overlap with any live object (cookies of other chunks are far). */
    for (unsigned int s = 0; s < MODEL_SLOTS; s++) {
        struct model_obj *o = &m->obj[s];
        if (o->cookie && p < o->cookie + o->size && o->cookie < p + size)
            return model_fail(m, "pcpu_alloc(%zu) = %p overlaps slot %u (%p, %zu bytes)", size,
                              (void *)p, s, (void *)o->cookie, o->size);
    }
    if (slot == MODEL_SLOTS) {
        /* The table is full: check this one is zero and give it back. */
        for (unsigned int u = 0; u < m->nr_units; u++) {
            const uint8_t *q = pcpu_ptr(p, u);
            for (size_t i = 0; i < size; i++)
                if (q[i])
                    return model_fail(m, "fresh allocation %p: cpu %u offset %zu not zero",
                                      (void *)p, u, i);
        }
        pcpu_free(p);
        m->allocs++;
        m->frees++;
        return 0;
    }
    struct model_obj *o = &m->obj[slot];
    memset(o, 0, sizeof(*o));
    o->cookie = p;
    o->size = size;
    o->align = align;
    m->live++;
    m->allocs++;
    if (model_check_obj(m, slot) != 0)
        return model_fail(m, "fresh allocation not zero: %s", m->err);
    /* Every copy maps back to this allocation. */
    unsigned int probe[3] = {0, m->nr_units - 1, lo % m->nr_units};
    for (unsigned int i = 0; i < 3; i++) {
        struct pcpu_addr_info info;
        char *a = (char *)pcpu_ptr(p, probe[i]) + size - 1;
        if (pcpu_addr_info(a, &info) != 0 || info.cookie != p || info.cpu != probe[i] ||
            info.size < size)
            return model_fail(m, "pcpu_addr_info(cpu %u copy of %p, size %zu) wrong: cookie %p "
                              "cpu %u size %zu", probe[i], (void *)p, size, info.cookie, info.cpu,
                              info.size);
    }
    return 0;
}

static int model_free(struct model *m, uint8_t b)
{
    unsigned int s = model_pick_live(m, b);
    if (s == MODEL_SLOTS)
        return 0;
    if (model_check_obj(m, s) != 0)
        return -1;
    pcpu_free(m->obj[s].cookie);
    m->obj[s].cookie = NULL;
    m->live--;
    m->frees++;
    return 0;
}

static void model_fill(struct model *m, unsigned int s, unsigned int u, uint8_t v)
{
    struct model_obj *o = &m->obj[s];
    uint8_t *p = pcpu_ptr(o->cookie, u);
    for (size_t i = 0; i < o->size; i++)
        p[i] = model_pat(v, i);
    o->seed[u] = v;
}

static int model_write(struct model *m, struct model_src *src)
{
    unsigned int s = model_pick_live(m, model_byte(src));
    uint8_t how = model_byte(src), v = model_byte(src);
    if (s == MODEL_SLOTS)
        return 0;
    struct model_obj *o = &m->obj[s];
    if (how % 4 == 0 && o->size * m->nr_units <= (256u << 10)) {
        for (unsigned int u = 0; u < m->nr_units; u++)
            model_fill(m, s, u, (uint8_t)(v + u));
    } else {
        unsigned int u = (how / 4) % m->nr_units;
        if (how % 4 == 1)
            u = m->nr_units - 1;
        model_fill(m, s, u, v);
    }
    return model_check_obj(m, s);
}

/* One operation from the stream; 0, or -1 with m->err. */
int model_step(struct model *m, struct model_src *src)
{
    uint8_t op = model_byte(src);
    int r = 0;
    m->ops++;
    switch (op % 32) {
    case 0: case 1: case 2: case 3: case 4: case 5: case 6: case 7: case 8: case 9:
        r = model_alloc(m, src, false);
        break;
    case 10:
        r = model_alloc(m, src, true);
        break;
    case 11: case 12: case 13: case 14: case 15: case 16: case 17: case 18:
        r = model_free(m, model_byte(src));
        break;
    case 19: case 20: case 21: case 22: case 23: case 24:
        r = model_write(m, src);
        break;
    case 25: case 26: {
        unsigned int s = model_pick_live(m, model_byte(src));
        if (s != MODEL_SLOTS)
            r = model_check_obj(m, s);
        break;
    }
    case 27:
        r = model_check_all(m);
        break;
    case 28:
        (void)pcpu_reclaim(model_byte(src) & 1);
        r = model_check_all(m);
        break;
    case 29: { /* free everything, then the counters must agree */
        for (unsigned int s = 0; s < MODEL_SLOTS && !r; s++)
            if (m->obj[s].cookie) {
                r = model_check_obj(m, s);
                pcpu_free(m->obj[s].cookie);
                m->obj[s].cookie = NULL;
                m->frees++;
            }
        m->live = 0;
        break;
    }
    case 30: { /* exit and init again, maybe with another configuration */
        uint8_t c = model_byte(src);
        if (c % 16 != 0)
            break; /* keep re-initialisation rare: it is the slow operation */
        if (model_byte(src) % 4 != 0) { /* usually free all first; else exit drops it */
            r = model_check_all(m);
            for (unsigned int s = 0; s < MODEL_SLOTS && !r; s++)
                if (m->obj[s].cookie) {
                    pcpu_free(m->obj[s].cookie);
                    m->obj[s].cookie = NULL;
                    m->frees++;
                }
            m->live = 0;
        }
        unsigned int flags = 0;
        if ((c & 0x70) == 0x70) /* robust mode validates on every call: rare */
            flags |= PCPU_F_DEBUG;
        if (c & 0x20)
            flags |= PCPU_F_NO_CACHE;
        r = model_check_all(m);
        if (!r)
            r = model_init(m, c & 0x40 ? 256 : 2, c & 0x80 ? PCPU_BACKEND_KM : PCPU_BACKEND_VM,
                           flags);
        break;
    }
    default: /* 31: another free, so that the live set stays moderate */
        r = model_free(m, model_byte(src));
        break;
    }
    if (!r && m->validate_each)
        r = model_validate(m);
    return r;
}

/* The end of a run: everything still matches, free it all, and the
 * allocator's counters say nothing is live. */
int model_finish(struct model *m)
{
    if (model_check_all(m) != 0 || model_validate(m) != 0)
        return -1;
    for (unsigned int s = 0; s < MODEL_SLOTS; s++)
        if (m->obj[s].cookie) {
            pcpu_free(m->obj[s].cookie);
            m->obj[s].cookie = NULL;
        }
    m->live = 0;
    struct pcpu_stats st;
    if (pcpu_stats_get(&st) != 0)
        return model_fail(m, "pcpu_stats_get: %s", strerror(errno));
    if (st.nr_cur_alloc != 0)
        return model_fail(m, "nr_cur_alloc %llu after freeing everything",
                          (unsigned long long)st.nr_cur_alloc);
    return model_validate(m);
}

