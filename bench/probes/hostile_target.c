/* A target that attacks the observer it can reach (bench/hostile.py, tests/test_hostile.py). The LD_PRELOAD
 * hook maps tapbench's ring into this process, where it appears in /proc/self/maps as
 * memfd:tapbench-ring; under every other technique there is nothing of the observer's here.
 *
 *   hostile_target truncate   write 3 moves, try to shrink the ring to nothing, write 3 more
 *   hostile_target scribble   write 3 moves, overwrite the ring's header and first slots with
 *                             impossible values, write 3 more
 *   hostile_target stamps     write 3 moves, forge a published slot with a stamp from the
 *                             future, write 3 more
 * It reports on stderr whether it found the ring and what its attack returned.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void moves(int first)
{
    static const char *names[] = {"rock", "paper", "scissors"};
    char line[32];
    for (int n = first; n < first + 3; n++) {
        int length = snprintf(line, sizeof line, "%s 0 %d\n", names[n % 3], n);
        write(1, line, (size_t)length);
    }
}

/* The ring's mapping in this process: its start and end, 0 if there is none. */
static int find_ring(uintptr_t *start, uintptr_t *end)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    char line[512];
    int found = 0;
    while (maps && fgets(line, sizeof line, maps)) {
        if (strstr(line, "tapbench-ring") && sscanf(line, "%lx-%lx", start, end) == 2) {
            found = 1;
            break;
        }
    }
    if (maps)
        fclose(maps);
    return found;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    moves(0);
    uintptr_t start = 0, end = 0;
    if (!find_ring(&start, &end)) {
        fprintf(stderr, "no ring of the observer's in this process\n");
        moves(3);
        return 0;
    }
    uint64_t *words = (uint64_t *)start;
    if (strcmp(argv[1], "truncate") == 0) {
        char path[128];
        snprintf(path, sizeof path, "/proc/self/map_files/%lx-%lx", start, end);
        int fd = open(path, O_RDWR);
        int result = fd < 0 ? -1 : ftruncate(fd, 0);
        fprintf(stderr, "truncate -> %d (%s)\n", result, result ? strerror(errno) : "done");
    } else if (strcmp(argv[1], "scribble") == 0) {
        /* claimed (word 8), lost (word 24), and the first slots' lengths */
        words[8] = UINT64_C(0xDEADBEEFDEADBEEF);
        words[24] = UINT64_C(0xFFFFFFFFFFFFFFF0);
        memset((char *)start + 256, 0xff, 4 * 64);
        fprintf(stderr, "scribbled\n");
    } else if (strcmp(argv[1], "stamps") == 0) {
        /* the next slot: published = sequence + 1, a stamp far ahead, a plausible move */
        uint64_t sequence = words[8];
        uint64_t *slot = (uint64_t *)(start + 256 + (sequence % (uint64_t)((uint32_t *)start)[2]) * 64);
        words[8] = sequence + 1;
        slot[1] = UINT64_MAX / 2;
        slot[2] = 9;
        ((uint32_t *)slot)[6] = (uint32_t)getpid();
        ((uint32_t *)slot)[7] = 9;
        memcpy(&slot[4], "rock 0 9\n", 9);
        __atomic_store_n(&slot[0], sequence + 1, __ATOMIC_RELEASE);
        fprintf(stderr, "forged a slot\n");
    }
    moves(3);
    return 0;
}
