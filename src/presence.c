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
static struct dict *missed;     /* "room|user" whose leave Redis did not get */

/* Calls store_presence_sync for the "room|user" KEY. */
static int presence_sync(const char *key, int present)
{
    const char *bar = strchr(key, '|');
    char room[PL_NAME_MAX + 1];

    snprintf(room, sizeof(room), "%.*s", (int)(bar - key), key);
    return store_presence_sync(room, bar + 1, present);
}

/* Redis is up again, maybe without its data (restarted, no persistence),
 * maybe having missed leaves while it was down: make it hold exactly this
 * worker's share. */
static void presence_restore(void)
{
    struct dict_iter it;
    const char *key;
    void *value;

    dict_iter_init(&it);
    while (dict_next(counts, &it, &key, &value)) {
        if (presence_sync(key, 1) != PL_OK) {
            return;             /* down again: the next "up" retries */
        }
    }
    dict_iter_init(&it);
    while (dict_next(missed, &it, &key, &value)) {
        if (dict_find(counts, key) == NULL && presence_sync(key, 0) != PL_OK) {
            return;
        }
        dict_delete(missed, key);       /* safe while iterating */
    }
}

int presence_init(void)
{
    counts = dict_create();
    missed = dict_create();
    store_on_up(presence_restore);
    return counts && missed ? PL_OK : PL_ERR;
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
            /* Redis is down: presence_restore sets it right once it is
             * back (joins are in counts, leaves are remembered here). */
            log_warn("event=presence_not_recorded room=%s user=%s delta=%d", room, user, delta);
            if (delta < 0) {
                dict_set(missed, key, (void *)1);
            }
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
