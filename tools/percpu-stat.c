/* SPDX-License-Identifier: MIT */
/*
 * percpu-stat - show the objects of a per-CPU region, once or live.
 *
 *   percpu-stat [options] NAME
 *
 * Opens the region NAME (a POSIX shared-memory name, "/stats") read-only,
 * so it never disturbs the processes writing it, and prints every object:
 * its name, size, the sum over CPUs and each CPU's value.  Objects of 1,
 * 2, 4 or 8 bytes are read as signed integers of that width (host byte
 * order) and summed in 64 bits; objects whose size is a multiple of 8, up
 * to 512 bytes, as arrays of 64-bit integers (a struct of counters), one
 * value per word; other objects are listed with their size only.  A value
 * is read with one load per CPU while writers go on, so a sum is a
 * moment's mix, exact once they stop.
 *
 * Output: a table (the default; per-CPU values only where not zero), JSON
 * (--json; names are bytes, and bytes outside ASCII are written as the
 * Latin-1 characters of those codes, so the output is always valid), or the OpenMetrics text format that Prometheus scrapes and
 * node_exporter's textfile collector reads (--openmetrics).  -w SECONDS
 * prints again every SECONDS, in place for the table (with the rate of
 * each sum since the last refresh), until interrupted or -n COUNT times.
 * The man page (docs/percpu-stat.1) says the same for users.
 */
#define _GNU_SOURCE
#include <percpu.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORDS 64

enum format { TABLE, JSON, OPENMETRICS };

struct object {
    char name[PCPU_REGION_NAME_MAX + 1];
    void *cookie;
    size_t size;
    unsigned int words;      /* values: 1 for 1-8 bytes, size/8, or 0  */
    int64_t sum[MAX_WORDS];
};

struct snapshot {
    struct object *v;
    size_t n, cap;
    bool oom;
};

static volatile sig_atomic_t stop;
static const char *region_name;
static unsigned int nr_units;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static unsigned int words_of(size_t size)
{
    if (size == 1 || size == 2 || size == 4 || size == 8)
        return 1;
    if (size % 8 == 0 && size / 8 <= MAX_WORDS)
        return (unsigned int)(size / 8);
    return 0;
}

/* Word w of an object in unit cpu, as a signed 64-bit value.  memcpy:
 * an object need not be aligned to its size (its maker chose the
 * alignment), and one small copy is one load where it is. */
static int64_t value(const struct object *o, unsigned int cpu, unsigned int w)
{
    const char *p = (const char *)pcpu_ptr(o->cookie, cpu);
    int8_t v8;
    int16_t v16;
    int32_t v32;
    int64_t v64;
    switch (o->size) {
    case 1: memcpy(&v8, p, 1); return v8;
    case 2: memcpy(&v16, p, 2); return v16;
    case 4: memcpy(&v32, p, 4); return v32;
    default: memcpy(&v64, p + 8 * (size_t)w, 8); return v64;
    }
}

static int collect(const char *obj, void *cookie, size_t size, void *arg)
{
    struct snapshot *s = arg;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        struct object *v = realloc(s->v, cap * sizeof(*v));
        if (!v) {
            s->oom = true;
            return 1;
        }
        s->v = v;
        s->cap = cap;
    }
    struct object *o = &s->v[s->n++];
    snprintf(o->name, sizeof(o->name), "%s", obj);
    o->cookie = cookie;
    o->size = size;
    o->words = words_of(size);
    for (unsigned int w = 0; w < o->words; w++) {
        int64_t sum = 0;
        for (unsigned int c = 0; c < nr_units; c++)
            sum = (int64_t)((uint64_t)sum + (uint64_t)value(o, c, w));
        o->sum[w] = sum;
    }
    return 0;
}

