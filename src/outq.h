/* outq.h - client output written once per loop pass, straight from the
 * buffer, and room events batched for up to write_delay.
 *
 * A bufferevent with write interest enabled costs two epoll_ctl calls per
 * message (interest on when data arrives, off when drained).  Streams keep
 * write interest off instead and put themselves on this queue when they
 * have output: once per loop pass every queued stream is written with one
 * writev, however many events it got.  Only a client that cannot take it
 * all gets write interest, until libevent has drained it; its write
 * callback must then call outq_written().
 *
 * A stream whose buffer is empty keeps the chunks pushed to it in the pass
 * (up to OUTQ_PENDING) by reference in its item and writes them straight
 * from there with one writev: no buffer chain is allocated, filled and
 * freed for a delivery that goes out at once, which is nearly every one.
 * Whatever the kernel does not take moves into the buffer.
 *
 * Nearly all the cost of a delivery is the kernel's, one write per client
 * per write call, whatever its size.  With write_delay > 0 room events are
 * written in batches at least write_delay apart (one timer per worker): the
 * first event after a quiet spell goes at once, later ones wait for the
 * next batch and share its write, so a busy room costs fewer writes for at
 * most write_delay of latency.  Replies, control frames and anything
 * scheduled with outq_schedule() go out at the end of the pass and take the
 * waiting output with them. */
#ifndef PARLEY_OUTQ_H
#define PARLEY_OUTQ_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/queue.h>

struct worker_env;

struct bufferevent;
struct chunk;
struct event_base;
struct outq_item;

/* After a write attempt: ERROR when the peer is gone (the owner closes),
 * else how much is still queued. */
typedef void (*outq_written_cb)(struct outq_item *it, int error, size_t queued);

#define OUTQ_PENDING 4

/* Embedded in a stream's state. */
struct outq_item {
    struct bufferevent *bev;
    outq_written_cb on_written;
    int queued;                 /* 0, or which queue it is on */
    int failed;                 /* output was lost (out of memory): report it */
    int npending;               /* chunks pushed while the buffer was empty */
    struct chunk *pending[OUTQ_PENDING];
    size_t pending_len;
    TAILQ_ENTRY(outq_item) link;
};

/* WRITE_DELAY_MS: how long room events may wait (0: end of the pass). */
int outq_init(const struct worker_env *w);

/* Starts IT on BEV: write interest off, output written by the queue. */
void outq_attach(struct outq_item *it, struct bufferevent *bev, outq_written_cb on_written);

/* IT has new output: write it at the end of this loop pass. */
void outq_schedule(struct outq_item *it);

/* IT has a new room event: write it within write_delay. */
void outq_schedule_batched(struct outq_item *it);

/* Appends C (shared by reference) to IT's output and schedules it: a room
 * event (BATCHED) within write_delay, anything else at the end of this
 * pass.  Returns the bytes now queued (for the owner's backlog limit), or
 * -1 when C could not be queued (C NULL, or out of memory). */
ssize_t outq_push(struct outq_item *it, struct chunk *c, int batched);

/* IT's output buffer, to append to directly (then outq_schedule()): what
 * was pushed before goes into it first, so the order holds. */
struct evbuffer *outq_output(struct outq_item *it);

/* The bytes IT has not written yet. */
size_t outq_queued(const struct outq_item *it);

/* Writes what IT has at once, as far as the kernel takes it, without
 * callbacks: for a stream about to close whose last words matter. */
void outq_write_now(struct outq_item *it);

/* IT's owner is going away: take it off the queue (and drop its output). */
void outq_detach(struct outq_item *it);

/* For the bufferevent's write callback: libevent drained what the direct
 * write could not; back to direct writes when empty. */
void outq_written(struct outq_item *it);

#endif
