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
#include "worker_env.h"

static struct dict *counts;     /* "room|user" -> count, stored in the pointer */
static struct dict *missed;     /* "room|user" whose leave Redis may not have */

/* A leave was answered: Redis has it, unless it failed (then the key stays
 * in missed for the next restore). */
static void presence_on_left(enum store_status st, long long n, void *arg)
{
    char *key = arg;

    PL_UNUSED(n);
    if (st == STORE_OK) {
        dict_delete(missed, key);
    }
    free(key);
}

/* Tells Redis whether the "room|user" KEY is PRESENT on this worker; a
 * leave stays in missed until Redis confirms it. */
static int presence_send(const char *key, int present)
{
    const char *bar = strchr(key, '|');
    char room[PL_NAME_MAX + 1], *copy = NULL;

    snprintf(room, sizeof(room), "%.*s", (int)(bar - key), key);
    if (!present) {
        if (dict_set(missed, key, (void *)1) != PL_OK || (copy = strdup(key)) == NULL) {
            return PL_ERR;
        }
    }
    if (store_presence(room, bar + 1, present, copy ? presence_on_left : NULL, copy) != PL_OK) {
        free(copy);
        return PL_ERR;
    }
    return PL_OK;
}

/* Redis is up again, maybe without its data (restarted, no persistence),
 * maybe having missed changes: tell it this worker's share again. */
static void presence_restore(void)
{
    struct dict_iter it;
    const char *key;
    void *value;

    dict_iter_init(&it);
    while (dict_next(counts, &it, &key, &value)) {
        if (presence_send(key, 1) != PL_OK) {
            return;             /* down again: the next "up" retries */
        }
    }
    dict_iter_init(&it);
    while (dict_next(missed, &it, &key, &value)) {
        if (dict_find(counts, key) != NULL) {
            dict_delete(missed, key);   /* back meanwhile: counted in above */
        } else if (presence_send(key, 0) != PL_OK) {
            return;
        }
    }
}

int presence_init(const struct worker_env *w)
{
    PL_UNUSED(w);
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
    /* Only the first connection and the last one concern Redis.  A change
     * Redis does not get is put right by presence_restore. */
    if (((delta > 0 && n == 1) || (delta < 0 && n == 0)) && presence_send(key, delta > 0) != PL_OK) {
        log_warn("event=presence_not_recorded room=%s user=%s delta=%d", room, user, delta);
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
