/* store.c - sessions, history, publishing and presence over Redis. */
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "event.h"
#include "log.h"
#include "names.h"
#include "parley.h"
#include "redis_conn.h"
#include "scripts.h"
#include "token.h"
#include "worker_env.h"

#define STORE_DEDUP_TTL "600"   /* client_msg_id is remembered 10 minutes */
#define STORE_KEY_MAX 256
#define STORE_ID_LAST "18446744073709551615-18446744073709551615"

static struct {
    const struct conf *cfg;
    struct redis_conn *conn;
} store;

/* What a pending call needs back: the caller's callback and argument, and
 * the room when replies must be turned into events. */
struct store_call {
    union {
        store_token_cb token;
        store_session_cb session;
        store_lookup_cb lookup;
        store_ticket_cb ticket;
        store_publish_cb publish;
        store_events_cb events;
        store_count_cb count;
        store_names_cb names;
    } cb;
    void *arg;
    char room[PL_NAME_MAX + 2];     /* a room, or a private scope "~user" (answer.h) */
    char text[TOKEN_SESSION_LEN + 1];
};

static struct store_call *store_call_new(const char *room, void *arg)
{
    struct store_call *c = calloc(1, sizeof(*c));

    if (c != NULL) {
        c->arg = arg;
        snprintf(c->room, sizeof(c->room), "%s", room ? room : "");
    }
    return c;
}

/* Issues a command for CALL, freeing CALL if it cannot be sent. */
static int store_send(struct store_call *c, redis_reply_cb on_reply, int argc, const char **argv,
                      const size_t *lens)
{
    if (c == NULL) {
        return PL_ERR;
    }
    if (redis_conn_command(store.conn, on_reply, c, argc, argv, lens) != PL_OK) {
        free(c);
        return PL_ERR;
    }
    return PL_OK;
}

static int store_run(struct store_call *c, enum script_id id, redis_reply_cb on_reply,
                     int nkeys, int argc, const char **argv, const size_t *lens)
{
    if (c == NULL) {
        return PL_ERR;
    }
    if (script_run(store.conn, id, on_reply, c, nkeys, argc, argv, lens) != PL_OK) {
        free(c);
        return PL_ERR;
    }
    return PL_OK;
}

static int store_failed(const redisReply *r)
{
    return r == NULL || r->type == REDIS_REPLY_ERROR;
}

static void store_on_count(redisReply *r, void *arg);

static void (*up_cb)(void);

static void store_on_state(struct redis_conn *rc, int up, void *arg)
{
    PL_UNUSED(arg);
    if (up) {
        scripts_load(rc);
        if (up_cb != NULL) {
            up_cb();
        }
    }
}

void store_on_up(void (*cb)(void))
{
    up_cb = cb;
}

int store_init(const struct worker_env *w)
{
    store.cfg = w->cfg;
    scripts_init();
    store.conn = redis_conn_new(w->base, &store.cfg->redis, "worker", store.cfg->redis_timeout_ms, store_on_state, NULL);
    return store.conn ? PL_OK : PL_ERR;
}

void store_shutdown(void)
{
    redis_conn_free(store.conn);
    store.conn = NULL;
}

int store_is_up(void)
{
    return redis_conn_is_up(store.conn);
}

const char *store_room_channel(const char *room, char *out, size_t outlen)
{
    return key_room_channel(out, outlen, store.cfg->redis_prefix, room) < 0 ? NULL : out;
}

const char *store_user_channel(const char *user, char *out, size_t outlen)
{
    return key_user_channel(out, outlen, store.cfg->redis_prefix, user) < 0 ? NULL : out;
}

/* --- sessions ----------------------------------------------------------- */

#define STORE_MAX_SESSIONS_PER_USER "256"

static void store_on_session_created(redisReply *r, void *arg)
{
    struct store_call *c = arg;
    enum store_status st = STORE_UNAVAILABLE;
    long long detail = 0;

    if (!store_failed(r) && r->type == REDIS_REPLY_ARRAY && r->elements == 2
        && r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_INTEGER) {
        st = r->element[0]->integer == 1 ? STORE_OK : r->element[0]->integer == 0 ? STORE_LIMITED : STORE_TAKEN;
        detail = r->element[1]->integer;
    }
    c->cb.session(st, c->text, detail, c->arg);
    free(c);
}

