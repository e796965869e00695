/* shm.h - shared memory zones, created by the master before it forks.
 *
 * Each zone is an anonymous MAP_SHARED mapping, so every process forked
 * afterwards sees the same bytes at the same address.  The zones live as
 * long as the master: a zone must therefore be sized for the largest
 * configuration a reload can ask for.  Writers and readers agree on the
 * layout through the module that owns the zone (metrics, the bus ring). */
#ifndef PARLEY_SHM_H
#define PARLEY_SHM_H

#include <stddef.h>

/* Maps SIZE zeroed bytes shared with future children.  NAME is for the log.
 * Returns NULL (logged) on failure. */
void *shm_zone_create(const char *name, size_t size);

void shm_zone_free(void *addr, size_t size);

#endif
