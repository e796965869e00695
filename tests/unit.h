/* unit.h - the Check suites, one per module, run together by tests/unit. */
#ifndef PARLEY_TESTS_UNIT_H
#define PARLEY_TESTS_UNIT_H

#include <check.h>

Suite *suite_bus_ring(void);
Suite *suite_cli(void);
Suite *suite_conf(void);
Suite *suite_dict(void);
Suite *suite_event(void);
Suite *suite_http(void);
Suite *suite_http_chunked(void);
Suite *suite_http_response(void);
Suite *suite_json_strict(void);
Suite *suite_names(void);
Suite *suite_netaddr(void);
Suite *suite_openai_proto(void);
Suite *suite_origin(void);
Suite *suite_rate(void);
Suite *suite_redis_url(void);
Suite *suite_sse_parse(void);
Suite *suite_token(void);
Suite *suite_url(void);
Suite *suite_utf8(void);
Suite *suite_ws_deflate(void);
Suite *suite_ws_frame(void);

/* Writes TEXT to a new temporary file and returns its path (static buffer). */
const char *unit_write_temp(const char *text);

#endif