int store_session_create(const struct store_session *s, store_session_cb cb, void *arg)
{
    struct store_call *c = store_call_new(NULL, arg);
    char key[STORE_KEY_MAX], index[STORE_KEY_MAX], bucket[STORE_KEY_MAX], channel[STORE_KEY_MAX];
    char ttl[16], rate[16];

    if (c == NULL || token_session_new(c->text) != PL_OK) {
        free(c);
        return PL_ERR;
    }
    c->cb.session = cb;
    key_session(key, sizeof(key), store.cfg->redis_prefix, c->text);
    key_user_sessions(index, sizeof(index), store.cfg->redis_prefix, s->user);
    key_signin(bucket, sizeof(bucket), store.cfg->redis_prefix, s->limit_key);
    key_user_channel(channel, sizeof(channel), store.cfg->redis_prefix, s->user);
    snprintf(ttl, sizeof(ttl), "%d", s->ttl_s);
    snprintf(rate, sizeof(rate), "%d", s->open ? store.cfg->session_rate_limit : 0);
    {
        const char *argv[] = { key, index, bucket, c->text, s->user, ttl, s->open ? "open" : "key", s->addr,
                               rate, channel, STORE_MAX_SESSIONS_PER_USER };
        return store_run(c, SCRIPT_SESSION_CREATE, store_on_session_created, 3, 11, argv, NULL);
    }
}

static void store_on_session(redisReply *r, void *arg)
{
    struct store_call *c = arg;

    if (store_failed(r) || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        c->cb.lookup(STORE_UNAVAILABLE, NULL, 0, c->arg);
    } else if (r->element[0]->type != REDIS_REPLY_STRING || !name_valid(r->element[0]->str)) {
        c->cb.lookup(STORE_NOT_FOUND, NULL, 0, c->arg);
    } else {
        /* Sessions made before expires_at was kept end with their TTL. */
        int64_t expires = r->element[1]->type == REDIS_REPLY_STRING ? strtoll(r->element[1]->str, NULL, 10) / 1000 : 0;
        c->cb.lookup(STORE_OK, r->element[0]->str, expires, c->arg);
    }
    free(c);
}

int store_session_lookup(const char *token, store_lookup_cb cb, void *arg)
{
    struct store_call *c = store_call_new(NULL, arg);
    char key[STORE_KEY_MAX];
    const char *argv[] = { "HMGET", key, "user", "expires_at" };

    if (c == NULL) {
        return PL_ERR;
    }
    c->cb.lookup = cb;
    key_session(key, sizeof(key), store.cfg->redis_prefix, token);
    return store_send(c, store_on_session, 4, argv, NULL);
}

static void store_on_ticket_created(redisReply *r, void *arg)
{
    struct store_call *c = arg;

    c->cb.token(store_failed(r) ? STORE_UNAVAILABLE : STORE_OK, c->text, c->arg);
    free(c);
}

int store_ticket_create(const char *user, const char *session, int64_t expires, int ttl_ms,
                        store_token_cb cb, void *arg)
{
    struct store_call *c = store_call_new(NULL, arg);
    char key[STORE_KEY_MAX], exp[24], ttl[16];

    if (c == NULL || token_session_new(c->text) != PL_OK) {
        free(c);
        return PL_ERR;
    }
    c->cb.token = cb;
    key_ticket(key, sizeof(key), store.cfg->redis_prefix, c->text);
    snprintf(exp, sizeof(exp), "%lld", (long long)expires);
    snprintf(ttl, sizeof(ttl), "%d", ttl_ms);
    {
        const char *argv[] = { key, user, session, exp, ttl };
        return store_run(c, SCRIPT_TICKET_CREATE, store_on_ticket_created, 1, 5, argv, NULL);
    }
}

