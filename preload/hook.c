/* tapbench LD_PRELOAD hook: interposes libc write() and records each write to stdout into the
 * shared-memory ring handed over as descriptor $TAPBENCH_RING_FD (see ring.h): a memfd that
 * tapbench created, sealed against shrinking and growing, and that no name reaches, so only
 * the process it was handed to can map it. The descriptor stays open across exec, so that a
 * program the target execs in place (a wrapper script's `exec prog`) records too; a fork()ed
 * child closes its copy. It must be invisible to the target:
 *   - the real write() runs first, untouched, and only what it wrote is read afterwards, at
 *     most its return value's worth: the kernel has just read those bytes, so they are valid.
 *     A bad pointer gets EFAULT from the kernel as it would without the hook, never a fault
 *     in here; a failed write is counted (failed_writes), not recorded;
 *   - write()'s return value and errno are left exactly as libc set them;
 *   - it never blocks, never allocates and takes no lock on the write path (a lock-free
 *     ring), so write() stays async-signal-safe: a signal handler that writes while the
 *     thread it interrupted is inside the hook just claims the next slot. With adaptive
 *     wakeups it may wake the consumer (FUTEX_WAKE, a system call of the hook's own) when
 *     the consumer sleeps;
 *   - only the process it was loaded into for the ring, and programs that process execs in
 *     place, record: a fork()ed child stops recording (it is another process).
 *
 * It sees only what goes through libc's write(): Go writes with raw system calls unless it
 * calls libc explicitly (cgo), a static binary never loads it, and glibc's own stdio, writev()
 * and pwrite() do not call write(). tapbench reports what it misses as findings.
 * Nothing here relies on a destructor: Go leaves through exit_group, which runs none.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>

#include "ring_writer.h"

__attribute__((visibility("default"))) const struct tapbench_ring_layout tapbench_ring_layout = TAPBENCH_RING_LAYOUT;

/* For tapbench's TSC-to-CLOCK_MONOTONIC conversion: one clock reading and the TSC at the
 * same moment, the midpoint of two TSC reads taken around it. Of several tries the tightest
 * is kept: a first, cold clock read can take microseconds, and where in that window the time
 * was read is unknown. */
__attribute__((visibility("default"))) void tapbench_clock_pair(uint64_t *tsc, uint64_t *ns)
{
    uint64_t narrowest = UINT64_MAX;
    for (int try = 0; try < 16; try++) {
        uint64_t before = __rdtsc();
        uint64_t now = monotonic_ns();
        uint64_t window = __rdtsc() - before;
        if (window < narrowest) {
            narrowest = window;
            *tsc = before + window / 2;
            *ns = now;
        }
    }
}

/* For tapbench's consumer, before it sleeps on the futex word: a sequentially consistent
 * store (a locked exchange), so its look at the ring that follows cannot pass the
 * announcement, which a plain store followed by a load may on x86. */
__attribute__((visibility("default"))) void tapbench_announce_sleep(_Atomic uint32_t *consumer_sleeping)
{
    atomic_store(consumer_sleeping, 1);
}

static ssize_t (*real_write)(int, const void *, size_t);

__attribute__((constructor)) static void tapbench_hook_init(void)
{
    real_write = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    struct tapbench_ring_header *header = attach_ring();
    if (header == NULL)
        return;
    pthread_atfork(NULL, NULL, stop_recording_in_child);
    ring = header; /* last: write() records from here on */
}

static inline ssize_t call_real_write(int fd, const void *buf, size_t count)
{
    if (real_write == NULL) /* dlsym failed: still behave exactly like write() */
        return syscall(SYS_write, fd, buf, count);
    return real_write(fd, buf, count);
}

__attribute__((visibility("default"))) ssize_t write(int fd, const void *buf, size_t count)
{
    if (ring == NULL || fd != watched_fd)
        return call_real_write(fd, buf, count);
    if (ring->count_only) { /* the floor: the same interposed write(), counted, nothing recorded */
        ssize_t written = call_real_write(fd, buf, count);
        atomic_fetch_add_explicit(&ring->counted, 1, memory_order_relaxed); /* errno untouched */
        return written;
    }
    uint64_t stamp = stamp_now();
    ssize_t written = call_real_write(fd, buf, count);
    int saved_errno = errno;
    account_write(buf, count, written, stamp);
    errno = saved_errno;
    return written;
}
