/* tenpak report: the experiment log, regenerated from measurements. */
#include <stdio.h>
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
        const char *files[16], *out = "reports/merged";
        int nf = 0;
        for (int i = 2; i < argc; i++) {
            if (tp_arg(argc, argv, &i, "--out", &v)) out = v;
            else if (argv[i][0] == '-') { fprintf(stderr, "tenpak report merge: unknown option '%s'\n", argv[i]); return 2; }
            else if (nf < 16) files[nf++] = argv[i];
        }
        if (!nf) { fprintf(stderr, "usage: tenpak report merge [--out DIR] A.json B.json ...\n"); return 2; }
        tp_err e;
        if (tp_report_merge(out, files, nf, &e) != TP_OK) { fprintf(stderr, "tenpak report merge: %s\n", e.msg); return 1; }
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        unsigned long long u;
        if (tp_arg(argc, argv, &i, "--config", &v)) o.config = v;
        else if (tp_arg(argc, argv, &i, "--out", &v)) o.out_dir = v;
        else if (tp_arg(argc, argv, &i, "--models-dir", &v)) o.models_dir = v;
        else if (tp_arg(argc, argv, &i, "--data-dir", &v)) o.data_dir = v;
        else if (tp_arg(argc, argv, &i, "--bench", &v)) o.bench_json = v;
        else if (tp_arg(argc, argv, &i, "--max-tokens", &v)) {
            if (!tp_parse_u64(v, &u)) { fprintf(stderr, "tenpak report: --max-tokens needs an integer\n"); return 2; }
            o.max_tokens = (size_t)u;
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
                   "usage: tenpak report merge [--out DIR] A.json B.json ...\n"
                   "  Merges `tenpak bench --json` files from several machines (or shards) into one\n"
                   "  cross-hardware table and plot (default OUT: reports/merged).\n");
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
