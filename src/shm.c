/* shm.c - shared memory zones made by the master before fork. */
#include "shm.h"

#include <errno.h>
#include <sys/mman.h>

#include "log.h"

void *shm_zone_create(const char *name, size_t size)
{
    void *addr = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (addr == MAP_FAILED) {
        log_error(errno, "event=shm_failed zone=%s size=%zu", name, size);
        return NULL;
    }
    log_debug("event=shm_zone zone=%s size=%zu", name, size);
    return addr;
}

void shm_zone_free(void *addr, size_t size)
{
    munmap(addr, size);
}