static void store_on_ticket(redisReply *r, void *arg)
{
    struct store_call *c = arg;

    if (store_failed(r)) {
        c->cb.ticket(STORE_UNAVAILABLE, NULL, NULL, 0, c->arg);
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING
               || !name_valid(r->element[0]->str) || r->element[1]->type != REDIS_REPLY_STRING
               || r->element[2]->type != REDIS_REPLY_STRING) {
        c->cb.ticket(STORE_NOT_FOUND, NULL, NULL, 0, c->arg);
    } else {
        c->cb.ticket(STORE_OK, r->element[0]->str, r->element[1]->str, strtoll(r->element[2]->str, NULL, 10),
                     c->arg);
    }
    free(c);
}

int store_ticket_redeem(const char *ticket, store_ticket_cb cb, void *arg)
{
    struct store_call *c = store_call_new(NULL, arg);
    char key[STORE_KEY_MAX];
    const char *argv[] = { key, store.cfg->redis_prefix };

    if (c == NULL) {
        return PL_ERR;
    }
    c->cb.ticket = cb;
    key_ticket(key, sizeof(key), store.cfg->redis_prefix, ticket);
    return store_run(c, SCRIPT_TICKET_REDEEM, store_on_ticket, 1, 2, argv, NULL);
}

int store_session_revoke(const char *token, store_count_cb cb, void *arg)
{
    struct store_call *c = store_call_new(NULL, arg);
    const char *argv[] = { store.cfg->redis_prefix, token };

    if (c == NULL) {
        return PL_ERR;
    }
    c->cb.count = cb;
    return store_run(c, SCRIPT_SESSION_REVOKE, store_on_count, 0, 2, argv, NULL);
}

int store_session_exists(const char *token, store_count_cb cb, void *arg)
{
    struct store_call *c = store_call_new(NULL, arg);
    char key[STORE_KEY_MAX];
    const char *argv[] = { "EXISTS", key };

    if (c == NULL) {
        return PL_ERR;
    }
    c->cb.count = cb;
    key_session(key, sizeof(key), store.cfg->redis_prefix, token);
    return store_send(c, store_on_count, 2, argv, NULL);
}

/* Takes a token from the bucket KEY, refilled at RATE per second up to
 * BURST, shared by every worker and host; RATE 0 takes nothing. */
static int store_take(const char *key, double rate, int burst, store_count_cb cb, void *arg)
{
    struct store_call *c;
    char r[32], b[16];
    const char *argv[] = { key, r, b };

    if (rate <= 0) {
        cb(STORE_OK, 0, arg);
        return PL_OK;
    }
    if ((c = store_call_new(NULL, arg)) == NULL) {
        return PL_ERR;
    }
    c->cb.count = cb;
    snprintf(r, sizeof(r), "%.6f", rate);
    snprintf(b, sizeof(b), "%d", burst);
    return store_run(c, SCRIPT_RATE, store_on_count, 1, 3, argv, NULL);
}

int store_signin_take(const char *limit_key, store_count_cb cb, void *arg)
{
    char key[STORE_KEY_MAX];

    key_signin(key, sizeof(key), store.cfg->redis_prefix, limit_key);
    return store_take(key, store.cfg->session_rate_limit / 60.0, store.cfg->session_rate_limit, cb, arg);
}

int store_user_take(const char *user, store_count_cb cb, void *arg)
{
    char key[STORE_KEY_MAX];

    key_rate(key, sizeof(key), store.cfg->redis_prefix, user);
    return store_take(key, store.cfg->rate_limit, store.cfg->rate_burst, cb, arg);
}

/* --- messages ----------------------------------------------------------- */

