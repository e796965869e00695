/* outq.c - per-loop-pass direct writes of stream output, and batching of
 * room events. */
#include "outq.h"

#include <errno.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "chunk.h"
#include "conf.h"
#include "metrics.h"
#include "parley.h"
#include "worker_env.h"

enum { OUTQ_IDLE, OUTQ_NOW, OUTQ_BATCHED };

TAILQ_HEAD(outq_list, outq_item);

static struct {
    struct outq_list now_queue;
    struct outq_list batched_queue;
    struct event_base *loop;
    struct event *flush_ev;         /* active: end of this pass */
    struct event *batch_ev;         /* pending: the batch is due */
    struct timeval write_delay;
    struct timeval last_batch;      /* when the batched queue was last written */
} outq = {
    .now_queue = TAILQ_HEAD_INITIALIZER(outq.now_queue),
    .batched_queue = TAILQ_HEAD_INITIALIZER(outq.batched_queue),
};

/* Moves IT's pending chunks into its buffer, but for the first SENT bytes
 * (written already).  Returns PL_ERR if some could not be (out of memory). */
static int outq_spill(struct outq_item *it, size_t sent)
{
    struct evbuffer *out = bufferevent_get_output(it->bev);
    int rc = PL_OK;

    for (int i = 0; i < it->npending; i++) {
        struct chunk *c = it->pending[i];

        if (sent >= c->len) {
            sent -= c->len;
        } else {
            if (rc == PL_OK && chunk_append_from(out, c, sent) != PL_OK) {
                rc = PL_ERR;
            }
            sent = 0;
        }
        chunk_unref(c);
    }
    it->npending = 0;
    it->pending_len = 0;
    return rc;
}

/* Writes the pending chunks with one writev; the rest goes to the buffer.
 * Returns -1 when the peer is gone. */
static int outq_write_pending(struct outq_item *it)
{
    struct iovec iov[OUTQ_PENDING];
    ssize_t n;

    for (int i = 0; i < it->npending; i++) {
        iov[i].iov_base = it->pending[i]->data;
        iov[i].iov_len = it->pending[i]->len;
    }
    n = writev(bufferevent_getfd(it->bev), iov, it->npending);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        outq_spill(it, it->pending_len);        /* dropped */
        return -1;
    }
    return outq_spill(it, n < 0 ? 0 : (size_t)n) == PL_OK ? 0 : -1;
}

/* Writes what the kernel takes of IT's output; -1 when the peer is gone. */
static int outq_write(struct outq_item *it)
{
    struct evbuffer *out = bufferevent_get_output(it->bev);
    int n;

    if (it->npending > 0) {
        return outq_write_pending(it);      /* the buffer is empty: nothing goes before these */
    }
    /* A bufferevent keeps the start of its output frozen so that only it
     * drains it; write the way its own write callback does. */
    evbuffer_unfreeze(out, 1);
    n = evbuffer_write(out, bufferevent_getfd(it->bev));
    evbuffer_freeze(out, 1);
    return n < 0 && errno != EAGAIN && errno != EINTR ? -1 : 0;
}

void outq_write_now(struct outq_item *it)
{
    if (!it->failed && !(bufferevent_get_enabled(it->bev) & EV_WRITE)) {
        outq_write(it);
    }
}

static void outq_flush_one(struct outq_item *it)
{
    struct evbuffer *out = bufferevent_get_output(it->bev);

    if (it->failed) {
        it->on_written(it, 1, outq_queued(it));
        return;
    }
    if (bufferevent_get_enabled(it->bev) & EV_WRITE) {
        return;                 /* libevent is already writing the rest */
    }
    if (outq_write(it) < 0) {
        it->on_written(it, 1, evbuffer_get_length(out));
        return;
    }
    if (evbuffer_get_length(out) > 0) {
        bufferevent_enable(it->bev, EV_WRITE);
    }
    it->on_written(it, 0, evbuffer_get_length(out));
}

static void outq_flush(struct outq_list *q)
{
    struct outq_item *it;

    /* on_written may close streams (outq_detach) or queue more output;
     * always take the current head. */
    while ((it = TAILQ_FIRST(q)) != NULL) {
        TAILQ_REMOVE(q, it, link);
        it->queued = OUTQ_IDLE;
        outq_flush_one(it);
    }
}

static void outq_on_flush(evutil_socket_t fd, short what, void *arg)
{
    PL_UNUSED(fd);
    PL_UNUSED(what);
    outq_flush(arg);
}

