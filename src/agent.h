/* agent.h - the AI agent behind one small interface.
 *
 * A question goes in; the answer comes back as a stream of chunks, then one
 * final callback with the outcome.  The backend is chosen by "agent":
 * "builtin" (default) is a small deterministic assistant that needs nothing
 * else, so the quick start and the tests work offline; "openai" streams the
 * answer from any OpenAI-compatible chat completions endpoint.  Each worker
 * runs at most agent_max_concurrent requests; beyond that agent_ask refuses
 * (the caller answers agent_busy).  Cancelling (the asker went away) stops
 * the work and guarantees no further callback. */
#ifndef PARLEY_AGENT_H
#define PARLEY_AGENT_H

#include <stddef.h>

#include "conf.h"

struct worker_env;

struct event_base;
struct agent_request;

enum agent_status {
    AGENT_OK,
    AGENT_UNAVAILABLE,          /* backend down, failing or answering garbage */
    AGENT_TIMEOUT,              /* no first token / no end in time */
    AGENT_BUSY,                 /* (answer.h) the asker has the most answers running */
    AGENT_FORBIDDEN,            /* (answer.h) the asker's session is gone */
};

/* A piece of the answer, in order. */
typedef void (*agent_chunk_cb)(const char *text, size_t len, void *arg);
/* The end: AGENT_OK after the last chunk, or why it failed (MESSAGE is
 * readable).  The request is freed after this returns. */
typedef void (*agent_done_cb)(enum agent_status st, const char *message, void *arg);

/* The error code clients are told for ST (not AGENT_OK): agent_unavailable,
 * agent_timeout, agent_busy, unauthorized. */
const char *agent_error_code(enum agent_status st);

/* What the chosen backend needs from CFG (agent = openai: agent_url set
 * and well-formed, the key file readable); else "FILE:LINE: message" in
 * ERR.  For the command line's configuration check, after conf_check(). */
int agent_check(const struct conf *cfg, char *err, size_t errlen);

int agent_init(const struct worker_env *w);

/* Asks QUERY on behalf of USER, in ROOM (may be NULL: no room context).
 * Returns NULL when this worker is at its limit (agent_busy). */
struct agent_request *agent_ask(const char *query, const char *room, const char *user,
                                agent_chunk_cb on_chunk, agent_done_cb on_done, void *arg);

void agent_cancel(struct agent_request *r);

/* Whether agent_ask would start a request now (the worker is below
 * agent_max_concurrent). */
int agent_has_room(void);

/* Backend interface, for agent_builtin.c (and others). */
struct agent_backend {
    /* Optional: agent_check() for this backend. */
    int (*check)(const struct conf *cfg, char *err, size_t errlen);
    /* Optional: once at worker start, after agent_loop()/agent_conf() are
     * set; PL_ERR is logged by the backend and the worker carries on. */
    int (*init)(void);
    /* Starts R; calls agent_emit/agent_finish from the loop later. */
    int (*start)(struct agent_request *r);
    void (*cancel)(struct agent_request *r);
};

struct agent_request {
    const struct agent_backend *backend;
    char *query;
    char room[65];
    char user[65];
    agent_chunk_cb on_chunk;
    agent_done_cb on_done;
    void *arg;
    void *state;                /* the backend's */
};

/* For backends: the worker's loop and configuration; deliver a chunk; end
 * the request (frees it). */
struct event_base *agent_loop(void);
const struct conf *agent_conf(void);
void agent_emit(struct agent_request *r, const char *text, size_t len);
void agent_finish(struct agent_request *r, enum agent_status st, const char *message);

extern const struct agent_backend agent_builtin;
/* An OpenAI-compatible /v1/chat/completions endpoint, or a service that
 * streams ai_chunk events (agent_http.c). */
extern const struct agent_backend agent_http;

#endif