static void store_on_published(redisReply *r, void *arg)
{
    struct store_call *c = arg;
    const redisReply *verdict;

    if (store_failed(r) || r->type != REDIS_REPLY_ARRAY || r->elements != 2
        || r->element[0]->type != REDIS_REPLY_STRING) {
        c->cb.publish(STORE_UNAVAILABLE, NULL, 0, c->arg);
    } else if ((verdict = r->element[1])->type == REDIS_REPLY_STRING) {
        c->cb.publish(strcmp(verdict->str, "reserved") == 0 ? STORE_RESERVED : STORE_NOT_FOUND,
                      r->element[0]->str, 0, c->arg);
    } else if (verdict->type != REDIS_REPLY_INTEGER) {
        c->cb.publish(STORE_UNAVAILABLE, NULL, 0, c->arg);
    } else if (verdict->integer < 0) {
        c->cb.publish(STORE_LIMITED, NULL, (long)-verdict->integer, c->arg);
    } else {
        c->cb.publish(STORE_OK, r->element[0]->str, (long)verdict->integer, c->arg);
    }
    free(c);
}

int store_message_publish(const struct store_message *m, store_publish_cb cb, void *arg)
{
    struct store_call *c = store_call_new(m->room, arg);
    char log_key[STORE_KEY_MAX], channel[STORE_KEY_MAX], maxlen[16], rate[16], burst[16], room_ttl[16];
    struct evbuffer *before = evbuffer_new(), *after = evbuffer_new();
    int rc = PL_ERR;

    if (c == NULL || before == NULL || after == NULL) {
        free(c);
        goto done;
    }
    c->cb.publish = cb;
    key_room_log(log_key, sizeof(log_key), store.cfg->redis_prefix, m->room);
    key_room_channel(channel, sizeof(channel), store.cfg->redis_prefix, m->room);
    snprintf(maxlen, sizeof(maxlen), "%d", store.cfg->history_length);
    snprintf(rate, sizeof(rate), "%d", m->limited ? store.cfg->rate_limit : 0);
    snprintf(burst, sizeof(burst), "%d", store.cfg->rate_burst);
    snprintf(room_ttl, sizeof(room_ttl), "%d", store.cfg->room_ttl_s);
    event_message_split(before, after, m->room, m->content, m->len);
    {
        const char *argv[] = { log_key, store.cfg->redis_prefix, maxlen, channel, m->from ? m->from : "",
                               m->session ? m->session : "", m->content,
                               (const char *)evbuffer_pullup(before, -1), (const char *)evbuffer_pullup(after, -1),
                               m->cmid ? m->cmid : "", STORE_DEDUP_TTL, rate, burst, room_ttl,
                               m->reserved ? m->reserved : "" };
        size_t lens[] = { strlen(log_key), strlen(store.cfg->redis_prefix), strlen(maxlen), strlen(channel),
                          strlen(argv[4]), strlen(argv[5]), m->len, evbuffer_get_length(before),
                          evbuffer_get_length(after), strlen(argv[9]), strlen(STORE_DEDUP_TTL), strlen(rate),
                          strlen(burst), strlen(room_ttl), strlen(argv[14]) };
        rc = store_run(c, SCRIPT_PUBLISH_MESSAGE, store_on_published, 1, 15, argv, lens);
    }
done:
    if (before != NULL) {
        evbuffer_free(before);
    }
    if (after != NULL) {
        evbuffer_free(after);
    }
    return rc;
}

/* --- history ------------------------------------------------------------ */

static const redisReply *store_field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        if (fields->element[i]->type == REDIS_REPLY_STRING && strcmp(fields->element[i]->str, name) == 0
            && fields->element[i + 1]->type == REDIS_REPLY_STRING) {
            return fields->element[i + 1];
        }
    }
    return NULL;
}

/* Turns XRANGE entries into events; malformed entries (a hand-edited
 * stream) are logged and skipped. */
static int store_parse_entries(const redisReply *arr, const char *room, int reverse,
                               struct store_events *evs)
{
    struct evbuffer *buf = evbuffer_new();

