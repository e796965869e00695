/* chat.c - rooms, presence, direct messages and the JSON protocol on top of
 * WebSocket connections. */
#include "chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <json-c/json.h>

#include "agent.h"
#include "bus.h"
#include "event.h"
#include "json_field.h"
#include "json_strict.h"
#include "log.h"
#include "names.h"
#include "parley.h"
#include "presence.h"
#include "rate.h"
#include "store.h"
#include "ws.h"
#include "ws_frame.h"

#define CHAT_CACHE_SLOT 0       /* bus_event cache slot of the WebSocket frame */
#define CHAT_HISTORY_DEFAULT 50
#define CHAT_HISTORY_MAX 200
#define CHAT_CMID_MAX 128
#define CHAT_FLOOD_FACTOR 10    /* a client this far over the limit ... */
#define CHAT_FLOOD_SECONDS 10   /* ... for this long is closed with 1008 */

enum chat_state { CHAT_JOINING, CHAT_LIVE };

struct chat_client {
    struct ws_conn *ws;
    struct bus_sub room_sub;
    struct bus_sub user_sub;
    enum chat_state st;
    int64_t opened_ms;          /* for the join deadline */
    LIST_ENTRY(chat_client) joining;    /* on the joining list until welcomed */
    int joined;                 /* counted in the room's presence */
    int closed;
    int pending;                /* store calls that will come back to us */
    struct auth_identity who;
    char room[PL_NAME_MAX + 1];
    char welcome_last[BUS_ID_MAX];  /* stored events up to here are history */
    struct event_id welcome_sid;    /* the same, parsed ("": 0-0) */
    struct bus_held held;       /* events that came before the welcome */
    char **members;             /* names for the welcome, while it is built */
    int nmembers;
    LIST_HEAD(, chat_ask) asks; /* agent answers this client asked for */
    /* rate limit: token bucket, and how long the client has flooded */
    struct rate_bucket bucket;
    int64_t limited_ms;         /* last rate_limited error sent */
    int64_t second_ms;          /* start of the current one-second window */
    int second_count;
    int flood_seconds;
};

/* A question to the agent: the answer streams to the whole room, then is
 * stored as the agent's message.  It dies with the asking connection. */
struct chat_ask {
    struct chat_client *cl;
    struct agent_request *agent;
    char request_id[24];
    char room[PL_NAME_MAX + 1];
    struct evbuffer *answer;
    LIST_ENTRY(chat_ask) link;
};

static const struct conf *cfg;
static uint64_t direct_seq;
static LIST_HEAD(, chat_client) joining = LIST_HEAD_INITIALIZER(joining);
static struct event *join_sweep;

static void chat_ask_free(struct chat_ask *ask);

static int64_t chat_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t chat_wall_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void chat_free(struct chat_client *cl)
{
    bus_held_clear(&cl->held);
    for (int i = 0; i < cl->nmembers; i++) {
        free(cl->members[i]);
    }
    free(cl->members);
    free(cl);
}

/* Store callbacks hold a reference; the client goes when the last does. */
static int chat_unpin(struct chat_client *cl)
{
    cl->pending--;
    if (cl->closed && cl->pending == 0) {
        chat_free(cl);
        return 0;
    }
    return !cl->closed;
}

/* After a reply to the client's request is queued: when it was the last
 * one owed, a close from the client that waited for it may go ahead. */
static void chat_replied(struct chat_client *cl)
{
    if (cl->pending == 0) {
        ws_replies_done(cl->ws);
    }
}

/* For ws.h: once the client is live, every store call in flight is a
 * reply owed to one of its requests (while joining, none is). */
static int chat_owes_replies(struct ws_conn *ws, void *state)
{
    const struct chat_client *cl = state;

    PL_UNUSED(ws);
    return cl->st == CHAT_LIVE && cl->pending > 0;
}

