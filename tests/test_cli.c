/* test_cli.c - command-line parsing. */
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "parley.h"
#include "unit.h"

static struct cli_options opts;
static char err[CONF_ERR_LEN];

#define PARSE(...) parse((char *[]){ "parleyd", __VA_ARGS__, NULL }, \
                         (int)(sizeof((char *[]){ "parleyd", __VA_ARGS__ }) / sizeof(char *)))

static int parse(char **argv, int argc)
{
    err[0] = '\0';
    return cli_parse(argc, argv, &opts, err, sizeof(err));
}

START_TEST(no_arguments_runs)
{
    char *argv[] = { "parleyd", NULL };

    ck_assert_int_eq(cli_parse(1, argv, &opts, err, sizeof(err)), PL_OK);
    ck_assert_int_eq(opts.action, CLI_RUN);
    ck_assert_ptr_null(opts.config_path);
    ck_assert_int_eq(opts.noverrides, 0);
}
END_TEST

START_TEST(actions)
{
    ck_assert_int_eq(PARSE("--help"), PL_OK);
    ck_assert_int_eq(opts.action, CLI_HELP);
    ck_assert_int_eq(PARSE("-h"), PL_OK);
    ck_assert_int_eq(opts.action, CLI_HELP);
    ck_assert_int_eq(PARSE("--version"), PL_OK);
    ck_assert_int_eq(opts.action, CLI_VERSION);
    ck_assert_int_eq(PARSE("--check-config", "-c", "x.conf"), PL_OK);
    ck_assert_int_eq(opts.action, CLI_CHECK_CONFIG);
    ck_assert_str_eq(opts.config_path, "x.conf");
    ck_assert_int_eq(PARSE("-t"), PL_OK);
    ck_assert_int_eq(opts.action, CLI_CHECK_CONFIG);
}
END_TEST

START_TEST(overrides)
{
    ck_assert_int_eq(PARSE("--listen", "0.0.0.0:80", "--workers=4", "--redis", "unix:/r.sock",
                           "--log-level", "debug", "--workers", "6"), PL_OK);
    ck_assert_int_eq(opts.noverrides, 4);
    ck_assert_str_eq(opts.overrides[0].key, "listen");
    ck_assert_str_eq(opts.overrides[1].key, "workers");
    ck_assert_str_eq(opts.overrides[1].value, "6");       /* the last one wins */
    ck_assert_str_eq(opts.overrides[2].key, "redis");
    ck_assert_str_eq(opts.overrides[3].key, "log_level");
}
END_TEST

START_TEST(errors)
{
    ck_assert_int_eq(PARSE("--bogus"), PL_ERR);
    ck_assert_str_eq(err, "--bogus: unknown option (see --help)");
    ck_assert_int_eq(PARSE("--workers"), PL_ERR);
    ck_assert_str_eq(err, "--workers: missing argument (see --help)");
    ck_assert_int_eq(PARSE("stray"), PL_ERR);
    ck_assert_str_eq(err, "stray: unexpected argument (see --help)");
}
END_TEST

START_TEST(flags_override_file)
{
    static struct conf cfg;
    const char *path = unit_write_temp("workers = 2\nlog_level = warn\n");

    ck_assert_int_eq(PARSE("-c", (char *)path, "--workers", "3"), PL_OK);
    ck_assert_int_eq(cli_load_config(&opts, &cfg, err, sizeof(err)), PL_OK);
    ck_assert_int_eq(cfg.workers, 3);
    ck_assert_int_eq(cfg.log_level, 2);

    ck_assert_int_eq(PARSE("-c", (char *)path, "--log-level", "chatty"), PL_OK);
    ck_assert_int_eq(cli_load_config(&opts, &cfg, err, sizeof(err)), PL_ERR);
    ck_assert_str_eq(err, "--log-level: invalid value 'chatty' for 'log_level' (debug, info, warn or error)");
    unlink(path);

    ck_assert_int_eq(PARSE("-c", "/nonexistent.conf"), PL_OK);
    ck_assert_int_eq(cli_load_config(&opts, &cfg, err, sizeof(err)), PL_ERR);
}
END_TEST

Suite *suite_cli(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");

    tcase_add_test(tc, no_arguments_runs);
    tcase_add_test(tc, actions);
    tcase_add_test(tc, overrides);
    tcase_add_test(tc, errors);
    tcase_add_test(tc, flags_override_file);
    suite_add_tcase(s, tc);
    return s;
}
