/* conf.c - the configuration table, file parser and validators. */
#include "conf.h"

#include <ctype.h>
#include <limits.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "names.h"
#include "netaddr.h"
#include "parley.h"

enum conf_type {
    CONF_INT,         /* decimal integer within [min, max] */
    CONF_WORKERS,     /* "auto" or 1..PL_MAX_WORKERS */
    CONF_SIZE,        /* bytes, with optional k/m suffix (KiB, MiB) */
    CONF_DURATION,    /* seconds, or with ms/s/m suffix; stored as ms */
    CONF_STRING,      /* free text up to the field's size */
    CONF_LOG_LEVEL,   /* debug|info|warn|error */
    CONF_LISTEN,      /* ADDR:PORT, [v6]:PORT or *:PORT */
    CONF_REDIS,       /* redis://... or unix:/path */
    CONF_NAME,        /* empty, or a name as for rooms and users */
    CONF_SECONDS,     /* seconds, or with s/m/h/d suffix; stored as seconds */
    CONF_POW2,        /* a size that is a power of two */
    CONF_BOOL,        /* on|off (also yes|no, true|false) */
    CONF_NETS,        /* IP addresses and networks, see netaddr.h */
    CONF_NAMES,       /* names as for rooms and users, separated by commas or spaces */
};

struct conf_key {
    const char *name;
    enum conf_type type;
    size_t offset;
    size_t size;                /* field size, for strings */
    long long min, max;         /* bounds for numbers, in stored units */
    const char *def;
};

#define FIELD(f) offsetof(struct conf, f), sizeof(((struct conf *)0)->f)

