/* SPDX-License-Identifier: MIT */
/*
 * json_mini.h - a strict little JSON reader for tests that check a
 * program's JSON output (percpu-stat --json) without a dependency: it
 * rejects anything that is not JSON (RFC 8259: trailing commas, bare
 * words, control characters in strings, leading zeros, text after the
 * value) and gives a tree to look values up in.  Numbers are kept as the
 * 64-bit integers they must be here (a fraction or exponent fails).
 * Header-only; the tree is malloc()ed, json_free() frees it.
 */
#ifndef PCPU_JSON_MINI_H
#define PCPU_JSON_MINI_H

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum json_type { JSON_NULL, JSON_BOOL, JSON_INT, JSON_STRING, JSON_ARRAY, JSON_OBJECT };

struct json {
    enum json_type type;
    int64_t i;               /* JSON_INT, JSON_BOOL                      */
    char *s;                 /* JSON_STRING (decoded, NUL-terminated)    */
    size_t n;                /* JSON_ARRAY, JSON_OBJECT: elements        */
    char **keys;             /* JSON_OBJECT                              */
    struct json **v;         /* JSON_ARRAY, JSON_OBJECT                  */
};

struct json_in {
    const char *p, *end;
    int depth;
};

static void json_free(struct json *j)
{
    if (!j)
        return;
    for (size_t k = 0; k < j->n; k++) {
        json_free(j->v[k]);
        if (j->keys)
            free(j->keys[k]);
    }
    free(j->v);
    free(j->keys);
    free(j->s);
    free(j);
}

static void json_ws(struct json_in *in)
{
    while (in->p < in->end && (*in->p == ' ' || *in->p == '\t' || *in->p == '\n' || *in->p == '\r'))
        in->p++;
}

static struct json *json_value(struct json_in *in);

/* A string at in->p (the opening quote); NULL if malformed.  \u escapes
 * are decoded to UTF-8 (surrogates refused: not needed here). */
