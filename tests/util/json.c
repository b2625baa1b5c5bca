#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct { const char *p, *end; int err; } lcx_jp;

static void ws(lcx_jp *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static int parse(lcx_jp *s, lcx_json *out, int depth);

static char *parse_str(lcx_jp *s)
{
    /* s->p at the opening quote; escapes other than \" \\ \/ \n \t kept raw */
    const char *q = ++s->p;
    size_t len = 0;
    while (q < s->end && *q != '"') {
        if (*q == '\\')
            q++;
        q++;
        len++;
    }
    if (q >= s->end) {
        s->err = 1;
        return NULL;
    }
    char *r = malloc(len + 1), *w = r;
    while (s->p < q) {
        char ch = *s->p++;
        if (ch == '\\') {
            ch = *s->p++;
            ch = ch == 'n' ? '\n' : ch == 't' ? '\t' : ch;
        }
        *w++ = ch;
    }
    *w = 0;
    s->p = q + 1;
    return r;
}

static int parse(lcx_jp *s, lcx_json *out, int depth)
{
    memset(out, 0, sizeof *out);
    ws(s);
    if (s->p >= s->end || depth > 64)
        return -1;
    const char ch = *s->p;
    if (ch == '{' || ch == '[') {
        const int obj = ch == '{';
        out->type = obj ? LCX_J_OBJ : LCX_J_ARR;
        s->p++;
        size_t cap = 0;
        ws(s);
        if (s->p < s->end && *s->p == (obj ? '}' : ']')) {
            s->p++;
            return 0;
        }
        for (;;) {
            if (out->n == cap) {
                cap = cap ? cap * 2 : 8;
                out->items = realloc(out->items, cap * sizeof *out->items);
                if (obj)
                    out->keys = realloc(out->keys, cap * sizeof *out->keys);
            }
            if (obj) {
                ws(s);
                if (s->p >= s->end || *s->p != '"')
                    return -1;
                out->keys[out->n] = parse_str(s);
                ws(s);
                if (s->err || s->p >= s->end || *s->p != ':')
                    return -1;
                s->p++;
            }
            if (parse(s, &out->items[out->n], depth + 1) != 0)
                return -1;
            out->n++;
            ws(s);
            if (s->p < s->end && *s->p == ',') {
                s->p++;
                continue;
            }
            if (s->p < s->end && *s->p == (obj ? '}' : ']')) {
                s->p++;
                return 0;
            }
            return -1;
        }
    }
    if (ch == '"') {
        out->type = LCX_J_STR;
        out->str = parse_str(s);
        return s->err ? -1 : 0;
    }
    if (!strncmp(s->p, "null", 4)) {
        s->p += 4;
        out->type = LCX_J_NULL;
        return 0;
    }
    if (!strncmp(s->p, "true", 4) || !strncmp(s->p, "false", 5)) {
        out->type = LCX_J_BOOL;
        out->num = s->p[0] == 't';
        s->p += s->p[0] == 't' ? 4 : 5;
        return 0;
    }
    if (!strncmp(s->p, "NaN", 3)) {
        s->p += 3;
        out->type = LCX_J_NUM;
        out->num = NAN;
        return 0;
    }
    char *e;
    out->num = strtod(s->p, &e);
    if (e == s->p)
        return -1;
    out->type = LCX_J_NUM;
    s->p = e;
    return 0;
}

lcx_json *lcx_json_load(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "json: cannot open %s\n", path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    const long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (size < 0) {
        fclose(f);
        fprintf(stderr, "json: cannot size %s\n", path);
        return NULL;
    }
    char *buf = malloc((size_t)size + 1);
    if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    buf[size] = 0;
    lcx_jp s = {buf, buf + size, 0};
    lcx_json *j = malloc(sizeof *j);
    if (parse(&s, j, 0) != 0) {
        fprintf(stderr, "json: parse error in %s at byte %ld\n", path, (long)(s.p - buf));
        lcx_json_free(j);
        j = NULL;
    }
    free(buf);
    return j;
}

static void free_inner(lcx_json *j)
{
    for (size_t i = 0; i < j->n; i++) {
        free_inner(&j->items[i]);
        if (j->keys)
            free(j->keys[i]);
    }
    free(j->items);
    free(j->keys);
    free(j->str);
}

void lcx_json_free(lcx_json *j)
{
    if (!j)
        return;
    free_inner(j);
    free(j);
}

const lcx_json *lcx_json_get(const lcx_json *obj, const char *key)
{
    if (!obj || obj->type != LCX_J_OBJ)
        return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (!strcmp(obj->keys[i], key))
            return &obj->items[i];
    return NULL;
}

double lcx_json_num(const lcx_json *obj, const char *key)
{
    const lcx_json *v = lcx_json_get(obj, key);
    return v && (v->type == LCX_J_NUM || v->type == LCX_J_BOOL) ? v->num : NAN;
}

size_t lcx_json_nums(const lcx_json *arr, double *out, size_t cap)
{
    if (!arr || arr->type != LCX_J_ARR)
        return 0;
    size_t n = arr->n < cap ? arr->n : cap;
    for (size_t i = 0; i < n; i++)
        out[i] = arr->items[i].num;
    return n;
}

lcx_json *lcx_golden_load(const char *name)
{
    const char *dir = getenv("LONGCTX_GOLDEN_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir ? dir : "../shared/golden", name);
    return lcx_json_load(path);
}