/* Keep etc/parley.conf in step with this table. */
static const struct conf_key conf_keys[] = {
    { "listen",           CONF_LISTEN,    FIELD(listen),           0, 0, "127.0.0.1:8080" },
    { "workers",          CONF_WORKERS,   FIELD(workers),          0, PL_MAX_WORKERS, "auto" },
    { "backlog",          CONF_INT,       FIELD(backlog),          1, 65535, "511" },
    { "redis",            CONF_REDIS,     FIELD(redis),            0, 0, "redis://127.0.0.1:6379" },
    { "redis_prefix",     CONF_STRING,    FIELD(redis_prefix),     1, 0, "parley:" },
    { "redis_timeout",    CONF_DURATION,  FIELD(redis_timeout_ms), 100, 60 * 1000, "2s" },
    { "instance_id",      CONF_NAME,      FIELD(instance_id),      0, 0, "" },
    { "instance_ttl",     CONF_DURATION,  FIELD(instance_ttl_ms),  3000, 3600 * 1000, "10s" },
    { "bus_ring_size",    CONF_POW2,      FIELD(bus_ring_size),    1 << 16, 1 << 30, "16m" },
    { "history_length",   CONF_INT,       FIELD(history_length),   1, 10000000, "1000" },
    { "session_ttl",      CONF_SECONDS,   FIELD(session_ttl_s),    1, 365 * 86400, "24h" },
    { "session_key_file", CONF_STRING,    FIELD(session_key_file), 0, 0, "" },
    { "session_key_env",  CONF_STRING,    FIELD(session_key_env),  0, 0, "PARLEY_SESSION_KEY" },
    { "open_sessions",    CONF_BOOL,      FIELD(open_sessions),    0, 1, "off" },
    { "session_rate_limit", CONF_INT,     FIELD(session_rate_limit), 0, 1000000, "30" },
    { "reserved_names",   CONF_NAMES,     FIELD(reserved_names),   0, 0, "admin administrator moderator system parley root" },
    { "trusted_proxies",  CONF_NETS,      FIELD(trusted_proxies),  0, 0, "" },
    { "room_ttl",         CONF_SECONDS,   FIELD(room_ttl_s),       0, 10 * 365 * 86400, "30d" },
    { "jwt_secret",       CONF_STRING,    FIELD(jwt_secret),       0, 0, "" },
    { "max_content",      CONF_SIZE,      FIELD(max_content),      1, 1 << 20, "4k" },
    { "sse_retry_ms",     CONF_INT,       FIELD(sse_retry_ms),     0, 3600 * 1000, "2000" },
    { "sse_heartbeat",    CONF_DURATION,  FIELD(sse_heartbeat_ms), 1000, 3600 * 1000, "15s" },
    { "sse_max_backlog",  CONF_SIZE,      FIELD(sse_max_backlog),  4096, 1 << 30, "1m" },
    { "allowed_origins",  CONF_STRING,    FIELD(allowed_origins),  0, 0, "" },
    { "rate_limit",       CONF_INT,       FIELD(rate_limit),       0, 1000000, "20" },
    { "rate_burst",       CONF_INT,       FIELD(rate_burst),       1, 1000000, "40" },
    { "ws_max_message",   CONF_SIZE,      FIELD(ws_max_message),   128, 64 << 20, "64k" },
    { "ws_max_backlog",   CONF_SIZE,      FIELD(ws_max_backlog),   4096, 1 << 30, "1m" },
    { "ws_ping_interval", CONF_DURATION,  FIELD(ws_ping_interval_ms), 1000, 3600 * 1000, "30s" },
    { "ws_pong_timeout",  CONF_DURATION,  FIELD(ws_pong_timeout_ms), 1000, 3600 * 1000, "10s" },
    { "ws_deflate",       CONF_BOOL,      FIELD(ws_deflate),       0, 1, "on" },
    { "ws_deflate_min_size", CONF_SIZE,   FIELD(ws_deflate_min_size), 0, 64 << 20, "128" },
    { "ws_deflate_window_bits", CONF_INT, FIELD(ws_deflate_window_bits), 9, 15, "15" },
    { "ws_deflate_level", CONF_INT,       FIELD(ws_deflate_level), 1, 9, "1" },
    { "write_delay",      CONF_DURATION,  FIELD(write_delay_ms),   0, 1000, "0" },
    { "agent_name",       CONF_NAME,      FIELD(agent_name),       0, 0, "agent" },
    { "agent_delay",      CONF_DURATION,  FIELD(agent_delay_ms),   0, 60 * 1000, "30ms" },
    { "agent_coalesce",   CONF_DURATION,  FIELD(agent_coalesce_ms), 0, 10 * 1000, "20ms" },
    { "agent_linger",     CONF_DURATION,  FIELD(agent_linger_ms),  0, 3600 * 1000, "30s" },
    { "agent_max_per_user", CONF_INT,     FIELD(agent_max_per_user), 0, 100000, "4" },
    { "agent_max_concurrent", CONF_INT,   FIELD(agent_max_concurrent), 1, 100000, "64" },
    { "agent",            CONF_STRING,    FIELD(agent),            1, 0, "builtin" },
    { "agent_url",        CONF_STRING,    FIELD(agent_url),        0, 0, "" },
    { "agent_model",      CONF_STRING,    FIELD(agent_model),      1, 0, "gpt-4o-mini" },
    { "agent_api_key_env", CONF_STRING,   FIELD(agent_api_key_env), 0, 0, "PARLEY_AGENT_API_KEY" },
    { "agent_api_key_file", CONF_STRING,  FIELD(agent_api_key_file), 0, 0, "" },
    { "agent_system_prompt", CONF_STRING, FIELD(agent_system_prompt), 0, 0,
      "You are a helpful assistant in a group chat. Each message from a person starts "
      "with their name. Answer briefly and plainly." },
    { "agent_context_messages", CONF_INT, FIELD(agent_context_messages), 0, 200, "10" },
    { "agent_connect_timeout", CONF_DURATION, FIELD(agent_connect_timeout_ms), 100, 3600 * 1000, "5s" },
    { "agent_first_token_timeout", CONF_DURATION, FIELD(agent_first_token_timeout_ms), 100, 3600 * 1000, "30s" },
    { "agent_total_timeout", CONF_DURATION, FIELD(agent_total_timeout_ms), 100, 3600 * 1000, "120s" },
    { "log_level",        CONF_LOG_LEVEL, FIELD(log_level),        0, 0, "info" },
    { "log_file",         CONF_STRING,    FIELD(log_file),         0, 0, "" },
    { "shutdown_timeout", CONF_DURATION,  FIELD(shutdown_timeout_ms), 100, 3600 * 1000, "10s" },
    { "drain_spread",     CONF_DURATION,  FIELD(drain_spread_ms),  0, 3600 * 1000, "5s" },
    { "web_root",         CONF_STRING,    FIELD(web_root),         0, 0, PKGDATADIR "/web" },
    { "max_header_size",  CONF_SIZE,      FIELD(max_header_size),  1024, 1 << 20, "32k" },
    { "http_header_timeout", CONF_DURATION, FIELD(http_header_timeout_ms), 1000, 3600 * 1000, "10s" },
    { "http_keepalive_timeout", CONF_DURATION, FIELD(http_keepalive_timeout_ms), 1000, 3600 * 1000, "60s" },
    { "max_body",         CONF_SIZE,      FIELD(max_body),         1024, 64 << 20, "64k" },
    { "max_connections",  CONF_INT,       FIELD(max_connections),  0, 100000000, "0" },
};

