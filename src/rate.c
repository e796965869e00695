/* rate.c - token buckets. */
#include "rate.h"

#include <stddef.h>

void rate_init(struct rate_bucket *b, int burst, int64_t now_ms)
{
    b->tokens = burst;
    b->refill_ms = now_ms;
}

int rate_take(struct rate_bucket *b, int rate, int burst, int64_t now_ms, int64_t *wait_ms)
{
    if (rate <= 0) {
        return 1;
    }
    b->tokens += (double)(now_ms - b->refill_ms) * rate / 1000.0;
    if (b->tokens > burst) {
        b->tokens = burst;
    }
    b->refill_ms = now_ms;
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        return 1;
    }
    if (wait_ms != NULL) {
        *wait_ms = (int64_t)((1.0 - b->tokens) * 1000.0 / rate) + 1;
    }
    return 0;
}
