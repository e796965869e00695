/* agent_builtin.c - a small deterministic assistant, streamed word by word.
 *
 * It answers "help", who is in the room, the time, a summary of the room's
 * last messages, and echoes anything else.  The delay between words is
 * agent_delay (0: as fast as the loop turns). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <json-c/json.h>

#include "agent.h"
#include "parley.h"
#include "store.h"

#define BUILTIN_SUMMARY_COUNT 10

struct builtin {
    struct agent_request *req;
    struct event *tick;
    struct evbuffer *answer;
    int cancelled;              /* a store call still points here */
    int waiting;
};

static int builtin_asks(const char *query, const char *word)
{
    for (const char *p = query; (p = strcasestr(p, word)) != NULL; p++) {
        int before = p == query || !isalpha((unsigned char)p[-1]);
        int after = !isalpha((unsigned char)p[strlen(word)]);
        if (before && after) {
            return 1;
        }
    }
    return 0;
}

static void builtin_free(struct builtin *b)
{
    if (b->tick != NULL) {
        event_free(b->tick);
    }
    if (b->answer != NULL) {
        evbuffer_free(b->answer);
    }
    free(b);
}

/* Sends the next word (with the space after it) and re-arms. */
static void builtin_on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct builtin *b = arg;
    struct agent_request *r = b->req;
    size_t len = evbuffer_get_length(b->answer), n = 0;
    const char *text = (const char *)evbuffer_pullup(b->answer, -1);
    int delay = agent_conf()->agent_delay_ms;
    struct timeval tv = { delay / 1000, (delay % 1000) * 1000 };

    PL_UNUSED(fd);
    PL_UNUSED(what);
    if (len == 0) {
        r->state = NULL;
        builtin_free(b);
        agent_finish(r, AGENT_OK, "");
        return;
    }
    while (n < len && text[n] != ' ') {
        n++;
    }
    while (n < len && text[n] == ' ') {
        n++;
    }
    agent_emit(r, text, n);
    evbuffer_drain(b->answer, n);
    evtimer_add(b->tick, &tv);
}

static void builtin_speak(struct builtin *b)
{
    b->tick = evtimer_new(agent_loop(), builtin_on_tick, b);
    event_active(b->tick, EV_TIMEOUT, 0);
}

/* A store answer came back: 0 when the request was cancelled meanwhile
 * (then B is gone). */
static int builtin_resume(struct builtin *b)
{
    b->waiting = 0;
    if (b->cancelled) {
        builtin_free(b);
        return 0;
    }
    return 1;
}

static void builtin_on_members(enum store_status st, const char *const *names, int n, void *arg)
{
    struct builtin *b = arg;

    if (!builtin_resume(b)) {
        return;
    }
    if (st != STORE_OK) {
        evbuffer_add_printf(b->answer, "I cannot see who is here right now.");
    } else {
        evbuffer_add_printf(b->answer, "In %s: ", b->req->room);
        for (int i = 0; i < n; i++) {
            evbuffer_add_printf(b->answer, "%s%s", names[i], i + 1 < n ? ", " : ".");
        }
        if (n == 0) {
            evbuffer_add_printf(b->answer, "nobody.");
        }
    }
    builtin_speak(b);
}

static void builtin_on_history(enum store_status st, const struct store_events *evs, void *arg)
{
    struct builtin *b = arg;

    if (!builtin_resume(b)) {
        return;
    }
    if (st != STORE_OK) {
        evbuffer_add_printf(b->answer, "I cannot read the history right now.");
    } else if (evs->count == 0) {
        evbuffer_add_printf(b->answer, "Nothing has been said in %s yet.", b->req->room);
    } else {
        evbuffer_add_printf(b->answer, "The last %d messages in %s:", evs->count, b->req->room);
        for (int i = 0; i < evs->count; i++) {
            json_object *m = json_tokener_parse(evs->items[i].json), *from, *content;
            if (m != NULL && json_object_object_get_ex(m, "from", &from)
                && json_object_object_get_ex(m, "content", &content)) {
                evbuffer_add_printf(b->answer, " %s said \"%s\"%s", json_object_get_string(from),
                                    json_object_get_string(content), i + 1 < evs->count ? ";" : ".");
            }
            json_object_put(m);
        }
    }
    builtin_speak(b);
}

static int builtin_start(struct agent_request *r)
{
    struct builtin *b = calloc(1, sizeof(*b));
    char when[64];
    time_t now = time(NULL);
    struct tm tm;

    if (b == NULL || (b->answer = evbuffer_new()) == NULL) {
        free(b);
        return PL_ERR;
    }
    b->req = r;
    r->state = b;
    if (builtin_asks(r->query, "help")) {
        evbuffer_add_printf(b->answer, "I can tell you who is here, the time, or sum up the last messages: "
                                       "ask \"who is here?\", \"what time is it?\" or \"summary\".");
    } else if (builtin_asks(r->query, "who") && r->room[0] != '\0') {
        b->waiting = store_members(r->room, builtin_on_members, b) == PL_OK;
        if (!b->waiting) {
            evbuffer_add_printf(b->answer, "I cannot see who is here right now.");
        }
    } else if (builtin_asks(r->query, "time")) {
        gmtime_r(&now, &tm);
        strftime(when, sizeof(when), "It is %H:%M UTC on %A, %d %B %Y.", &tm);
        evbuffer_add(b->answer, when, strlen(when));
    } else if ((builtin_asks(r->query, "summary") || builtin_asks(r->query, "summarize"))
               && r->room[0] != '\0') {
        b->waiting = store_history(r->room, NULL, NULL, BUILTIN_SUMMARY_COUNT, 0, builtin_on_history, b) == PL_OK;
        if (!b->waiting) {
            evbuffer_add_printf(b->answer, "I cannot read the history right now.");
        }
    } else {
        evbuffer_add_printf(b->answer, "You said: %s", r->query);
    }
    if (!b->waiting) {
        builtin_speak(b);
    }
    return PL_OK;
}

static void builtin_cancel(struct agent_request *r)
{
    struct builtin *b = r->state;

    if (b == NULL) {
        return;
    }
    if (b->waiting) {
        b->cancelled = 1;       /* the store callback frees it */
        return;
    }
    builtin_free(b);
}

const struct agent_backend agent_builtin = {
    .start = builtin_start,
    .cancel = builtin_cancel,
};
