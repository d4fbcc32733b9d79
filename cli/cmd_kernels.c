/* tenpak list | verify | bench: the three drivers over the kernel registry. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/json_out.h"
#include "tenpak/bench.h"
#include "tenpak/verify.h"

#ifdef TENPAK_HAVE_CUDA
void tp_cuda_describe(FILE *f);
#endif

int tp_cmd_list(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (tp_flag(argv, i, "--help")) {
            printf("usage: tenpak list\n  Lists the machine and every registry kernel as op/variant/backend,\n"
                   "  with its comparison rule and its verify and bench shapes.\n");
            return 0;
        }
        fprintf(stderr, "tenpak list: unknown option '%s'\n", argv[i]);
        return 2;
    }
    char caches[256];
    tp_cpu_caches_desc(caches, sizeof caches);
    printf("machine: %s, %d threads, best isa %s (cpu backend uses %s%s)\n", tp_cpu_model(),
           tp_num_threads(), tp_isa_name(tp_cpu_best_isa()), tp_isa_name(tp_cpu_isa()),
           tp_cpu_amx() ? ", the INT4 GEMM on AMX" : "");
    printf("caches: %s\n", caches);
    printf("blas: OpenBLAS core %s, %d threads (%s)\n", tp_blas_core(), tp_blas_threads(), tp_blas_config());
#ifdef TENPAK_HAVE_CUDA
    tp_cuda_describe(stdout);
#else
    printf("cuda: not built (configure with nvcc available to build the cuda backend)\n");
#endif
    printf("%-8s %-12s %-9s %-10s %-11s %s\n", "op", "variant", "backend", "compare", "available", "bench shapes");
    for (size_t i = 0; i < tp_registry_count(); i++) {
        const tp_kernel *k = tp_registry_get(i);
        char why[128], cmp[32], shapes[256] = "";
        int avail = tp_kernel_is_available(k, why, sizeof why);
        if (k->op->cmp == TP_CMP_REL_L2) snprintf(cmp, sizeof cmp, "rel<%.0e", k->op->bound);
        else snprintf(cmp, sizeof cmp, "%s", k->op->cmp == TP_CMP_EXACT ? "exact" : "property");
        size_t used = 0;
        for (const tp_shape *s = k->op->bench_shapes; s && s->nd && used < sizeof shapes - 32; s++) {
            char sh[96];
            tp_shape_name(s, sh, sizeof sh);
            used += (size_t)snprintf(shapes + used, sizeof shapes - used, "%s%s", used ? " " : "", sh);
        }
        printf("%-8s %-12s %-9s %-10s %-11s %s%s%s\n", k->op->name, k->op->variant, k->backend, cmp,
               avail ? "yes" : "no", shapes, avail ? "" : "  # ", avail ? "" : why);
    }
    printf("%zu kernels\n", tp_registry_count());
    return 0;
}

static int parse_seed(const char *v, uint64_t *seed) {
    unsigned long long s;
    if (!tp_parse_u64(v, &s)) {
        fprintf(stderr, "tenpak: --seed needs a non-negative integer, got '%s'\n", v);
        return 0;
    }
    *seed = s;
    return 1;
}

int tp_cmd_verify(int argc, char **argv) {
    tp_verify_opts o = {0};
    const char *json = NULL, *v;
    int have_seed = 0;
    for (int i = 1; i < argc; i++) {
        if (tp_arg(argc, argv, &i, "--filter", &v)) o.filter = v;
        else if (tp_arg(argc, argv, &i, "--backend", &v)) o.backend = v;
        else if (tp_arg(argc, argv, &i, "--seed", &v)) {
            if (!parse_seed(v, &o.seed)) return 2;
            have_seed = 1;
        } else if (tp_arg(argc, argv, &i, "--json", &v)) json = v;
        else if (tp_flag(argv, i, "--self-test")) o.self_test = 1;
        else if (tp_flag(argv, i, "--graph")) o.graph = 1;
        else if (tp_flag(argv, i, "--help")) {
            printf("usage: tenpak verify [--filter REGEX] [--backend NAME] [--seed N] [--json FILE] [--self-test]\n"
                   "                    [--graph]\n"
                   "  Runs every registry kernel against its op's reference on fresh random inputs\n"
                   "  (outputs poisoned with NaN first). Prints one line per case and ends with\n"
                   "  'N passed, N failed'; exit status 1 if anything failed. --self-test also\n"
                   "  corrupts every output just past its bound and requires the check to reject it.\n"
                   "  --graph: a device kernel's output is that of the second replay of a captured\n"
                   "  graph of 3 runs (how `tenpak bench` times it), so state it keeps between runs\n"
                   "  is checked too; CPU kernels run once as without it.\n");
            return 0;
        } else {
            fprintf(stderr, "tenpak verify: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    if (!have_seed) o.seed = tp_seed_from_time();
    printf("tenpak verify: seed %llu (replay with --seed %llu)%s%s\n", (unsigned long long)o.seed,
           (unsigned long long)o.seed, o.self_test ? ", self-test" : "", o.graph ? ", graph replays" : "");
    o.out = stdout;
    cJSON *arr = json ? cJSON_CreateArray() : NULL;
    o.json = arr;
    tp_verify_result r;
    tp_err e;
    if (tp_verify_run(&o, &r, &e) != TP_OK) {
        fprintf(stderr, "tenpak verify: %s\n", e.msg);
        cJSON_Delete(arr);
        return 2;
    }
    if (json) {
        cJSON *root = cJSON_CreateObject();
        char seed[32];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)o.seed);
        cJSON_AddStringToObject(root, "seed", seed);
        cJSON_AddBoolToObject(root, "self_test", o.self_test);
        cJSON_AddBoolToObject(root, "graph", o.graph);
        cJSON_AddNumberToObject(root, "passed", r.passed);
        cJSON_AddNumberToObject(root, "failed", r.failed);
        cJSON_AddNumberToObject(root, "skipped", r.skipped);
        cJSON_AddItemToObject(root, "cases", arr);
        tp_status st = tp_cli_write_json(json, root, 0, &e);
        cJSON_Delete(root);
        if (st != TP_OK) {
            fprintf(stderr, "tenpak verify: %s\n", e.msg);
            return 2;
        }
    }
    if (r.passed + r.failed == 0) fprintf(stderr, "tenpak verify: no case matched the filter\n");
    if (r.skipped) printf("%d case(s) skipped (kernels not available on this machine)\n", r.skipped);
    printf("%d passed, %d failed\n", r.passed, r.failed);
    return r.failed ? 1 : (r.passed ? 0 : 1);
}

int tp_cmd_bench(int argc, char **argv) {
    tp_bench_opts o = {.min_time = 0.5, .repetitions = 3, .shard_i = 0, .shard_n = 1};
    const char *v, *matrix = NULL, *run_only = NULL;
    int have_shard = 0;
    for (int i = 1; i < argc; i++) {
        if (tp_arg(argc, argv, &i, "--filter", &v)) o.filter = v, run_only = "--filter";
        else if (tp_arg(argc, argv, &i, "--backend", &v)) o.backend = v, run_only = "--backend";
        else if (tp_arg(argc, argv, &i, "--matrix", &v)) matrix = v;
        else if (tp_arg(argc, argv, &i, "--run-id", &v)) o.run_id = v;
        else if (tp_flag(argv, i, "--plan")) o.plan = 1;
        else if (tp_arg(argc, argv, &i, "--json", &v)) o.json_path = v;
        else if (tp_arg(argc, argv, &i, "--min-time", &v)) {
            if (!tp_parse_double(v, &o.min_time) || !(o.min_time > 0)) {
                fprintf(stderr, "tenpak bench: --min-time needs a positive number of seconds\n");
                return 2;
            }
            run_only = "--min-time";
        } else if (tp_arg(argc, argv, &i, "--repetitions", &v)) {
            unsigned long long n;
            if (!tp_parse_u64(v, &n) || n < 1 || n > 1000) {
                fprintf(stderr, "tenpak bench: --repetitions needs an integer in 1..1000\n");
                return 2;
            }
            o.repetitions = (int)n;
            run_only = "--repetitions";
        } else if (tp_arg(argc, argv, &i, "--shard", &v)) {
            int a, b, used = 0;
            if (sscanf(v, "%d/%d%n", &a, &b, &used) != 2 || v[used] || b < 1 || a < 1 || a > b) {
                fprintf(stderr, "tenpak bench: --shard needs I/N with 1 <= I <= N, got '%s'\n", v);
                return 2;
            }
            o.shard_i = a - 1;
            o.shard_n = b;
            have_shard = 1;
        } else if (tp_arg(argc, argv, &i, "--format", &v)) {
            if (!strcmp(v, "csv")) o.format = TP_BENCH_CSV;
            else if (!strcmp(v, "console")) o.format = TP_BENCH_CONSOLE;
            else {
                fprintf(stderr, "tenpak bench: --format is console or csv\n");
                return 2;
            }
        } else if (tp_flag(argv, i, "--quick-roofline")) o.quick_roofline = 1;
        else if (tp_flag(argv, i, "--help")) {
            printf("usage: tenpak bench [--filter REGEX] [--backend NAME] [--min-time S] [--repetitions N]\n"
                   "                    [--json FILE] [--format console|csv] [--shard I/N]\n"
                   "       tenpak bench --matrix FILE [--shard I/N] [--run-id ID] [--json FILE] [--plan]\n"
                   "  Benchmarks registry kernels (names op/variant/backend/shape) on their bench shapes.\n"
                   "  The reference backend runs only with --backend ref. --json writes Google Benchmark's\n"
                   "  JSON schema (compare.py reads it). Defaults: --min-time 0.5 --repetitions 3.\n"
                   "  --shard I/N without a matrix runs every N-th benchmark from the I-th (1-based).\n"
                   "  --matrix FILE (e.g. reports/bench-matrix.json) takes benchmarks, backends, shapes,\n"
                   "  repetitions, min_time and the shard count from the file and runs the cells of shard\n"
                   "  I of N (cell c is in shard c mod N + 1: the split depends only on the file); the\n"
                   "  JSON's context.matrix records the matrix (sha256), the shard, --run-id (default\n"
                   "  $SLURM_ARRAY_JOB_ID) and each cell's kernels, for `tenpak report merge`.\n"
                   "  --plan prints the cells, their shards and this build's kernels in each, and runs nothing.\n");
            return 0;
        } else {
            fprintf(stderr, "tenpak bench: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    tp_bench_matrix m;
    tp_err e;
    if (matrix) {
        if (run_only) {
            fprintf(stderr, "tenpak bench: %s and --matrix do not go together (the matrix file sets it)\n", run_only);
            return 2;
        }
        if (tp_bench_matrix_load(matrix, &m, &e) != TP_OK) {
            fprintf(stderr, "tenpak bench: %s\n", e.msg);
            return 2;
        }
        if (!have_shard) o.shard_n = m.shards ? m.shards : 1;
        if (!o.run_id) o.run_id = getenv("SLURM_ARRAY_JOB_ID");
        o.matrix = &m;
    } else if (o.plan || o.run_id) {
        fprintf(stderr, "tenpak bench: %s needs --matrix FILE\n", o.plan ? "--plan" : "--run-id");
        return 2;
    }
    if (matrix && !have_shard && m.shards > 1 && !o.plan) {
        fprintf(stderr, "tenpak bench: matrix %s is split into %d shards: say which with --shard I/%d\n", matrix,
                m.shards, m.shards);
        tp_bench_matrix_free(&m);
        return 2;
    }
    o.out = stdout;
    int ran;
    tp_status st = tp_bench_run(&o, &ran, &e);
    if (matrix) tp_bench_matrix_free(&m);
    if (st != TP_OK) {
        fprintf(stderr, "tenpak bench: %s\n", e.msg);
        return 2;
    }
    if (matrix) {
        if (!ran) fprintf(stderr, "tenpak bench: note: this shard's cells hold no kernel this machine runs\n");
        return 0;
    }
    if (!ran) {
        fprintf(stderr, "tenpak bench: no benchmark matched the filter\n");
        return 1;
    }
    return 0;
}
