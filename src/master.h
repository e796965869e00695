/* master.h - the supervising process: prefork, respawn, reload, stop.
 *
 * The master binds the listening sockets and creates shared memory, forks
 * the workers and then only supervises; it never serves a request.  It
 * sleeps in sigtimedwait() with every signal blocked, so there are no
 * signal handlers to reason about:
 *   SIGCHLD      reap; a worker that died unexpectedly is respawned at once,
 *                and with a growing delay if it keeps dying young
 *   SIGTERM/INT  graceful stop: close listeners, ask workers to finish, exit 0
 *                (workers still running after shutdown_timeout are killed)
 *   SIGHUP       re-read the configuration; if valid, start new workers and
 *                retire the old ones once the new ones serve; else keep going
 *   SIGUSR1      reopen the log file, in every process
 * systemd is told READY=1, RELOADING=1 and STOPPING=1 along the way. */
#ifndef PARLEY_MASTER_H
#define PARLEY_MASTER_H

#include "cli.h"
#include "conf.h"

/* Runs the master with the validated CFG until it is stopped.  OPTS is kept
 * to re-apply the command-line overrides on reload.  Returns the exit code:
 * 0 after a graceful stop, 2 when start-up fails (reason on stderr). */
int master_run(struct conf *cfg, const struct cli_options *opts);

#endif
