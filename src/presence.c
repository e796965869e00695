/* presence.c - per-worker presence counts in front of Redis. */
#include "presence.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dict.h"
#include "log.h"
#include "parley.h"
#include "store.h"

static struct dict *counts;     /* "room|user" -> count, stored in the pointer */
static struct dict *missed;     /* "room|user" whose leave Redis may not have */

/* A leave (or a sync taking one back) was answered: Redis has it, unless
 * it failed (then the key stays in missed for the next restore). */
static void presence_on_left(enum store_status st, long long n, void *arg)
{
    char *key = arg;

    PL_UNUSED(n);
    if (st == STORE_OK) {
        dict_delete(missed, key);
    }
    free(key);
}

/* Sends a leave (DELTA -1) or a sync (DELTA 0, PRESENT) for the "room|user"
 * KEY; a leave-like change is confirmed through presence_on_left. */
static int presence_send(const char *key, int delta, int present)
{
    const char *bar = strchr(key, '|');
    char room[PL_NAME_MAX + 1], *copy = NULL;
    int rc;

    snprintf(room, sizeof(room), "%.*s", (int)(bar - key), key);
    if (delta < 0 || (delta == 0 && !present)) {
        if ((copy = strdup(key)) == NULL) {
            return PL_ERR;
        }
    }
    rc = delta != 0 ? store_presence(room, bar + 1, delta, copy ? presence_on_left : NULL, copy)
                    : store_presence_sync(room, bar + 1, present, copy ? presence_on_left : NULL, copy);
    if (rc != PL_OK) {
        free(copy);
    }
    return rc;
}

/* Redis is up again, maybe without its data (restarted, no persistence),
 * maybe having missed leaves: make it hold exactly this worker's share. */
static void presence_restore(void)
{
    struct dict_iter it;
    const char *key;
    void *value;

    dict_iter_init(&it);
    while (dict_next(counts, &it, &key, &value)) {
        if (presence_send(key, 0, 1) != PL_OK) {
            return;             /* down again: the next "up" retries */
        }
    }
    dict_iter_init(&it);
    while (dict_next(missed, &it, &key, &value)) {
        if (dict_find(counts, key) != NULL) {
            dict_delete(missed, key);   /* back meanwhile: counted in above */
        } else if (presence_send(key, 0, 0) != PL_OK) {
            return;
        }
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
    if (delta > 0 && n == 1) {
        /* If Redis does not get it, presence_restore counts it in later. */
        if (store_presence(room, user, 1, NULL, NULL) != PL_OK) {
            log_warn("event=presence_not_recorded room=%s user=%s delta=1", room, user);
        }
    } else if (delta < 0 && n == 0) {
        /* Remembered until Redis confirms it: a leave lost on the way (Redis
         * down, or gone with the command in flight) is taken back later. */
        dict_set(missed, key, (void *)1);
        if (presence_send(key, -1, 0) != PL_OK) {
            log_warn("event=presence_not_recorded room=%s user=%s delta=-1", room, user);
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