static int take(struct pcpu_region *r, struct snapshot *s)
{
    s->n = 0;
    s->oom = false;
    if (pcpu_region_foreach(r, collect, s) < 0 || s->oom) {
        fprintf(stderr, "percpu-stat: %s: %s\n", region_name, s->oom ? strerror(ENOMEM) : strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- the table ------------------------------------------------------------ */

static const struct object *find_prev(const struct snapshot *prev, const struct object *o)
{
    for (size_t i = 0; prev && i < prev->n; i++)
        if (prev->v[i].cookie == o->cookie && strcmp(prev->v[i].name, o->name) == 0)
            return &prev->v[i];
    return NULL;
}

static void print_table(struct pcpu_region *r, const struct snapshot *s,
                        const struct snapshot *prev, double dt)
{
    struct pcpu_region_info in;
    if (pcpu_region_info(r, &in) == 0)
        printf("region %s: %u units of %zu bytes, %zu objects, %zu bytes used, %.1f KiB "
               "resident\n",
               region_name, in.nr_units, in.unit_size, in.nr_objects, in.used_bytes,
               (double)in.resident_bytes / 1024);
    printf("%-32s %6s %20s %12s  %s\n", "NAME", "SIZE", "SUM", prev ? "RATE/s" : "",
           "CPU:VALUE (non-zero)");
    char label[PCPU_REGION_NAME_MAX + 16];
    for (size_t i = 0; i < s->n; i++) {
        const struct object *o = &s->v[i];
        if (!o->words) {
            printf("%-32s %6zu %20s\n", o->name, o->size, "-");
            continue;
        }
        const struct object *p = find_prev(prev, o);
        for (unsigned int w = 0; w < o->words; w++) {
            if (o->words > 1)
                snprintf(label, sizeof(label), "%s[%u]", o->name, w);
            else
                snprintf(label, sizeof(label), "%s", o->name);
            char rate[32] = "";
            if (p && dt > 0)
                snprintf(rate, sizeof(rate), "%.1f", (double)(o->sum[w] - p->sum[w]) / dt);
            printf("%-32s %6zu %20lld %12s ", label, o->size, (long long)o->sum[w], rate);
            for (unsigned int c = 0; c < nr_units; c++) {
                int64_t v = value(o, c, w);
                if (v)
                    printf(" %u:%lld", c, (long long)v);
            }
            putchar('\n');
        }
    }
}

/* ---- JSON ----------------------------------------------------------------- */

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20 || c >= 0x80)
            printf("\\u%04x", c); /* names are bytes: read as Latin-1, always valid JSON */
        else
            putchar(c);
    }
    putchar('"');
}

static void json_values(const struct object *o, unsigned int w)
{
    printf("\"sum\": %lld, \"cpus\": [", (long long)o->sum[w]);
    for (unsigned int c = 0; c < nr_units; c++)
        printf("%s%lld", c ? ", " : "", (long long)value(o, c, w));
    printf("]");
}

static void print_json(struct pcpu_region *r, const struct snapshot *s)
{
    struct pcpu_region_info in;
    memset(&in, 0, sizeof(in));
    (void)pcpu_region_info(r, &in);
    printf("{\"region\": ");
    json_string(region_name);
    printf(", \"units\": %u, \"unit_size\": %zu, \"used_bytes\": %zu, \"resident_bytes\": %zu, "
           "\"objects\": [",
           nr_units, in.unit_size, in.used_bytes, in.resident_bytes);
    for (size_t i = 0; i < s->n; i++) {
        const struct object *o = &s->v[i];
        printf("%s\n  {\"name\": ", i ? "," : "");
        json_string(o->name);
        printf(", \"size\": %zu", o->size);
        if (o->words == 1) {
            printf(", ");
            json_values(o, 0);
        } else if (o->words > 1) {
            printf(", \"words\": [");
            for (unsigned int w = 0; w < o->words; w++) {
                printf("%s{", w ? ", " : "");
                json_values(o, w);
                printf("}");
            }
            printf("]");
        }
        printf("}");
    }
    printf("\n]}\n");
}

/* ---- OpenMetrics ------------------------------------------------------------ */

