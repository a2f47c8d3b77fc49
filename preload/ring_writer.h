/* The ring's producer side (ring.h), shared by the two hooks that write it: the LD_PRELOAD
 * write() hook (hook.c) and the zpoline system-call hook (zpoline.c). One definition each of:
 * attaching to the ring handed over as $TAPBENCH_RING_FD, recording a write, and what a
 * fork()ed child does.
 *
 * Nothing here calls libc after start-up (attach_ring): the zpoline hook runs inside every
 * system call of its target, where a libc function, whose own system calls are rewritten,
 * would come back into the hook, and where the SSE registers a caller holds live across its
 * system call must stay untouched (zpoline.c is built with -mgeneral-regs-only). So system
 * calls are made with raw_syscall() and the 32 bytes are copied with a plain loop.
 * The one exception, clock_gettime() where the TSC cannot stamp, is answered by the vDSO
 * without a system call.
 */
#ifndef TAPBENCH_RING_WRITER_H
#define TAPBENCH_RING_WRITER_H

#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#include "ring.h"

#define OFFSET(type, field) ((uint32_t)offsetof(struct type, field))

#define TAPBENCH_RING_LAYOUT {                                                                     \
    sizeof(struct tapbench_ring_header), sizeof(struct tapbench_slot), TAPBENCH_CAPTURE_BYTES,     \
    OFFSET(tapbench_ring_header, watched_fd), TAPBENCH_RING_MAGIC, TAPBENCH_RING_VERSION,          \
    OFFSET(tapbench_ring_header, slot_count), OFFSET(tapbench_ring_header, hook_pid),              \
    OFFSET(tapbench_ring_header, count_only), OFFSET(tapbench_ring_header, wake_consumer),         \
    OFFSET(tapbench_ring_header, stamp_tsc), OFFSET(tapbench_ring_header, claimed),                \
    OFFSET(tapbench_ring_header, consumed),                                                        \
    OFFSET(tapbench_ring_header, consumer_sleeping), OFFSET(tapbench_ring_header, lost),           \
    OFFSET(tapbench_ring_header, failed_writes), OFFSET(tapbench_ring_header, counted),            \
    OFFSET(tapbench_slot, published), OFFSET(tapbench_slot, ts_ns), OFFSET(tapbench_slot, count),  \
    OFFSET(tapbench_slot, tid), OFFSET(tapbench_slot, copied), OFFSET(tapbench_slot, head),        \
    OFFSET(tapbench_ring_header, hook_state), OFFSET(tapbench_ring_header, rewritten_sites),       \
}

/* A system call made here, never through libc: returns the kernel's result (-errno on failure)
 * and leaves errno alone. */
static inline long raw_syscall(long number, long a1, long a2, long a3, long a4, long a5, long a6)
{
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    long result;
    __asm__ volatile("syscall"
                     : "=a"(result)
                     : "a"(number), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                     : "rcx", "r11", "memory");
    return result;
}

static uint64_t monotonic_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}

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
        raw_syscall(SYS_close, ring_fd, 0, 0, 0, 0, 0);
    ring_fd = -1;
}

/* At start-up: map the ring $TAPBENCH_RING_FD names and claim it for this process. NULL (and
 * nothing recorded) when there is none, it is not the sealed memfd tapbench made, or another
 * process claimed it first. */
static struct tapbench_ring_header *attach_ring(void)
{
    const char *text = getenv("TAPBENCH_RING_FD");
    if (text == NULL)
        return NULL;
    char *end;
    long fd = strtol(text, &end, 10);
    if (*text == '\0' || *end != '\0' || fd <= STDERR_FILENO || fd > INT_MAX)
        return NULL;
    /* Only the sealed memfd tapbench made: a child that inherited the variable but not the
     * descriptor may have another file under that number, which is never touched. */
    int seals = fcntl((int)fd, F_GET_SEALS);
    if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
        return NULL;
    struct stat st;
    if (fstat((int)fd, &st) != 0 || (size_t)st.st_size <= sizeof(struct tapbench_ring_header))
        return NULL;
    /* MAP_POPULATE: fault the whole ring in now, at start-up, not page by page in write(). */
    void *map = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, (int)fd, 0);
    if (map == MAP_FAILED)
        return NULL;
    struct tapbench_ring_header *header = map;
    uint32_t owner = 0, me = (uint32_t)getpid();
    /* Only the first process to load the hook records, and what it execs in place (same PID). */
    if (header->magic != TAPBENCH_RING_MAGIC || header->version != TAPBENCH_RING_VERSION ||
        header->watched_fd == (uint32_t)fd || header->watched_fd > INT_MAX ||
        (!atomic_compare_exchange_strong(&header->hook_pid, &owner, me) && owner != me)) {
        munmap(map, st.st_size);
        return NULL;
    }
    ring_fd = (int)fd;
    watched_fd = (int)header->watched_fd; /* kept here: one test per write, on no shared line */
    const char *extra = getenv("TAPBENCH_TEST_HOOK_EXTRA_NS");
    test_extra_steps = extra ? steps_for_ns(strtoull(extra, NULL, 10)) : 0;
    slots = (struct tapbench_slot *)(header + 1);
    slot_mask = header->slot_count - 1;
    return header;
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
        cached_tid = (uint32_t)raw_syscall(SYS_gettid, 0, 0, 0, 0, 0, 0);
    size_t copied = written < TAPBENCH_CAPTURE_BYTES ? written : TAPBENCH_CAPTURE_BYTES;
    const char *from = buf;
    for (size_t i = 0; i < copied; i++)
        slot->head[i] = from[i];
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
            raw_syscall(SYS_futex, (long)&ring->consumer_sleeping, FUTEX_WAKE, 1, 0, 0, 0);
    }
}

/* The stamp is taken before the write, when the target asked for it. Reading the TSC took
 * ~11 ns here, clock_gettime (which reads it too, then scales it) ~20; both are
 * async-signal-safe and no system call. */
static inline uint64_t stamp_now(void)
{
    return ring->stamp_tsc ? __rdtsc() : monotonic_ns();
}

/* After the real write to the watched descriptor returned `written` (>= 0, or -errno for the
 * zpoline hook, -1 for libc's): record it, or count it as failed. */
static inline void account_write(const void *buf, size_t count, long written, uint64_t stamp)
{
    if (written >= 0)
        record(buf, count, (size_t)written, stamp);
    else
        atomic_fetch_add_explicit(&ring->failed_writes, 1, memory_order_relaxed);
    if (test_extra_steps)
        spin(test_extra_steps);
}

#endif
