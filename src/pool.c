/* The process's persistent worker pool (tenpak.h, tp_pool_run).
 *
 * Workers are created once, on first use, and live until exit. A run publishes a job (fn, ctx,
 * ntasks) under a new generation number, its tasks cut into one contiguous segment a thread; each
 * thread claims its own segment's tasks in order, then the last tasks of the others' segments until
 * none is left, so a worker that the OS has descheduled (another process on the core) holds up only
 * the task it claimed, never a fixed share of the work. The segments keep a thread's tasks
 * neighbours in memory: with one shared counter the two threads took alternate 64-row tasks of a
 * GEMV, each core's prefetchers restarted at every task and its software prefetches ran into the
 * other core's rows (TinyLlama-shaped int4 decode, 2-vCPU Zen 4, alternating binaries: 43-48 tok/s
 * with the counter, 52-63 with segments; 2 threads on 40 matrices of 5632x2048 26 GB/s where 1
 * thread made 24). Which thread runs a task never changes what the task computes: a kernel that
 * splits its work into tasks by a rule of the problem's size alone gives the same bits at any
 * thread count.
 *
 * Idle workers spin for SPIN_NS (200 us, by the clock, with a pause in the loop), then sleep on a
 * condition variable, so a pool left waiting costs no CPU that another process could use. The
 * spin covers the serial stretches of a decoding step (norms, attention, a VQ table); before a
 * call into a library with threads of its own (OpenBLAS's sgemm) the caller sends the spinning
 * workers to sleep at once (tp_pool_nap), so they do not take a core from that library's threads.
 * On a shared machine the spin gives way: the caller spins only 10 us for the workers still in a
 * run, and when it had to wait more than 2 ms for one (a worker that another process took off
 * its core: a time slice) the workers sleep between runs for the next 100 ms, as does a worker that finds itself
 * preempted by another process while spinning, three times within 10 ms (a gap in its clock reads
 * with an involuntary context switch: see preempted_by_process; a VM's own pauses and the odd
 * kernel thread are not a busy neighbour) (ci/busy_core_check.sh: 2 threads beside a busy process at 0.74-0.96x
 * the time of 1 thread; spinning throughout, 1.07-1.20x). The spin: with the
 * earlier 20000 polls (about 5 us) the workers slept between most kernels of a token and each run
 * paid a futex wake-up; llama-mini decode, idle Zen 4: tenpakx 341 -> 441 tok/s, vq d8+int4
 * 557 -> 720, int4 g128 2124 -> 2303. A run from inside a task (nesting) executes serially in the calling thread. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

#include "tenpak/tenpak.h"

#define SPIN_NS 200000L /* spin this long before sleeping */

static long long mono_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Spins while *a == v (for the workers: no new run) or *a > 0 (for the caller: workers still
 * in the run), at most SPIN_NS; the clock is read every 64 polls. */
static atomic_uint nap; /* bumped by tp_pool_nap: spinning workers go to sleep */

/* A spinning thread that finds a gap of more than PREEMPT_NS between two clock reads was taken
 * off its core by another process: it then sleeps instead of spinning for the next QUIET_NS.
 * On a core shared with a busy process a spinning worker claims tasks the moment it runs and is
 * then descheduled in the middle of one, where a sleeping worker is woken at a run's start with
 * the scheduler's favour for sleepers (ci/busy_core_check.sh: with the spin alone, 2 threads took
 * 1.07-1.20x the time of 1 beside a busy process). */