/* "percpu_" + the name with every character outside [a-zA-Z0-9_:] made
 * '_' (a metric name may not start with a digit; the prefix sees to it). */
static void metric_name(char *out, size_t len, const char *obj)
{
    size_t k = (size_t)snprintf(out, len, "percpu_");
    for (; *obj && k + 1 < len; obj++) {
        char c = *obj;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == ':';
        out[k++] = ok ? c : '_';
    }
    out[k] = 0;
}

/* A label value or HELP text: backslash, double quote, newline escaped. */
static void om_escape(const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", stdout);
        else if (*s == '\n')
            fputs("\\n", stdout);
        else if (*s == '"' && quote)
            fputs("\\\"", stdout);
        else
            putchar(*s);
    }
}

/* Whether base or base_cpu is one of the families of names[0..i) (an
 * empty name: an object with no words, printed as nothing). */
static bool family_taken(char (*names)[PCPU_REGION_NAME_MAX + 32], size_t i, const char *base)
{
    size_t bl = strlen(base);
    for (size_t j = 0; j < i; j++) {
        const char *n = names[j];
        size_t nl = strlen(n);
        if (!nl)
            continue;
        if (strcmp(n, base) == 0 ||
            (bl == nl + 4 && strncmp(base, n, nl) == 0 && strcmp(base + nl, "_cpu") == 0) ||
            (nl == bl + 4 && strncmp(n, base, bl) == 0 && strcmp(n + bl, "_cpu") == 0))
            return true;
    }
    return false;
}

static void print_openmetrics(const struct snapshot *s)
{
    char (*names)[PCPU_REGION_NAME_MAX + 32] = calloc(s->n ? s->n : 1, sizeof(*names));
    if (!names)
        return;
    for (size_t i = 0; i < s->n; i++) {
        const struct object *o = &s->v[i];
        if (!o->words)
            continue;
        /* Each object is two families, NAME and NAME_cpu; a name that
         * meets an earlier object's families (names that sanitise alike,
         * "a_cpu" beside "a", a suffix that is another's name) gets its
         * place in the directory as a suffix, then larger ones. */
        metric_name(names[i], sizeof(names[i]), o->name);
        size_t l = strlen(names[i]);
        for (size_t k = i; family_taken(names, i, names[i]); k += s->n)
            snprintf(names[i] + l, sizeof(names[i]) - l, "_%zu", k);
        for (int per_cpu = 0; per_cpu < 2; per_cpu++) {
            const char *sfx = per_cpu ? "_cpu" : "";
            printf("# TYPE %s%s gauge\n# HELP %s%s Object \"", names[i], sfx, names[i], sfx);
            om_escape(o->name, false);
            printf("\" (%zu byte%s) of the per-CPU region ", o->size, o->size == 1 ? "" : "s");
            om_escape(region_name, false);
            printf(per_cpu ? ", each CPU's copy.\n" : ", summed over CPUs.\n");
            for (unsigned int w = 0; w < o->words; w++) {
                char word[32] = "";
                if (o->words > 1)
                    snprintf(word, sizeof(word), ",word=\"%u\"", w);
                if (!per_cpu) {
                    printf("%s{region=\"", names[i]);
                    om_escape(region_name, true);
                    printf("\"%s} %lld\n", word, (long long)o->sum[w]);
                    continue;
                }
                for (unsigned int c = 0; c < nr_units; c++) {
                    printf("%s_cpu{region=\"", names[i]);
                    om_escape(region_name, true);
                    printf("\",cpu=\"%u\"%s} %lld\n", c, word, (long long)value(o, c, w));
                }
            }
        }
    }
    printf("# EOF\n");
    free(names);
}

