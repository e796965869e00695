/* feed.h - a client's feed of a room, joined without a gap.
 *
 * What parley promises every WebSocket and event stream lives here, once:
 * - subscribe to the room's channel and the user's (direct messages), and
 *   wait until Redis has confirmed both: from then on nothing published is
 *   missed;
 * - then count the user into the room's presence and let the transport
 *   read what came before (a welcome naming the newest id, or a replay from
 *   Last-Event-ID): the cut between history and live;
 * - hold the events that arrive meanwhile and hand them over, in order,
 *   once the transport goes live; after that, hand events over as they
 *   come;
 * - drop a stored event the client already has (at or before the newest
 *   stored id it was given), and presence or typing of the user itself;
 * - encode each event once per worker per transport, shared by every
 *   client (bus_event_cache);
 * - end the feed when the user's right to it ends: the token expires, the
 *   session is revoked (a "revoked" event on the user's channel, or a gap
 *   in it, makes the feed ask Redis whether the session still exists; it
 *   also asks once when the subscriptions are ready, for a revocation that
 *   came before them), or the room cannot be joined in time (Redis down).
 * The transport only frames bytes for its wire and says goodbye. */
#ifndef PARLEY_FEED_H
#define PARLEY_FEED_H

#include <stdint.h>
#include <sys/queue.h>

#include "auth.h"
#include "bus.h"
#include "conf.h"

struct worker_env;

struct event_base;
struct feed;

/* Which transport's encoding an event's cache slot holds. */
enum feed_slot { FEED_SLOT_WS, FEED_SLOT_SSE, FEED_SLOTS };

enum feed_end {
    FEED_REVOKED,               /* the session was revoked */
    FEED_EXPIRED,               /* the token's time is up */
    FEED_UNAVAILABLE,           /* not ready within twice redis_timeout */
    FEED_NO_MEMORY,             /* events could not be held */
};

/* What the transport provides.  ready and end are called from the event
 * loop; after end the transport closes (and feed_close()s) the feed. */
struct feed_ops {
    enum feed_slot slot;
    /* The transport's bytes for EV, made once and shared by its clients;
     * the cache frees them with free_encoded. */
    void *(*encode)(struct bus_event *ev);
    void (*free_encoded)(void *encoded);
    /* Both channels are subscribed and the user is counted in: read what
     * came before, then feed_go_live(). */
    void (*ready)(struct feed *f);
    /* Sends ENCODED (EV's, from encode) to the client. */
    void (*deliver)(struct feed *f, void *encoded, const struct bus_event *ev);
    /* Optional: whether an event held while joining is still news (the
     * WebSocket's welcome already lists the members who joined meanwhile). */
    int (*still_news)(struct feed *f, const struct bus_event *ev);
    void (*end)(struct feed *f, enum feed_end why);
    /* A Redis call of the feed holds the transport's state (pin); when it
     * comes back, unpin returns 0 if the state is gone meanwhile. */
    void (*pin)(struct feed *f);
    int (*unpin)(struct feed *f);
};

/* Embedded in the transport's per-client state. */
struct feed {
    const struct feed_ops *ops;
    struct auth_identity who;
    char room[PL_NAME_MAX + 1];
    struct bus_sub room_sub;
    struct bus_sub user_sub;
    enum { FEED_JOINING, FEED_CUTTING, FEED_LIVE, FEED_ENDED } st;
    struct event_id last;       /* newest stored id the client has (0-0: none) */
    struct bus_held held;       /* events that came before going live */
    int64_t opened_ms;          /* for the join deadline */
    int joined;                 /* counted in the room's presence */
    int listed;                 /* open: on the sweep's list */
    int recheck_due;            /* a session check Redis did not answer */
    LIST_ENTRY(feed) link;
};

/* Worker start-up: the sweep for token ends and join deadlines. */
int feed_init(const struct worker_env *w);

/* Opens F for WHO in ROOM.  Returns PL_OK (ops->ready will follow), or
 * PL_ERR (out of memory; nothing to close). */
int feed_open(struct feed *f, const struct feed_ops *ops, const struct auth_identity *who, const char *room);

/* The client has been given stored events up to SID (the cut, a replayed
 * event): later deliveries skip anything at or before it. */
void feed_mark(struct feed *f, const struct event_id *sid);

/* Redis found F's session gone while doing something for it (publishing):
 * ends F as revoked, without waiting for the revocation's event. */
void feed_revoked(struct feed *f);

/* History is done: hands over what was held, in order, then goes live. */
void feed_go_live(struct feed *f);

/* Unsubscribes and counts the user out; no callback comes after. */
void feed_close(struct feed *f);

/* Whether F is past its cut (events flow as they come). */
static inline int feed_live(const struct feed *f)
{
    return f->st == FEED_LIVE;
}

#endif
