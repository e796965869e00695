/* json_field.c - typed access to members of client JSON. */
#include "json_field.h"

#include <string.h>

const char *json_field_string(json_object *obj, const char *key, size_t *len, int *bad)
{
    json_object *v;
    const char *s;
    size_t n;

    if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null)) {
        return NULL;
    }
    if (!json_object_is_type(v, json_type_string)) {
        *bad = 1;
        return NULL;
    }
    s = json_object_get_string(v);
    n = (size_t)json_object_get_string_len(v);
    if (strlen(s) != n) {
        *bad = 1;               /* "\u0000" inside */
        return NULL;
    }
    if (len != NULL) {
        *len = n;
    }
    return s;
}
