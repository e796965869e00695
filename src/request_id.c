/* request_id.c - a per-worker prefix and counter. */
#include "request_id.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

static struct {
    uint32_t prefix;
    uint32_t counter;
} R;

void request_id_init(void)
{
    if (getrandom(&R.prefix, sizeof(R.prefix), 0) != sizeof(R.prefix)) {
        R.prefix = (uint32_t)getpid();
    }
}

void request_id_new(char *buf, size_t len)
{
    snprintf(buf, len, "%08x%08x", R.prefix, ++R.counter);
}

int request_id_acceptable(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n > 64) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)id[i]) && !strchr("._:-", id[i])) {
            return 0;
        }
    }
    return 1;
}