static void outq_on_batch(evutil_socket_t fd, short what, void *arg)
{
    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    event_base_gettimeofday_cached(outq.loop, &outq.last_batch);
    outq_flush(&outq.batched_queue);
}

/* The batch goes write_delay after the previous one: at once after a quiet
 * spell, and no more often than that while events keep coming. */
static void outq_arm_batch(void)
{
    struct timeval now, due, wait = { 0, 0 };

    event_base_gettimeofday_cached(outq.loop, &now);
    evutil_timeradd(&outq.last_batch, &outq.write_delay, &due);
    if (evutil_timercmp(&due, &now, >)) {
        evutil_timersub(&due, &now, &wait);
        if (evutil_timercmp(&wait, &outq.write_delay, >)) {
            wait = outq.write_delay;         /* the clock went back */
        }
    }
    evtimer_add(outq.batch_ev, &wait);
}

int outq_init(const struct worker_env *w)
{
    int delay = w->cfg->write_delay_ms;

    outq.loop = w->base;
    outq.flush_ev = event_new(outq.loop, -1, 0, outq_on_flush, &outq.now_queue);
    outq.batch_ev = evtimer_new(outq.loop, outq_on_batch, NULL);
    outq.write_delay.tv_sec = delay / 1000;
    outq.write_delay.tv_usec = (delay % 1000) * 1000;
    return outq.flush_ev != NULL && outq.batch_ev != NULL ? PL_OK : PL_ERR;
}

void outq_attach(struct outq_item *it, struct bufferevent *bev, outq_written_cb on_written)
{
    it->bev = bev;
    it->on_written = on_written;
    it->queued = OUTQ_IDLE;
    it->failed = 0;
    it->npending = 0;
    it->pending_len = 0;
    bufferevent_disable(bev, EV_WRITE);
}

void outq_schedule(struct outq_item *it)
{
    if (it->queued == OUTQ_NOW) {
        return;
    }
    if (it->queued == OUTQ_BATCHED) {
        TAILQ_REMOVE(&outq.batched_queue, it, link);
    }
    it->queued = OUTQ_NOW;
    TAILQ_INSERT_TAIL(&outq.now_queue, it, link);
    event_active(outq.flush_ev, EV_TIMEOUT, 0);
}

void outq_schedule_batched(struct outq_item *it)
{
    if (!evutil_timerisset(&outq.write_delay)) {
        outq_schedule(it);
        return;
    }
    if (it->queued != OUTQ_IDLE) {
        return;                 /* goes out with what is already waiting */
    }
    it->queued = OUTQ_BATCHED;
    TAILQ_INSERT_TAIL(&outq.batched_queue, it, link);
    if (!evtimer_pending(outq.batch_ev, NULL)) {
        outq_arm_batch();
    }
}

struct evbuffer *outq_output(struct outq_item *it)
{
    if (it->npending > 0 && outq_spill(it, 0) != PL_OK) {
        it->failed = 1;
        outq_schedule(it);
    }
    return bufferevent_get_output(it->bev);
}

size_t outq_queued(const struct outq_item *it)
{
    return it->pending_len + evbuffer_get_length(bufferevent_get_output(it->bev));
}

ssize_t outq_push(struct outq_item *it, struct chunk *c, int batched)
{
    struct evbuffer *out = bufferevent_get_output(it->bev);

    if (c == NULL) {
        return -1;
    }
    if (it->npending < OUTQ_PENDING && evbuffer_get_length(out) == 0
        && !(bufferevent_get_enabled(it->bev) & EV_WRITE)) {
        c->refs++;
        it->pending[it->npending++] = c;
        it->pending_len += c->len;
    } else if (chunk_append(outq_output(it), c) != PL_OK) {
        return -1;
    }
    metrics_add(METRIC_BYTES_OUT, c->len);
    if (batched) {
        outq_schedule_batched(it);
    } else {
        outq_schedule(it);
    }
    return (ssize_t)outq_queued(it);
}

void outq_detach(struct outq_item *it)
{
    if (it->queued != OUTQ_IDLE) {
        TAILQ_REMOVE(it->queued == OUTQ_NOW ? &outq.now_queue : &outq.batched_queue, it, link);
        it->queued = OUTQ_IDLE;
    }
    for (int i = 0; i < it->npending; i++) {
        chunk_unref(it->pending[i]);
    }
    it->npending = 0;
    it->pending_len = 0;
}

void outq_written(struct outq_item *it)
{
    if (evbuffer_get_length(bufferevent_get_output(it->bev)) == 0) {
        bufferevent_disable(it->bev, EV_WRITE);
    }
}