    evs->items = calloc(arr->elements ? arr->elements : 1, sizeof(*evs->items));
    evs->count = 0;
    if (buf == NULL || evs->items == NULL) {
        if (buf != NULL) {
            evbuffer_free(buf);
        }
        return PL_ERR;
    }
    for (size_t k = 0; k < arr->elements; k++) {
        const redisReply *e = arr->element[reverse ? arr->elements - 1 - k : k];
        const redisReply *type, *from, *content, *rid, *status, *asker;
        struct store_event *out = &evs->items[evs->count];
        int chunk;

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING
            || e->element[1]->type != REDIS_REPLY_ARRAY || !event_id_valid(e->element[0]->str)
            || (content = store_field(e->element[1], "content")) == NULL) {
            log_warn("event=malformed_history_entry room=%s", room);
            continue;
        }
        type = store_field(e->element[1], "type");
        chunk = type != NULL && strcmp(type->str, "ai_chunk") == 0;
        rid = store_field(e->element[1], "request_id");
        from = store_field(e->element[1], "from");
        asker = store_field(e->element[1], "asker");
        if (chunk ? rid == NULL || asker == NULL : from == NULL || !name_valid(from->str)) {
            log_warn("event=malformed_history_entry room=%s", room);
            continue;
        }
        snprintf(out->type, sizeof(out->type), "%s", chunk ? "ai_chunk" : "message");
        snprintf(out->id, sizeof(out->id), "%s", e->element[0]->str);
        if (chunk) {
            event_ai_chunk(buf, out->id, rid->str, asker->str, content->str, content->len);
        } else if (rid != NULL) {
            status = store_field(e->element[1], "status");
            event_answer(buf, out->id, room, from->str, content->str, content->len, event_id_ms(out->id),
                         rid->str, status ? status->str : NULL);
        } else {
            event_message(buf, out->id, room, from->str, content->str, content->len, event_id_ms(out->id));
        }
        out->len = evbuffer_get_length(buf);
        out->json = malloc(out->len + 1);
        if (out->json == NULL) {
            break;
        }
        evbuffer_remove(buf, out->json, out->len);
        out->json[out->len] = '\0';
        evs->count++;
    }
    evbuffer_free(buf);
    return PL_OK;
}

static void store_events_free(struct store_events *evs)
{
    for (int i = 0; i < evs->count; i++) {
        free(evs->items[i].json);
    }
    free(evs->items);
}

/* Replies to store_history: XRANGE (oldest first) or XREVRANGE (reversed). */
struct store_history_call {
    struct store_call base;
    int reverse;
};

static void store_on_history(redisReply *r, void *arg)
{
    struct store_history_call *h = arg;
    struct store_events evs = { 0 };

    if (store_failed(r) || r->type != REDIS_REPLY_ARRAY
        || store_parse_entries(r, h->base.room, h->reverse, &evs) != PL_OK) {
        h->base.cb.events(STORE_UNAVAILABLE, NULL, h->base.arg);
    } else {
        h->base.cb.events(STORE_OK, &evs, h->base.arg);
    }
    store_events_free(&evs);
    free(h);
}

int store_history(const char *room, const char *after, const char *before, int limit, int chunks,
                  store_events_cb cb, void *arg)
{
    struct store_history_call *h = calloc(1, sizeof(*h));
    char key[STORE_KEY_MAX], lo[EVENT_ID_MAX + 1], hi[EVENT_ID_MAX + 1], count[16];
    const char *argv[6];

    if (h == NULL) {
        return PL_ERR;
    }
    snprintf(h->base.room, sizeof(h->base.room), "%s", room);
    h->base.cb.events = cb;
    h->base.arg = arg;
    key_room_log(key, sizeof(key), store.cfg->redis_prefix, room);
    /* Redis refuses an exclusive bound nothing can pass ("(0-0" as the
     * upper one, the largest id as the lower one); no entry lies beyond it
     * and no entry has it, so it is given inclusively instead. */
    snprintf(lo, sizeof(lo), after && event_id_cmp(after, STORE_ID_LAST) != 0 ? "(%s" : after ? "%s" : "-", after);
    snprintf(hi, sizeof(hi), before && event_id_cmp(before, "0-0") != 0 ? "(%s" : before ? "%s" : "+", before);
    snprintf(count, sizeof(count), "%d", limit);
    /* Without a lower bound the newest LIMIT are wanted: read backwards. */
    h->reverse = (after == NULL);
    argv[0] = key;
    argv[1] = lo;
    argv[2] = hi;
    argv[3] = count;
    argv[4] = h->reverse ? "1" : "0";
    argv[5] = chunks ? "1" : "0";
    if (script_run(store.conn, SCRIPT_HISTORY, store_on_history, h, 1, 6, argv, NULL) != PL_OK) {
        free(h);
        return PL_ERR;
    }
    return PL_OK;
}