#define PREEMPT_NS 50000LL
#define QUIET_NS 100000000LL
static _Thread_local long long quiet_until;
/* A gap is a preemption by another process of this machine only when the thread's involuntary
 * context switches went up across it, and a process that keeps the core busy preempts again and
 * again: quiet mode starts at the third such gap within PREEMPT_WINDOW_NS. A virtual CPU also stops
 * for other reasons, and kernel threads (kworkers, kdamond) preempt now and then; sleeping helps
 * neither. On a 2-vCPU KVM guest (Intel Xeon, 2026-12-06) that reports no steal time, a thread
 * spinning alone on an idle guest saw 50-60 gaps over 50 us a second, 5-10 of them with a context
 * switch, so every worker found a gap within ~20 ms of spinning and the pool slept between runs
 * nearly all the time, each run paying a futex wake-up. Alternating binaries there, 2 threads:
 * llama-mini decode tenpakx 409-420 -> 556-565 tok/s, int4 g128 1470-1502 -> 1947-1970,
 * TinyLlama-shaped int4 g128 34.7-36.5 -> 34.3-38.0; ci/busy_core_check.sh 6 of 6 runs within its
 * bound (the old test 6 of 6 in the same hour). A single switched gap over 400 us instead of three
 * in 10 ms decoded as fast but failed busy_core_check in 2 of 4 runs; no quiet mode at all was
 * slower on this host type under memory-bandwidth load (the previous session's alternating runs).
 * getrusage is a system call, made only after a gap. */
#define PREEMPT_WINDOW_NS 10000000LL
static _Thread_local long nivcsw_seen = -1;
static _Thread_local long long preempt_at[2];
static int preempted_by_process(long long t) {
    struct rusage ru;
    if (getrusage(RUSAGE_THREAD, &ru) != 0) return 1; /* cannot tell: as before, a preemption */
    const int switched = nivcsw_seen >= 0 && ru.ru_nivcsw != nivcsw_seen;
    nivcsw_seen = ru.ru_nivcsw;
    if (!switched) return 0;
    const int third = preempt_at[1] && t - preempt_at[1] < PREEMPT_WINDOW_NS;
    preempt_at[1] = preempt_at[0];
    preempt_at[0] = t;
    return third;
}
#define CONTENDED_NS 2000000LL
static atomic_llong contended_until; /* set by the caller after a long wait for a worker */

static void spin_while_eq(atomic_uint *a, unsigned v) {
    long long end = 0, prev = 0;
    const unsigned n0 = atomic_load_explicit(&nap, memory_order_relaxed);
    if (quiet_until || atomic_load_explicit(&contended_until, memory_order_relaxed)) {
        const long long t = mono_ns();
        if (t < quiet_until || t < atomic_load_explicit(&contended_until, memory_order_relaxed)) return;
    }
    for (unsigned i = 1; atomic_load_explicit(a, memory_order_acquire) == v; i++) {
        if (atomic_load_explicit(&nap, memory_order_relaxed) != n0) return;
        CPU_RELAX();
        if (i % 64 == 0) {
            long long t = mono_ns();
            if (prev && t - prev > PREEMPT_NS && preempted_by_process(t)) {
                quiet_until = t + QUIET_NS;
                return;
            }
            prev = t;
            if (!end) end = t + SPIN_NS;
            else if (t > end) return;
        }
    }
}
/* The caller waiting for the workers still in a run spins only CALLER_SPIN_NS: then it sleeps, so
 * its core goes idle and the scheduler can move a worker that another process took off the other
 * core (with a task claimed) onto it. Spinning as long as the idle workers do kept that core busy:
 * ci/busy_core_check.sh measured 2 threads at 1.11-1.20x the time of 1 beside a busy process. */
#define CALLER_SPIN_NS 10000LL
static void spin_while_pos(atomic_int *a) {
    long long end = 0;
    for (unsigned i = 1; atomic_load_explicit(a, memory_order_acquire) > 0; i++) {
        CPU_RELAX();
        if (i % 64 == 0) {
            long long t = mono_ns();
            if (!end) end = t + CALLER_SPIN_NS;
            else if (t > end) return;
        }
    }
}
#define MAX_WORKERS 63

/* The protocol. A run's fields (fn, ctx, ntasks) change only while no worker is inside a run
 * (active == 0) and the run is closed, under mu. A worker joins the open run under mu (active++),
 * claims tasks without the lock, and leaves under mu (active--); the caller closes the run when it
 * has no task left to claim and returns only when every task is done and every joined worker has
 * left, so no worker ever sees the fields of two runs. */
