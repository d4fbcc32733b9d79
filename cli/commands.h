/* Sub-commands of the tenpak CLI: each is int tp_cmd_NAME(int argc, char **argv), with argv[0]
 * the sub-command's name. Add one declaration here and one row in cli/main.c's table. */
#ifndef TENPAK_CLI_COMMANDS_H
#define TENPAK_CLI_COMMANDS_H
int tp_cmd_list(int argc, char **argv);
int tp_cmd_verify(int argc, char **argv);
int tp_cmd_bench(int argc, char **argv);
int tp_cmd_bench_model(int argc, char **argv);
int tp_cmd_codecs(int argc, char **argv);
int tp_cmd_tokenize(int argc, char **argv);
int tp_cmd_ppl(int argc, char **argv);
int tp_cmd_entropy(int argc, char **argv);
int tp_cmd_compress(int argc, char **argv);
int tp_cmd_calib_check(int argc, char **argv);
int tp_cmd_eval(int argc, char **argv);
int tp_cmd_export(int argc, char **argv);
int tp_cmd_generate(int argc, char **argv);
int tp_cmd_claims(int argc, char **argv);
int tp_cmd_report(int argc, char **argv);
int tp_cmd_zip(int argc, char **argv);
int tp_cmd_unzip(int argc, char **argv);
#endif
