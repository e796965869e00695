/* busd.h - the bus process ("busd"): a host's one Redis subscriber.
 *
 * Runs in its own process, forked by the master; its functions are busd_*.
 * The workers' side of the bus is bus.c (bus_*), and what the two share in
 * memory is bus_zone.h.
 *
 * The master forks it next to the workers and respawns it if it dies.  It
 * holds the only SUBSCRIBE connection of the host and subscribes to exactly
 * the channels some local worker asked for (see bus_zone.h); each message
 * Redis pushes is appended once to the shared ring, then every worker is
 * woken through its eventfd.  Channels nobody needs any more are dropped
 * after a short grace period, so rooms that people leave and rejoin do not
 * churn subscriptions.
 *
 * It also keeps the host's heartbeat key alive, takes back the presence of
 * workers that died and of instances whose heartbeat expired, and on a
 * graceful stop takes back the host's own presence. */
#ifndef PARLEY_BUSD_H
#define PARLEY_BUSD_H

#include "bus_zone.h"
#include "conf.h"

/* Runs the bus until SIGTERM (final stop: takes the host's presence back)
 * or SIGQUIT (replaced on reload: leaves it); returns the exit code. */
int busd_run(const struct conf *cfg, struct bus_zone *zone);

#endif
