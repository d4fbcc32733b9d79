/* Opening a command's files safely (src/files.c).
 *
 * Inputs: tp_open_input opens read-only without blocking and only a regular file (a FIFO, socket
 * or device is refused at once instead of being waited on), then puts the descriptor back in
 * blocking mode. tp_read_file, the safetensors and artifact readers and the text readers all open
 * through it.
 *
 * The output guard: in a process that turns it on (the CLI does, for its one command), every
 * input opened through tp_open_input is remembered by device and inode, and every output is
 * checked against them before anything is written: an output that is the same file as an input
 * (the same path, a hard link or a symbolic link to it) is refused with a message naming the
 * option and the file, so a command never destroys what it reads. tp_output_claim declares an
 * output when the options are parsed (its flag then names it in messages); it refuses a second
 * output naming the same file, and an input opened later that is a claimed output is refused
 * when it is opened, before any work.
 *
 * Temporary files: every file is written to PATH.tmp.XXXXXX and renamed into place when complete.
 * Live temporary paths are registered; SIGINT, SIGTERM and SIGHUP remove them (the handler then
 * lets the signal end the process as it would have), and every failure path removes its own, so
 * an interrupted or failed command leaves nothing behind (SIGKILL aside). */
#ifndef TENPAK_FILES_H
#define TENPAK_FILES_H

#include <stddef.h>

#include "tenpak/tenpak.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A read-only descriptor of the regular file at path (O_CLOEXEC), or -1 with e set; *size (if
 * non-NULL) gets its size. Noted as an input when the guard is on; refused if it is a claimed
 * output. */
int tp_open_input(const char *path, size_t *size, tp_err *e);

/* Turns the guard on (off by default: a library caller or a test suite writing and re-reading
 * its own files is not one command). tp_files_guard_reset forgets every input and claim. */
void tp_files_guard_enable(void);
void tp_files_guard_reset(void);

/* Declares an output of the command, named by flag ("--json", "OUT") in messages. Refused (e set)
 * when it is the same file as an input already opened or another claimed output. A no-op that
 * succeeds while the guard is off. */
tp_status tp_output_claim(const char *flag, const char *path, tp_err *e);
/* The check every writer makes before creating its temporary file. */
tp_status tp_output_check(const char *path, tp_err *e);

/* Creates path.tmp.XXXXXX (after tp_output_check) and registers it: *fd its descriptor, *tmp its
 * name (malloc'd; give it to tp_tmp_commit or tp_tmp_discard). */
tp_status tp_tmp_open(const char *path, int *fd, char **tmp, tp_err *e);
/* Renames *tmp to path, then unregisters and frees it (on failure the temporary file is removed). */
tp_status tp_tmp_commit(char *tmp, const char *path, tp_err *e);
/* Removes the temporary file, unregisters and frees it (NULL: nothing). */
void tp_tmp_discard(char *tmp);

#ifdef __cplusplus
}
#endif
#endif
