/* ops.c - health and Prometheus metrics for load balancers and monitoring. */
#include "ops.h"

#include <stdio.h>
#include <unistd.h>

#include "bus.h"
#include "http.h"
#include "metrics.h"
#include "parley.h"
#include "store.h"
#include "worker_env.h"

static int worker;              /* this worker's number, for /healthz */

static void ops_healthz(evhtp_request_t *req, const struct http_params *params)
{
    char body[320];
    int redis_up = store_is_up() && bus_subscriber_up();
    int stopping = metrics_stopping();
    const char *reason = stopping ? "shutting_down" : !redis_up ? "redis_unavailable" : NULL;
    int n;

    PL_UNUSED(params);
    n = snprintf(body, sizeof(body),
                 "{\"status\":\"%s\",%s%s%s\"redis\":\"%s\",\"workers\":%d,\"worker\":%d,"
                 "\"pid\":%ld,\"version\":\"%s\"}",
                 reason == NULL ? "ok" : stopping ? "unavailable" : "degraded",
                 reason ? "\"reason\":\"" : "", reason ? reason : "", reason ? "\"," : "",
                 redis_up ? "up" : "down",
                 metrics_workers_serving(), worker, (long)getpid(), PACKAGE_VERSION);
    http_header_set(req, "Cache-Control", "no-store");
    http_reply(req, reason ? 503 : 200, "application/json", body, (size_t)n);
}

static void ops_metrics(evhtp_request_t *req, const struct http_params *params)
{
    struct evbuffer *text = evbuffer_new();

    PL_UNUSED(params);
    if (text == NULL) {
        http_error(req, 503, "unavailable", "out of memory");
        return;
    }
    metrics_render(text);
    http_header_set(req, "Cache-Control", "no-store");
    /* Through http_reply, so that a HEAD gets the headers alone. */
    http_reply(req, 200, "text/plain; version=0.0.4; charset=utf-8", evbuffer_pullup(text, -1),
               evbuffer_get_length(text));
    evbuffer_free(text);
}

int ops_init(const struct worker_env *w)
{
    worker = w->index;
    http_route_add("/healthz", HTTP_GET, ops_healthz);
    http_route_add("/metrics", HTTP_GET, ops_metrics);
    return PL_OK;
}