static void chat_send_buffer(struct chat_client *cl, struct evbuffer *b)
{
    ws_send_text(cl->ws, (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
}

/* MESSAGE is plain text: it is escaped here, whatever it holds. */
static void chat_error(struct chat_client *cl, const char *code, const char *message)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        return;
    }
    evbuffer_add_printf(b, "{\"type\":\"error\",\"code\":\"%s\",\"message\":\"", code);
    event_escape(b, message, strlen(message));
    evbuffer_add(b, "\"}", 2);
    chat_send_buffer(cl, b);
    evbuffer_free(b);
}

/* --- events from the bus ------------------------------------------------ */

static void *chat_encode(struct bus_event *ev)
{
    return ws_text_frame(ev->json, ev->json_len);
}

static int chat_wants(const struct chat_client *cl, const struct bus_event *ev)
{
    return bus_event_for(ev, cl->who.user) && (!ev->stored || event_id_order(&ev->sid, &cl->welcome_sid) > 0);
}

static void chat_deliver(struct chat_client *cl, struct bus_event *ev)
{
    if (chat_wants(cl, ev)) {
        ws_send_event(cl->ws, bus_event_cache(ev, CHAT_CACHE_SLOT, chat_encode, chunk_free_cached));
    }
}

static void chat_on_event(struct chat_client *cl, struct bus_event *ev)
{
    if (cl->st == CHAT_LIVE) {
        chat_deliver(cl, ev);
    } else if (!cl->closed && bus_held_push(&cl->held, ev) != PL_OK) {
        ws_close(cl->ws, 1011, "out of memory");    /* rather than a silent gap */
    }
}

static void chat_on_room_event(struct bus_sub *sub, struct bus_event *ev)
{
    chat_on_event(PL_CONTAINER_OF(sub, struct chat_client, room_sub), ev);
}

static void chat_on_rechecked(int revoked, void *arg)
{
    struct chat_client *cl = arg;

    if (!chat_unpin(cl)) {
        return;
    }
    if (revoked) {
        ws_close(cl->ws, 1008, "session revoked");
    } else {
        chat_replied(cl);
    }
}

/* Checks once more that the client's session was not revoked while the
 * connection was being opened: a "revoked" event published before the
 * user's channel was subscribed never reached it. */
static void chat_recheck(struct chat_client *cl)
{
    if (!cl->closed && auth_recheck(&cl->who, chat_on_rechecked, cl) == PL_OK) {
        cl->pending++;
    }
}

static void chat_on_user_event(struct bus_sub *sub, struct bus_event *ev)
{
    struct chat_client *cl = PL_CONTAINER_OF(sub, struct chat_client, user_sub);

    if (strcmp(ev->type, "revoked") == 0) {
        chat_recheck(cl);
        return;
    }
    chat_on_event(cl, ev);
}

/* --- joining: subscribe, presence, welcome ------------------------------ */

/* A join that came while joining, of someone the welcome already lists:
 * old news for this client. */
static int chat_welcomed_join(const struct chat_client *cl, const struct bus_event *ev)
{
    if (strcmp(ev->type, "presence") != 0 || strstr(ev->json, "\"event\":\"join\"") == NULL) {
        return 0;
    }
    for (int i = 0; i < cl->nmembers; i++) {
        if (strcmp(cl->members[i], ev->user) == 0) {
            return 1;
        }
    }
    return 0;
}

static void chat_send_welcome(struct chat_client *cl)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        ws_close(cl->ws, 1011, "out of memory");
        return;
    }
    evbuffer_add_printf(b, "{\"type\":\"welcome\",\"user\":\"%s\",\"room\":\"%s\",\"members\":[", cl->who.user, cl->room);
    for (int i = 0; i < cl->nmembers; i++) {
        evbuffer_add_printf(b, "%s\"%s\"", i ? "," : "", cl->members[i]);
    }
    if (cl->welcome_last[0] != '\0') {
        evbuffer_add_printf(b, "],\"last_id\":\"%s\"}", cl->welcome_last);
    } else {
        evbuffer_add_printf(b, "],\"last_id\":null}");
    }
    chat_send_buffer(cl, b);
    evbuffer_free(b);

    cl->st = CHAT_LIVE;
    LIST_REMOVE(cl, joining);
    for (int i = 0; i < cl->held.n; i++) {
        if (!chat_welcomed_join(cl, cl->held.ev[i])) {
            chat_deliver(cl, cl->held.ev[i]);
        }
    }
    bus_held_clear(&cl->held);
}