static void store_on_resume(redisReply *r, void *arg)
{
    struct store_call *c = arg;
    struct store_events evs = { 0 };
    enum store_status st = STORE_UNAVAILABLE;

    if (!store_failed(r) && r->type == REDIS_REPLY_ARRAY && r->elements >= 2
        && r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_STRING) {
        if (r->elements == 4 && r->element[3]->type == REDIS_REPLY_STRING) {
            snprintf(evs.newest, sizeof(evs.newest), "%s", r->element[3]->str);
        }
        if (r->elements == 4 && r->element[2]->type == REDIS_REPLY_ARRAY
            && store_parse_entries(r->element[2], c->room, 0, &evs) == PL_OK) {
            st = r->element[0]->integer == 0 ? STORE_NOT_FOUND : STORE_OK;
        }
        snprintf(evs.oldest, sizeof(evs.oldest), "%s", r->element[1]->str);
    }
    c->cb.events(st, &evs, c->arg);
    store_events_free(&evs);
    free(c);
}

int store_history_resume(const char *room, const char *last, store_events_cb cb, void *arg)
{
    struct store_call *c = store_call_new(room, arg);
    char log[STORE_KEY_MAX], answers[STORE_KEY_MAX], gone[STORE_KEY_MAX];
    const char *argv[] = { log, answers, gone, last ? last : "" };

    if (c == NULL) {
        return PL_ERR;
    }
    c->cb.events = cb;
    key_room_log(log, sizeof(log), store.cfg->redis_prefix, room);
    key_room_answers(answers, sizeof(answers), store.cfg->redis_prefix, room);
    key_room_gone(gone, sizeof(gone), store.cfg->redis_prefix, room);
    return store_run(c, SCRIPT_RESUME, store_on_resume, 3, 4, argv, NULL);
}

/* --- answers in progress ------------------------------------------------ */

static void store_on_answer_start(redisReply *r, void *arg)
{
    struct store_call *c = arg;

    if (store_failed(r) || r->type != REDIS_REPLY_ARRAY || r->elements != 2
        || r->element[1]->type != REDIS_REPLY_STRING) {
        c->cb.count(STORE_UNAVAILABLE, 0, c->arg);
    } else {
        const char *verdict = r->element[1]->str;
        c->cb.count(STORE_OK, strcmp(verdict, "ok") == 0 ? 1 : strcmp(verdict, "busy") == 0 ? 0 : -1, c->arg);
    }
    free(c);
}

int store_answer_start(const char *room, const char *rid, const char *asker, const char *session,
                       store_count_cb cb, void *arg)
{
    struct store_call *c = store_call_new(room, arg);
    char maxlen[16], ttl[16], owner[sizeof(store.cfg->run_id) + 24], most[16], longest[24];
    const char *argv[] = { store.cfg->redis_prefix, room, rid, asker, store.cfg->agent_name, maxlen, ttl,
                           store.cfg->instance_id, owner, session ? session : "", most, longest };

    if (c == NULL) {
        return PL_ERR;
    }
    c->cb.count = cb;
    snprintf(maxlen, sizeof(maxlen), "%d", store.cfg->history_length);
    snprintf(ttl, sizeof(ttl), "%d", store.cfg->room_ttl_s);
    snprintf(owner, sizeof(owner), "%s.%ld", store.cfg->run_id, (long)getpid());
    snprintf(most, sizeof(most), "%d", store.cfg->agent_max_per_user);
    /* Past this an entry of the user's answers is stale (its end was lost
     * with Redis's data, say): no answer runs longer. */
    snprintf(longest, sizeof(longest), "%lld", (long long)store.cfg->agent_total_timeout_ms + 60000);
    return store_run(c, SCRIPT_ANSWER_START, store_on_answer_start, 0, 12, argv, NULL);
}