/* ---- main ------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
"usage: percpu-stat [options] NAME\n"
"\n"
"Shows the objects of the per-CPU region NAME (\"/stats\"), opened read-only:\n"
"name, size, sum over CPUs and each CPU's value.\n"
"\n"
"  -w, --watch SECONDS   print again every SECONDS (the table in place, with rates)\n"
"  -n, --count N         with -w: stop after N prints\n"
"  -j, --json            JSON\n"
"  -m, --openmetrics     the OpenMetrics text format (Prometheus, node_exporter)\n"
"  -u, --units N         units of the region, when its writers configured\n"
"                        pcpu_config.nr_cpus (default: the possible CPUs)\n"
"  -s, --unit-size BYTES this process's unit size, when the region's unit is\n"
"                        larger than the default 1 MiB\n"
"  -h, --help            this text\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"watch", required_argument, NULL, 'w'}, {"count", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},        {"openmetrics", no_argument, NULL, 'm'},
        {"units", required_argument, NULL, 'u'}, {"unit-size", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    enum format fmt = TABLE;
    double every = 0;
    long count = 0;
    struct pcpu_config cfg = {0};
    int c;
    while ((c = getopt_long(argc, argv, "w:n:jmu:s:h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'w': every = strtod(optarg, &end); break;
        case 'n': count = strtol(optarg, &end, 10); break;
        case 'j': fmt = JSON; break;
        case 'm': fmt = OPENMETRICS; break;
        case 'u': cfg.nr_cpus = (unsigned int)strtoul(optarg, &end, 10); break;
        case 's': cfg.unit_size = (size_t)strtoull(optarg, &end, 0); break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (end && (*end || end == optarg)) {
            fprintf(stderr, "percpu-stat: -%c %s: not a number\n", c, optarg);
            return 2;
        }
    }
    /* A year at most: also refuses NaN and infinity, which would not
     * sleep at all once converted. */
    if (optind + 1 != argc || !(every >= 0 && every <= 366 * 86400.0) || count < 0) {
        usage(stderr);
        return 2;
    }
    region_name = argv[optind];
    if ((cfg.nr_cpus || cfg.unit_size) && pcpu_init(&cfg) != 0) {
        fprintf(stderr, "percpu-stat: pcpu_init: %s\n", strerror(errno));
        return 1;
    }
    struct pcpu_region *r = pcpu_region_open(region_name, 0, PCPU_REGION_RDONLY, 0);
    if (!r) {
        int e = errno;
        fprintf(stderr, "percpu-stat: %s: %s%s\n", region_name, strerror(e),
                e == EINVAL ? " (not a region, or made with other units: see --units and "
                              "--unit-size)"
                            : "");
        return 1;
    }
    nr_units = pcpu_nr_cpus();
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    struct snapshot snaps[2] = {{0}};
    struct timespec t[2];
    int ret = 0;
    for (long round = 0; !stop; round++) {
        struct snapshot *s = &snaps[round % 2], *prev = round ? &snaps[(round + 1) % 2] : NULL;
        clock_gettime(CLOCK_MONOTONIC, &t[round % 2]);
        if (take(r, s) != 0) {
            ret = 1;
            break;
        }
        double dt = prev ? (double)(t[round % 2].tv_sec - t[(round + 1) % 2].tv_sec) +
                               (double)(t[round % 2].tv_nsec - t[(round + 1) % 2].tv_nsec) / 1e9
                         : 0;
        if (fmt == TABLE && every > 0 && isatty(STDOUT_FILENO))
            fputs("\033[H\033[2J", stdout);
        if (fmt == JSON)
            print_json(r, s);
        else if (fmt == OPENMETRICS)
            print_openmetrics(s);
        else
            print_table(r, s, prev, dt);
        fflush(stdout);
        if (every <= 0 || (count && round + 1 >= count))
            break;
        if (fmt == TABLE && !isatty(STDOUT_FILENO))
            putchar('\n');
        struct timespec ts = {(time_t)every, (long)((every - (double)(time_t)every) * 1e9)};
        while (!stop && nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    free(snaps[0].v);
    free(snaps[1].v);
    pcpu_region_close(r);
    return ret;
}
