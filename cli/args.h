/* Tiny option helpers for the sub-commands: --name VALUE and --name=VALUE. */
#ifndef TENPAK_CLI_ARGS_H
#define TENPAK_CLI_ARGS_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* If argv[*i] is --name (taking the next argument) or --name=VALUE, sets *val and returns 1.
 * A missing value prints an error and exits 2. */
static inline int tp_arg(int argc, char **argv, int *i, const char *name, const char **val) {
    size_t n = strlen(name);
    if (strncmp(argv[*i], name, n) != 0) return 0;
    if (argv[*i][n] == '=') { *val = argv[*i] + n + 1; return 1; }
    if (argv[*i][n] != 0) return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "tenpak: option %s needs a value\n", name);
        exit(2);
    }
    *val = argv[++*i];
    return 1;
}
static inline int tp_flag(char **argv, int i, const char *name) { return strcmp(argv[i], name) == 0; }
/* Strict number parsing: the whole string must be a number. */
static inline int tp_parse_u64(const char *s, unsigned long long *v) {
    char *end;
    if (!s || !*s) return 0;
    *v = strtoull(s, &end, 10);
    return *end == 0;
}
static inline int tp_parse_double(const char *s, double *v) {
    char *end;
    if (!s || !*s) return 0;
    *v = strtod(s, &end);
    return *end == 0;
}
#endif