_Static_assert(PL_ARRAY_LEN(conf_keys) <= CONF_MAX_KEYS, "raise CONF_MAX_KEYS");

static const struct conf_key *conf_find(const char *name)
{
    for (size_t i = 0; i < PL_ARRAY_LEN(conf_keys); i++) {
        if (strcmp(conf_keys[i].name, name) == 0) {
            return &conf_keys[i];
        }
    }
    return NULL;
}

/* Parses a non-negative decimal number with an optional unit suffix from
 * UNITS ("k", "m", "ms", ...), each with its multiplier. */
struct conf_unit { const char *suffix; long long mult; };

static int conf_parse_number(const char *s, const struct conf_unit *units, long long *out)
{
    char *end;
    long long v;

    if (!isdigit((unsigned char)s[0])) {
        return PL_ERR;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0) {
        return PL_ERR;
    }
    if (*end == '\0') {
        *out = v * (units ? units[0].mult : 1);
        return PL_OK;
    }
    for (; units && units->suffix; units++) {
        if (strcasecmp(end, units->suffix) == 0) {
            if (v > INT64_MAX / units->mult) {
                return PL_ERR;
            }
            *out = v * units->mult;
            return PL_OK;
        }
    }
    return PL_ERR;
}

/* The first entry is the unit of a bare number. */
static const struct conf_unit size_units[] = {
    { "", 1 }, { "k", 1024 }, { "kb", 1024 }, { "m", 1024 * 1024 }, { "mb", 1024 * 1024 }, { NULL, 0 }
};
static const struct conf_unit seconds_units[] = {
    { "s", 1 }, { "m", 60 }, { "h", 3600 }, { "d", 86400 }, { NULL, 0 }
};
static const struct conf_unit duration_units[] = {
    { "s", 1000 }, { "ms", 1 }, { "m", 60 * 1000 }, { "h", 3600 * 1000 }, { NULL, 0 }
};

static int conf_parse_listen(const char *v, char *err, size_t errlen)
{
    const char *colon = strrchr(v, ':');
    long long port;

    if (colon == NULL || colon == v) {
        snprintf(err, errlen, "invalid value '%s' for 'listen' (expected ADDR:PORT)", v);
        return PL_ERR;
    }
    if (conf_parse_number(colon + 1, NULL, &port) != PL_OK || port > 65535) {
        snprintf(err, errlen, "invalid port in '%s' for 'listen' (0..65535)", v);
        return PL_ERR;
    }
    if (v[0] == '[' && colon[-1] != ']') {
        snprintf(err, errlen, "invalid value '%s' for 'listen' (expected [IPv6]:PORT)", v);
        return PL_ERR;
    }
    return PL_OK;
}

