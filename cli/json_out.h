/* The one way a sub-command writes its --json file: cJSON's formatted text, written through
 * tp_write_file_atomic (a temporary file renamed into place, checked by the output guard of
 * tenpak/files.h), so a failed or interrupted command leaves no partial file. */
#ifndef TENPAK_CLI_JSON_OUT_H
#define TENPAK_CLI_JSON_OUT_H

#include <cjson/cJSON.h>

#include "tenpak/tenpak.h"

/* Writes o to path; final_newline adds a '\n' after the text. On failure returns the status with
 * e->msg set ("out of memory" when the text could not be made). */
tp_status tp_cli_write_json(const char *path, const cJSON *o, int final_newline, tp_err *e);
/* The same, printing "tenpak CMD: MESSAGE" on failure; 0 on success, 1 on failure. */
int tp_cli_json_out(const char *cmd, const char *path, const cJSON *o);

#endif
