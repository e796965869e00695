/* scripts.c - Lua sources, their SHA1s, and EVALSHA with EVAL fallback. */
#include "scripts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "log.h"
#include "parley.h"

#define SCRIPT_MAX_ARGS 16

/* Taking back presence is needed both when a worker dies and when a whole
 * instance does, so both scripts start with this function.  The leave event
 * matches what the workers publish (names need no JSON escaping). */
#define LUA_RELEASE_FN \
    "local function release(prefix, key, owner)\n" \
    "  local fields = redis.call('HGETALL', key)\n" \
    "  for i = 1, #fields, 2 do\n" \
    "    local f, c = fields[i], tonumber(fields[i + 1])\n" \
    "    if owner == '' or string.sub(f, 1, #owner) == owner then\n" \
    "      local _, _, room, user = string.find(f, '^[^|]*|([^|]*)|([^|]*)$')\n" \
    "      if room and c then\n" \
    "        local mk = prefix .. 'room:' .. room .. ':members'\n" \
    "        local n = redis.call('HINCRBY', mk, user, -c)\n" \
    "        if n <= 0 then\n" \
    "          redis.call('HDEL', mk, user)\n" \
    "          redis.call('PUBLISH', prefix .. 'room:' .. room, 'presence - ' .. user .. '\\n' ..\n" \
    "            '{\"type\":\"presence\",\"event\":\"leave\",\"user\":\"' .. user .. '\",\"room\":\"' .. room .. '\"}')\n" \
    "        end\n" \
    "      end\n" \
    "      redis.call('HDEL', key, f)\n" \
    "    end\n" \
    "  end\n" \
    "end\n"

static const char *const script_source[SCRIPT_COUNT] = {
    [SCRIPT_PUBLISH_MESSAGE] =
        "local cmid = ARGV[6]\n"
        "if cmid ~= '' then\n"
        "  local seen = redis.call('GET', KEYS[2])\n"
        "  if seen then return {seen, 0} end\n"
        "end\n"
        /* A token bucket per user, shared by every worker and host. */
        "local rate = tonumber(ARGV[8])\n"
        "if rate > 0 then\n"
        "  local burst = tonumber(ARGV[9])\n"
        "  local t = redis.call('TIME')\n"
        "  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
        "  local b = redis.call('HMGET', KEYS[3], 'tokens', 'ts')\n"
        "  local tokens = tonumber(b[1]) or burst\n"
        "  local ts = tonumber(b[2]) or now\n"
        "  tokens = math.min(burst, tokens + (now - ts) * rate / 1000)\n"
        "  if tokens < 1 then return {'', -math.ceil((1 - tokens) * 1000 / rate)} end\n"
        "  redis.call('HSET', KEYS[3], 'tokens', tostring(tokens - 1), 'ts', now)\n"
        "  redis.call('PEXPIRE', KEYS[3], math.ceil(burst * 1000 / rate) + 1000)\n"
        "end\n"
        "local id\n"
        "if cmid ~= '' then\n"
        "  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'type', 'message',\n"
        "                  'from', ARGV[3], 'content', ARGV[4], 'client_msg_id', cmid)\n"
        "else\n"
        "  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'type', 'message',\n"
        "                  'from', ARGV[3], 'content', ARGV[4])\n"
        "end\n"
        "local ms = string.match(id, '^(%d+)')\n"
        "redis.call('PUBLISH', ARGV[2], 'message ' .. id .. ' ' .. ARGV[3] .. '\\n' ..\n"
        "  '{\"type\":\"message\",\"id\":\"' .. id .. '\",' .. ARGV[5] .. ',\"ts\":' .. ms .. '}')\n"
        "if cmid ~= '' then redis.call('SET', KEYS[2], id, 'EX', ARGV[7]) end\n"
        "return {id, 1}\n",
    [SCRIPT_PRESENCE] =
        "local has = redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1\n"
        "if has == (ARGV[3] == 'in') then return 0 end\n"
        "local n\n"
        "if has then\n"
        "  redis.call('HDEL', KEYS[2], ARGV[2])\n"
        "  n = redis.call('HINCRBY', KEYS[1], ARGV[1], -1)\n"
        "  if n <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end\n"
        "else\n"
        "  redis.call('HSET', KEYS[2], ARGV[2], 1)\n"
        "  n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)\n"
        "end\n"
        "if (has and n <= 0) or (not has and n == 1) then redis.call('PUBLISH', ARGV[4], ARGV[5]) end\n"
        "return n\n",
    [SCRIPT_RELEASE] =
        LUA_RELEASE_FN
        "release(ARGV[1], KEYS[1], ARGV[2])\n"
        "return 1\n",
    [SCRIPT_REAP] =
        LUA_RELEASE_FN
        "local reaped = 0\n"
        "for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
        "  if id ~= ARGV[2] and redis.call('EXISTS', ARGV[1] .. 'instance:' .. id) == 0 then\n"
        "    local key = ARGV[1] .. 'instance:' .. id .. ':presence'\n"
        "    release(ARGV[1], key, '')\n"
        "    redis.call('DEL', key)\n"
        "    redis.call('SREM', KEYS[1], id)\n"
        "    reaped = reaped + 1\n"
        "  end\n"
        "end\n"
        "return reaped\n",
    [SCRIPT_RETIRE] =
        LUA_RELEASE_FN
        "release(ARGV[1], KEYS[1], '')\n"
        "redis.call('DEL', KEYS[1], KEYS[3])\n"
        "redis.call('SREM', KEYS[2], ARGV[2])\n"
        "return 1\n",
    [SCRIPT_RESUME] =
        "local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)\n"
        "local oid = oldest[1] and oldest[1][1] or ''\n"
        "if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1], 'COUNT', 1) == 0 then return {0, oid} end\n"
        "return {1, oid, redis.call('XRANGE', KEYS[1], '(' .. ARGV[1], '+')}\n",
};

