/* agent.c - agent requests: limits, backend choice, delivery. */
#include "agent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "parley.h"
#include "worker_env.h"

/* The worker's agent: its backend and the loop it runs on. */
static struct {
    struct event_base *loop;
    const struct conf *cfg;
    const struct agent_backend *backend;
    int running;
} agent;

/* The backend C->agent names (conf_check() allows builtin, openai, sse). */
static const struct agent_backend *agent_backend_of(const struct conf *c)
{
    return strcmp(c->agent, "builtin") == 0 ? &agent_builtin : &agent_http;
}

int agent_check(const struct conf *c, char *err, size_t errlen)
{
    const struct agent_backend *b = agent_backend_of(c);

    return b->check != NULL ? b->check(c, err, errlen) : PL_OK;
}

int agent_init(const struct worker_env *w)
{
    agent.loop = w->base;
    agent.cfg = w->cfg;
    agent.backend = agent_backend_of(agent.cfg);
    return agent.backend->init != NULL ? agent.backend->init() : PL_OK;
}

struct event_base *agent_loop(void)
{
    return agent.loop;
}

const struct conf *agent_conf(void)
{
    return agent.cfg;
}

static void agent_free(struct agent_request *r)
{
    agent.running--;
    free(r->query);
    free(r);
}

int agent_has_room(void)
{
    return agent.running < agent.cfg->agent_max_concurrent;
}

struct agent_request *agent_ask(const char *query, const char *room, const char *user,
                                agent_chunk_cb on_chunk, agent_done_cb on_done, void *arg)
{
    struct agent_request *r;

    if (!agent_has_room()) {
        metrics_add(METRIC_AGENT_BUSY, 1);
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL || (r->query = strdup(query)) == NULL) {
        free(r);
        return NULL;
    }
    agent.running++;
    r->backend = agent.backend;
    snprintf(r->room, sizeof(r->room), "%s", room ? room : "");
    snprintf(r->user, sizeof(r->user), "%s", user);
    r->on_chunk = on_chunk;
    r->on_done = on_done;
    r->arg = arg;
    if (r->backend->start(r) != PL_OK) {
        agent_free(r);
        return NULL;
    }
    metrics_add(METRIC_AGENT_REQUESTS, 1);
    return r;
}

void agent_cancel(struct agent_request *r)
{
    r->backend->cancel(r);
    agent_free(r);
}

void agent_emit(struct agent_request *r, const char *text, size_t len)
{
    r->on_chunk(text, len, r->arg);
}

const char *agent_error_code(enum agent_status st)
{
    switch (st) {
    case AGENT_TIMEOUT:
        return "agent_timeout";
    case AGENT_BUSY:
        return "agent_busy";
    case AGENT_FORBIDDEN:
        return "unauthorized";
    default:
        return "agent_unavailable";
    }
}

void agent_finish(struct agent_request *r, enum agent_status st, const char *message)
{
    if (st != AGENT_OK) {
        metrics_add(METRIC_AGENT_FAILED, 1);
        log_warn("event=agent_failed status=%d reason=\"%s\"", st, message);
    }
    r->on_done(st, message, r->arg);
    agent_free(r);
}
