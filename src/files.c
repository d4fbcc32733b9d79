/* Inputs opened without blocking, the output guard and temporary files: see tenpak/files.h. */
#include "tenpak/files.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- inputs and claimed outputs ---- */
typedef struct known_file {
    char *path;  /* as given */
    char *norm;  /* claims: the absolute path it names (resolved directory + name) */
    char *flag;  /* claims: the option that named it */
    dev_t dev;
    ino_t ino;
    int exists;  /* dev/ino valid */
} known_file;

static pthread_mutex_t guard_mu = PTHREAD_MUTEX_INITIALIZER;
static int guard_on;
static known_file *inputs, *claims;
static size_t ninputs, nclaims, cap_inputs, cap_claims;

void tp_files_guard_enable(void) {
    pthread_mutex_lock(&guard_mu);
    guard_on = 1;
    pthread_mutex_unlock(&guard_mu);
}

static void free_list(known_file *l, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(l[i].path);
        free(l[i].norm);
        free(l[i].flag);
    }
}

void tp_files_guard_reset(void) {
    pthread_mutex_lock(&guard_mu);
    free_list(inputs, ninputs);
    free_list(claims, nclaims);
    free(inputs);
    free(claims);
    inputs = claims = NULL;
    ninputs = nclaims = cap_inputs = cap_claims = 0;
    pthread_mutex_unlock(&guard_mu);
}

/* the absolute path a (possibly not yet existing) file name refers to: its directory resolved */
static char *normalize(const char *path) {
    char *r = realpath(path, NULL);
    if (r) return r;
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
    const char *base = slash ? slash + 1 : path;
    char *rd = dir ? realpath(dir, NULL) : NULL;
    free(dir);
    if (!rd) return strdup(path);
    size_t n = strlen(rd) + strlen(base) + 2;
    char *out = malloc(n);
    if (out) snprintf(out, n, "%s%s%s", rd, strcmp(rd, "/") ? "/" : "", base);
    free(rd);
    return out;
}

/* k still names the file it named when it was recorded (a deleted input whose inode number was
 * reused by a new file is no longer that input) */
static int still_same(const known_file *k, const struct stat *st) {
    struct stat now;
    return k->exists && k->dev == st->st_dev && k->ino == st->st_ino && stat(k->path, &now) == 0 &&
           now.st_dev == k->dev && now.st_ino == k->ino;
}

static int append(known_file **l, size_t *n, size_t *cap, known_file f) {
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 16;
        known_file *nl = realloc(*l, c * sizeof *nl);
        if (!nl) return 0;
        *l = nl;
        *cap = c;
    }
    (*l)[(*n)++] = f;
    return 1;
}

/* the claim naming the same file as path (st: its stat, or NULL when it does not exist) */
static const known_file *find_claim(const char *norm, const struct stat *st) {
    for (size_t i = 0; i < nclaims; i++) {
        if (norm && claims[i].norm && !strcmp(claims[i].norm, norm)) return &claims[i];
        if (st) {
            struct stat cs;
            if (stat(claims[i].path, &cs) == 0 && cs.st_dev == st->st_dev && cs.st_ino == st->st_ino) return &claims[i];
        }
    }
    return NULL;
}

/* refuses output path (flag names it) when it is the same file as a remembered input; locked */
static tp_status check_against_inputs(const char *flag, const char *path, const struct stat *st, tp_err *e) {
    for (size_t i = 0; st && i < ninputs; i++)
        if (still_same(&inputs[i], st))
            return tp_fail(e, TP_ERR_ARG, "%s %s is the same file as the input %s: refusing to overwrite an input", flag,
                           path, inputs[i].path);
    return TP_OK;
}

tp_status tp_output_claim(const char *flag, const char *path, tp_err *e) {
    pthread_mutex_lock(&guard_mu);
    tp_status s = TP_OK;
    if (!guard_on) goto done;
    struct stat st;
    int exists = stat(path, &st) == 0;
    char *norm = normalize(path);
    if ((s = check_against_inputs(flag, path, exists ? &st : NULL, e)) != TP_OK) { free(norm); goto done; }
    const known_file *c = find_claim(norm, exists ? &st : NULL);
    if (c) {
        s = tp_fail(e, TP_ERR_ARG, "%s %s is the same file as %s %s: refusing to write one over the other", flag, path,
                    c->flag, c->path);
        free(norm);
        goto done;
    }
    known_file k = {strdup(path), norm, strdup(flag), exists ? st.st_dev : 0, exists ? st.st_ino : 0, exists};
    if (!k.path || !k.norm || !k.flag || !append(&claims, &nclaims, &cap_claims, k)) {
        free(k.path); free(k.norm); free(k.flag);
        s = tp_fail(e, TP_ERR_NOMEM, "out of memory");
    }
done:
    pthread_mutex_unlock(&guard_mu);
    return s;
}

tp_status tp_output_check(const char *path, tp_err *e) {
    pthread_mutex_lock(&guard_mu);
    tp_status s = TP_OK;
    struct stat st;
    if (guard_on && ninputs && stat(path, &st) == 0) {
        char *norm = normalize(path);
        const known_file *c = find_claim(norm, &st);
        free(norm);
        s = check_against_inputs(c ? c->flag : "output", path, &st, e);
    }
    pthread_mutex_unlock(&guard_mu);
    return s;
}

