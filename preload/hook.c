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
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include "ring.h"

#define OFFSET(type, field) ((uint32_t)offsetof(struct type, field))

__attribute__((visibility("default"))) const struct tapbench_ring_layout tapbench_ring_layout = {
    sizeof(struct tapbench_ring_header), sizeof(struct tapbench_slot), TAPBENCH_CAPTURE_BYTES,
    OFFSET(tapbench_ring_header, watched_fd), TAPBENCH_RING_MAGIC, TAPBENCH_RING_VERSION,
    OFFSET(tapbench_ring_header, slot_count), OFFSET(tapbench_ring_header, hook_pid),
    OFFSET(tapbench_ring_header, count_only), OFFSET(tapbench_ring_header, wake_consumer),
    OFFSET(tapbench_ring_header, stamp_tsc), OFFSET(tapbench_ring_header, claimed),
    OFFSET(tapbench_ring_header, consumed),
    OFFSET(tapbench_ring_header, consumer_sleeping), OFFSET(tapbench_ring_header, lost),
    OFFSET(tapbench_ring_header, failed_writes), OFFSET(tapbench_ring_header, counted),
    OFFSET(tapbench_slot, published), OFFSET(tapbench_slot, ts_ns), OFFSET(tapbench_slot, count),
    OFFSET(tapbench_slot, tid), OFFSET(tapbench_slot, copied), OFFSET(tapbench_slot, head),
};

static uint64_t monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

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
static struct tapbench_ring_header *ring;
static struct tapbench_slot *slots;
static uint64_t slot_mask;
/* gettid() is a system call: once per thread. initial-exec TLS: a plain %fs-relative load,
 * no __tls_get_addr call (fine for a library loaded at start-up, as LD_PRELOAD is). */
static __thread uint32_t cached_tid __attribute__((tls_model("initial-exec")));

static int ring_fd = -1;
static int watched_fd = -1; /* the descriptor whose writes are recorded (the ring's header says) */
/* Test-only: busy work added to every write, set from $TAPBENCH_TEST_HOOK_EXTRA_NS (ns) so that
 * the gate's power benchmark can make this layer dearer; 0, it costs one test. A spin of a
 * counted number of steps, calibrated at start-up: a clock read would cost more than the few
 * ns asked for. */
static uint64_t test_extra_steps;

static void spin(uint64_t steps)
{
    for (volatile uint64_t step = 0; step < steps; step++)
        ;
}

static uint64_t steps_for_ns(uint64_t ns)
{
    uint64_t calibration = 1000000, started = monotonic_ns();
    spin(calibration);
    uint64_t took = monotonic_ns() - started;
    return took ? ns * calibration / took : ns;
}

/* A fork()ed child is another process: it must not write into the target's ring, nor hand it
 * on to what it execs. */
static void stop_recording_in_child(void)
{
    ring = NULL;
    cached_tid = 0;
    if (ring_fd >= 0)
        close(ring_fd);
    ring_fd = -1;
}