static int conf_parse_bool(const struct conf_key *k, const char *v, int *out, char *err, size_t errlen)
{
    static const char *const on[] = { "on", "yes", "true" }, *const off[] = { "off", "no", "false" };

    for (size_t i = 0; i < PL_ARRAY_LEN(on); i++) {
        if (strcasecmp(v, on[i]) == 0 || strcasecmp(v, off[i]) == 0) {
            *out = strcasecmp(v, on[i]) == 0;
            return PL_OK;
        }
    }
    snprintf(err, errlen, "invalid value '%s' for '%s' (on or off)", v, k->name);
    return PL_ERR;
}

static int conf_check_nets(const char *v, char *why, size_t whylen)
{
    struct netaddr_set set;

    return netaddr_set_parse(v, &set, why, whylen);
}

static int conf_check_names(const char *v, char *why, size_t whylen)
{
    char name[PL_NAME_MAX + 2];
    const char *item;
    size_t n;

    while ((item = pl_list_next(&v, &n)) != NULL) {
        snprintf(name, sizeof(name), "%.*s", (int)(n < sizeof(name) - 1 ? n : sizeof(name) - 1), item);
        if (n > PL_NAME_MAX || !name_valid(name)) {
            snprintf(why, whylen, "'%.*s' is not a name (1..64 of A-Z a-z 0-9 _ . -)", (int)n, item);
            return PL_ERR;
        }
    }
    return PL_OK;
}

static int conf_apply(struct conf *cfg, const struct conf_key *k, const char *v,
                        char *err, size_t errlen)
{
    char *field = (char *)cfg + k->offset;
    char why[CONF_ERR_LEN];
    long long n;
    int level;

    switch (k->type) {
    case CONF_WORKERS:
        if (strcmp(v, "auto") == 0) {
            *(int *)field = 0;
            return PL_OK;
        }
        if (conf_parse_number(v, NULL, &n) != PL_OK || n < 1 || n > k->max) {
            snprintf(err, errlen, "invalid value '%s' for '%s' (auto or 1..%lld)", v, k->name, k->max);
            return PL_ERR;
        }
        *(int *)field = (int)n;
        return PL_OK;
    case CONF_INT:
    case CONF_SIZE:
    case CONF_POW2:
    case CONF_SECONDS:
    case CONF_DURATION:
        if (conf_parse_number(v, k->type == CONF_SIZE || k->type == CONF_POW2 ? size_units
                                : k->type == CONF_DURATION ? duration_units
                                : k->type == CONF_SECONDS ? seconds_units : NULL, &n) != PL_OK
            || n < k->min || n > k->max || (k->type == CONF_POW2 && (n & (n - 1)) != 0)) {
            const char *unit = k->type == CONF_DURATION ? "ms" : k->type == CONF_SECONDS ? "s"
                               : k->type == CONF_INT ? "" : " bytes";
            snprintf(err, errlen, "invalid value '%s' for '%s' (%s%lld%s..%lld%s)", v, k->name,
                     k->type == CONF_POW2 ? "a power of two, " : "", k->min, unit, k->max, unit);
            return PL_ERR;
        }
        if (k->type == CONF_SIZE || k->type == CONF_POW2) {
            *(size_t *)field = (size_t)n;
        } else {
            *(int *)field = (int)n;
        }
        return PL_OK;
    case CONF_STRING:
        if (strlen(v) >= k->size || (k->min > 0 && v[0] == '\0')) {
            snprintf(err, errlen, "invalid value for '%s' (%s..%zu characters)",
                     k->name, k->min > 0 ? "1" : "0", k->size - 1);
            return PL_ERR;
        }
        memcpy(field, v, strlen(v) + 1);
        return PL_OK;
    case CONF_NAME:
        if (v[0] != '\0' && !name_valid(v)) {
            snprintf(err, errlen, "invalid value '%s' for '%s' (1..64 of A-Z a-z 0-9 _ . -)", v, k->name);
            return PL_ERR;
        }
        memcpy(field, v, strlen(v) + 1);
        return PL_OK;
    case CONF_LOG_LEVEL:
        level = log_level_parse(v);
        if (level < 0) {
            snprintf(err, errlen, "invalid value '%s' for '%s' (debug, info, warn or error)", v, k->name);
            return PL_ERR;
        }
        *(int *)field = level;
        return PL_OK;
    case CONF_LISTEN:
        if (strlen(v) >= k->size) {
            snprintf(err, errlen, "value for '%s' is too long", k->name);
            return PL_ERR;
        }
        if (conf_parse_listen(v, err, errlen) != PL_OK) {
            return PL_ERR;
        }
        memcpy(field, v, strlen(v) + 1);
        return PL_OK;
    case CONF_BOOL:
        return conf_parse_bool(k, v, (int *)field, err, errlen);
    case CONF_NETS:
    case CONF_NAMES:
        if (strlen(v) >= k->size) {
            snprintf(err, errlen, "invalid value for '%s' (0..%zu characters)", k->name, k->size - 1);
            return PL_ERR;
        }
        if ((k->type == CONF_NETS ? conf_check_nets(v, why, sizeof(why)) : conf_check_names(v, why, sizeof(why)))
            != PL_OK) {
            snprintf(err, errlen, "invalid value for '%s': %s", k->name, why);
            return PL_ERR;
        }
        memcpy(field, v, strlen(v) + 1);
        return PL_OK;
    case CONF_REDIS:
        if (redis_url_parse(v, (struct redis_url *)field, why, sizeof(why)) != PL_OK) {
            snprintf(err, errlen, "invalid value '%s' for '%s': %s", v, k->name, why);
            return PL_ERR;
        }
        return PL_OK;
    }
    return PL_ERR;
}