static char script_sha[SCRIPT_COUNT][SHA_DIGEST_LENGTH * 2 + 1];

void scripts_init(void)
{
    unsigned char digest[SHA_DIGEST_LENGTH];

    for (int i = 0; i < SCRIPT_COUNT; i++) {
        SHA1((const unsigned char *)script_source[i], strlen(script_source[i]), digest);
        for (int j = 0; j < SHA_DIGEST_LENGTH; j++) {
            snprintf(&script_sha[i][j * 2], 3, "%02x", digest[j]);
        }
    }
}

void scripts_load(struct redis_conn *rc)
{
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        const char *argv[] = { "SCRIPT", "LOAD", script_source[i] };
        redis_conn_command(rc, NULL, NULL, 3, argv, NULL);
    }
}

/* A call in flight: kept so that a NOSCRIPT reply can be retried as EVAL. */
struct script_call {
    struct redis_conn *rc;
    enum script_id id;
    redis_reply_cb cb;
    void *arg;
    int argc;
    char *argv[SCRIPT_MAX_ARGS + 3];
    size_t lens[SCRIPT_MAX_ARGS + 3];
};

static void script_call_free(struct script_call *call)
{
    for (int i = 2; i < call->argc; i++) {
        free(call->argv[i]);
    }
    free(call);
}

static void script_on_reply(redisReply *reply, void *arg)
{
    struct script_call *call = arg;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0
        && strcmp(call->argv[0], "EVALSHA") == 0) {
        call->argv[0] = "EVAL";
        call->lens[0] = 4;
        call->argv[1] = (char *)script_source[call->id];
        call->lens[1] = strlen(script_source[call->id]);
        if (redis_conn_command(call->rc, script_on_reply, call, call->argc,
                               (const char **)call->argv, call->lens) == PL_OK) {
            return;
        }
        reply = NULL;
    }
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        log_warn("event=script_failed script=%d reply=\"%.200s\"", call->id, reply->str);
    }
    if (call->cb != NULL) {
        call->cb(reply, call->arg);
    }
    script_call_free(call);
}

int script_run(struct redis_conn *rc, enum script_id id, redis_reply_cb cb, void *arg,
               int nkeys, int argc, const char **argv, const size_t *lens)
{
    struct script_call *call;
    char numkeys[8];

    if (argc > SCRIPT_MAX_ARGS || !redis_conn_is_up(rc)) {
        return PL_ERR;
    }
    call = calloc(1, sizeof(*call));
    if (call == NULL) {
        return PL_ERR;
    }
    *call = (struct script_call){ .rc = rc, .id = id, .cb = cb, .arg = arg, .argc = argc + 3 };
    snprintf(numkeys, sizeof(numkeys), "%d", nkeys);
    call->argv[0] = "EVALSHA";
    call->argv[1] = script_sha[id];
    call->lens[0] = 7;
    call->lens[1] = strlen(script_sha[id]);
    call->argv[2] = strdup(numkeys);
    call->lens[2] = strlen(numkeys);
    for (int i = 0; i < argc; i++) {
        size_t n = lens ? lens[i] : strlen(argv[i]);
        call->argv[i + 3] = malloc(n + 1);
        if (call->argv[i + 3] != NULL) {
            memcpy(call->argv[i + 3], argv[i], n);
            call->argv[i + 3][n] = '\0';
        }
        call->lens[i + 3] = n;
    }
    if (redis_conn_command(rc, script_on_reply, call, call->argc, (const char **)call->argv,
                           call->lens) != PL_OK) {
        script_call_free(call);
        return PL_ERR;
    }
    return PL_OK;
}
