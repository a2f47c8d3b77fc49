/* A target that runs children, for the with-and-without comparison of every backend
 * (tests/test_children.py): whatever the observer, the parent, a fork()ed child, a vfork()ed
 * child that execs, and a grandchild must see the same return values, errno and exit statuses,
 * and write the same bytes, as they do unwatched.
 *
 *   forking_target FILE   writes moves to stdout from each process, a line of what each
 *                         write() returned to stderr, and the forked child's uid into FILE.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void say(const char *who, const char *line)
{
    errno = 0;
    ssize_t written = write(1, line, strlen(line));
    char report[128];
    int length = snprintf(report, sizeof report, "%s: write -> %zd errno %d\n", who, written,
                          written < 0 ? errno : 0);
    write(2, report, (size_t)length);
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    say("parent", "rock 0 0\n");
    pid_t child = fork();
    if (child == 0) {
        say("child", "paper 0 1\n");
        FILE *file = fopen(argv[1], "w");
        if (file == NULL)
            _exit(10);
        fprintf(file, "%u\n", getuid());
        fclose(file);
        pid_t grandchild = fork();
        if (grandchild == 0) {
            say("grandchild", "scissors 0 2\n");
            _exit(0);
        }
        int status;
        waitpid(grandchild, &status, 0);
        _exit(WIFEXITED(status) ? 20 + WEXITSTATUS(status) : 99);
    }
    int status;
    waitpid(child, &status, 0);
    char line[64];
    snprintf(line, sizeof line, "child exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    write(2, line, strlen(line));
    pid_t exec_child = vfork();
    if (exec_child == 0) {
        execl("/bin/sh", "sh", "-c", "echo rock 0 3; echo \"echo status $?\" >&2", (char *)NULL);
        _exit(127);
    }
    waitpid(exec_child, &status, 0);
    snprintf(line, sizeof line, "exec child exited %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    write(2, line, strlen(line));
    say("parent", "paper 0 4\n");
    return 3;
}