int tp_open_input(const char *path, size_t *size, tp_err *e) {
    /* O_NONBLOCK: opening a FIFO without a writer would otherwise wait for ever */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        tp_fail(e, TP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    int fl;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        tp_fail(e, TP_ERR_IO, "%s: not a regular file", path);
        return -1;
    }
    if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
        tp_fail(e, TP_ERR_IO, "%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    pthread_mutex_lock(&guard_mu);
    int ok = 1;
    if (guard_on) {
        const known_file *c = find_claim(NULL, &st);
        if (c) {
            tp_fail(e, TP_ERR_ARG, "%s %s is the same file as the input %s: refusing to overwrite an input", c->flag,
                    c->path, path);
            ok = 0;
        }
        int seen = 0;
        for (size_t i = 0; ok && i < ninputs && !seen; i++) seen = inputs[i].dev == st.st_dev && inputs[i].ino == st.st_ino;
        if (ok && !seen) {
            known_file k = {strdup(path), NULL, NULL, st.st_dev, st.st_ino, 1};
            if (!k.path || !append(&inputs, &ninputs, &cap_inputs, k)) {
                free(k.path);
                tp_fail(e, TP_ERR_NOMEM, "out of memory");
                ok = 0;
            }
        }
    }
    pthread_mutex_unlock(&guard_mu);
    if (!ok) {
        close(fd);
        return -1;
    }
    if (size) *size = (size_t)st.st_size;
    return fd;
}

/* ---- temporary files, removed on SIGINT / SIGTERM / SIGHUP ---- */
#define TMP_SLOTS 64
static char *_Atomic tmp_slot[TMP_SLOTS];
static _Atomic pid_t tmp_pid[TMP_SLOTS]; /* the process that made it (a forked child must not remove it) */
static const int fatal_signals[] = {SIGINT, SIGTERM, SIGHUP};

static void on_fatal_signal(int sig) {
    int saved = errno;
    pid_t me = getpid();
    for (int i = 0; i < TMP_SLOTS; i++) {
        char *p = atomic_load(&tmp_slot[i]);
        if (p && atomic_load(&tmp_pid[i]) == me) unlink(p);
    }
    errno = saved;
    raise(sig); /* SA_RESETHAND restored the default action: the signal ends the process as it would have */
}

static void install_handlers(void) {
    for (size_t i = 0; i < sizeof fatal_signals / sizeof fatal_signals[0]; i++) {
        struct sigaction old, sa;
        if (sigaction(fatal_signals[i], NULL, &old) != 0 || old.sa_handler != SIG_DFL) continue; /* ignored or taken */
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_fatal_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESETHAND;
        sigaction(fatal_signals[i], &sa, NULL);
    }
}

static pthread_once_t handlers_once = PTHREAD_ONCE_INIT;

/* called with signals blocked, so the handler never sees a slot without its owner */
static int tmp_register(char *p) {
    pthread_once(&handlers_once, install_handlers);
    for (int i = 0; i < TMP_SLOTS; i++) {
        char *expect = NULL;
        if (atomic_compare_exchange_strong(&tmp_slot[i], &expect, p)) {
            atomic_store(&tmp_pid[i], getpid());
            return 1;
        }
    }
    return 0;
}

static void tmp_unregister(char *p) {
    for (int i = 0; i < TMP_SLOTS; i++) {
        char *expect = p;
        if (atomic_compare_exchange_strong(&tmp_slot[i], &expect, NULL)) return;
    }
}

tp_status tp_tmp_open(const char *path, int *fd, char **tmp, tp_err *e) {
    *tmp = NULL;
    *fd = -1;
    tp_status s = tp_output_check(path, e);
    if (s != TP_OK) return s;
    size_t pl = strlen(path);
    char *t = malloc(pl + 12);
    if (!t) return tp_fail(e, TP_ERR_NOMEM, "%s: out of memory", path);
    memcpy(t, path, pl);
    memcpy(t + pl, ".tmp.XXXXXX", 12);
    /* signals are held while the file is made and registered, so none can leave it behind */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int f = mkostemp(t, O_CLOEXEC);
    int err = errno, reg = f >= 0 && tmp_register(t);
    if (f >= 0 && !reg) {
        close(f);
        unlink(t);
        f = -1;
        err = EMFILE;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (f < 0) {
        free(t);
        return tp_fail(e, TP_ERR_IO, "%s: cannot create temporary file: %s", path, strerror(err));
    }
    *tmp = t;
    *fd = f;
    return TP_OK;
}

tp_status tp_tmp_commit(char *tmp, const char *path, tp_err *e) {
    tp_status s = TP_OK;
    if (rename(tmp, path) != 0) {
        s = tp_fail(e, TP_ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
        unlink(tmp);
    }
    tmp_unregister(tmp);
    free(tmp);
    return s;
}

void tp_tmp_discard(char *tmp) {
    if (!tmp) return;
    unlink(tmp);
    tmp_unregister(tmp);
    free(tmp);
}
