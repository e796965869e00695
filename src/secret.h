/* secret.h - keys read from a file or an environment variable.
 *
 * Keys (the agent's API key, the session key of the application backend)
 * never sit in the configuration file itself: the file names a file that
 * holds the key, or an environment variable (systemd's
 * LoadCredential/Environment).  A key's value is never logged; only where
 * it came from. */
#ifndef PARLEY_SECRET_H
#define PARLEY_SECRET_H

#include <stddef.h>

/* Reads a key into OUT (OUTLEN bytes): from FILE when it is not empty,
 * else from the variable named ENV (if set).  Outer white space is dropped;
 * a key longer than OUTLEN - 1 bytes, or with spaces or control characters
 * inside (it would break a header), is refused.  WHAT names the key in the
 * log.  Returns PL_OK with OUT holding the key ("" when neither source
 * gives one), or PL_ERR (logged) with OUT "". */
int secret_load(const char *file, const char *env, const char *what, char *out, size_t outlen);

#endif
