/* json_field.h - reading the members of a parsed JSON request.
 *
 * Clients send JSON objects (HTTP bodies, WebSocket messages); a member
 * that is present with the wrong type is a bad request, not an absent one,
 * and a string holding a NUL byte is refused: C code after this point sees
 * NUL-terminated strings, and a name or a message must not be silently cut
 * at the NUL. */
#ifndef PARLEY_JSON_FIELD_H
#define PARLEY_JSON_FIELD_H

#include <stddef.h>

#include <json-c/json.h>

/* The string member KEY of OBJ (its length in *LEN when LEN is not NULL),
 * or NULL when absent or null.  Sets *BAD when it is present but not a
 * string, or contains a NUL byte. */
const char *json_field_string(json_object *obj, const char *key, size_t *len, int *bad);

#endif
