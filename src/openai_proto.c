/* openai_proto.c - the OpenAI chat completions JSON (see openai_proto.h). */
#include "openai_proto.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "utf8.h"

static void openai_proto_message_add(json_object *messages, const char *role, const char *content)
{
    json_object *m = json_object_new_object();

    if (m == NULL) {
        return;
    }
    json_object_object_add(m, "role", json_object_new_string(role));
    json_object_object_add(m, "content", json_object_new_string(content));
    json_object_array_add(messages, m);
}

json_object *openai_proto_request(const char *model, const char *system, const char *agent_name,
                                  const struct store_events *context, const char *query)
{
    json_object *root = json_object_new_object(), *messages = json_object_new_array();
    char *line;

    if (root == NULL || messages == NULL) {
        json_object_put(root);
        json_object_put(messages);
        return NULL;
    }
    json_object_object_add(root, "model", json_object_new_string(model));
    json_object_object_add(root, "stream", json_object_new_boolean(1));
    if (system[0] != '\0') {
        openai_proto_message_add(messages, "system", system);
    }
    for (int i = 0; context != NULL && i < context->count; i++) {
        json_object *m = json_tokener_parse(context->items[i].json), *from, *content;

        if (m != NULL && json_object_object_get_ex(m, "from", &from)
            && json_object_object_get_ex(m, "content", &content)) {
            const char *who = json_object_get_string(from), *text = json_object_get_string(content);
            if (strcmp(who, agent_name) == 0) {
                openai_proto_message_add(messages, "assistant", text);
            } else if (asprintf(&line, "%s: %s", who, text) >= 0) {
                openai_proto_message_add(messages, "user", line);
                free(line);
            }
        }
        json_object_put(m);
    }
    openai_proto_message_add(messages, "user", query);
    json_object_object_add(root, "messages", messages);
    return root;
}

json_object *openai_proto_parse(const char *s, size_t len)
{
    struct json_tokener *tok;
    json_object *obj;
    size_t end;

    if (s == NULL || len == 0 || (tok = json_tokener_new()) == NULL) {
        return NULL;
    }
    obj = json_tokener_parse_ex(tok, s, (int)len);
    end = json_tokener_get_error(tok) == json_tokener_success ? json_tokener_get_parse_end(tok) : 0;
    json_tokener_free(tok);
    if (obj == NULL) {
        return NULL;
    }
    while (end < len && isspace((unsigned char)s[end])) {
        end++;
    }
    if (end < len || !json_object_is_type(obj, json_type_object)) {
        json_object_put(obj);
        return NULL;
    }
    return obj;
}

const char *openai_proto_error(json_object *obj)
{
    json_object *err, *msg;

    if (obj == NULL || !json_object_object_get_ex(obj, "error", &err)) {
        return NULL;
    }
    if (json_object_is_type(err, json_type_object) && json_object_object_get_ex(err, "message", &msg)
        && json_object_is_type(msg, json_type_string)) {
        return json_object_get_string(msg);
    }
    return json_object_get_string(err);
}

int openai_proto_choice(json_object *obj, json_object **choice)
{
    json_object *choices;

    if (!json_object_object_get_ex(obj, "choices", &choices) || !json_object_is_type(choices, json_type_array)) {
        return -1;
    }
    if (json_object_array_length(choices) == 0) {
        return 0;
    }
    *choice = json_object_array_get_idx(choices, 0);
    return json_object_is_type(*choice, json_type_object) ? 1 : -1;
}

const char *openai_proto_text(json_object *choice, const char *part, size_t *len)
{
    json_object *o, *content;

    if (!json_object_object_get_ex(choice, part, &o) || !json_object_is_type(o, json_type_object)
        || !json_object_object_get_ex(o, "content", &content) || !json_object_is_type(content, json_type_string)) {
        return NULL;
    }
    *len = (size_t)json_object_get_string_len(content);
    return json_object_get_string(content);
}

int openai_proto_finished(json_object *choice)
{
    json_object *finish;

    return json_object_object_get_ex(choice, "finish_reason", &finish)
           && json_object_is_type(finish, json_type_string);
}

void openai_proto_clean(char *msg, const char *key)
{
    size_t klen = strlen(key), n, i;
    char *p;

    for (p = msg; klen > 0 && (p = strstr(p, key)) != NULL; p += klen) {
        memset(p, '*', klen);
    }
    for (p = msg; *p != '\0'; p++) {
        if ((unsigned char)*p < ' ' || *p == 0x7f) {
            *p = ' ';
        } else if (*p == '"') {
            *p = '\'';
        }
    }
    /* A character cut at the end by the size limit goes; then, if bytes
     * that were never UTF-8 remain, every non-ASCII byte is replaced. */
    n = strlen(msg);
    for (i = n; i > 0 && n - i < 3 && ((unsigned char)msg[i - 1] & 0xc0) == 0x80; i--) {
    }
    if (i > 0 && (unsigned char)msg[i - 1] >= 0xc0
        && n - (i - 1) < ((unsigned char)msg[i - 1] >= 0xf0 ? 4u : (unsigned char)msg[i - 1] >= 0xe0 ? 3u : 2u)) {
        n = i - 1;
        msg[n] = '\0';
    }
    if (!utf8_valid((const uint8_t *)msg, n)) {
        openai_proto_ascii(msg, n);
    }
}

void openai_proto_ascii(char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] >= 0x80) {
            s[i] = '?';
        }
    }
}
