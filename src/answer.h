/* answer.h - the agent's answers in rooms: resumable, shared, ended once.
 *
 * An answer belongs to its room, not to the connection that asked for it.
 * Its text goes into the room's stream a chunk at a time (ai_chunk events
 * with ids in the room's order), so a client that resumes from any id, on
 * any instance, or joins mid-answer, gets every chunk once; chunks that come
 * within agent_coalesce of the last one stored share an event, the first
 * goes at once (past 256 events, a quarter of a second at least, so that an
 * answer's chunks are capped).  The asker leaving does not stop the answer.  It ends once,
 * in one Redis script (store_answer_end): the chunks become the stored
 * message and every viewer gets ai_done with the outcome - complete,
 * incomplete (the upstream failed, or this worker or instance went away:
 * the bus and the reaper end its answers), or cancelled (by its asker, from
 * any connection: store_answer_cancel), which stops the agent here too.
 *
 * An answer lives in a scope, a room's name: the room it was asked in, or
 * for GET /api/chat/stream the asker's private scope ("~" + the user: no
 * client can join it).  A private answer whose asker is not following it
 * (its connection gone, and no "ai_watch" from a follower elsewhere for
 * agent_linger) is given up as incomplete. */
#ifndef PARLEY_ANSWER_H
#define PARLEY_ANSWER_H

#include "agent.h"
#include "parley.h"

struct worker_env;
struct answer;

/* A request id: 16 hex digits, random. */
#define ANSWER_ID_LEN 16

/* The asker's side: the agent has stopped - ST is how (AGENT_OK also when
 * the answer was cancelled), MESSAGE readable.  Not called once detached. */
typedef void (*answer_done_cb)(enum agent_status st, const char *message, void *arg);

int answer_init(const struct worker_env *w);

/* Room for a scope name: "~" and a user name. */
#define ANSWER_SCOPE_MAX (PL_NAME_MAX + 2)

/* ASKER's private scope into OUT (ANSWER_SCOPE_MAX bytes). */
const char *answer_private_scope(const char *asker, char *out);

/* Asks QUERY for ASKER (signed in with SESSION; NULL for a JWT) in SCOPE,
 * with ROOM (may be NULL) as the agent's context; PRIVATE: the asker must
 * follow it (see above).  Returns NULL when this worker is at its agent
 * limit (agent_busy) or Redis is down.  Redis registers it first, checking
 * the session and agent_max_per_user: ON_DONE may then say AGENT_FORBIDDEN
 * or AGENT_BUSY, and nothing was published. */
struct answer *answer_start(const char *scope, const char *room, const char *asker, const char *session,
                            const char *query, int private, answer_done_cb on_done, void *arg);

/* The request id ("" never). */
const char *answer_id(const struct answer *a);

/* The asker went: the answer goes on without telling it (a private one
 * for agent_linger, unless a follower says it watches). */
void answer_detach(struct answer *a);

/* Non-zero when S looks like a request id (what a client may name). */
int answer_id_valid(const char *s);

#endif
