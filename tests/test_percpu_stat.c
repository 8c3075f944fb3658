/* SPDX-License-Identifier: MIT */
/* test_percpu_stat.c - percpu-stat against a live region: valid JSON and OpenMetrics while writers write, exact numbers once they stop, -w refreshes, errors. */
/*
 * Two writer processes increment counters of a named region for a
 * moment while percpu-stat reads it; every one of its outputs must parse
 * (a strict JSON reader, a line-by-line OpenMetrics check: names,
 * labels, TYPE and HELP before each family's samples, one family per
 * name, "# EOF" last), and the sums it shows must not go backwards.
 * After the writers stop, every number must equal what pcpu_sum() and
 * pcpu_ptr() say in this process, for every unit.
 */
#include "region_util.h"

#include "json_mini.h"

#include <ctype.h>
#include <errno.h>

#ifndef PERCPU_STAT
#error "PERCPU_STAT: the path of percpu-stat"
#endif

static const char *n;
static struct pcpu_region *r;
static long *requests, *bytes, *pair;
static signed char *tiny;
static int *neg;

/* Run percpu-stat with args; its stdout in a malloc()ed string, its exit
 * status in *status. */
static char *run_stat(const char *args, int *status)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s %s 2>&1", PERCPU_STAT, args);
    fflush(NULL);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    size_t got;
    while ((got = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 2) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
    }
    out[len] = 0;
    int st = pclose(p);
    *status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
    return out;
}

static int setup(void **state)
{
    (void)state;
    rt_cleanup_at_exit();
    tu_reinit(NULL);
    n = rt_name("stat");
    r = pcpu_region_open(n, 8192, PCPU_REGION_CREATE | PCPU_REGION_EXCL, 0600);
    assert_non_null(r);
    requests = pcpu_region_alloc(r, "requests", 8, 0);
    bytes = pcpu_region_alloc(r, "bytes", 8, 0);
    tiny = pcpu_region_alloc(r, "tiny", 1, 0);
    neg = pcpu_region_alloc(r, "neg", 4, 0);
    pair = pcpu_region_alloc(r, "pair", 16, 0);
    assert_true(requests && bytes && tiny && neg && pair);
    assert_non_null(pcpu_region_alloc(r, "blob", 100, 0));
    /* Two names that sanitise alike, and one that needs escaping. */
    assert_non_null(pcpu_region_alloc(r, "a.b", 8, 0));
    assert_non_null(pcpu_region_alloc(r, "a-b", 8, 0));
    assert_non_null(pcpu_region_alloc(r, "q\"uo\\te", 4, 0));
    /* Names that meet another object's families: requests' per-CPU
     * family, and the suffix "a-b" gets (its place, 7). */
    assert_non_null(pcpu_region_alloc(r, "requests_cpu", 8, 0));
    assert_non_null(pcpu_region_alloc(r, "a_b_7", 8, 0));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(pcpu_region_close(r), 0);
    assert_int_equal(pcpu_region_unlink(n), 0);
    return 0;
}

/* Writers: each of @procs processes adds for @seconds; returns their pids. */
static void start_writers(pid_t *pids, int procs, double seconds)
{
    for (int p = 0; p < procs; p++) {
        fflush(NULL);
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            child_prepare();
            double end = tu_now() + seconds;
            while (tu_now() < end)
                for (int k = 0; k < 1000; k++) {
                    pcpu_this_inc(requests);
                    pcpu_this_add(bytes, 100);
                    pcpu_this_inc(tiny);
                    pcpu_this_sub(neg, 2);
                    pcpu_this_inc(&pair[1]);
                }
            _exit(0);
        }
    }
}

static const struct json *object_named(const struct json *objs, const char *name)
{
    for (size_t i = 0; objs && i < objs->n; i++) {
        const struct json *nm = json_get(objs->v[i], "name");
        if (nm && nm->type == JSON_STRING && strcmp(nm->s, name) == 0)
            return objs->v[i];
    }
    return NULL;
}

/* One value ({sum, cpus}) against the object in this process. */
static void check_values(const struct json *o, const void *cookie, size_t size,
                         unsigned int word)
{
    const struct json *sum = json_get(o, "sum"), *cpus = json_get(o, "cpus");
    assert_non_null(sum);
    assert_non_null(cpus);
    assert_int_equal(sum->type, JSON_INT);
    assert_int_equal(cpus->type, JSON_ARRAY);
    assert_int_equal(cpus->n, pcpu_nr_cpus());
    int64_t total = 0;
    for (unsigned int c = 0; c < pcpu_nr_cpus(); c++) {
        const char *p = pcpu_ptr(cookie, c);
        int64_t want = size == 1 ? *(const int8_t *)p
                     : size == 4 ? *(const int32_t *)(const void *)p
                                 : ((const int64_t *)(const void *)p)[word];
        assert_int_equal(cpus->v[c]->type, JSON_INT);
        assert_int_equal(cpus->v[c]->i, want);
        total += want;
    }
    assert_int_equal(sum->i, total);
}