void conf_defaults(struct conf *cfg)
{
    char err[CONF_ERR_LEN];

    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < PL_ARRAY_LEN(conf_keys); i++) {
        if (conf_apply(cfg, &conf_keys[i], conf_keys[i].def, err, sizeof(err)) != PL_OK) {
            /* A bad default is a programming error caught by the unit tests. */
            log_error(0, "event=bad_default key=%s reason=\"%s\"", conf_keys[i].name, err);
        }
    }
}

static char *conf_trim(char *s)
{
    char *end;

    while (isspace((unsigned char)*s)) {
        s++;
    }
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1])) {
        *--end = '\0';
    }
    return s;
}

/* Splits "key = value  # comment" into KEY and VALUE in place.  A value in
 * double quotes may hold '#' and outer spaces. */
static int conf_split(char *line, char **key, char **value, char *err, size_t errlen)
{
    char *eq = strchr(line, '=');
    char *v, *c;

    if (eq == NULL) {
        snprintf(err, errlen, "expected 'key = value'");
        return PL_ERR;
    }
    *eq = '\0';
    *key = conf_trim(line);
    v = conf_trim(eq + 1);
    if (v[0] == '"') {
        char *close = strchr(v + 1, '"');
        if (close == NULL || (*conf_trim(close + 1) != '\0' && *conf_trim(close + 1) != '#')) {
            snprintf(err, errlen, "unterminated quoted value for '%s'", *key);
            return PL_ERR;
        }
        *close = '\0';
        *value = v + 1;
        return PL_OK;
    }
    for (c = v; *c; c++) {
        if (*c == '#' && (c == v || isspace((unsigned char)c[-1]))) {
            *c = '\0';
            break;
        }
    }
    *value = conf_trim(v);
    return PL_OK;
}

