/* main.c - parleyd: parse the command line, load the configuration, start
 * the master. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "cli.h"
#include "conf.h"
#include "log.h"
#include "master.h"
#include "parley.h"

/* libevent's own messages would reach stderr in a format of their own, and
 * one in a loop would flood it: they go to the log, at most one a second. */
static void main_on_libevent_log(int severity, const char *msg)
{
    static struct log_every every;
    char text[512];
    unsigned times;

    if (severity >= EVENT_LOG_WARN && log_every_due(&every, &times)) {
        log_write(severity == EVENT_LOG_ERR ? LOG_LEVEL_ERROR : LOG_LEVEL_WARN, 0,
                  "event=libevent message=\"%s\" times=%u", log_value(msg, 1, text, sizeof(text)), times);
    }
}

int main(int argc, char **argv)
{
    static struct conf cfg;
    struct cli_options opts;
    char err[CONF_ERR_LEN];

    if (cli_parse(argc, argv, &opts, err, sizeof(err)) != PL_OK) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    switch (opts.action) {
    case CLI_HELP:
        fputs(cli_usage, stdout);
        return 0;
    case CLI_VERSION:
        printf("parleyd %s\n", PACKAGE_VERSION);
        return 0;
    default:
        break;
    }
    if (cli_load_config(&opts, &cfg, err, sizeof(err)) != PL_OK) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    if (opts.action == CLI_CHECK_CONFIG) {
        printf("%s: configuration is valid\n", cfg.path[0] ? cfg.path : "defaults");
        return 0;
    }
    if (log_open(cfg.log_file, err, sizeof(err)) != PL_OK) {
        char where[1100];
        conf_where(&cfg, "log_file", where, sizeof(where));
        fprintf(stderr, "%s: %s\n", where, err);
        return 2;
    }
    log_set_level(cfg.log_level);
    event_set_log_callback(main_on_libevent_log);
    signal(SIGPIPE, SIG_IGN);
    return master_run(&cfg, &opts);
}
