/* test_conf.c - configuration file parsing and validation. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"
#include "log.h"
#include "parley.h"
#include "unit.h"

static struct conf cfg;
static char err[CONF_ERR_LEN];

/* Loads TEXT as a file over the defaults; the file is removed afterwards.
 * The error, if any, is rewritten with the file name "F" so that tests can
 * compare it whole. */
static int load(const char *text)
{
    const char *path = unit_write_temp(text);
    char copy[CONF_ERR_LEN];
    size_t plen = strlen(path);
    int rc;

    conf_defaults(&cfg);
    err[0] = '\0';
    rc = conf_load_file(&cfg, path, err, sizeof(err));
    unlink(path);
    if (strncmp(err, path, plen) == 0) {
        snprintf(copy, sizeof(copy), "F%s", err + plen);
        memcpy(err, copy, sizeof(copy));
    }
    return rc;
}

START_TEST(defaults_are_valid)
{
    conf_defaults(&cfg);
    ck_assert_str_eq(cfg.listen, "127.0.0.1:8080");
    ck_assert_int_eq(cfg.workers, 0);
    ck_assert_int_ge(conf_worker_count(&cfg), 1);
    ck_assert_str_eq(cfg.redis.host, "127.0.0.1");
    ck_assert_int_eq(cfg.redis.port, 6379);
    ck_assert_str_eq(cfg.redis_prefix, "parley:");
    ck_assert_int_eq(cfg.log_level, LOG_LEVEL_INFO);
    ck_assert_int_eq(cfg.shutdown_timeout_ms, 10000);
    ck_assert_uint_eq(cfg.max_body, 64 * 1024);
    ck_assert_int_eq(conf_check(&cfg, err, sizeof(err)), PL_OK);
}
END_TEST

START_TEST(full_file)
{
    ck_assert_int_eq(load("# a comment\n"
                          "\n"
                          "listen = 127.0.0.1:9000\n"
                          "workers=3\n"
                          "   log_level   =   debug   # trailing comment\n"
                          "redis = unix:/run/redis.sock\n"
                          "shutdown_timeout = 1500ms\n"
                          "max_body = 1m\n"
                          "redis_prefix = \"chat #1:\"\n"), PL_OK);
    ck_assert_str_eq(cfg.listen, "127.0.0.1:9000");
    ck_assert_int_eq(cfg.workers, 3);
    ck_assert_int_eq(conf_worker_count(&cfg), 3);
    ck_assert_int_eq(cfg.log_level, LOG_LEVEL_DEBUG);
    ck_assert_str_eq(cfg.redis.path, "/run/redis.sock");
    ck_assert_int_eq(cfg.shutdown_timeout_ms, 1500);
    ck_assert_uint_eq(cfg.max_body, 1024 * 1024);
    ck_assert_str_eq(cfg.redis_prefix, "chat #1:");
}
END_TEST

START_TEST(durations)
{
    ck_assert_int_eq(load("shutdown_timeout = 30\n"), PL_OK);
    ck_assert_int_eq(cfg.shutdown_timeout_ms, 30000);
    ck_assert_int_eq(load("shutdown_timeout = 2m\n"), PL_OK);
    ck_assert_int_eq(cfg.shutdown_timeout_ms, 120000);
    ck_assert_int_eq(load("shutdown_timeout = 5s\n"), PL_OK);
    ck_assert_int_eq(cfg.shutdown_timeout_ms, 5000);
    ck_assert_int_eq(load("shutdown_timeout = 5h\n"), PL_ERR);
    ck_assert_int_eq(load("shutdown_timeout = 10ms\n"), PL_ERR);   /* below 100 ms */
}
END_TEST

START_TEST(unknown_key_names_line)
{
    ck_assert_int_eq(load("listen = 127.0.0.1:1\n\n# x\nwrokers = 2\n"), PL_ERR);
    ck_assert_str_eq(err, "F:4: unknown key 'wrokers'");
}
END_TEST

START_TEST(bad_values)
{
    ck_assert_int_eq(load("workers = 0\n"), PL_ERR);
    ck_assert_str_eq(err, "F:1: invalid value '0' for 'workers' (auto or 1..256)");
    ck_assert_int_eq(load("workers = 257\n"), PL_ERR);
    ck_assert_int_eq(load("workers = -1\n"), PL_ERR);
    ck_assert_int_eq(load("workers = 2x\n"), PL_ERR);
    ck_assert_int_eq(load("workers =\n"), PL_ERR);
    ck_assert_int_eq(load("workers = 99999999999999999999999\n"), PL_ERR);
    ck_assert_int_eq(load("backlog = 0\n"), PL_ERR);
    ck_assert_int_eq(load("max_body = 12q\n"), PL_ERR);
    ck_assert_int_eq(load("max_body = 100\n"), PL_ERR);             /* below 1024 */
    ck_assert_int_eq(load("log_level = loud\n"), PL_ERR);
    ck_assert_str_eq(err, "F:1: invalid value 'loud' for 'log_level' (debug, info, warn or error)");
    ck_assert_int_eq(load("redis_prefix = \"\"\n"), PL_ERR);
}
END_TEST

START_TEST(bad_listen)
{
    ck_assert_int_eq(load("listen = 8080\n"), PL_ERR);
    ck_assert_int_eq(load("listen = :8080\n"), PL_ERR);
    ck_assert_int_eq(load("listen = host:99999\n"), PL_ERR);
    ck_assert_int_eq(load("listen = host:http\n"), PL_ERR);
    ck_assert_int_eq(load("listen = [::1:80\n"), PL_ERR);
    ck_assert_int_eq(load("listen = [::1]:80\n"), PL_OK);
    ck_assert_int_eq(load("listen = *:80\n"), PL_OK);
}
END_TEST

