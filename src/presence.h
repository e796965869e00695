/* presence.h - this worker's share of who is in which room.
 *
 * Counts the worker's connections per (room, user) and tells Redis only
 * when the first one arrives or the last one leaves, so that a user with
 * ten tabs costs Redis one update, not ten.  Redis keeps the count across
 * workers and hosts (store_presence) and publishes join and leave.  When
 * Redis comes back after losing its data, the worker counts its users in
 * again (a join for each, as they are new to Redis). */
#ifndef PARLEY_PRESENCE_H
#define PARLEY_PRESENCE_H

int presence_init(void);

/* A connection of USER entered / left ROOM. */
void presence_join(const char *room, const char *user);
void presence_leave(const char *room, const char *user);

#endif
