/* notify.h - tell systemd about readiness, reloads and stops (sd_notify).
 *
 * Speaks the NOTIFY_SOCKET datagram protocol directly, so parley needs no
 * libsystemd.  Without NOTIFY_SOCKET every call does nothing. */
#ifndef PARLEY_NOTIFY_H
#define PARLEY_NOTIFY_H

/* Sends STATE, e.g. "READY=1\nSTATUS=serving".  Failures are logged once
 * per call and otherwise ignored: systemd being gone must not stop parley. */
void notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
