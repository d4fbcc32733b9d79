/* Tiny option helpers for the sub-commands: --name VALUE and --name=VALUE. */
#ifndef TENPAK_CLI_ARGS_H
#define TENPAK_CLI_ARGS_H
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tenpak/files.h"

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
/* Strict number parsing: the whole string must be a decimal number of digits only (no sign,
 * space, 0x prefix or exponent: strtoull would take "-5" as 2^64 - 5), without overflow. */
static inline int tp_parse_u64(const char *s, unsigned long long *v) {
    unsigned long long x = 0;
    if (!s || !*s) return 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return 0;
        unsigned d = (unsigned)(*s - '0');
        if (x > (ULLONG_MAX - d) / 10) return 0;
        x = x * 10 + d;
    }
    *v = x;
    return 1;
}
/* The one integer-option parser: s must be a decimal integer in [min, max] (min >= 0). Otherwise
 * prints "tenpak CMD: FLAG needs an integer from MIN to MAX, got 'S'" and returns 0 (exit 2). */
static inline int tp_arg_int(const char *cmd, const char *flag, const char *s, long long min, long long max,
                             long long *out) {
    unsigned long long u;
    if (tp_parse_u64(s, &u) && u >= (unsigned long long)min && u <= (unsigned long long)max) {
        *out = (long long)u;
        return 1;
    }
    fprintf(stderr, "tenpak %s: %s needs an integer from %lld to %lld, got '%s'\n", cmd, flag, min, max, s ? s : "");
    return 0;
}
/* Declares an output file of the command (the output guard of tenpak/files.h: never the same
 * file as an input or another output). Returns 0 after printing the refusal (exit 2). */
static inline int tp_cli_output(const char *cmd, const char *flag, const char *path) {
    tp_err e;
    if (!path || tp_output_claim(flag, path, &e) == TP_OK) return 1;
    fprintf(stderr, "tenpak %s: %s\n", cmd, e.msg);
    return 0;
}
/* The tail of a command's argument loop for the commands that take IN OUT: arg is either an
 * unknown option or the next positional argument. Returns 1 when taken, 0 after printing why not
 * ("unknown option" / "unexpected argument"; exit 2). */
static inline int tp_cli_in_out(const char *cmd, const char *arg, const char **in, const char **out) {
    if (arg[0] == '-' && arg[1]) fprintf(stderr, "tenpak %s: unknown option '%s' (see --help)\n", cmd, arg);
    else if (!*in) *in = arg;
    else if (!*out) *out = arg;
    else fprintf(stderr, "tenpak %s: unexpected argument '%s'\n", cmd, arg);
    return *in == arg || *out == arg;
}
/* After the loop: both given, else the message (exit 2) and 0. */
static inline int tp_cli_have_in_out(const char *cmd, const char *in, const char *out) {
    if (in && out) return 1;
    fprintf(stderr, "tenpak %s: needs IN and OUT (see --help)\n", cmd);
    return 0;
}
static inline int tp_parse_double(const char *s, double *v) {
    char *end;
    if (!s || !*s) return 0;
    *v = strtod(s, &end);
    return *end == 0;
}
#endif
