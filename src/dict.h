/* dict.h - a small string-keyed hash table of pointers.
 *
 * Keys are copied; values are the caller's.  Iteration with dict_next is
 * safe against deleting the entry just returned. */
#ifndef PARLEY_DICT_H
#define PARLEY_DICT_H

#include <stddef.h>

struct dict;

struct dict_iter {
    size_t bucket;
    void *next;
};

struct dict *dict_create(void);
void dict_free(struct dict *d);         /* frees keys, not values */

void *dict_find(const struct dict *d, const char *key);

/* Adds KEY -> VALUE; KEY must not be present.  Returns PL_OK or PL_ERR. */
int dict_add(struct dict *d, const char *key, void *value);

/* Sets KEY -> VALUE, adding KEY if needed.  Returns PL_OK or PL_ERR. */
int dict_set(struct dict *d, const char *key, void *value);

/* Removes KEY; returns its value, or NULL. */
void *dict_delete(struct dict *d, const char *key);

size_t dict_size(const struct dict *d);

/* Iterates: start with dict_iter_init(), then dict_next() until it returns
 * 0.  *KEY and *VALUE point at the entry. */
void dict_iter_init(struct dict_iter *it);
int dict_next(const struct dict *d, struct dict_iter *it, const char **key, void **value);

#endif