/* The room cannot be joined (Redis down or not answering): say so and
 * close, rather than leave the client waiting for a welcome. */
static void chat_join_failed(struct chat_client *cl)
{
    chat_error(cl, "redis_unavailable", "cannot join the room now; try again later");
    ws_close(cl->ws, 1011, "redis unavailable");
}

static void chat_on_last_id(enum store_status st, const char *id, void *arg)
{
    struct chat_client *cl = arg;

    if (!chat_unpin(cl)) {
        return;
    }
    if (st != STORE_OK) {
        chat_join_failed(cl);
        return;
    }
    snprintf(cl->welcome_last, sizeof(cl->welcome_last), "%s", id);
    event_id_parse(id, &cl->welcome_sid);      /* stays 0-0 for an empty room */
    chat_send_welcome(cl);
}

static void chat_on_members(enum store_status st, const char *const *names, int n, void *arg)
{
    struct chat_client *cl = arg;

    if (!chat_unpin(cl)) {
        return;
    }
    if (st == STORE_OK && (cl->members = calloc((size_t)n + 1, sizeof(char *))) != NULL) {
        for (int i = 0; i < n; i++) {
            cl->members[cl->nmembers] = strdup(names[i]);
            cl->nmembers += cl->members[cl->nmembers] != NULL;
        }
    }
    /* The newest id is read after the subscription is live: whatever is
     * stored later reaches the client live, whatever before is history. */
    if (store_last_id(cl->room, chat_on_last_id, cl) == PL_OK) {
        cl->pending++;
    } else {
        chat_join_failed(cl);
    }
}

static void chat_on_ready(struct chat_client *cl)
{
    if (!cl->room_sub.ready || !cl->user_sub.ready || cl->closed) {
        return;
    }
    presence_join(cl->room, cl->who.user);
    cl->joined = 1;
    chat_recheck(cl);
    /* Sent after the join on the same connection, so the user is listed. */
    if (store_members(cl->room, chat_on_members, cl) == PL_OK) {
        cl->pending++;
    } else {
        chat_join_failed(cl);
    }
}

static void chat_on_room_ready(struct bus_sub *sub)
{
    chat_on_ready(PL_CONTAINER_OF(sub, struct chat_client, room_sub));
}

static void chat_on_user_ready(struct bus_sub *sub)
{
    chat_on_ready(PL_CONTAINER_OF(sub, struct chat_client, user_sub));
}

static void *chat_open(struct ws_conn *ws, const struct auth_identity *who, const char *room)
{
    struct chat_client *cl = calloc(1, sizeof(*cl));
    char channel[256];

    if (cl == NULL) {
        return NULL;
    }
    cl->ws = ws;
    LIST_INIT(&cl->asks);
    cl->who = *who;
    snprintf(cl->room, sizeof(cl->room), "%s", room);
    rate_init(&cl->bucket, cfg->rate_burst, chat_now_ms());
    cl->opened_ms = chat_now_ms();
    LIST_INSERT_HEAD(&joining, cl, joining);
    cl->room_sub.on_event = chat_on_room_event;
    cl->room_sub.on_ready = chat_on_room_ready;
    cl->user_sub.on_event = chat_on_user_event;
    cl->user_sub.on_ready = chat_on_user_ready;
    if (bus_sub_add(&cl->room_sub, store_room_channel(room, channel, sizeof(channel))) != PL_OK
        || bus_sub_add(&cl->user_sub, store_user_channel(who->user, channel, sizeof(channel))) != PL_OK) {
        bus_sub_remove(&cl->room_sub);
        LIST_REMOVE(cl, joining);
        free(cl);
        return NULL;
    }
    return cl;
}