typedef struct pool {
    pthread_mutex_t mu;
    pthread_cond_t wake, idle;
    atomic_uint gen; /* bumped when a run opens */
    int open;        /* under mu */
    void (*fn)(void *, int, int);
    void *ctx;
    int ntasks;
    atomic_int active; /* workers inside the run */
    int nworkers;
} pool;

static pool P = {.mu = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .idle = PTHREAD_COND_INITIALIZER};
/* Workers belong to the process that made them: a forked child (bench-model's rows, test
 * runners) has none, so each process starts its own on its first run. pthread_atfork keeps the
 * locks consistent across a fork made while no run is in progress. */
static atomic_int started; /* workers made in this process (a forked child's handler clears it) */
static pthread_mutex_t start_mu = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local int in_task;
static pthread_mutex_t run_mu = PTHREAD_MUTEX_INITIALIZER; /* one run at a time */

/* A run's tasks in contiguous segments, one a participant (the caller 0, worker i: i), each a
 * (front, end) pair in one 64-bit word. A participant claims its own segment from the front, so
 * the tasks one thread runs are neighbours (a kernel's rows in order: one stream for the core's
 * prefetchers), and when it is empty takes the last task of another's, which leaves that owner's
 * stream intact. Outside P: the claims' compare-and-swaps stay off the cache lines of gen and
 * active, which idle workers and the caller poll. */
static atomic_ullong seg[MAX_WORKERS + 1];
static int nseg; /* under P.mu, before the run opens */
static _Thread_local int my_seg;

static int claim_front(int s) {
    unsigned long long v = atomic_load_explicit(&seg[s], memory_order_relaxed);
    for (;;) {
        const unsigned f = (unsigned)v, e = (unsigned)(v >> 32);
        if (f >= e) return -1;
        if (atomic_compare_exchange_weak(&seg[s], &v, v + 1)) return (int)f;
    }
}
static int claim_back(int s) {
    unsigned long long v = atomic_load_explicit(&seg[s], memory_order_relaxed);
    for (;;) {
        const unsigned f = (unsigned)v, e = (unsigned)(v >> 32);
        if (f >= e) return -1;
        if (atomic_compare_exchange_weak(&seg[s], &v, (unsigned long long)(e - 1) << 32 | f)) return (int)(e - 1);
    }
}

static void claim_all(void) {
    const int n = P.ntasks, ns = nseg, me = my_seg; /* me >= ns: a run of fewer tasks than threads */
    for (;;) {
        int i = me < ns ? claim_front(me) : -1;
        for (int k = 1; i < 0 && k <= ns; k++) i = claim_back((me + k) % ns);
        if (i < 0) return;
        P.fn(P.ctx, i, n);
    }
}

static void *worker(void *arg) {
    my_seg = (int)(intptr_t)arg;
    in_task = 1;
    unsigned seen = atomic_load(&P.gen);
    for (;;) {
        spin_while_eq(&P.gen, seen);
        pthread_mutex_lock(&P.mu);
        while (atomic_load(&P.gen) == seen) pthread_cond_wait(&P.wake, &P.mu);
        seen = atomic_load(&P.gen);
        int join = P.open;
        if (join) atomic_fetch_add(&P.active, 1);
        pthread_mutex_unlock(&P.mu);
        if (!join) continue; /* that run closed before this worker came: nothing of it is left */
        claim_all();
        pthread_mutex_lock(&P.mu);
        if (atomic_fetch_sub(&P.active, 1) == 1) pthread_cond_broadcast(&P.idle);
        pthread_mutex_unlock(&P.mu);
    }
    return NULL;
}

static void fork_prepare(void) { pthread_mutex_lock(&run_mu); pthread_mutex_lock(&P.mu); }
static void fork_parent(void) { pthread_mutex_unlock(&P.mu); pthread_mutex_unlock(&run_mu); }
static void fork_child(void) {
    P.nworkers = 0;
    atomic_store(&P.active, 0);
    atomic_store(&started, 0);
    fork_parent();
}

