/* rate.h - token-bucket rate limiting (rate_limit per second, rate_burst).
 *
 * Used per WebSocket connection (the per-user bucket of HTTP publishing
 * lives in Redis, in the publish script).  A zero rate means no limit. */
#ifndef PARLEY_RATE_H
#define PARLEY_RATE_H

#include <stdint.h>

struct rate_bucket {
    double tokens;
    int64_t refill_ms;
};

void rate_init(struct rate_bucket *b, int burst, int64_t now_ms);

/* Takes one token.  Returns 0 when the bucket is empty; *WAIT_MS (may be
 * NULL) is then how long until the next token. */
int rate_take(struct rate_bucket *b, int rate, int burst, int64_t now_ms, int64_t *wait_ms);

#endif