static void chat_close(struct ws_conn *ws, void *state)
{
    struct chat_client *cl = state;

    PL_UNUSED(ws);
    if (cl->st == CHAT_JOINING) {
        LIST_REMOVE(cl, joining);
    }
    bus_sub_remove(&cl->room_sub);
    bus_sub_remove(&cl->user_sub);
    while (!LIST_EMPTY(&cl->asks)) {
        struct chat_ask *ask = LIST_FIRST(&cl->asks);
        agent_cancel(ask->agent);   /* nobody is left to ask for it */
        chat_ask_free(ask);
    }
    if (cl->joined) {
        presence_leave(cl->room, cl->who.user);
    }
    cl->closed = 1;
    cl->ws = NULL;
    if (cl->pending == 0) {
        chat_free(cl);
    }
}

/* --- client messages ---------------------------------------------------- */

/* Returns 0 when the message must be dropped (with at most one error a
 * second); closes a client that keeps flooding. */
static int chat_rate_ok(struct chat_client *cl)
{
    int64_t now = chat_now_ms();

    if (cfg->rate_limit == 0) {
        return 1;
    }
    if (now - cl->second_ms >= 1000) {
        int over = cl->second_count > CHAT_FLOOD_FACTOR * cfg->rate_limit;
        cl->flood_seconds = over ? cl->flood_seconds + 1 : 0;
        cl->second_ms = now;
        cl->second_count = 0;
    }
    cl->second_count++;
    if (cl->flood_seconds >= CHAT_FLOOD_SECONDS) {
        log_warn("event=flood_closed user=%s room=%s", cl->who.user, cl->room);
        ws_close(cl->ws, 1008, "flooding");
        return 0;
    }
    if (rate_take(&cl->bucket, cfg->rate_limit, cfg->rate_burst, now, NULL)) {
        return 1;
    }
    if (now - cl->limited_ms >= 1000) {
        cl->limited_ms = now;
        chat_error(cl, "rate_limited", "too many messages; slow down");
    }
    return 0;
}

/* Validates "content": 1..max_content bytes.  Returns it, or NULL after
 * sending the error. */
static const char *chat_content(struct chat_client *cl, json_object *msg, size_t *len)
{
    int bad = 0;
    const char *content = json_field_string(msg, "content", len, &bad);

    if (content == NULL || *len == 0) {
        chat_error(cl, "bad_request", "\"content\" must be a non-empty string");
        return NULL;
    }
    if (*len > cfg->max_content) {
        chat_error(cl, "too_large", "\"content\" is too long");
        return NULL;
    }
    return content;
}

struct chat_ack {
    struct chat_client *cl;
    char cmid[CHAT_CMID_MAX + 1];
    int has_cmid;
    char id[BUS_ID_MAX];        /* a direct message's id */
};

static void chat_send_ack(struct chat_client *cl, const struct chat_ack *a, const char *id)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        return;
    }
    evbuffer_add_printf(b, "{\"type\":\"ack\",\"client_msg_id\":");
    if (a->has_cmid) {
        evbuffer_add(b, "\"", 1);
        event_escape(b, a->cmid, strlen(a->cmid));
        evbuffer_add(b, "\"", 1);
    } else {
        evbuffer_add(b, "null", 4);
    }
    evbuffer_add_printf(b, ",\"id\":\"%s\"}", id);
    chat_send_buffer(cl, b);
    evbuffer_free(b);
}

static void chat_on_published(enum store_status st, const char *id, long detail, void *arg)
{
    struct chat_ack *a = arg;

    PL_UNUSED(detail);
    if (chat_unpin(a->cl)) {
        if (st == STORE_OK) {
            chat_send_ack(a->cl, a, id);
        } else {
            chat_error(a->cl, "redis_unavailable", "the message could not be stored");
        }
        chat_replied(a->cl);
    }
    free(a);
}

static struct chat_ack *chat_ack_new(struct chat_client *cl, json_object *msg)
{
    struct chat_ack *a;
    const char *cmid;
    size_t len = 0;
    int bad = 0;