int conf_load_file(struct conf *cfg, const char *path, char *err, size_t errlen)
{
    char buf[8192], why[CONF_ERR_LEN];
    char *key, *value, *line;
    FILE *f;
    int lineno = 0, rc = PL_OK;

    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open configuration file: %s", path, strerror(errno));
        return PL_ERR;
    }
    snprintf(cfg->path, sizeof(cfg->path), "%s", path);

    while (rc == PL_OK && fgets(buf, sizeof(buf), f) != NULL) {
        const struct conf_key *k;
        size_t idx;

        lineno++;
        if (strchr(buf, '\n') == NULL && !feof(f)) {
            snprintf(err, errlen, "%s:%d: line too long", path, lineno);
            rc = PL_ERR;
            break;
        }
        line = conf_trim(buf);
        if (line[0] == '\0' || line[0] == '#') {
            continue;
        }
        if (conf_split(line, &key, &value, why, sizeof(why)) != PL_OK) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
            rc = PL_ERR;
            break;
        }
        k = conf_find(key);
        if (k == NULL) {
            snprintf(err, errlen, "%s:%d: unknown key '%s'", path, lineno, key);
            rc = PL_ERR;
            break;
        }
        idx = (size_t)(k - conf_keys);
        if (cfg->origin[idx].line > 0) {
            snprintf(err, errlen, "%s:%d: duplicate key '%s' (first set on line %d)",
                     path, lineno, key, cfg->origin[idx].line);
            rc = PL_ERR;
            break;
        }
        if (conf_apply(cfg, k, value, why, sizeof(why)) != PL_OK) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
            rc = PL_ERR;
            break;
        }
        cfg->origin[idx].line = lineno;
    }
    if (rc == PL_OK && ferror(f)) {
        snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
        rc = PL_ERR;
    }
    fclose(f);
    return rc;
}

int conf_set_flag(struct conf *cfg, const char *key, const char *value,
                    const char *flag, char *err, size_t errlen)
{
    const struct conf_key *k = conf_find(key);
    char why[CONF_ERR_LEN];

    if (k == NULL || conf_apply(cfg, k, value, why, sizeof(why)) != PL_OK) {
        snprintf(err, errlen, "%s: %s", flag, k ? why : "unknown setting");
        return PL_ERR;
    }
    cfg->origin[k - conf_keys].line = 0;
    cfg->origin[k - conf_keys].flag = flag;
    return PL_OK;
}

void conf_where(const struct conf *cfg, const char *key, char *buf, size_t len)
{
    const struct conf_key *k = conf_find(key);
    const struct conf_origin *o = k ? &cfg->origin[k - conf_keys] : NULL;

    if (o != NULL && o->flag != NULL) {
        snprintf(buf, len, "%s", o->flag);
    } else if (o != NULL && o->line > 0) {
        snprintf(buf, len, "%s:%d", cfg->path, o->line);
    } else if (cfg->path[0] != '\0') {
        snprintf(buf, len, "%s", cfg->path);
    } else {
        snprintf(buf, len, "default %s", key);
    }
}

/* A web_root the operator chose must exist; the built-in default may be
 * absent (running from a build tree), and then the worker says so once. */
static int conf_check_web_root(const struct conf *cfg, char *err, size_t errlen)
{
    const struct conf_origin *o = &cfg->origin[conf_find("web_root") - conf_keys];
    char where[1100];
    struct stat st;

    if (cfg->web_root[0] == '\0' || (o->line == 0 && o->flag == NULL)) {
        return PL_OK;
    }
    errno = 0;
    if (stat(cfg->web_root, &st) < 0 || !S_ISDIR(st.st_mode)) {
        conf_where(cfg, "web_root", where, sizeof(where));
        snprintf(err, errlen, "%s: web_root '%s' is not a directory%s%s", where, cfg->web_root,
                 errno != 0 ? ": " : "", errno != 0 ? strerror(errno) : "");
        return PL_ERR;
    }
    return PL_OK;
}

/* The agent backend's name.  What the backend itself needs (agent_url...)
 * is agent_check()'s to say: the configuration does not depend on the
 * agent's code. */
