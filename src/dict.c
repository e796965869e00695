/* dict.c - chained hash table keyed by strings (FNV-1a), doubling on load. */
#include "dict.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parley.h"

struct dict_entry {
    struct dict_entry *next;
    void *value;
    char key[];
};

struct dict {
    struct dict_entry **buckets;
    size_t nbuckets;            /* a power of two */
    size_t size;
};

static uint64_t dict_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    while (*s) {
        h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    }
    return h;
}

struct dict *dict_create(void)
{
    struct dict *d = calloc(1, sizeof(*d));

    if (d == NULL) {
        return NULL;
    }
    d->nbuckets = 16;
    d->buckets = calloc(d->nbuckets, sizeof(*d->buckets));
    if (d->buckets == NULL) {
        free(d);
        return NULL;
    }
    return d;
}

void dict_free(struct dict *d)
{
    if (d == NULL) {
        return;
    }
    for (size_t i = 0; i < d->nbuckets; i++) {
        struct dict_entry *e = d->buckets[i];
        while (e != NULL) {
            struct dict_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    free(d->buckets);
    free(d);
}

static struct dict_entry **dict_slot(const struct dict *d, const char *key)
{
    struct dict_entry **p = &d->buckets[dict_hash(key) & (d->nbuckets - 1)];

    while (*p != NULL && strcmp((*p)->key, key) != 0) {
        p = &(*p)->next;
    }
    return p;
}

void *dict_find(const struct dict *d, const char *key)
{
    struct dict_entry *e = *dict_slot(d, key);
    return e ? e->value : NULL;
}

static void dict_grow(struct dict *d)
{
    size_t n = d->nbuckets * 2;
    struct dict_entry **b = calloc(n, sizeof(*b));

    if (b == NULL) {
        return;                 /* keep working with longer chains */
    }
    for (size_t i = 0; i < d->nbuckets; i++) {
        struct dict_entry *e = d->buckets[i];
        while (e != NULL) {
            struct dict_entry *next = e->next;
            size_t j = dict_hash(e->key) & (n - 1);
            e->next = b[j];
            b[j] = e;
            e = next;
        }
    }
    free(d->buckets);
    d->buckets = b;
    d->nbuckets = n;
}

int dict_add(struct dict *d, const char *key, void *value)
{
    size_t len = strlen(key);
    struct dict_entry *e = malloc(sizeof(*e) + len + 1);
    struct dict_entry **p;

    if (e == NULL) {
        return PL_ERR;
    }
    if (d->size >= d->nbuckets) {
        dict_grow(d);
    }
    memcpy(e->key, key, len + 1);
    e->value = value;
    p = &d->buckets[dict_hash(key) & (d->nbuckets - 1)];
    e->next = *p;
    *p = e;
    d->size++;
    return PL_OK;
}

int dict_set(struct dict *d, const char *key, void *value)
{
    struct dict_entry *e = *dict_slot(d, key);

    if (e == NULL) {
        return dict_add(d, key, value);
    }
    e->value = value;
    return PL_OK;
}

void *dict_delete(struct dict *d, const char *key)
{
    struct dict_entry **p = dict_slot(d, key);
    struct dict_entry *e = *p;
    void *value;

    if (e == NULL) {
        return NULL;
    }
    *p = e->next;
    value = e->value;
    free(e);
    d->size--;
    return value;
}

size_t dict_size(const struct dict *d)
{
    return d->size;
}

void dict_iter_init(struct dict_iter *it)
{
    it->bucket = 0;
    it->next = NULL;
}

int dict_next(const struct dict *d, struct dict_iter *it, const char **key, void **value)
{
    struct dict_entry *e = it->next;

    while (e == NULL && it->bucket < d->nbuckets) {
        e = d->buckets[it->bucket++];
    }
    if (e == NULL) {
        return 0;
    }
    it->next = e->next;         /* taken now, so deleting E is safe */
    *key = e->key;
    *value = e->value;
    return 1;
}