    cmid = json_field_string(msg, "client_msg_id", &len, &bad);
    if (bad || (cmid != NULL && (len == 0 || len > CHAT_CMID_MAX))) {
        chat_error(cl, "bad_request", "\"client_msg_id\" must be a string of 1..128 characters");
        return NULL;
    }
    a = calloc(1, sizeof(*a));
    if (a != NULL) {
        a->cl = cl;
        a->has_cmid = cmid != NULL;
        snprintf(a->cmid, sizeof(a->cmid), "%s", cmid ? cmid : "");
    }
    return a;
}

static void chat_message(struct chat_client *cl, json_object *msg)
{
    size_t len;
    const char *content = chat_content(cl, msg, &len);
    struct chat_ack *a;

    if (content == NULL || (a = chat_ack_new(cl, msg)) == NULL) {
        return;
    }
    if (store_message_publish(cl->room, cl->who.user, content, len, a->has_cmid ? a->cmid : NULL, 0,
                              chat_on_published, a) != PL_OK) {
        chat_error(cl, "redis_unavailable", "the message could not be stored");
        free(a);
        return;
    }
    cl->pending++;
}

static void chat_on_direct_sent(enum store_status st, long long receivers, void *arg)
{
    struct chat_ack *a = arg;

    if (chat_unpin(a->cl)) {
        if (st != STORE_OK) {
            chat_error(a->cl, "redis_unavailable", "the message could not be sent");
        } else if (receivers == 0) {
            chat_error(a->cl, "user_offline", "that user has no open connection");
        } else if (a->has_cmid) {
            chat_send_ack(a->cl, a, a->id);
        }
        chat_replied(a->cl);
    }
    free(a);
}

static void chat_direct(struct chat_client *cl, json_object *msg)
{
    char channel[256];
    const char *to;
    size_t len, tolen = 0;
    int bad = 0;
    const char *content;
    struct chat_ack *a;
    struct evbuffer *b;
    int64_t now = chat_wall_ms();

    to = json_field_string(msg, "to", &tolen, &bad);
    if (to == NULL || !name_valid(to)) {
        chat_error(cl, "bad_request", "\"to\" must be a user name");
        return;
    }
    if ((content = chat_content(cl, msg, &len)) == NULL || (a = chat_ack_new(cl, msg)) == NULL) {
        return;
    }
    /* Direct messages are live only; their id has the stream id's form so
     * clients order and de-duplicate them the same way. */
    snprintf(a->id, sizeof(a->id), "%lld-%llu", (long long)now, (unsigned long long)++direct_seq);
    if ((b = evbuffer_new()) == NULL) {
        free(a);
        return;
    }
    event_header(b, "direct", a->id, cl->who.user);
    event_direct(b, a->id, cl->who.user, to, content, len, now);
    if (store_publish_live(store_user_channel(to, channel, sizeof(channel)), (const char *)evbuffer_pullup(b, -1),
                           evbuffer_get_length(b), chat_on_direct_sent, a) == PL_OK) {
        cl->pending++;
    } else {
        chat_error(cl, "redis_unavailable", "the message could not be sent");
        free(a);
    }
    evbuffer_free(b);
}

static void chat_typing(struct chat_client *cl)
{
    char channel[256];
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        return;
    }
    event_header(b, "typing", NULL, cl->who.user);
    event_typing(b, cl->who.user, cl->room);
    if (store_publish_live(store_room_channel(cl->room, channel, sizeof(channel)),
                           (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b), NULL, NULL) != PL_OK) {
        chat_error(cl, "redis_unavailable", "typing could not be sent");
    }
    evbuffer_free(b);
}

static void chat_on_history(enum store_status st, const struct store_events *evs, void *arg)
{
    struct chat_client *cl = arg;
    struct evbuffer *b;

    if (!chat_unpin(cl)) {
        return;
    }
    if (st != STORE_OK || (b = evbuffer_new()) == NULL) {
        chat_error(cl, "redis_unavailable", "history is unavailable");
    } else {
        evbuffer_add_printf(b, "{\"type\":\"history\",\"messages\":[");
        for (int i = 0; i < evs->count; i++) {
            if (i > 0) {
                evbuffer_add(b, ",", 1);
            }
            evbuffer_add(b, evs->items[i].json, evs->items[i].len);
        }
        evbuffer_add(b, "]}", 2);
        chat_send_buffer(cl, b);
        evbuffer_free(b);
    }
    chat_replied(cl);
}

