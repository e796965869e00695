/* outq.c - per-loop-pass direct writes of stream output. */
#include "outq.h"

#include <errno.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "parley.h"

static TAILQ_HEAD(, outq_item) queue = TAILQ_HEAD_INITIALIZER(queue);
static struct event *flush_ev;

static void outq_flush_one(struct outq_item *it)
{
    struct evbuffer *out = bufferevent_get_output(it->bev);
    int n;

    if (bufferevent_get_enabled(it->bev) & EV_WRITE) {
        return;                 /* libevent is already writing the rest */
    }
    /* A bufferevent keeps the start of its output frozen so that only it
     * drains it; write the way its own write callback does. */
    evbuffer_unfreeze(out, 1);
    n = evbuffer_write(out, bufferevent_getfd(it->bev));
    evbuffer_freeze(out, 1);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        it->on_written(it, 1, evbuffer_get_length(out));
        return;
    }
    if (evbuffer_get_length(out) > 0) {
        bufferevent_enable(it->bev, EV_WRITE);
    }
    it->on_written(it, 0, evbuffer_get_length(out));
}

static void outq_on_flush(evutil_socket_t fd, short what, void *arg)
{
    struct outq_item *it;

    PL_UNUSED(fd);
    PL_UNUSED(what);
    PL_UNUSED(arg);
    /* on_written may close streams (outq_detach) or queue more output;
     * always take the current head. */
    while ((it = TAILQ_FIRST(&queue)) != NULL) {
        TAILQ_REMOVE(&queue, it, link);
        it->queued = 0;
        outq_flush_one(it);
    }
}

void outq_init(struct event_base *base)
{
    flush_ev = event_new(base, -1, 0, outq_on_flush, NULL);
}

void outq_attach(struct outq_item *it, struct bufferevent *bev, outq_written_cb on_written)
{
    it->bev = bev;
    it->on_written = on_written;
    it->queued = 0;
    bufferevent_disable(bev, EV_WRITE);
}

void outq_schedule(struct outq_item *it)
{
    if (it->queued) {
        return;
    }
    it->queued = 1;
    TAILQ_INSERT_TAIL(&queue, it, link);
    event_active(flush_ev, EV_TIMEOUT, 0);
}

void outq_detach(struct outq_item *it)
{
    if (it->queued) {
        TAILQ_REMOVE(&queue, it, link);
        it->queued = 0;
    }
}

void outq_written(struct outq_item *it)
{
    if (evbuffer_get_length(bufferevent_get_output(it->bev)) == 0) {
        bufferevent_disable(it->bev, EV_WRITE);
    }
}