static char *json_string_raw(struct json_in *in)
{
    if (in->p >= in->end || *in->p != '"')
        return NULL;
    in->p++;
    size_t cap = 16, n = 0;
    char *out = malloc(cap);
    while (out && in->p < in->end && *in->p != '"') {
        unsigned char c = (unsigned char)*in->p++;
        unsigned int cp = c;
        if (c < 0x20)
            goto bad;
        if (c == '\\') {
            if (in->p >= in->end)
                goto bad;
            char e = *in->p++;
            const char *simple = strchr("\"\\/bfnrt", e);
            if (e && simple) {
                cp = (unsigned char)"\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
            } else if (e == 'u') {
                if (in->end - in->p < 4)
                    goto bad;
                cp = 0;
                for (int k = 0; k < 4; k++) {
                    char h = *in->p++;
                    if (!isxdigit((unsigned char)h))
                        goto bad;
                    cp = cp * 16 + (unsigned int)(isdigit((unsigned char)h) ? h - '0'
                                                                          : (h | 0x20) - 'a' + 10);
                }
                if (cp >= 0xd800 && cp < 0xe000)
                    goto bad;
            } else {
                goto bad;
            }
        }
        char buf[4];
        size_t len = 0;
        if (c == '\\' && cp >= 0x80) {
            if (cp < 0x800) {
                buf[len++] = (char)(0xc0 | (cp >> 6));
            } else {
                buf[len++] = (char)(0xe0 | (cp >> 12));
                buf[len++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            }
            buf[len++] = (char)(0x80 | (cp & 0x3f));
        } else {
            buf[len++] = (char)cp;
        }
        if (n + len + 1 > cap) {
            cap *= 2;
            char *o = realloc(out, cap);
            if (!o)
                goto bad;
            out = o;
        }
        memcpy(out + n, buf, len);
        n += len;
    }
    if (!out || in->p >= in->end)
        goto bad;
    in->p++;
    out[n] = 0;
    return out;
bad:
    free(out);
    return NULL;
}

static struct json *json_new(enum json_type t)
{
    struct json *j = calloc(1, sizeof(*j));
    if (j)
        j->type = t;
    return j;
}

static bool json_push(struct json *j, char *key, struct json *v)
{
    struct json **nv = realloc(j->v, (j->n + 1) * sizeof(*nv));
    if (!nv)
        return false;
    j->v = nv;
    if (j->type == JSON_OBJECT) {
        char **nk = realloc(j->keys, (j->n + 1) * sizeof(*nk));
        if (!nk)
            return false;
        j->keys = nk;
        j->keys[j->n] = key;
    }
    j->v[j->n++] = v;
    return true;
}

static struct json *json_container(struct json_in *in, bool object)
{
    struct json *j = json_new(object ? JSON_OBJECT : JSON_ARRAY);
    if (!j || ++in->depth > 64)
        goto bad;
    in->p++;
    json_ws(in);
    if (in->p < in->end && *in->p == (object ? '}' : ']')) {
        in->p++;
        in->depth--;
        return j;
    }
    for (;;) {
        char *key = NULL;
        json_ws(in);
        if (object) {
            key = json_string_raw(in);
            json_ws(in);
            if (!key || in->p >= in->end || *in->p != ':') {
                free(key);
                goto bad;
            }
            in->p++;
        }
        struct json *v = json_value(in);
        if (!v || !json_push(j, key, v)) {
            free(key);
            json_free(v);
            goto bad;
        }
        json_ws(in);
        if (in->p < in->end && *in->p == ',') {
            in->p++;
            continue;
        }
        if (in->p < in->end && *in->p == (object ? '}' : ']')) {
            in->p++;
            in->depth--;
            return j;
        }
        goto bad;
    }
bad:
    json_free(j);
    return NULL;
}

static struct json *json_value(struct json_in *in)
{
    json_ws(in);
    if (in->p >= in->end)
        return NULL;
    char c = *in->p;
    if (c == '{' || c == '[')
        return json_container(in, c == '{');
    if (c == '"') {
        struct json *j = json_new(JSON_STRING);
        if (j && !(j->s = json_string_raw(in))) {
            json_free(j);
            return NULL;
        }
        return j;
    }
    static const char *const words[] = {"null", "true", "false"};
    for (int k = 0; k < 3; k++) {
        size_t l = strlen(words[k]);
        if ((size_t)(in->end - in->p) >= l && memcmp(in->p, words[k], l) == 0) {
            in->p += l;
            struct json *j = json_new(k ? JSON_BOOL : JSON_NULL);
            if (j)
                j->i = k == 1;
            return j;
        }
    }
    const char *s = in->p;
    if (*s == '-')
        s++;
    if (s >= in->end || !isdigit((unsigned char)*s) || (*s == '0' && s + 1 < in->end && isdigit((unsigned char)s[1])))
        return NULL;
    char *end;
    errno = 0;
    long long v = strtoll(in->p, &end, 10);
    if (errno || end > in->end || (end < in->end && (*end == '.' || *end == 'e' || *end == 'E')))
        return NULL;
    in->p = end;
    struct json *j = json_new(JSON_INT);
    if (j)
        j->i = v;
    return j;
}

/* Parse text[0..len): the tree, or NULL unless it is exactly one JSON value
 * (with white space around). */
static struct json *json_parse(const char *text, size_t len)
{
    struct json_in in = {text, text + len, 0};
    struct json *j = json_value(&in);
    json_ws(&in);
    if (j && in.p != in.end) {
        json_free(j);
        return NULL;
    }
    return j;
}

/* obj[key], or NULL. */
static struct json *json_get(const struct json *j, const char *key)
{
    if (!j || j->type != JSON_OBJECT)
        return NULL;
    for (size_t k = 0; k < j->n; k++)
        if (strcmp(j->keys[k], key) == 0)
            return j->v[k];
    return NULL;
}

#endif
