/* --json output of the sub-commands (cli/json_out.h). */
#include "cli/json_out.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

tp_status tp_cli_write_json(const char *path, const cJSON *o, int final_newline, tp_err *e) {
    char *text = cJSON_Print(o);
    if (!text) return tp_fail(e, TP_ERR_NOMEM, "out of memory");
    size_t n = strlen(text);
    if (final_newline) text[n++] = '\n'; /* cJSON_Print's NUL becomes the final newline */
    tp_status st = tp_write_file_atomic(path, text, n, e);
    free(text);
    return st;
}

int tp_cli_json_out(const char *cmd, const char *path, const cJSON *o) {
    tp_err e;
    if (tp_cli_write_json(path, o, 0, &e) == TP_OK) return 0;
    fprintf(stderr, "tenpak %s: %s\n", cmd, e.msg);
    return 1;
}
