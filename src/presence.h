/* presence.h - this worker's share of who is in which room.
 *
 * Counts the worker's connections per (room, user) and tells Redis only
 * when the first one arrives or the last one leaves, so that a user with
 * ten tabs costs Redis one update, not ten.  Redis keeps the count across
 * workers and hosts (store_presence) and publishes join and leave.  When
 * Redis comes back, the worker makes it hold exactly its share again: users
 * Redis lost (restarted without its data) are counted in, leaves it missed
 * while it was down are taken back. */
#ifndef PARLEY_PRESENCE_H
#define PARLEY_PRESENCE_H

struct worker_env;

int presence_init(const struct worker_env *w);

/* A connection of USER entered / left ROOM. */
void presence_join(const char *room, const char *user);
void presence_leave(const char *room, const char *user);

#endif