static void chat_history(struct chat_client *cl, json_object *msg)
{
    json_object *v;
    const char *before = NULL;
    size_t len;
    int bad = 0;
    int64_t limit = CHAT_HISTORY_DEFAULT;

    before = json_field_string(msg, "before", &len, &bad);
    if (bad || (before != NULL && !event_id_valid(before))) {
        chat_error(cl, "bad_request", "\"before\" must be a stream id");
        return;
    }
    if (json_object_object_get_ex(msg, "limit", &v) && !json_object_is_type(v, json_type_null)) {
        if (!json_object_is_type(v, json_type_int) || (limit = json_object_get_int64(v)) < 1) {
            chat_error(cl, "bad_request", "\"limit\" must be a positive integer");
            return;
        }
        limit = limit > CHAT_HISTORY_MAX ? CHAT_HISTORY_MAX : limit;
    }
    if (store_history(cl->room, NULL, before, (int)limit, chat_on_history, cl) == PL_OK) {
        cl->pending++;
    } else {
        chat_error(cl, "redis_unavailable", "history is unavailable");
    }
}

static void chat_publish_room(const char *room, const char *type, const char *user, struct evbuffer *json)
{
    char channel[256];
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        return;
    }
    event_header(b, type, NULL, user);
    evbuffer_add_buffer(b, json);
    store_publish_live(store_room_channel(room, channel, sizeof(channel)), (const char *)evbuffer_pullup(b, -1),
                       evbuffer_get_length(b), NULL, NULL);
    evbuffer_free(b);
}

static void chat_ask_free(struct chat_ask *ask)
{
    LIST_REMOVE(ask, link);
    evbuffer_free(ask->answer);
    free(ask);
}

static void chat_ask_on_chunk(const char *text, size_t len, void *arg)
{
    struct chat_ask *ask = arg;
    struct evbuffer *json = evbuffer_new();

    if (json == NULL) {
        return;
    }
    evbuffer_add(ask->answer, text, len);
    evbuffer_add_printf(json, "{\"type\":\"ai_chunk\",\"request_id\":\"%s\",\"content\":\"", ask->request_id);
    event_escape(json, text, len);
    evbuffer_add(json, "\"}", 2);
    chat_publish_room(ask->room, "ai_chunk", cfg->agent_name, json);
    evbuffer_free(json);
}

/* The complete answer is stored as the agent's message, then ai_done names
 * its id, so late joiners and resumed clients see it in the history. */
static void chat_ask_on_stored(enum store_status st, const char *id, long detail, void *arg)
{
    char *request = arg;
    const char *room = request + strlen(request) + 1;
    struct evbuffer *json = evbuffer_new();

    PL_UNUSED(detail);
    if (json != NULL && st == STORE_OK) {
        evbuffer_add_printf(json, "{\"type\":\"ai_done\",\"request_id\":\"%s\",\"id\":\"%s\"}", request, id);
        chat_publish_room(room, "ai_done", cfg->agent_name, json);
    }
    if (json != NULL) {
        evbuffer_free(json);
    }
    free(request);
}

static void chat_ask_on_done(enum agent_status st, const char *message, void *arg)
{
    struct chat_ask *ask = arg;
    size_t len = evbuffer_get_length(ask->answer);
    size_t rlen = strlen(ask->request_id), mlen = strlen(ask->room);
    char *ids;

    ask->agent = NULL;
    if (st != AGENT_OK) {
        chat_error(ask->cl, st == AGENT_TIMEOUT ? "agent_timeout" : "agent_unavailable", message);
    } else if (len > 0 && (ids = malloc(rlen + mlen + 2)) != NULL) {
        /* The asker may be gone when Redis answers: keep only the ids. */
        memcpy(ids, ask->request_id, rlen + 1);
        memcpy(ids + rlen + 1, ask->room, mlen + 1);
        if (store_message_publish(ask->room, cfg->agent_name, (const char *)evbuffer_pullup(ask->answer, -1),
                                  len, NULL, 0, chat_ask_on_stored, ids) != PL_OK) {
            chat_error(ask->cl, "redis_unavailable", "the answer could not be stored");
            free(ids);
        }
    }
    chat_ask_free(ask);
}