__attribute__((constructor)) static void tapbench_hook_init(void)
{
    real_write = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    const char *text = getenv("TAPBENCH_RING_FD");
    if (text == NULL)
        return;
    char *end;
    long fd = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || fd <= STDERR_FILENO || fd > INT_MAX)
        return;
    /* Only the sealed memfd tapbench made: a child that inherited the variable but not the
     * descriptor may have another file under that number, which is never touched. */
    int seals = fcntl((int)fd, F_GET_SEALS);
    if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
        return;
    struct stat st;
    if (fstat((int)fd, &st) != 0 || (size_t)st.st_size <= sizeof(struct tapbench_ring_header))
        return;
    /* MAP_POPULATE: fault the whole ring in now, at start-up, not page by page in write(). */
    void *map = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, (int)fd, 0);
    if (map == MAP_FAILED)
        return;
    struct tapbench_ring_header *header = map;
    uint32_t owner = 0, me = (uint32_t)getpid();
    /* Only the first process to load the hook records, and what it execs in place (same PID). */
    if (header->magic != TAPBENCH_RING_MAGIC || header->version != TAPBENCH_RING_VERSION ||
        header->watched_fd == (uint32_t)fd || header->watched_fd > INT_MAX ||
        (!atomic_compare_exchange_strong(&header->hook_pid, &owner, me) && owner != me)) {
        munmap(map, st.st_size);
        return;
    }
    ring_fd = (int)fd;
    watched_fd = (int)header->watched_fd; /* kept here: one test per write, on no shared line */
    const char *extra = getenv("TAPBENCH_TEST_HOOK_EXTRA_NS");
    test_extra_steps = extra ? steps_for_ns(strtoull(extra, NULL, 10)) : 0;
    slots = (struct tapbench_slot *)(header + 1);
    slot_mask = header->slot_count - 1;
    pthread_atfork(NULL, NULL, stop_recording_in_child);
    ring = header;
}

/* written: what the real write() returned (>= 0); at most that many bytes are read from buf. */
static void record(const void *buf, size_t count, size_t written, uint64_t stamp)
{
    uint64_t sequence = atomic_load_explicit(&ring->claimed, memory_order_relaxed);
    do {
        uint64_t consumed = atomic_load_explicit(&ring->consumed, memory_order_acquire);
        /* sequence < consumed means our copy of `claimed` is stale (others claimed and the
         * consumer moved on meanwhile): not a full ring, the CAS below fails and reloads it. */
        if (sequence >= consumed && sequence - consumed > slot_mask) {
            atomic_fetch_add_explicit(&ring->lost, 1, memory_order_relaxed);
            return;
        }
    } while (!atomic_compare_exchange_weak_explicit(&ring->claimed, &sequence, sequence + 1,
                                                    memory_order_relaxed, memory_order_relaxed));
    struct tapbench_slot *slot = &slots[sequence & slot_mask];
    if (cached_tid == 0)
        cached_tid = (uint32_t)syscall(SYS_gettid);
    size_t copied = written < TAPBENCH_CAPTURE_BYTES ? written : TAPBENCH_CAPTURE_BYTES;
    memcpy(slot->head, buf, copied);
    slot->ts_ns = stamp;
    slot->count = count;
    slot->tid = cached_tid;
    slot->copied = (uint32_t)copied;
    atomic_store_explicit(&slot->published, sequence + 1, memory_order_release);
    /* Adaptive wakeups: wake the consumer only if it sleeps (one load otherwise). The fence
     * orders the publication before the load; the consumer's side is tapbench_announce_sleep.
     * So either it sees this slot before it sleeps, or this sees it sleeping and wakes it. */
    if (ring->wake_consumer) {
        atomic_thread_fence(memory_order_seq_cst);
        uint32_t sleeping = 1;
        if (atomic_load_explicit(&ring->consumer_sleeping, memory_order_relaxed) &&
            atomic_compare_exchange_strong(&ring->consumer_sleeping, &sleeping, 0))
            syscall(SYS_futex, &ring->consumer_sleeping, FUTEX_WAKE, 1, NULL, NULL, 0);
    }
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
    /* The stamp is taken before the write, when the target asked for it. Reading the TSC
     * took ~11 ns here, clock_gettime (which reads it too, then scales it) ~20; both are
     * async-signal-safe and no system call. */
    uint64_t stamp = ring->stamp_tsc ? __rdtsc() : monotonic_ns();
    ssize_t written = call_real_write(fd, buf, count);
    int saved_errno = errno;
    if (written >= 0)
        record(buf, count, (size_t)written, stamp);
    else
        atomic_fetch_add_explicit(&ring->failed_writes, 1, memory_order_relaxed);
    if (test_extra_steps)
        spin(test_extra_steps);
    errno = saved_errno;
    return written;
}
