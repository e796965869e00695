/* fuzz_http_head.c - libFuzzer target for the request head checks: any
 * bytes, any split; the answer is one of the documented ones, and a head
 * judged complete is judged the same whatever follows it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_head.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 16);
    int r;

    if (buf == NULL) {
        return 0;
    }
    memcpy(buf, data, size);
    r = http_head_check(buf, size, 4096, 65536);
    if (r != -1 && r != 0 && r != 400 && r != 413 && r != 414 && r != 431) {
        abort();
    }
    if (r == 0) {
        /* Bytes after a complete head (a body, the next request) change nothing. */
        memcpy(buf + size, "\r\nX: 1\r\n\r\n\n\n\n\n\n\n", 16);
        if (http_head_check(buf, size + 16, 4096, 65536) != 0) {
            abort();
        }
    }
    free(buf);
    return 0;
}