static int conf_check_agent(const struct conf *cfg, char *err, size_t errlen)
{
    char where[1100];

    if (strcmp(cfg->agent, "builtin") != 0 && strcmp(cfg->agent, "openai") != 0 && strcmp(cfg->agent, "sse") != 0) {
        conf_where(cfg, "agent", where, sizeof(where));
        snprintf(err, errlen, "%s: invalid value '%s' for 'agent' (builtin, openai or sse)", where, cfg->agent);
        return PL_ERR;
    }
    return PL_OK;
}

/* A key file the operator named must be readable now, not at the first
 * request that needs it. */
static int conf_check_key_file(const struct conf *cfg, const char *key, const char *path,
                               char *err, size_t errlen)
{
    char where[1100];

    if (path[0] != '\0' && access(path, R_OK) != 0) {
        conf_where(cfg, key, where, sizeof(where));
        snprintf(err, errlen, "%s: cannot read %s '%s': %s", where, key, path, strerror(errno));
        return PL_ERR;
    }
    return PL_OK;
}

/* The spread of goodbyes must end before the stop gives up waiting. */
static int conf_check_drain(const struct conf *cfg, char *err, size_t errlen)
{
    char where[1100];

    if (cfg->drain_spread_ms > 0 && cfg->drain_spread_ms >= cfg->shutdown_timeout_ms) {
        conf_where(cfg, "drain_spread", where, sizeof(where));
        snprintf(err, errlen, "%s: drain_spread (%d ms) must be shorter than shutdown_timeout (%d ms)",
                 where, cfg->drain_spread_ms, cfg->shutdown_timeout_ms);
        return PL_ERR;
    }
    return PL_OK;
}

int conf_check(struct conf *cfg, char *err, size_t errlen)
{
    struct addrinfo hints, *res = NULL;
    char host[256], where[1100];
    const char *colon = strrchr(cfg->listen, ':');
    const char *port = colon + 1;
    size_t hostlen = (size_t)(colon - cfg->listen);
    int rc;

    if (cfg->listen[0] == '[') {
        memcpy(host, cfg->listen + 1, hostlen - 2);
        host[hostlen - 2] = '\0';
    } else {
        memcpy(host, cfg->listen, hostlen);
        host[hostlen] = '\0';
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, port, &hints, &res);
    if (rc != 0) {
        conf_where(cfg, "listen", where, sizeof(where));
        snprintf(err, errlen, "%s: cannot resolve '%s' for 'listen': %s",
                 where, host, rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        return PL_ERR;
    }
    memcpy(&cfg->listen_addr, res->ai_addr, res->ai_addrlen);
    cfg->listen_addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    if (conf_check_agent(cfg, err, errlen) != PL_OK || conf_check_drain(cfg, err, errlen) != PL_OK
        || conf_check_key_file(cfg, "session_key_file", cfg->session_key_file, err, errlen) != PL_OK) {
        return PL_ERR;
    }
    return conf_check_web_root(cfg, err, errlen);
}

int conf_worker_count(const struct conf *cfg)
{
    long n;

    if (cfg->workers > 0) {
        return cfg->workers;
    }
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > PL_MAX_WORKERS ? PL_MAX_WORKERS : (int)n;
}

int conf_connections_allowed(const struct conf *cfg, long long nofile, int sockets)
{
    /* What a worker holds besides client connections: stdio, the log,
     * epoll, signal pipes, Redis and the bus; files being served; its
     * listening sockets; the agent's upstream connections. */
    long long reserve = CONF_NOFILE_RESERVE + nofile / 16 + sockets;
    long long allowed;

    if (strcmp(cfg->agent, "openai") == 0) {
        reserve += cfg->agent_max_concurrent;
    }
    allowed = nofile - reserve;
    return allowed < 1 ? 1 : allowed > INT_MAX ? INT_MAX : (int)allowed;
}