/* An id, or nil for an answer that has ended. */
static void store_on_answer_id(redisReply *r, void *arg)
{
    struct store_call *c = arg;

    if (c->cb.token == NULL) {
        /* nobody asked */
    } else if (store_failed(r) || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_NIL)) {
        c->cb.token(STORE_UNAVAILABLE, NULL, c->arg);
    } else if (r->type == REDIS_REPLY_NIL) {
        c->cb.token(STORE_NOT_FOUND, NULL, c->arg);
    } else {
        c->cb.token(STORE_OK, r->str, c->arg);
    }
    free(c);
}

int store_answer_chunk(const char *room, const char *rid, const char *text, size_t len,
                       store_token_cb cb, void *arg)
{
    struct store_call *c = store_call_new(room, arg);
    struct evbuffer *json = evbuffer_new();
    int rc = PL_ERR;

    if (c == NULL || json == NULL) {
        free(c);
    } else {
        c->cb.token = cb;
        event_escape(json, text, len);
        const char *argv[] = { store.cfg->redis_prefix, room, rid, text, store.cfg->agent_name,
                               (const char *)evbuffer_pullup(json, -1) };
        size_t lens[] = { strlen(argv[0]), strlen(room), strlen(rid), len, strlen(argv[4]),
                          evbuffer_get_length(json) };
        rc = store_run(c, SCRIPT_ANSWER_CHUNK, store_on_answer_id, 0, 6, argv, lens);
    }
    if (json != NULL) {
        evbuffer_free(json);
    }
    return rc;
}

int store_answer_end(const char *room, const char *rid, const char *status, store_token_cb cb, void *arg)
{
    struct store_call *c = store_call_new(room, arg);
    const char *argv[] = { store.cfg->redis_prefix, room, rid, status };

    if (c == NULL) {
        return PL_ERR;
    }
    c->cb.token = cb;
    return store_run(c, SCRIPT_ANSWER_END, store_on_answer_id, 0, 4, argv, NULL);
}

int store_answer_exists(const char *scope, const char *rid, store_count_cb cb, void *arg)
{
    struct store_call *c = store_call_new(scope, arg);
    char key[STORE_KEY_MAX];
    const char *argv[] = { "HEXISTS", key, rid };

    if (c == NULL) {
        return PL_ERR;
    }
    c->cb.count = cb;
    key_room_answers(key, sizeof(key), store.cfg->redis_prefix, scope);
    return store_send(c, store_on_count, 3, argv, NULL);
}

int store_answer_cancel(const char *room, const char *rid, const char *user, store_count_cb cb, void *arg)
{
    struct store_call *c = store_call_new(room, arg);
    const char *argv[] = { store.cfg->redis_prefix, room, rid, user };

    if (c == NULL) {
        return PL_ERR;
    }
    c->cb.count = cb;
    return store_run(c, SCRIPT_ANSWER_CANCEL, store_on_count, 0, 4, argv, NULL);
}

static void store_on_last_id(redisReply *r, void *arg)
{
    struct store_call *c = arg;

    if (store_failed(r) || r->type != REDIS_REPLY_ARRAY) {
        c->cb.token(STORE_UNAVAILABLE, NULL, c->arg);
    } else if (r->elements == 0 || r->element[0]->type != REDIS_REPLY_ARRAY
               || r->element[0]->elements < 1 || r->element[0]->element[0]->type != REDIS_REPLY_STRING) {
        c->cb.token(STORE_OK, "", c->arg);
    } else {
        c->cb.token(STORE_OK, r->element[0]->element[0]->str, c->arg);
    }
    free(c);
}

int store_last_id(const char *room, store_token_cb cb, void *arg)
{
    struct store_call *c = store_call_new(room, arg);
    char key[STORE_KEY_MAX];
    const char *argv[] = { "XREVRANGE", key, "+", "-", "COUNT", "1" };

    if (c == NULL) {
        return PL_ERR;
    }
    c->cb.token = cb;
    key_room_log(key, sizeof(key), store.cfg->redis_prefix, room);
    return store_send(c, store_on_last_id, 6, argv, NULL);
}