static void chat_ask(struct chat_client *cl, json_object *msg)
{
    size_t len;
    const char *question = chat_content(cl, msg, &len);
    struct chat_ask *ask;

    if (question == NULL) {
        return;
    }
    if ((ask = calloc(1, sizeof(*ask))) == NULL || (ask->answer = evbuffer_new()) == NULL) {
        free(ask);
        chat_error(cl, "agent_unavailable", "out of memory");
        return;
    }
    ask->cl = cl;
    snprintf(ask->request_id, sizeof(ask->request_id), "%llx", (unsigned long long)++direct_seq);
    snprintf(ask->room, sizeof(ask->room), "%s", cl->room);
    LIST_INSERT_HEAD(&cl->asks, ask, link);
    ask->agent = agent_ask(question, cl->room, cl->who.user, chat_ask_on_chunk, chat_ask_on_done, ask);
    if (ask->agent == NULL) {
        chat_ask_free(ask);
        chat_error(cl, "agent_busy", "the agent is busy; try again shortly");
    }
}

static void chat_on_text(struct ws_conn *ws, void *state, const char *text, size_t len)
{
    struct chat_client *cl = state;
    json_object *msg, *type;
    const char *t;
    char why[160];

    PL_UNUSED(ws);
    if (!chat_rate_ok(cl)) {
        return;
    }
    msg = json_strict_parse(text, len, "the message", why, sizeof(why));
    if (msg == NULL) {
        chat_error(cl, "invalid_json", why);
    } else if (!json_object_object_get_ex(msg, "type", &type) || !json_object_is_type(type, json_type_string)) {
        chat_error(cl, "bad_request", "\"type\" is missing");
    } else if (cl->st != CHAT_LIVE) {
        chat_error(cl, "bad_request", "wait for the welcome before sending");
    } else if (strcmp(t = json_object_get_string(type), "message") == 0) {
        chat_message(cl, msg);
    } else if (strcmp(t, "direct") == 0) {
        chat_direct(cl, msg);
    } else if (strcmp(t, "typing") == 0) {
        chat_typing(cl);
    } else if (strcmp(t, "history") == 0) {
        chat_history(cl, msg);
    } else if (strcmp(t, "ask") == 0) {
        chat_ask(cl, msg);
    } else {
        chat_error(cl, "bad_request", "unknown message type");
    }
    json_object_put(msg);
}

static const struct ws_handlers chat_handlers = {
    .on_open = chat_open,
    .on_text = chat_on_text,
    .on_close = chat_close,
    .owes_replies = chat_owes_replies,
};

/* A connection that cannot be welcomed (Redis down or unanswering) is told
 * so and closed, instead of waiting silently. */
static void chat_on_join_sweep(evutil_socket_t fd, short what, void *arg)
{
    int64_t now = chat_now_ms();
    struct chat_client *cl, *next;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    for (cl = LIST_FIRST(&joining); cl != NULL; cl = next) {
        next = LIST_NEXT(cl, joining);
        if (now - cl->opened_ms > 2 * cfg->redis_timeout_ms && !cl->closed) {
            chat_join_failed(cl);
            cl->opened_ms = now;        /* the close is under way: say it once */
        }
    }
}

void chat_register(struct event_base *base, const struct conf *c)
{
    struct timeval tick = { 1, 0 };

    cfg = c;
    join_sweep = event_new(base, -1, EV_PERSIST, chat_on_join_sweep, NULL);
    event_add(join_sweep, &tick);
    if (getrandom(&direct_seq, sizeof(direct_seq), 0) != sizeof(direct_seq)) {
        direct_seq = (uint64_t)time(NULL);
    }
    direct_seq &= 0xffffffffffffULL;    /* room to count, still unique per worker */
    ws_register(base, cfg, &chat_handlers);
}
