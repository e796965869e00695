/* conf.h - parleyd configuration: one table of keys, strict validation.
 *
 * The file holds "key = value" lines and "#" comments.  Every key has a type,
 * bounds and a default in the table in conf.c; etc/parley.conf documents
 * them.  Errors come back as one line "FILE:LINE: message" (or "--flag:
 * message" for a command-line override) ready to print. */
#ifndef PARLEY_CONF_H
#define PARLEY_CONF_H

#include <stddef.h>
#include <sys/socket.h>

#include "parley.h"
#include "redis_url.h"

#define CONF_MAX_KEYS 64
#define CONF_ERR_LEN  512

struct conf_origin {
    int line;                   /* line in the file, 0 when not from the file */
    const char *flag;           /* command-line flag that set it, or NULL */
};

struct conf {
    char listen[256];           /* ADDR:PORT as written */
    struct sockaddr_storage listen_addr;   /* resolved by conf_check() */
    socklen_t listen_addrlen;
    int workers;                /* 0 means one per CPU */
    int backlog;
    struct redis_url redis;
    char redis_prefix[64];
    int redis_timeout_ms;
    char instance_id[64];       /* "" in the file: generated at start-up */
    char run_id[17];            /* random at start-up, kept across reloads: this run of the
                                 * master, told from earlier runs under the same instance_id */
    int instance_ttl_ms;
    size_t bus_ring_size;
    int history_length;
    int session_ttl_s;
    char session_key_file[1024];    /* the application backend's key: this file ... */
    char session_key_env[128];      /* ... or this variable */
    int open_sessions;              /* anyone may pick a name (demos) */
    int session_rate_limit;         /* sessions per minute per address without the key, 0 = off */
    char reserved_names[1024];      /* names nobody may take, besides agent_name */
    char trusted_proxies[1024];     /* whose X-Forwarded-For is believed */
    int room_ttl_s;                 /* an idle room's keys expire, 0 = never */
    char jwt_secret[256];
    size_t max_content;
    int sse_retry_ms;
    int sse_heartbeat_ms;
    size_t sse_max_backlog;
    char allowed_origins[2048]; /* "" (same origin only), "*" (any, no credentials), or a list */
    int rate_limit;             /* messages per second, 0 = off */
    int rate_burst;
    size_t ws_max_message;
    size_t ws_max_backlog;
    int ws_ping_interval_ms;
    int ws_pong_timeout_ms;
    int ws_deflate;                 /* accept permessage-deflate */
    size_t ws_deflate_min_size;     /* smaller messages go uncompressed */
    int ws_deflate_window_bits;
    int ws_deflate_level;
    int write_delay_ms;         /* room events may wait this long to share a write */
    char agent_name[PL_NAME_MAX + 1];
    int agent_delay_ms;
    int agent_coalesce_ms;      /* chunks this close to the last one stored share an event */
    int agent_linger_ms;        /* a private answer nobody follows goes on this long */
    int agent_max_per_user;     /* answers one user may have running, all hosts (0: no limit) */
    int agent_max_concurrent;
    char agent[16];             /* backend: "builtin", "openai" or "sse" (conf_check) */
    char agent_url[512];        /* openai: http://HOST[:PORT][/PREFIX] */
    char agent_model[128];
    char agent_api_key_env[128];    /* name of the variable holding the key */
    char agent_api_key_file[1024];  /* wins over the variable */
    char agent_system_prompt[4096];
    int agent_context_messages;
    int agent_connect_timeout_ms;
    int agent_first_token_timeout_ms;
    int agent_total_timeout_ms;
    int log_level;
    char log_file[1024];
    int shutdown_timeout_ms;
    int drain_spread_ms;        /* a stop closes long-lived connections over this long */
    size_t max_body;
    int max_connections;        /* per worker; 0 in the file: what RLIMIT_NOFILE allows (master) */
    size_t max_header_size;
    int http_header_timeout_ms;
    int http_keepalive_timeout_ms;
    char web_root[1024];        /* "" disables the web client */

    char path[1024];            /* file the values came from, "" if none */
    struct conf_origin origin[CONF_MAX_KEYS];
};

/* Fills CFG with every key's default. */
void conf_defaults(struct conf *cfg);

/* Reads PATH over CFG.  Unknown keys, bad values, duplicates and a missing
 * file are errors.  Returns PL_OK or PL_ERR with "FILE:LINE: message". */
int conf_load_file(struct conf *cfg, const char *path, char *err, size_t errlen);

/* Sets one key from a command-line FLAG ("--workers"). */
int conf_set_flag(struct conf *cfg, const char *key, const char *value,
                    const char *flag, char *err, size_t errlen);

/* Checks what needs the outside world (resolves "listen"). */
int conf_check(struct conf *cfg, char *err, size_t errlen);

/* Writes where KEY got its value: "parley.conf:12", "--listen" or "default". */
void conf_where(const struct conf *cfg, const char *key, char *buf, size_t len);

/* The number of workers to run: "workers", or the CPU count when it is 0. */
int conf_worker_count(const struct conf *cfg);

/* Descriptors a worker keeps for itself, whatever the limit. */
#define CONF_NOFILE_RESERVE 32

/* The most connections one worker can hold under a descriptor limit of
 * NOFILE while it serves SOCKETS listening sockets: the limit less a
 * reserve for everything else it opens (at least 1). */
int conf_connections_allowed(const struct conf *cfg, long long nofile, int sockets);

#endif
