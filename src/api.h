/* api.h - the JSON HTTP API: sessions, publishing and reading history.
 *
 *   POST /api/sessions                 {"user":"alice"} -> 201 token
 *   POST /api/rooms/{room}/messages    {"content":..,"client_msg_id":..} -> 201 {"id"}
 *   GET  /api/rooms/{room}/messages    ?before=|after=&limit= -> 200 {"messages":[..]}
 */
#ifndef PARLEY_API_H
#define PARLEY_API_H

#include "conf.h"

struct worker_env;

int api_init(const struct worker_env *w);

#endif
