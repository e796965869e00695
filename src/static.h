/* static.h - serves the web client's files from "web_root".
 *
 * Only regular files inside web_root are served: a path with a ".." or
 * hidden segment, an encoded NUL, or a symbolic link in any of its
 * components (a linked file or directory) is refused; web_root itself may
 * be a link, the operator's choice.  Out of descriptors answers 503.  Every
 * file is sent with its content type, an ETag and "Cache-Control: no-cache",
 * so browsers revalidate cheaply (304) and never run a stale client. */
#ifndef PARLEY_STATIC_H
#define PARLEY_STATIC_H

struct worker_env;

/* Opens ROOT and makes the static files the http module's fallback for
 * paths no route claims.  Returns PL_OK, or PL_ERR (logged). */
int static_init(const struct worker_env *w);

#endif