/* --- live events and presence ------------------------------------------ */

static void store_on_count(redisReply *r, void *arg)
{
    struct store_call *c = arg;

    if (store_failed(r) || r->type != REDIS_REPLY_INTEGER) {
        c->cb.count(STORE_UNAVAILABLE, 0, c->arg);
    } else {
        c->cb.count(STORE_OK, r->integer, c->arg);
    }
    free(c);
}

int store_publish_live(const char *channel, const char *payload, size_t len,
                       store_count_cb cb, void *arg)
{
    const char *argv[] = { "PUBLISH", channel, payload };
    size_t lens[] = { 7, strlen(channel), len };
    struct store_call *c;

    if (cb == NULL) {
        return redis_conn_command(store.conn, NULL, NULL, 3, argv, lens);
    }
    c = store_call_new(NULL, arg);
    if (c == NULL) {
        return PL_ERR;
    }
    c->cb.count = cb;
    return store_send(c, store_on_count, 3, argv, lens);
}

int store_presence(const char *room, const char *user, int present, store_count_cb cb, void *arg)
{
    char members[STORE_KEY_MAX], presence[STORE_KEY_MAX], channel[STORE_KEY_MAX];
    char owner[sizeof(store.cfg->run_id) + 24 + PL_NAME_MAX * 2 + 2];    /* RUN.PID|ROOM|USER */
    struct evbuffer *ev = evbuffer_new();
    int rc;

    if (ev == NULL) {
        return PL_ERR;
    }
    key_room_members(members, sizeof(members), store.cfg->redis_prefix, room);
    key_instance_presence(presence, sizeof(presence), store.cfg->redis_prefix, store.cfg->instance_id);
    key_room_channel(channel, sizeof(channel), store.cfg->redis_prefix, room);
    snprintf(owner, sizeof(owner), "%s.%ld|%s|%s", store.cfg->run_id, (long)getpid(), room, user);
    event_header(ev, "presence", NULL, user);
    event_presence(ev, present, user, room);
    {
        const char *mode = present ? "in" : "out";
        const char *argv[] = { members, presence, user, owner, mode, channel,
                               (const char *)evbuffer_pullup(ev, -1) };
        size_t lens[] = { strlen(members), strlen(presence), strlen(user), strlen(owner), strlen(mode),
                          strlen(channel), evbuffer_get_length(ev) };
        if (cb == NULL) {
            rc = script_run(store.conn, SCRIPT_PRESENCE, NULL, NULL, 2, 7, argv, lens);
        } else {
            struct store_call *c = store_call_new(room, arg);
            if (c != NULL) {
                c->cb.count = cb;
            }
            rc = store_run(c, SCRIPT_PRESENCE, store_on_count, 2, 7, argv, lens);
        }
    }
    evbuffer_free(ev);
    return rc;
}


static void store_on_members(redisReply *r, void *arg)
{
    struct store_call *c = arg;
    const char **names;
    int n = 0;

    if (store_failed(r) || r->type != REDIS_REPLY_ARRAY) {
        c->cb.names(STORE_UNAVAILABLE, NULL, 0, c->arg);
        free(c);
        return;
    }
    names = calloc(r->elements + 1, sizeof(*names));
    for (size_t i = 0; names != NULL && i < r->elements; i++) {
        if (r->element[i]->type == REDIS_REPLY_STRING && name_valid(r->element[i]->str)) {
            names[n++] = r->element[i]->str;
        }
    }
    c->cb.names(names ? STORE_OK : STORE_UNAVAILABLE, names, n, c->arg);
    free(names);
    free(c);
}

int store_members(const char *room, store_names_cb cb, void *arg)
{
    struct store_call *c = store_call_new(room, arg);
    char key[STORE_KEY_MAX];
    const char *argv[] = { "HKEYS", key };

    if (c == NULL) {
        return PL_ERR;
    }
    c->cb.names = cb;
    key_room_members(key, sizeof(key), store.cfg->redis_prefix, room);
    return store_send(c, store_on_members, 2, argv, NULL);
}
