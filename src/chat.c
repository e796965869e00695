/* chat.c - rooms, presence, direct messages and the JSON protocol on top of
 * WebSocket connections. */
#include "chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/random.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <json-c/json.h>

#include "answer.h"
#include "bus.h"
#include "clock.h"
#include "feed.h"
#include "event.h"
#include "json_field.h"
#include "json_strict.h"
#include "log.h"
#include "names.h"
#include "parley.h"
#include "rate.h"
#include "store.h"
#include "ws.h"
#include "ws_frame.h"
#include "worker_env.h"

#define CHAT_HISTORY_DEFAULT 50
#define CHAT_HISTORY_MAX 200
#define CHAT_CMID_MAX 128
#define CHAT_TOKEN_MAX 4096
#define CHAT_FLOOD_FACTOR 10    /* a client this far over the limit ... */
#define CHAT_FLOOD_SECONDS 10   /* ... for this long is closed with 1008 */

struct chat_client {
    struct ws_conn *ws;
    struct feed feed;           /* the room and the user's direct messages */
    char resume[EVENT_ID_MAX];  /* the id the client resumes from, "" for none */
    int closed;
    int pending;                /* store calls that will come back to us */
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

/* A question this client asked, while the agent works on it: its failure
 * is told to the asker.  The answer itself belongs to the room (answer.h)
 * and outlives the connection. */
struct chat_ask {
    struct chat_client *cl;
    struct answer *answer;
    LIST_ENTRY(chat_ask) link;
};

static struct {
    const struct conf *cfg;
    uint64_t direct_seq;
} chat;

static void chat_ask_free(struct chat_ask *ask);

static void chat_free(struct chat_client *cl)
{
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
    return feed_live(&cl->feed) && cl->pending > 0;
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

/* --- the room's feed ---------------------------------------------------- */

static struct chat_client *chat_of(struct feed *f)
{
    return PL_CONTAINER_OF(f, struct chat_client, feed);
}

static void *chat_encode(struct bus_event *ev)
{
    return ws_event_new(ev->json, ev->json_len);
}

static void chat_deliver(struct feed *f, void *encoded, const struct bus_event *ev)
{
    PL_UNUSED(ev);
    ws_send_event(chat_of(f)->ws, encoded);
}

/* A join that came while joining, of someone the welcome already lists,
 * is old news for this client. */
static int chat_still_news(struct feed *f, const struct bus_event *ev)
{
    struct chat_client *cl = chat_of(f);

    if (strcmp(ev->type, "presence") != 0 || strstr(ev->json, "\"event\":\"join\"") == NULL) {
        return 1;
    }
    for (int i = 0; i < cl->nmembers; i++) {
        if (strcmp(cl->members[i], ev->user) == 0) {
            return 0;
        }
    }
    return 1;
}

/* The room cannot be joined (Redis down or not answering): say so and
 * close, rather than leave the client waiting for a welcome. */
static void chat_join_failed(struct chat_client *cl)
{
    chat_error(cl, "redis_unavailable", "cannot join the room now; try again later");
    ws_close(cl->ws, 1011, "redis unavailable");
}

static void chat_end(struct feed *f, enum feed_end why)
{
    struct chat_client *cl = chat_of(f);

    switch (why) {
    case FEED_REVOKED:
        ws_close(cl->ws, 1008, "session revoked");
        break;
    case FEED_EXPIRED:
        ws_close(cl->ws, 1008, "token expired");
        break;
    case FEED_UNAVAILABLE:
        chat_join_failed(cl);
        break;
    case FEED_NO_MEMORY:
        ws_close(cl->ws, 1011, "out of memory");
        break;
    }
}

static void chat_pin(struct feed *f)
{
    chat_of(f)->pending++;
}

static int chat_feed_unpin(struct feed *f)
{
    struct chat_client *cl = chat_of(f);

    if (!chat_unpin(cl)) {
        return 0;
    }
    chat_replied(cl);
    return 1;
}

/* The welcome names the members (the user included) and the newest stored
 * id: whatever is stored after it reaches the client live, whatever up to
 * it is history, so the client misses nothing and sees nothing twice. */
static void chat_send_welcome(struct chat_client *cl, const char *last_id)
{
    struct evbuffer *b = evbuffer_new();
    struct event_id sid;

    if (b == NULL) {
        ws_close(cl->ws, 1011, "out of memory");
        return;
    }
    evbuffer_add_printf(b, "{\"type\":\"welcome\",\"user\":\"%s\",\"room\":\"%s\",\"members\":[",
                        cl->feed.who.user, cl->feed.room);
    for (int i = 0; i < cl->nmembers; i++) {
        evbuffer_add_printf(b, "%s\"%s\"", i ? "," : "", cl->members[i]);
    }
    if (last_id[0] != '\0') {
        evbuffer_add_printf(b, "],\"last_id\":\"%s\"}", last_id);
    } else {
        evbuffer_add_printf(b, "],\"last_id\":null}");
    }
    chat_send_buffer(cl, b);
    evbuffer_free(b);
    if (event_id_parse(last_id, &sid) == 0) {
        feed_mark(&cl->feed, &sid);
    }
}

/* The cut: the welcome, then what the client missed since the id it
 * resumes from (or a reset when that id is unknown), or for a fresh join
 * the answers in progress so far; then live. */
static void chat_on_cut(enum store_status st, const struct store_events *evs, void *arg)
{
    struct chat_client *cl = arg;

    if (!chat_unpin(cl)) {
        return;
    }
    if (st == STORE_UNAVAILABLE) {
        chat_join_failed(cl);
        return;
    }
    chat_send_welcome(cl, evs->newest);
    if (st == STORE_NOT_FOUND) {
        char json[96];
        int n = snprintf(json, sizeof(json), "{\"type\":\"reset\",\"oldest\":%s%s%s}",
                         evs->oldest[0] ? "\"" : "", evs->oldest[0] ? evs->oldest : "null",
                         evs->oldest[0] ? "\"" : "");
        ws_send_text(cl->ws, json, (size_t)n);
    }
    for (int i = 0; i < evs->count; i++) {
        ws_send_text(cl->ws, evs->items[i].json, evs->items[i].len);
    }
    feed_go_live(&cl->feed);
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
    if (store_history_resume(cl->feed.room, cl->resume[0] ? cl->resume : NULL, chat_on_cut, cl) == PL_OK) {
        cl->pending++;
    } else {
        chat_join_failed(cl);
    }
}

/* Subscribed and counted in: the members (the user among them), then the
 * cut, then the welcome. */
static void chat_ready(struct feed *f)
{
    struct chat_client *cl = chat_of(f);

    if (store_members(f->room, chat_on_members, cl) == PL_OK) {
        cl->pending++;
    } else {
        chat_join_failed(cl);
    }
}

static const struct feed_ops chat_feed_ops = {
    .slot = FEED_SLOT_WS,
    .encode = chat_encode,
    .free_encoded = ws_event_free,
    .ready = chat_ready,
    .deliver = chat_deliver,
    .still_news = chat_still_news,
    .end = chat_end,
    .pin = chat_pin,
    .unpin = chat_feed_unpin,
};

static void *chat_open(struct ws_conn *ws, const struct auth_identity *who, const char *room,
                       const char *resume)
{
    struct chat_client *cl = calloc(1, sizeof(*cl));

    if (cl == NULL) {
        return NULL;
    }
    cl->ws = ws;
    snprintf(cl->resume, sizeof(cl->resume), "%s", resume);
    LIST_INIT(&cl->asks);
    rate_init(&cl->bucket, chat.cfg->rate_burst, clock_coarse_ms());
    if (feed_open(&cl->feed, &chat_feed_ops, who, room) != PL_OK) {
        free(cl);
        return NULL;
    }
    return cl;
}

static void chat_close(struct ws_conn *ws, void *state)
{
    struct chat_client *cl = state;

    PL_UNUSED(ws);
    feed_close(&cl->feed);
    while (!LIST_EMPTY(&cl->asks)) {
        struct chat_ask *ask = LIST_FIRST(&cl->asks);
        answer_detach(ask->answer);     /* the room still gets it */
        chat_ask_free(ask);
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
    int64_t now = clock_coarse_ms();

    if (chat.cfg->rate_limit == 0) {
        return 1;
    }
    if (now - cl->second_ms >= 1000) {
        int over = cl->second_count > CHAT_FLOOD_FACTOR * chat.cfg->rate_limit;
        cl->flood_seconds = over ? cl->flood_seconds + 1 : 0;
        cl->second_ms = now;
        cl->second_count = 0;
    }
    cl->second_count++;
    if (cl->flood_seconds >= CHAT_FLOOD_SECONDS) {
        log_warn("event=flood_closed user=%s room=%s", cl->feed.who.user, cl->feed.room);
        ws_close(cl->ws, 1008, "flooding");
        return 0;
    }
    if (rate_take(&cl->bucket, chat.cfg->rate_limit, chat.cfg->rate_burst, now, NULL)) {
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
    if (*len > chat.cfg->max_content) {
        chat_error(cl, "too_large", "\"content\" is too long");
        return NULL;
    }
    return content;
}

struct chat_ack {
    struct chat_client *cl;
    char cmid[CHAT_CMID_MAX + 1];
    int has_cmid;
    char id[EVENT_ID_MAX];        /* a direct message's id */
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
        } else if (st == STORE_NOT_FOUND) {
            feed_revoked(&a->cl->feed);
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
        chat_error(cl, "bad_request", "\"client_msg_id\" must be a string of 1..128 bytes");
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
    struct store_message m = { .room = cl->feed.room, .from = cl->feed.who.user, .content = content };

    if (content == NULL || (a = chat_ack_new(cl, msg)) == NULL) {
        return;
    }
    m.len = len;
    m.session = cl->feed.who.session[0] ? cl->feed.who.session : NULL;
    m.cmid = a->has_cmid ? a->cmid : NULL;
    if (store_message_publish(&m, chat_on_published, a) != PL_OK) {
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
    int64_t now = clock_wall_ms();

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
    snprintf(a->id, sizeof(a->id), "%lld-%llu", (long long)now, (unsigned long long)++chat.direct_seq);
    if ((b = evbuffer_new()) == NULL) {
        free(a);
        return;
    }
    event_header(b, "direct", a->id, cl->feed.who.user);
    event_direct(b, a->id, cl->feed.who.user, to, content, len, now);
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
    event_header(b, "typing", NULL, cl->feed.who.user);
    event_typing(b, cl->feed.who.user, cl->feed.room);
    if (store_publish_live(store_room_channel(cl->feed.room, channel, sizeof(channel)),
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
    if (store_history(cl->feed.room, NULL, before, (int)limit, 0, chat_on_history, cl) == PL_OK) {
        cl->pending++;
    } else {
        chat_error(cl, "redis_unavailable", "history is unavailable");
    }
}

static void chat_ask_free(struct chat_ask *ask)
{
    LIST_REMOVE(ask, link);
    free(ask);
}

static void chat_ask_on_done(enum agent_status st, const char *message, void *arg)
{
    struct chat_ask *ask = arg;
    struct chat_client *cl = ask->cl;

    chat_ask_free(ask);
    if (st == AGENT_FORBIDDEN) {
        feed_revoked(&cl->feed);        /* found gone while asking: closes 1008 */
    } else if (st != AGENT_OK) {
        chat_error(cl, agent_error_code(st), message);
    }
}

/* The answer streams to the whole room (ai_chunk, then ai_done), then is
 * stored as the agent's message. */
static void chat_ask(struct chat_client *cl, json_object *msg)
{
    size_t len;
    const char *question = chat_content(cl, msg, &len);
    struct chat_ask *ask;

    if (question == NULL) {
        return;
    }
    if ((ask = calloc(1, sizeof(*ask))) == NULL) {
        chat_error(cl, "agent_unavailable", "out of memory");
        return;
    }
    ask->cl = cl;
    ask->answer = answer_start(cl->feed.room, cl->feed.room, cl->feed.who.user,
                               cl->feed.who.session[0] ? cl->feed.who.session : NULL, question, 0,
                               chat_ask_on_done, ask);
    if (ask->answer == NULL) {
        free(ask);
        if (!store_is_up()) {
            chat_error(cl, "redis_unavailable", "the agent's answer cannot be stored now");
        } else {
            chat_error(cl, "agent_busy", "the agent is busy; try again shortly");
        }
        return;
    }
    LIST_INSERT_HEAD(&cl->asks, ask, link);
}

static void chat_on_cancelled(enum store_status st, long long n, void *arg)
{
    struct chat_client *cl = arg;

    if (!chat_unpin(cl)) {
        return;
    }
    if (st != STORE_OK) {
        chat_error(cl, "redis_unavailable", "the answer could not be stopped now");
    } else if (n < 0) {
        chat_error(cl, "bad_request", "only the user who asked can stop an answer");
    } else if (n == 0) {
        chat_error(cl, "bad_request", "no answer with that request_id is in progress in this room");
    }
    chat_replied(cl);
}

/* {"type":"cancel","request_id":".."}: the asker stops an answer, from
 * any of its connections; every viewer gets ai_done "cancelled". */
static void chat_cancel(struct chat_client *cl, json_object *msg)
{
    size_t len;
    int bad = 0;
    const char *rid = json_field_string(msg, "request_id", &len, &bad);

    if (rid == NULL || bad || !answer_id_valid(rid)) {
        chat_error(cl, "bad_request", "\"request_id\" must be the id of an answer");
        return;
    }
    if (store_answer_cancel(cl->feed.room, rid, cl->feed.who.user, chat_on_cancelled, cl) == PL_OK) {
        cl->pending++;
    } else {
        chat_error(cl, "redis_unavailable", "the answer could not be stopped now");
    }
}

static void chat_on_token(enum store_status st, const struct auth_identity *who, const char *why, void *arg)
{
    struct chat_client *cl = arg;
    char reply[128];
    int n;

    if (!chat_unpin(cl)) {
        return;
    }
    if (st == STORE_UNAVAILABLE) {
        chat_error(cl, "redis_unavailable", "the token cannot be checked now; try again shortly");
    } else if (st != STORE_OK) {
        chat_error(cl, "unauthorized", why);
    } else if (strcmp(who->user, cl->feed.who.user) != 0) {
        chat_error(cl, "unauthorized", "the token is another user's");
    } else {
        /* From now on the connection lasts as long as this token does,
         * and a revocation of this session is what ends it. */
        cl->feed.who = *who;
        n = snprintf(reply, sizeof(reply), "{\"type\":\"auth_ok\",\"user\":\"%s\",\"expires\":%lld}",
                     who->user, (long long)who->expires);
        ws_send_text(cl->ws, reply, (size_t)n);
    }
    chat_replied(cl);
}

/* {"type":"auth","token":".."}: a new token for this connection, before
 * the one it opened with expires; a bad one is an error, not a close. */
static void chat_auth(struct chat_client *cl, json_object *msg)
{
    size_t len;
    int bad = 0;
    const char *token = json_field_string(msg, "token", &len, &bad);

    if (token == NULL || bad || len == 0 || len > CHAT_TOKEN_MAX) {
        chat_error(cl, "bad_request", "\"token\" must be a session token or a JWT");
        return;
    }
    cl->pending++;
    auth_token_verify(token, chat_on_token, cl);
}

/* For ws.h: the rate limit, before a message is inflated or parsed. */
static int chat_admit(struct ws_conn *ws, void *state)
{
    PL_UNUSED(ws);
    return chat_rate_ok(state);
}

static void chat_on_text(struct ws_conn *ws, void *state, const char *text, size_t len)
{
    struct chat_client *cl = state;
    json_object *msg, *type;
    const char *t;
    char why[160];

    PL_UNUSED(ws);
    msg = json_strict_parse(text, len, "the message", why, sizeof(why));
    if (msg == NULL) {
        chat_error(cl, "invalid_json", why);
    } else if (!json_object_object_get_ex(msg, "type", &type) || !json_object_is_type(type, json_type_string)) {
        chat_error(cl, "bad_request", "\"type\" is missing");
    } else if (!feed_live(&cl->feed)) {
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
    } else if (strcmp(t, "cancel") == 0) {
        chat_cancel(cl, msg);
    } else if (strcmp(t, "auth") == 0) {
        chat_auth(cl, msg);
    } else {
        chat_error(cl, "bad_request", "unknown message type");
    }
    json_object_put(msg);
}

static const struct ws_handlers chat_handlers = {
    .on_open = chat_open,
    .admit = chat_admit,
    .on_text = chat_on_text,
    .on_close = chat_close,
    .owes_replies = chat_owes_replies,
};

int chat_init(const struct worker_env *w)
{
    chat.cfg = w->cfg;
    if (getrandom(&chat.direct_seq, sizeof(chat.direct_seq), 0) != sizeof(chat.direct_seq)) {
        chat.direct_seq = (uint64_t)time(NULL);
    }
    chat.direct_seq &= 0xffffffffffffULL;    /* room to count, still unique per worker */
    ws_register(w->base, chat.cfg, &chat_handlers);
    return PL_OK;
}
