/* cli.h - the parleyd command line.
 *
 *   parleyd [-c FILE] [--listen ADDR:PORT] [--workers N] [--redis URL]
 *           [--log-level L] [--check-config] [--version] [--help]
 *
 * Parsing only records what was asked; main() loads the file and then lays
 * the overrides over it, so flags always win. */
#ifndef PARLEY_CLI_H
#define PARLEY_CLI_H

#include <stddef.h>

#include "conf.h"

enum cli_action { CLI_RUN, CLI_CHECK_CONFIG, CLI_VERSION, CLI_HELP };

#define CLI_MAX_OVERRIDES 8

struct cli_override {
    const char *key;            /* config key, e.g. "workers" */
    const char *flag;           /* "--workers", for error messages */
    const char *value;          /* points into argv */
};

struct cli_options {
    enum cli_action action;
    const char *config_path;    /* -c FILE, or NULL for the default */
    struct cli_override overrides[CLI_MAX_OVERRIDES];
    int noverrides;
};

/* Parses ARGV.  Returns PL_OK, or PL_ERR with one line in ERR. */
int cli_parse(int argc, char **argv, struct cli_options *opts, char *err, size_t errlen);

/* Lays the command-line overrides over CFG. */
int cli_apply(const struct cli_options *opts, struct conf *cfg, char *err, size_t errlen);

/* Builds the effective configuration: defaults, then the file (-c FILE, or
 * the default file when it exists), then the flags; then conf_check() and
 * agent_check() (the composition root: conf.c knows no agent code).
 * Used at start-up and again on every reload. */
int cli_load_config(const struct cli_options *opts, struct conf *cfg, char *err, size_t errlen);

/* The --help text. */
extern const char cli_usage[];

#endif