static struct json *stat_json(void)
{
    int st;
    char args[256];
    snprintf(args, sizeof(args), "--json %s", n);
    char *out = run_stat(args, &st);
    if (st != 0)
        fail_msg("percpu-stat --json: status %d: %s", st, out);
    struct json *j = json_parse(out, strlen(out));
    if (!j)
        fail_msg("percpu-stat --json is not JSON:\n%s", out);
    free(out);
    return j;
}

static void test_json(void **state)
{
    (void)state;
    pid_t w[2];
    start_writers(w, 2, 0.4);
    int64_t last = -1;
    int live = 0, st0 = 0;
    pid_t reaped = 0;
    while (!reaped || live < 2) {
        struct json *j = stat_json();
        const struct json *o = object_named(json_get(j, "objects"), "requests");
        assert_non_null(o);
        int64_t now = json_get(o, "sum")->i;
        assert_true(now >= last);
        last = now;
        live++;
        json_free(j);
        if (!reaped)
            reaped = waitpid(w[0], &st0, WNOHANG);
    }
    assert_int_equal(reaped, w[0]);
    assert_true(WIFEXITED(st0) && WEXITSTATUS(st0) == 0);
    assert_int_equal(rt_wait(w[1]), 0);
    assert_true(pcpu_sum(requests) > 0);

    struct json *j = stat_json();
    assert_string_equal(json_get(j, "region")->s, n);
    assert_int_equal(json_get(j, "units")->i, pcpu_nr_cpus());
    assert_int_equal(json_get(j, "unit_size")->i, 8192);
    const struct json *objs = json_get(j, "objects");
    assert_non_null(objs);
    assert_int_equal(objs->n, 11);
    check_values(object_named(objs, "requests"), requests, 8, 0);
    check_values(object_named(objs, "bytes"), bytes, 8, 0);
    check_values(object_named(objs, "tiny"), tiny, 1, 0);
    check_values(object_named(objs, "neg"), neg, 4, 0);
    assert_int_equal(json_get(object_named(objs, "requests"), "sum")->i, pcpu_sum(requests));
    assert_int_equal(json_get(object_named(objs, "bytes"), "sum")->i, 100 * pcpu_sum(requests));
    assert_int_equal(json_get(object_named(objs, "neg"), "sum")->i, pcpu_sum(neg));
    const struct json *pw = json_get(object_named(objs, "pair"), "words");
    assert_non_null(pw);
    assert_int_equal(pw->n, 2);
    check_values(pw->v[0], pair, 16, 0);
    check_values(pw->v[1], pair, 16, 1);
    assert_int_equal(json_get(pw->v[1], "sum")->i, pcpu_sum(requests));
    const struct json *blob = object_named(objs, "blob");
    assert_non_null(blob);
    assert_int_equal(json_get(blob, "size")->i, 100);
    assert_null(json_get(blob, "sum"));
    assert_non_null(object_named(objs, "q\"uo\\te"));
    json_free(j);
}

/* ---- OpenMetrics ------------------------------------------------------------ */

