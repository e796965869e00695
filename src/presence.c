/* presence.c - per-worker presence counts in front of Redis. */
#include "presence.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "dict.h"
#include "log.h"
#include "parley.h"
#include "store.h"

static struct dict *counts;     /* "room|user" -> count, stored in the pointer */

/* Redis came back, maybe without its data (restarted, no persistence):
 * count this worker's users in again where it forgot them. */
static void presence_restore(void)
{
    struct dict_iter it;
    const char *key;
    void *value;
    char room[PL_NAME_MAX + 1];

    dict_iter_init(&it);
    while (dict_next(counts, &it, &key, &value)) {
        const char *bar = strchr(key, '|');

        snprintf(room, sizeof(room), "%.*s", (int)(bar - key), key);
        if (store_presence(room, bar + 1, 0) != PL_OK) {
            return;             /* down again: the next "up" retries */
        }
    }
}

int presence_init(void)
{
    counts = dict_create();
    store_on_up(presence_restore);
    return counts ? PL_OK : PL_ERR;
}

static void presence_change(const char *room, const char *user, int delta)
{
    char key[PL_NAME_MAX * 2 + 2];
    intptr_t n;

    snprintf(key, sizeof(key), "%s|%s", room, user);
    n = (intptr_t)dict_find(counts, key) + delta;
    if (n <= 0) {
        dict_delete(counts, key);
    } else {
        dict_set(counts, key, (void *)n);
    }
    if ((delta > 0 && n == 1) || (delta < 0 && n == 0)) {
        if (store_presence(room, user, delta) != PL_OK) {
            /* Redis is down: the instance's entries are taken back when it
             * stops or is reaped; a join then is announced by the next one. */
            log_warn("event=presence_not_recorded room=%s user=%s delta=%d", room, user, delta);
        }
    }
}

void presence_join(const char *room, const char *user)
{
    presence_change(room, user, 1);
}

void presence_leave(const char *room, const char *user)
{
    presence_change(room, user, -1);
}
