/* sse_answer.h - GET /api/chat/stream: one agent answer as an event stream.
 *
 * ?query=<text> (and ?room=<room> for the agent's context) asks; the answer
 * is the asker's own, in its private scope (answer.h), and streams as
 * "event: ai_chunk" events each with "id: <request id>/<stream id>", then
 * one end: "event: ai_done" (complete, or "status":"cancelled") or
 * "event: error" (incomplete), and the response ends.  The stream follows
 * the answer through the bus, so a client that reconnects with
 * Last-Event-ID - to any worker or instance - gets the chunks after that
 * one and the rest live, and asks nothing again.  A stream that goes does
 * not stop the answer at once: it lingers (agent_linger) for its asker to
 * come back; a resumed stream keeps it alive ("ai_watch" events). */
#ifndef PARLEY_SSE_ANSWER_H
#define PARLEY_SSE_ANSWER_H

struct worker_env;

int sse_answer_init(const struct worker_env *w);

#endif