static bool metric_name_ok(const char *s, size_t len)
{
    if (!len || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
            return false;
    return true;
}

/* Check the whole text; return the value of sample @want (exact text of
 * name and labels), or fail. */
static long long om_check(char *text, const char *want, bool *found)
{
    char families[64][96];
    int nf = 0;
    char typed[96] = "", helped[96] = "";
    long long value = 0;
    *found = false;
    bool eof = false;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        assert_false(eof); /* nothing after # EOF */
        if (strcmp(line, "# EOF") == 0) {
            eof = true;
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char *sp = strchr(line + 7, ' ');
            assert_non_null(sp);
            assert_string_equal(sp + 1, "gauge");
            snprintf(typed, sizeof(typed), "%.*s", (int)(sp - (line + 7)), line + 7);
            assert_true(metric_name_ok(typed, strlen(typed)));
            for (int f = 0; f < nf; f++)
                if (strcmp(families[f], typed) == 0)
                    fail_msg("family %s twice", typed);
            assert_true(nf < 64);
            snprintf(families[nf++], sizeof(families[0]), "%s", typed);
            helped[0] = 0;
            continue;
        }
        if (strncmp(line, "# HELP ", 7) == 0) {
            assert_int_equal(strncmp(line + 7, typed, strlen(typed)), 0);
            assert_int_equal(line[7 + strlen(typed)], ' ');
            snprintf(helped, sizeof(helped), "%s", typed);
            continue;
        }
        assert_true(line[0] != '#');
        /* name{labels} value */
        char *brace = strchr(line, '{'), *close = strrchr(line, '}');
        assert_non_null(brace);
        assert_non_null(close);
        assert_true(metric_name_ok(line, (size_t)(brace - line)));
        assert_int_equal((size_t)(brace - line), strlen(typed));
        assert_int_equal(strncmp(line, typed, strlen(typed)), 0);
        assert_string_equal(helped, typed);
        assert_int_equal(close[1], ' ');
        char *end;
        long long v = strtoll(close + 2, &end, 10);
        assert_int_equal(*end, 0);
        /* labels: name="value" pairs, escapes only \\ \" \n */
        for (char *p = brace + 1; p < close;) {
            char *eq = strchr(p, '=');
            assert_non_null(eq);
            assert_true(metric_name_ok(p, (size_t)(eq - p)));
            assert_int_equal(eq[1], '"');
            char *q = eq + 2;
            while (*q != '"') {
                if (*q == '\\') {
                    assert_non_null(strchr("\\\"n", q[1]));
                    q++;
                }
                q++;
            }
            p = q + 1;
            if (*p == ',')
                p++;
        }
        if (strncmp(line, want, strlen(want)) == 0 && close == line + strlen(want) - 1) {
            *found = true;
            value = v;
        }
    }
    assert_true(eof);
    return value;
}

static void test_openmetrics(void **state)
{
    (void)state;
    pid_t w[2];
    start_writers(w, 2, 0.2);
    int st;
    char args[256];
    snprintf(args, sizeof(args), "--openmetrics %s", n);
    char want[256];
    snprintf(want, sizeof(want), "percpu_requests{region=\"%s\"}", n);
    bool found;
    int st0 = 0;
    pid_t reaped = 0;
    do {
        char *out = run_stat(args, &st);
        assert_int_equal(st, 0);
        (void)om_check(out, want, &found);
        assert_true(found);
        free(out);
    } while ((reaped = waitpid(w[0], &st0, WNOHANG)) == 0);
    assert_int_equal(reaped, w[0]);
    assert_true(WIFEXITED(st0) && WEXITSTATUS(st0) == 0);
    assert_int_equal(rt_wait(w[1]), 0);

    char *out = run_stat(args, &st);
    assert_int_equal(st, 0);
    char *copy = strdup(out);
    assert_int_equal(om_check(copy, want, &found), pcpu_sum(requests));
    assert_true(found);
    for (unsigned int c = 0; c < pcpu_nr_cpus(); c++) {
        strcpy(copy, out);
        snprintf(want, sizeof(want), "percpu_requests_cpu{region=\"%s\",cpu=\"%u\"}", n, c);
        assert_int_equal(om_check(copy, want, &found), *PCPU_PTR(requests, c));
        assert_true(found);
    }
    strcpy(copy, out);
    snprintf(want, sizeof(want), "percpu_pair{region=\"%s\",word=\"1\"}", n);
    assert_int_equal(om_check(copy, want, &found), pcpu_sum(&pair[1]));
    assert_true(found);
    /* "a.b" and "a-b": two families, the second with a suffix. */
    assert_non_null(strstr(out, "# TYPE percpu_a_b gauge\n"));
    assert_non_null(strstr(out, "# TYPE percpu_a_b_7 gauge\n"));
    assert_null(strstr(out, "percpu_blob")); /* no values */
    free(copy);
    free(out);
}

static void test_watch_and_errors(void **state)
{
    (void)state;
    int st;
    char args[256];
    snprintf(args, sizeof(args), "-w 0.05 -n 3 %s", n);
    char *out = run_stat(args, &st);
    assert_int_equal(st, 0);
    int heads = 0;
    for (char *p = out; (p = strstr(p, "region ")); p++)
        heads++;
    assert_int_equal(heads, 3);
    assert_non_null(strstr(out, "RATE/s"));
    assert_non_null(strstr(out, "requests"));
    free(out);
    out = run_stat("/pcpu-test-no-such-region", &st);
    assert_int_equal(st, 1);
    assert_non_null(strstr(out, "No such file"));
    free(out);
    out = run_stat("", &st);
    assert_int_equal(st, 2);
    free(out);
    for (const char *const *w = (const char *const[]){"inf", "nan", "1e30", "-1", NULL}; *w;
         w++) {
        char bad[64];
        snprintf(bad, sizeof(bad), "-w %s %s", *w, n); /* would never sleep */
        free(run_stat(bad, &st));
        assert_int_equal(st, 2);
    }
    out = run_stat("-w x /a", &st);
    assert_int_equal(st, 2);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_openmetrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watch_and_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
