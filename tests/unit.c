/* unit.c - runs every Check suite and prints "N passed, M failed". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "unit.h"

const char *unit_write_temp(const char *text)
{
    static char path[64];
    int fd;

    snprintf(path, sizeof(path), "/tmp/parley-unit-XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (int)strlen(text));
    close(fd);
    return path;
}

int main(void)
{
    SRunner *sr = srunner_create(suite_cli());
    int run, failed;

    srunner_add_suite(sr, suite_bus_ring());
    srunner_add_suite(sr, suite_conf());
    srunner_add_suite(sr, suite_dict());
    srunner_add_suite(sr, suite_event());
    srunner_add_suite(sr, suite_http());
    srunner_add_suite(sr, suite_http_chunked());
    srunner_add_suite(sr, suite_http_response());
    srunner_add_suite(sr, suite_json_strict());
    srunner_add_suite(sr, suite_names());
    srunner_add_suite(sr, suite_netaddr());
    srunner_add_suite(sr, suite_openai_proto());
    srunner_add_suite(sr, suite_origin());
    srunner_add_suite(sr, suite_rate());
    srunner_add_suite(sr, suite_redis_url());
    srunner_add_suite(sr, suite_sse_parse());
    srunner_add_suite(sr, suite_token());
    srunner_add_suite(sr, suite_url());
    srunner_add_suite(sr, suite_utf8());
    srunner_add_suite(sr, suite_ws_deflate());
    srunner_add_suite(sr, suite_ws_frame());
    srunner_run_all(sr, CK_NORMAL);
    run = srunner_ntests_run(sr);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    printf("%d passed, %d failed\n", run - failed, failed);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
