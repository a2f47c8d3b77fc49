/* tapbench zpoline hook (after Yasukata et al., USENIX ATC 2023): loaded with LD_PRELOAD, it
 * rewrites every `syscall` instruction of the process into `call *%rax` and maps a trampoline
 * at virtual address 0, so that every system call, libc's and Go's raw ones alike, calls into
 * this library, which records writes to the watched descriptor into the ring preload uses
 * (ring.h, ring_writer.h) and makes the call itself.
 *
 * `call *%rax` is two bytes, like `syscall`: the instruction is replaced whole, in place, and
 * nothing else moves. rax holds the system call's number (0 ... ~470), so the call lands in a
 * slide of NOPs at the bottom of the page at 0 that runs into a jump to tapbench_syscall_entry
 * below. What that costs the target, and what it can notice:
 *   - the page at 0 needs vm.mmap_min_addr = 0 while the hook maps it: tapbench sets it for
 *     the launch and puts it back as soon as the hook says it is done (methods/zpoline.py).
 *     The page is mapped PROT_EXEC only: on a CPU with protection keys that is execute-only,
 *     elsewhere (no pku) a NULL read succeeds where it would have faulted;
 *   - the call pushes its return address at the caller's rsp - 8, inside the x86-64 red zone:
 *     code that keeps a value there across a system call would see it overwritten. Go uses
 *     no red zone; glibc's system-call wrappers keep nothing there;
 *   - the rewritten text and the trampoline are visible in /proc/self/maps and in the code.
 *
 * The hook itself, its own stack and the calls it makes in its entry (rt_sigreturn, vfork,
 * clone) are syscall_hook.h's, shared with the SUD hook.
 *
 * Which bytes are instructions is decided by libopcodes, sweeping each executable mapping
 * from its start (Go's text and glibc's hold no data); only a decoded two-byte 0f 05
 * (syscall) or 0f 34 (sysenter) is rewritten. This library's own mapping and the vDSO are left
 * alone. Nothing here relies on a destructor: Go leaves through exit_group, which runs none.
 */
#define _GNU_SOURCE
#include <dis-asm.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "syscall_hook.h"

__attribute__((visibility("default"))) const struct tapbench_ring_layout tapbench_ring_layout = TAPBENCH_RING_LAYOUT;

#define TRAMPOLINE_SLIDE 512 /* above every x86-64 system call number */

/* Every call the entry hands over is made as asked. */
static long filtered_syscall(long number, long a1, long a2, long a3, long a4, long a5, long a6)
{
    return raw_syscall(number, a1, a2, a3, a4, a5, a6);
}

/* A new thread calls the hook from its first system call on: nothing to do. */
__attribute__((visibility("hidden"))) void tapbench_thread_started(void)
{
}

