/* parley.h - result codes and limits shared by every module. */
#ifndef PARLEY_H
#define PARLEY_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Result codes, nginx style: "not finished yet" is not an error. */
#define PL_OK      0
#define PL_ERR    -1
#define PL_AGAIN  -2

/* Upper bound for the "workers" setting; shared memory is sized for it. */
#define PL_MAX_WORKERS 256

/* Room and user names: 1..64 characters of [A-Za-z0-9_.-], not "." or "..". */
#define PL_NAME_MAX 64

#define PL_UNUSED(x) ((void)(x))

/* The struct that embeds MEMBER at PTR. */
#define PL_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))
#define PL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Lists in the configuration ("a, b c") separate their items by commas and
 * blanks.  Returns the item at *CURSOR (its length in *LEN) and moves past
 * it, or NULL when none is left. */
static inline const char *pl_list_next(const char **cursor, size_t *len)
{
    const char *item = *cursor + strspn(*cursor, ", \t");

    if (*item == '\0') {
        return NULL;
    }
    *len = strcspn(item, ", \t");
    *cursor = item + *len;
    return item;
}

#endif
