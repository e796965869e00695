/* cli.c - parse the parleyd command line. */
#include "cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "parley.h"

#define CLI_DEFAULT_CONFIG SYSCONFDIR "/parley.conf"

const char cli_usage[] =
    "Usage: parleyd [-c FILE] [--listen ADDR:PORT] [--workers N] [--redis URL]\n"
    "               [--log-level L] [--check-config] [--version] [--help]\n"
    "\n"
    "  -c, --config FILE      configuration file (default: " CLI_DEFAULT_CONFIG ")\n"
    "      --listen ADDR:PORT address to accept connections on\n"
    "      --workers N        worker processes, or \"auto\" for one per CPU\n"
    "      --redis URL        redis://[:password@]host:port[/db] or unix:/path\n"
    "      --log-level L      debug, info, warn or error\n"
    "  -t, --check-config     validate the configuration and exit\n"
    "  -v, --version          print the version and exit\n"
    "  -h, --help             print this help and exit\n"
    "\n"
    "Flags override the file.  Signals: TERM/INT stop gracefully, HUP reloads\n"
    "the configuration, USR1 reopens the log file.\n";

enum { OPT_LISTEN = 256, OPT_WORKERS, OPT_REDIS, OPT_LOG_LEVEL };

static const struct option cli_long_options[] = {
    { "config",       required_argument, NULL, 'c' },
    { "listen",       required_argument, NULL, OPT_LISTEN },
    { "workers",      required_argument, NULL, OPT_WORKERS },
    { "redis",        required_argument, NULL, OPT_REDIS },
    { "log-level",    required_argument, NULL, OPT_LOG_LEVEL },
    { "check-config", no_argument,       NULL, 't' },
    { "version",      no_argument,       NULL, 'v' },
    { "help",         no_argument,       NULL, 'h' },
    { NULL, 0, NULL, 0 }
};

static void cli_add_override(struct cli_options *opts, const char *key, const char *flag,
                             const char *value)
{
    /* A repeated flag replaces the earlier one, as with most tools. */
    for (int i = 0; i < opts->noverrides; i++) {
        if (strcmp(opts->overrides[i].key, key) == 0) {
            opts->overrides[i].value = value;
            return;
        }
    }
    opts->overrides[opts->noverrides++] = (struct cli_override){ key, flag, value };
}

int cli_parse(int argc, char **argv, struct cli_options *opts, char *err, size_t errlen)
{
    int c;

    memset(opts, 0, sizeof(*opts));
    opts->action = CLI_RUN;
    optind = 0;                 /* also resets getopt's state for repeated calls */
    opterr = 0;

    while ((c = getopt_long(argc, argv, ":c:tvh", cli_long_options, NULL)) != -1) {
        switch (c) {
        case 'c':
            opts->config_path = optarg;
            break;
        case OPT_LISTEN:
            cli_add_override(opts, "listen", "--listen", optarg);
            break;
        case OPT_WORKERS:
            cli_add_override(opts, "workers", "--workers", optarg);
            break;
        case OPT_REDIS:
            cli_add_override(opts, "redis", "--redis", optarg);
            break;
        case OPT_LOG_LEVEL:
            cli_add_override(opts, "log_level", "--log-level", optarg);
            break;
        case 't':
            opts->action = CLI_CHECK_CONFIG;
            break;
        case 'v':
            opts->action = CLI_VERSION;
            break;
        case 'h':
            opts->action = CLI_HELP;
            break;
        case ':':
            snprintf(err, errlen, "%s: missing argument (see --help)", argv[optind - 1]);
            return PL_ERR;
        default:
            snprintf(err, errlen, "%s: unknown option (see --help)", argv[optind - 1]);
            return PL_ERR;
        }
    }
    if (optind < argc) {
        snprintf(err, errlen, "%s: unexpected argument (see --help)", argv[optind]);
        return PL_ERR;
    }
    return PL_OK;
}

int cli_apply(const struct cli_options *opts, struct conf *cfg, char *err, size_t errlen)
{
    for (int i = 0; i < opts->noverrides; i++) {
        const struct cli_override *o = &opts->overrides[i];
        if (conf_set_flag(cfg, o->key, o->value, o->flag, err, errlen) != PL_OK) {
            return PL_ERR;
        }
    }
    return PL_OK;
}

int cli_load_config(const struct cli_options *opts, struct conf *cfg, char *err, size_t errlen)
{
    const char *path = opts->config_path;

    conf_defaults(cfg);
    if (path == NULL && access(CLI_DEFAULT_CONFIG, F_OK) == 0) {
        path = CLI_DEFAULT_CONFIG;
    }
    if (path != NULL && conf_load_file(cfg, path, err, errlen) != PL_OK) {
        return PL_ERR;
    }
    if (cli_apply(opts, cfg, err, errlen) != PL_OK || conf_check(cfg, err, errlen) != PL_OK) {
        return PL_ERR;
    }
    return agent_check(cfg, err, errlen);
}