static void start(void) {
    static int atfork;
    if (!atfork) atfork = pthread_atfork(fork_prepare, fork_parent, fork_child) == 0;
    P.nworkers = 0;
    /* without the fork handlers a child could not tell it has no workers: stay serial then */
    int n = atfork ? tp_num_threads() - 1 : 0;
    if (n > MAX_WORKERS) n = MAX_WORKERS;
    for (int i = 0; i < n; i++) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, worker, (void *)(intptr_t)(P.nworkers + 1)) == 0) P.nworkers++;
        pthread_attr_destroy(&a);
    }
}

/* once per process, without a lock or a system call on the way of every run */
static void ensure_started(void) {
    if (atomic_load_explicit(&started, memory_order_acquire)) return;
    pthread_mutex_lock(&start_mu);
    if (!atomic_load(&started)) {
        start();
        atomic_store_explicit(&started, 1, memory_order_release);
    }
    pthread_mutex_unlock(&start_mu);
}

void tp_pool_nap(void) { atomic_fetch_add_explicit(&nap, 1, memory_order_relaxed); }

int tp_pool_threads(void) {
    ensure_started();
    return P.nworkers + 1;
}

void tp_pool_run(int ntasks, void (*fn)(void *ctx, int task, int ntasks), void *ctx) {
    if (ntasks <= 0) return;
    if (ntasks == 1 || in_task) {
        for (int i = 0; i < ntasks; i++) fn(ctx, i, ntasks);
        return;
    }
    ensure_started();
    if (!P.nworkers) {
        for (int i = 0; i < ntasks; i++) fn(ctx, i, ntasks);
        return;
    }
    pthread_mutex_lock(&run_mu);
    pthread_mutex_lock(&P.mu);
    P.fn = fn;
    P.ctx = ctx;
    P.ntasks = ntasks;
    nseg = P.nworkers + 1 < ntasks ? P.nworkers + 1 : ntasks;
    for (int i = 0; i < nseg; i++)
        atomic_store_explicit(&seg[i], (unsigned long long)((long long)(i + 1) * ntasks / nseg) << 32 |
                                           (unsigned long long)((long long)i * ntasks / nseg),
                              memory_order_relaxed);
    P.open = 1;
    atomic_fetch_add_explicit(&P.gen, 1, memory_order_release);
    pthread_cond_broadcast(&P.wake);
    pthread_mutex_unlock(&P.mu);
    in_task = 1;
    claim_all();
    in_task = 0;
    pthread_mutex_lock(&P.mu);
    P.open = 0; /* no task is left to claim: late workers stay out */
    pthread_mutex_unlock(&P.mu);
    /* tasks still running in workers: spin briefly, then sleep until the last one leaves; a wait
     * of more than CONTENDED_NS means a worker lost its core to another process, and the workers
     * then sleep between runs instead of spinning for the next QUIET_NS. At 100 us this fired on
     * an idle machine too (OpenBLAS's threads spinning after a prefill's sgemm, uneven tasks) and
     * cost llama-mini 40% of its int4 decode; 2 ms (a scheduler time slice) keeps both: decode
     * 2943 tok/s idle, and ci/busy_core_check.sh 0.93-0.97x. */
    if (atomic_load_explicit(&P.active, memory_order_acquire) > 0) {
        const long long t0 = mono_ns();
        spin_while_pos(&P.active);
        pthread_mutex_lock(&P.mu);
        while (atomic_load(&P.active) > 0) pthread_cond_wait(&P.idle, &P.mu);
        pthread_mutex_unlock(&P.mu);
        const long long t1 = mono_ns();
        if (t1 - t0 > CONTENDED_NS) atomic_store_explicit(&contended_until, t1 + QUIET_NS, memory_order_relaxed);
    }
    pthread_mutex_unlock(&run_mu);
}
