/* Small programs for tests/test_preload_invisible.py: each case does something to write() on
 * fd 1 that the LD_PRELOAD hook must not change, and reports on stderr what the program itself
 * observed (return values, errno). The test runs every case with and without the hook and
 * compares exit status, stdout bytes and stderr.
 *
 * usage: hook_cases CASE [TEXT]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static char *self;

static void say(const char *what, ssize_t returned)
{
    fprintf(stderr, "%s -> %zd %s\n", what, returned, returned < 0 ? strerror(errno) : "-");
}

/* Make fd 1 (a pipe nobody reads yet) full, then leave it non-blocking or not. */
static void fill_stdout(int stay_nonblocking)
{
    static char block[4096];
    int flags = fcntl(1, F_GETFL);
    fcntl(1, F_SETFL, flags | O_NONBLOCK);
    while (write(1, block, sizeof block) > 0)
        ;
    if (!stay_nonblocking)
        fcntl(1, F_SETFL, flags);
}

static void on_alarm_interrupt(int signum)
{
    (void)signum;
}

static volatile sig_atomic_t handler_writes, handler_failures;

static void on_alarm_write(int signum)
{
    (void)signum;
    int saved = errno;
    if (write(1, "rock 0 0\n", 9) == 9)
        handler_writes++;
    else
        handler_failures++;
    errno = saved;
}

static void *blocked_writer(void *unused)
{
    (void)unused;
    char line[] = "scissors 0 0\n";
    write(1, line, sizeof line - 1); /* the pipe is full: blocks until cancelled */
    return NULL;
}

static int run(const char *name, const char *text)
{
    if (!strcmp(name, "bad_pointer")) {
        /* volatile: the compiler must not see, and refuse, the bad pointers at build time */
        const void *volatile unmapped = (const void *)0x10, *volatile null = NULL;
        say("write(1, 0x10, 5)", write(1, unmapped, 5));
        say("write(1, NULL, 5)", write(1, null, 5));
        say("write(1, line, 9)", write(1, "rock 0 0\n", 9));
    } else if (!strcmp(name, "nonblocking")) {
        /* Partial writes, then EAGAIN, on a full pipe. */
        static char big[10000];
        memset(big, 'x', sizeof big);
        fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);
        ssize_t returned;
        do {
            returned = write(1, big, sizeof big);
            say("write(1, big, 10000)", returned);
        } while (returned > 0);
    } else if (!strcmp(name, "eintr")) {
        fill_stdout(0);
        struct sigaction action = {.sa_handler = on_alarm_interrupt}; /* no SA_RESTART */
        sigaction(SIGALRM, &action, NULL);
        struct itimerval once = {.it_value = {.tv_usec = 100000}};
        setitimer(ITIMER_REAL, &once, NULL);
        say("write(1, line, 9) on a full pipe", write(1, "rock 0 0\n", 9));
    } else if (!strcmp(name, "signal_handler")) {
        /* A handler that writes, interrupting writes of the main loop, many times over: a
         * lock in the hook would deadlock here. */
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        struct sigaction action = {.sa_handler = on_alarm_write, .sa_flags = SA_RESTART};
        sigaction(SIGALRM, &action, NULL);
        struct itimerval often = {.it_value = {.tv_usec = 20}, .it_interval = {.tv_usec = 20}};
        setitimer(ITIMER_REAL, &often, NULL);
        long main_failures = 0;
        for (int i = 0; i < 300000; i++)
            if (write(1, "paper 0 0\n", 10) != 10)
                main_failures++;
        struct itimerval off = {0};
        setitimer(ITIMER_REAL, &off, NULL);
        fprintf(stderr, "main loop failures %ld, handler failures %d, handler wrote: %s\n",
                main_failures, (int)handler_failures, handler_writes > 0 ? "yes" : "no");
    } else if (!strcmp(name, "fork")) {
        say("parent write", write(1, "parent-before\n", 14));
        pid_t child = fork();
        if (child == 0) {
            write(1, "fork-child\n", 11);
            _exit(0);
        }
        waitpid(child, NULL, 0);
        child = vfork();
        if (child == 0) {
            write(1, "vfork-child\n", 12);
            _exit(0);
        }
        waitpid(child, NULL, 0);
        child = fork();
        if (child == 0) {
            execl(self, self, "write_once", "exec-child", (char *)NULL);
            _exit(127);
        }
        waitpid(child, NULL, 0);
        say("parent write", write(1, "parent-after\n", 13));
        /* The same process becomes another program, LD_PRELOAD kept. */
        execl(self, self, "write_once", "exec-same-pid", (char *)NULL);
        return 127;
    } else if (!strcmp(name, "thread_cancel")) {
        /* A thread leaves mid-write: cancelled while blocked in write() on a full pipe. */
        fill_stdout(0);
        pthread_t thread;
        pthread_create(&thread, NULL, blocked_writer, NULL);
        usleep(100000);
        pthread_cancel(thread);
        void *result;
        pthread_join(thread, &result);
        fprintf(stderr, "thread %s\n", result == PTHREAD_CANCELED ? "cancelled" : "returned");
    } else if (!strcmp(name, "other_calls")) {
        /* Every way to write to stdout that is not libc's write(). */
        struct iovec parts[] = {{"writev ", 7}, {"1\n", 2}};
        say("writev", writev(1, parts, 2));
        say("pwrite", pwrite(1, "pwrite\n", 7, 0));
        fwrite("fwrite\n", 1, 7, stdout);
        say("fflush after fwrite", fflush(stdout));
        printf("printf\n");
        say("fflush after printf", fflush(stdout));
        say("syscall(SYS_write)", syscall(SYS_write, 1, "syscall\n", 8));
        say("write", write(1, "write\n", 6));
    } else if (!strcmp(name, "die_by_signal")) {
        write(1, "rock 0 0\n", 9);
        raise(SIGSEGV);
    } else if (!strcmp(name, "write_once") && text) {
        char line[64];
        int length = snprintf(line, sizeof line, "%s\n", text);
        say("write_once", write(1, line, length));
    } else {
        fprintf(stderr, "unknown case %s\n", name);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    self = argv[0];
    if (argc < 2) {
        fprintf(stderr, "usage: %s CASE [TEXT]\n", argv[0]);
        return 2;
    }
    return run(argv[1], argc > 2 ? argv[2] : NULL);
}