/* The page at 0: NOPs up to TRAMPOLINE_SLIDE, then movabs $entry, %r11; jmp *%r11. */
static bool map_trampoline(void)
{
    long page = raw_syscall(SYS_mmap, 0, 4096, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (page != 0)
        return false;
    uint8_t *code = (uint8_t *)page;
    /* The compiler knows page is 0 here and would make every store through it a trap (a
     * NULL dereference is undefined in C): hide the value from it. */
    __asm__("" : "+r"(code));
    for (int i = 0; i < TRAMPOLINE_SLIDE; i++)
        code[i] = 0x90;
    uint64_t entry = (uint64_t)tapbench_syscall_entry;
    code[TRAMPOLINE_SLIDE] = 0x49; /* movabs $entry, %r11 */
    code[TRAMPOLINE_SLIDE + 1] = 0xbb;
    for (int i = 0; i < 8; i++)
        code[TRAMPOLINE_SLIDE + 2 + i] = (uint8_t)(entry >> (8 * i));
    code[TRAMPOLINE_SLIDE + 10] = 0x41; /* jmp *%r11 */
    code[TRAMPOLINE_SLIDE + 11] = 0xff;
    code[TRAMPOLINE_SLIDE + 12] = 0xe3;
    /* Execute-only where the CPU has protection keys; at least not writable. */
    return raw_syscall(SYS_mprotect, 0, 4096, PROT_EXEC, 0, 0, 0) == 0;
}

static int ignore_text(void *stream, const char *format, ...)
{
    (void)stream, (void)format;
    return 0;
}

static int ignore_styled_text(void *stream, enum disassembler_style style, const char *format, ...)
{
    (void)stream, (void)style, (void)format;
    return 0;
}

/* Rewrite the system-call instructions of [start, end), which is mapped with `protection`;
 * returns how many were, or -1 if the mapping could not be made writable. */
static long rewrite_mapping(uint8_t *start, uint8_t *end, int protection)
{
    if (raw_syscall(SYS_mprotect, (long)start, end - start, protection | PROT_WRITE, 0, 0, 0) != 0)
        return -1;
    disassemble_info info;
    init_disassemble_info(&info, NULL, ignore_text, ignore_styled_text);
    info.arch = bfd_arch_i386;
    info.mach = bfd_mach_x86_64;
    info.buffer = start;
    info.buffer_vma = (bfd_vma)start;
    info.buffer_length = end - start;
    disassemble_init_for_target(&info);
    disassembler_ftype decode = disassembler(bfd_arch_i386, false, bfd_mach_x86_64, NULL);
    long rewritten = 0;
    for (uint8_t *at = start; at < end;) {
        int length = decode((bfd_vma)at, &info);
        if (length <= 0)
            length = 1;
        if (length == 2 && at[0] == 0x0f && (at[1] == 0x05 || at[1] == 0x34)) {
            at[0] = 0xff; /* call *%rax */
            at[1] = 0xd0;
            rewritten++;
        }
        at += length;
    }
    raw_syscall(SYS_mprotect, (long)start, end - start, protection, 0, 0, 0);
    return rewritten;
}

/* Every executable mapping but this library's, the vDSO's and vsyscall's. The list is read
 * whole first: rewriting changes protections, and so the list. */
static long rewrite_text(void)
{
    static char maps[1 << 18];
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t length = 0;
    ssize_t got;
    while (length < sizeof maps - 1 && (got = read(fd, maps + length, sizeof maps - 1 - length)) > 0)
        length += (size_t)got;
    close(fd);
    maps[length] = '\0';
    uintptr_t own = (uintptr_t)tapbench_syscall_entry;
    long total = 0;
    for (char *line = maps, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        unsigned long from, to;
        char permissions[5];
        if (sscanf(line, "%lx-%lx %4s", &from, &to, permissions) != 3 || permissions[2] != 'x')
            continue;
        if (permissions[0] != 'r' || from == 0 || (from <= own && own < to) ||
            strstr(line, "[vdso]") || strstr(line, "[vsyscall]"))
            continue;
        int protection = PROT_READ | PROT_EXEC | (permissions[1] == 'w' ? PROT_WRITE : 0);
        long rewritten = rewrite_mapping((uint8_t *)from, (uint8_t *)to, protection);
        if (rewritten < 0)
            return -1;
        total += rewritten;
    }
    return total;
}

/* Only in the process that claimed the ring: a child that inherited LD_PRELOAD (and, once the
 * launch is over, can no longer map page 0) runs untouched. */
__attribute__((constructor)) static void tapbench_zpoline_init(void)
{
    struct tapbench_ring_header *header = attach_ring();
    if (header == NULL)
        return;
    if (!map_trampoline()) {
        announce_hook_state(header, HOOK_FAILED);
        return;
    }
    long rewritten = rewrite_text();
    header->rewritten_sites = rewritten < 0 ? 0 : (uint32_t)rewritten;
    ring = header;
    announce_hook_state(header, rewritten < 0 ? HOOK_FAILED : HOOK_SET_UP);
}
