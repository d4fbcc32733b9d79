/* tenpak report: the experiment log, regenerated from measurements. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "pipeline/report.h"

int tp_cmd_report(int argc, char **argv) {
    tp_report_opts o = {0};
    const char *v;
    char cmd[2048] = "tenpak report";
    for (int i = 1; i < argc; i++) {
        size_t used = strlen(cmd);
        snprintf(cmd + used, sizeof cmd - used, " %s", argv[i]);
    }
    o.command = cmd;
    if (argc >= 2 && !strcmp(argv[1], "merge")) {
        tp_merge_opts m = {.out = "reports/merged"};
        const char **files = calloc((size_t)argc, sizeof *files);
        if (!files) return 1;
        for (int i = 2; i < argc; i++) {
            if (tp_arg(argc, argv, &i, "--out", &v)) m.out = v;
            else if (tp_flag(argv, i, "--allow-mixed")) m.allow_mixed = 1;
            else if (tp_flag(argv, i, "--allow-missing")) m.allow_missing = 1;
            else if (argv[i][0] == '-') {
                fprintf(stderr, "tenpak report merge: unknown option '%s' (see tenpak report --help)\n", argv[i]);
                free(files);
                return 2;
            } else files[m.nf++] = argv[i];
        }
        if (!m.nf) {
            fprintf(stderr, "usage: tenpak report merge [--out DIR] [--allow-mixed] [--allow-missing] A.json B.json ...\n");
            free(files);
            return 2;
        }
        /* the files it writes under --out (the output guard): none may be one of the inputs */
        static const char *const outs[] = {"merged.json", "MERGED.md", "merged.dat", "merged.gp", "merged.png", "merged.svg"};
        for (size_t k = 0; k < sizeof outs / sizeof outs[0]; k++) {
            char p[4200];
            snprintf(p, sizeof p, "%s/%s", m.out, outs[k]);
            if (!tp_cli_output("report merge", "--out", p)) {
                free(files);
                return 2;
            }
        }
        m.files = files;
        tp_err e;
        tp_status st = tp_report_merge(&m, &e);
        free(files);
        if (st != TP_OK) {
            fprintf(stderr, "tenpak report merge: %s\n", e.msg);
            return 1;
        }
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        if (tp_arg(argc, argv, &i, "--config", &v)) o.config = v;
        else if (tp_arg(argc, argv, &i, "--out", &v)) o.out_dir = v;
        else if (tp_arg(argc, argv, &i, "--models-dir", &v)) o.models_dir = v;
        else if (tp_arg(argc, argv, &i, "--data-dir", &v)) o.data_dir = v;
        else if (tp_arg(argc, argv, &i, "--bench", &v)) o.bench_json = v;
        else if (tp_arg(argc, argv, &i, "--max-tokens", &v)) {
            long long x;
            if (!tp_arg_int("report", "--max-tokens", v, 0, 1000000000000LL, &x)) return 2;
            o.max_tokens = (size_t)x;
            o.max_tokens_set = 1;
        } else if (tp_flag(argv, i, "--keep-artifacts")) o.keep_artifacts = 1;
        else if (tp_flag(argv, i, "--help")) {
            printf("usage: tenpak report [--config FILE] [--out DIR] [--max-tokens N] [--models-dir DIR]\n"
                   "                     [--data-dir DIR] [--bench FILE.json] [--keep-artifacts]\n"
                   "  Runs the config's codecs x models x datasets (default config reports/default.json:\n"
                   "  every codec family on both shared models, WikiText-2 test and the held-out tail of\n"
                   "  python-docs), verifies the config's claims files, and writes OUT/EXPERIMENT_LOG.md\n"
                   "  (default OUT: reports) with OUT/results/report.json and OUT/plots/.\n"
                   "  --max-tokens overrides the config's prefix length (0 = whole files).\n"
                   "usage: tenpak report merge [--out DIR] [--allow-mixed] [--allow-missing] A.json B.json ...\n"
                   "  Merges `tenpak bench --json` files from any number of machines and shards into one\n"
                   "  cross-hardware table and plot (OUT/MERGED.md, merged.json, merged.png|svg; default\n"
                   "  OUT: reports/merged), one column per machine (host, processor or GPU, ISA level,\n"
                   "  library build), with each kernel's speed-up over its baseline on the same machine.\n"
                   "  Exit 1, naming them, when the inputs come from different tenpak versions or matrix\n"
                   "  files (--allow-mixed merges them anyway, marked) or when shards of a matrix run are\n"
                   "  missing (--allow-missing writes the partial table with the missing shards named).\n");
            return 0;
        } else {
            fprintf(stderr, "tenpak report: unknown option '%s' (see --help)\n", argv[i]);
            return 2;
        }
    }
    tp_err e;
    if (tp_report_run(&o, &e) != TP_OK) {
        fprintf(stderr, "tenpak report: %s\n", e.msg);
        return 1;
    }
    return 0;
}
