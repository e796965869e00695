/* clock.h - the clocks parley reads, one helper each.
 *
 * clock_ms: monotonic, for deadlines and intervals (never jumps with the
 * wall clock).  clock_coarse_ms: the same clock read cheaply, to the tick
 * of the kernel (a few ms): for per-event bookkeeping and once-a-second
 * sweeps.  clock_wall_ms: the time of day, for timestamps people and other
 * machines read (message "ts", log lines).  clock_spread_ms: a period for
 * one connection's keepalive, so that thousands opened together (a
 * reconnect storm) are not all pinged in the same tick. */
#ifndef PARLEY_CLOCK_H
#define PARLEY_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t clock_read_ms(clockid_t id)
{
    struct timespec ts;

    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int64_t clock_ms(void)
{
    return clock_read_ms(CLOCK_MONOTONIC);
}

static inline int64_t clock_coarse_ms(void)
{
    return clock_read_ms(CLOCK_MONOTONIC_COARSE);
}

static inline int64_t clock_wall_ms(void)
{
    return clock_read_ms(CLOCK_REALTIME);
}

/* PERIOD_MS shortened by up to a quarter, a different amount each call
 * (a multiplicative hash of a counter: evenly spread, no randomness
 * needed). */
static inline int64_t clock_spread_ms(int64_t period_ms)
{
    static uint32_t calls;

    return period_ms - (int64_t)((++calls * 2654435761u) % (uint32_t)(period_ms / 4 + 1));
}

#endif