START_TEST(bad_redis_url)
{
    ck_assert_int_eq(load("redis = http://x\n"), PL_ERR);
    ck_assert_ptr_nonnull(strstr(err, "F:1: invalid value 'http://x' for 'redis'"));
}
END_TEST

START_TEST(syntax_errors)
{
    ck_assert_int_eq(load("workers 2\n"), PL_ERR);
    ck_assert_str_eq(err, "F:1: expected 'key = value'");
    ck_assert_int_eq(load("redis_prefix = \"open\n"), PL_ERR);
    ck_assert_str_eq(err, "F:1: unterminated quoted value for 'redis_prefix'");
    ck_assert_int_eq(load("workers = 2\nworkers = 3\n"), PL_ERR);
    ck_assert_str_eq(err, "F:2: duplicate key 'workers' (first set on line 1)");
}
END_TEST

START_TEST(long_line)
{
    char text[10000];

    memset(text, 'a', sizeof(text) - 2);
    text[sizeof(text) - 2] = '\n';
    text[sizeof(text) - 1] = '\0';
    ck_assert_int_eq(load(text), PL_ERR);
    ck_assert_str_eq(err, "F:1: line too long");
}
END_TEST

START_TEST(missing_file)
{
    conf_defaults(&cfg);
    ck_assert_int_eq(conf_load_file(&cfg, "/nonexistent/parley.conf", err, sizeof(err)), PL_ERR);
    ck_assert_str_eq(err, "/nonexistent/parley.conf: cannot open configuration file: No such file or directory");
}
END_TEST

START_TEST(flag_overrides_and_origin)
{
    char where[256];

    ck_assert_int_eq(load("log_level = warn\nworkers = 2\n"), PL_OK);
    conf_where(&cfg, "workers", where, sizeof(where));
    ck_assert_ptr_nonnull(strstr(where, ":2"));
    ck_assert_int_eq(conf_set_flag(&cfg, "workers", "5", "--workers", err, sizeof(err)), PL_OK);
    ck_assert_int_eq(cfg.workers, 5);
    conf_where(&cfg, "workers", where, sizeof(where));
    ck_assert_str_eq(where, "--workers");
    ck_assert_int_eq(conf_set_flag(&cfg, "workers", "none", "--workers", err, sizeof(err)), PL_ERR);
    ck_assert_str_eq(err, "--workers: invalid value 'none' for 'workers' (auto or 1..256)");
    ck_assert_int_eq(cfg.workers, 5);
}
END_TEST

START_TEST(check_resolves_listen)
{
    ck_assert_int_eq(load("listen = localhost:8080\n"), PL_OK);
    ck_assert_int_eq(conf_check(&cfg, err, sizeof(err)), PL_OK);
    ck_assert_int_gt(cfg.listen_addrlen, 0);

    ck_assert_int_eq(load("\nlisten = no-such-host.invalid:8080\n"), PL_OK);
    ck_assert_int_eq(conf_check(&cfg, err, sizeof(err)), PL_ERR);
    ck_assert_ptr_nonnull(strstr(err, ":2: cannot resolve 'no-such-host.invalid' for 'listen'"));
}
END_TEST

START_TEST(connections_allowed)
{
    ck_assert_int_eq(load("max_connections = 5000\n"), PL_OK);
    ck_assert_int_eq(cfg.max_connections, 5000);
    ck_assert_int_eq(load("max_connections = -1\n"), PL_ERR);
    conf_defaults(&cfg);
    ck_assert_int_eq(cfg.max_connections, 0);
    /* The limit less 32 of the worker's own, a sixteenth for files being
     * served, and the listening sockets. */
    ck_assert_int_eq(conf_connections_allowed(&cfg, 1024, 1), 1024 - 32 - 64 - 1);
    ck_assert_int_eq(conf_connections_allowed(&cfg, 1024, 4), 1024 - 32 - 64 - 4);
    /* The openai agent's upstream connections are descriptors too. */
    ck_assert_int_eq(load("agent = openai\nagent_max_concurrent = 100\n"), PL_OK);
    ck_assert_int_eq(conf_connections_allowed(&cfg, 1024, 1), 1024 - 32 - 64 - 1 - 100);
    /* Never less than one, never past an int. */
    ck_assert_int_eq(conf_connections_allowed(&cfg, 16, 1), 1);
    ck_assert_int_eq(conf_connections_allowed(&cfg, 1LL << 40, 1), INT_MAX);
}
END_TEST

Suite *suite_conf(void)
{
    Suite *s = suite_create("conf");
    TCase *tc = tcase_create("conf");

    tcase_add_test(tc, defaults_are_valid);
    tcase_add_test(tc, full_file);
    tcase_add_test(tc, durations);
    tcase_add_test(tc, unknown_key_names_line);
    tcase_add_test(tc, bad_values);
    tcase_add_test(tc, bad_listen);
    tcase_add_test(tc, bad_redis_url);
    tcase_add_test(tc, syntax_errors);
    tcase_add_test(tc, long_line);
    tcase_add_test(tc, missing_file);
    tcase_add_test(tc, flag_overrides_and_origin);
    tcase_add_test(tc, check_resolves_listen);
    tcase_add_test(tc, connections_allowed);
    suite_add_tcase(s, tc);
    return s;
}
