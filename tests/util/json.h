/* A small JSON reader for the golden files (tests only). Numbers are parsed
 * with strtod, so values written with Python's repr round-trip exactly. */
#ifndef LCX_TEST_JSON_H
#define LCX_TEST_JSON_H

#include <stddef.h>

typedef enum { LCX_J_NULL, LCX_J_BOOL, LCX_J_NUM, LCX_J_STR, LCX_J_ARR, LCX_J_OBJ } lcx_jtype;

typedef struct lcx_json {
    lcx_jtype type;
    double num;               /* NUM, BOOL (0/1) */
    char *str;                /* STR */
    struct lcx_json *items;   /* ARR elements, OBJ values */
    char **keys;              /* OBJ keys */
    size_t n;
} lcx_json;

/* Parse a file; NULL (with a message on stderr) if it cannot be read or parsed. */
lcx_json *lcx_json_load(const char *path);
/* A golden reference file by name, from $LONGCTX_GOLDEN_DIR (the build sets
 * it) or ../shared/golden; NULL if absent. */
lcx_json *lcx_golden_load(const char *name);
void lcx_json_free(lcx_json *j);
/* Member of an object, or NULL. */
const lcx_json *lcx_json_get(const lcx_json *obj, const char *key);
/* Number member (NaN if absent or not a number). */
double lcx_json_num(const lcx_json *obj, const char *key);
/* Copy an array of numbers into out (up to cap); returns the count copied. */
size_t lcx_json_nums(const lcx_json *arr, double *out, size_t cap);

#endif
