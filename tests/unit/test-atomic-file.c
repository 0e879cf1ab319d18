/* SPDX-License-Identifier: MIT */
/*
 * Atomic replacement (common/base/atomic_file.h): a process killed with
 * SIGKILL after each step of a write leaves the file whole, old or new; a
 * temporary file a crash left behind does not stop the next write; the file
 * gets its mode and no temporary file stays after a write that succeeded.
 */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "common/base/atomic_file.h"

static const char OLD[] = "{\"version\": 1, \"leases\": [\"old\"]}\n";
static char NEW[64 * 1024];   /* large enough to be written in more than one page */

static char *slurp(const char *path, size_t *len) {
        FILE *f = fopen(path, "re");
        char *buf;

        if (!f)
                return NULL;
        buf = calloc(1, sizeof NEW + 1);
        *len = buf ? fread(buf, 1, sizeof NEW, f) : 0;
        fclose(f);
        return buf;
}

static void kill_at(enum atomic_step s, void *userdata) {
        if (s == *(enum atomic_step *) userdata)
                raise(SIGKILL);
}

/* Replaces path with NEW in a child that dies right after step; its wait status. */
static int write_and_die(const char *path, enum atomic_step step) {
        struct atomic_hooks h = { kill_at, &step };
        int status = 0;
        pid_t pid = fork();

        if (pid == 0)
                _exit(atomic_file_write(path, NEW, sizeof NEW - 1, 0600, &h) == 0 ? 0 : 1);
        if (pid < 0 || waitpid(pid, &status, 0) < 0)
                return -1;
        return status;
}

static void test_kill_at_every_step(const char *path) {
        for (enum atomic_step s = 0; s < _ATOMIC_STEP_MAX; s++) {
                size_t len = 0;
                char *got;
                int status;

                CHECK(atomic_file_write(path, OLD, strlen(OLD), 0600, NULL) == 0, "reset to the old file");
                status = write_and_die(path, s);
                CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "killed after %s", atomic_step_to_string(s));
                got = slurp(path, &len);
                CHECK(got, "readable after a kill after %s", atomic_step_to_string(s));
                if (got && s < ATOMIC_STEP_RENAMED)
                        CHECK(len == strlen(OLD) && memcmp(got, OLD, len) == 0,
                              "killed after %s (before the rename): the old file, whole (%zu bytes)",
                              atomic_step_to_string(s), len);
                else if (got)
                        CHECK(len == sizeof NEW - 1 && memcmp(got, NEW, len) == 0,
                              "killed after %s: the new file, whole (%zu bytes)", atomic_step_to_string(s), len);
                free(got);
                CHECK(atomic_file_write(path, OLD, strlen(OLD), 0600, NULL) == 0,
                      "the next write succeeds after a kill after %s", atomic_step_to_string(s));
        }
}

static void test_clean_write(const char *path) {
        char *temp = atomic_file_temp_name(path);
        struct stat st;
        size_t len = 0;
        char *got;

        CHECK(atomic_file_write(path, NEW, sizeof NEW - 1, 0600, NULL) == 0, "write");
        CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600, "mode 0600: %o", st.st_mode & 0777);
        CHECK(temp && access(temp, F_OK) < 0 && errno == ENOENT, "no temporary file left");
        got = slurp(path, &len);
        CHECK(got && len == sizeof NEW - 1 && memcmp(got, NEW, len) == 0, "the new contents");
        free(got);
        free(temp);
        CHECK(atomic_file_write("/nonexistent-dir/leases.json", OLD, strlen(OLD), 0600, NULL) == -ENOENT,
              "a missing directory is an error");
}

int main(void) {
        char dir[] = "/tmp/test-atomic-file.XXXXXX";
        char path[sizeof dir + 32], *temp;

        for (size_t i = 0; i < sizeof NEW - 1; i++)
                NEW[i] = (char) ('a' + i % 26);
        if (!mkdtemp(dir)) {
                perror("mkdtemp");
                return 1;
        }
        snprintf(path, sizeof path, "%s/leases.json", dir);
        test_kill_at_every_step(path);
        test_clean_write(path);
        temp = atomic_file_temp_name(path);
        (void) unlink(path);
        (void) unlink(temp);
        free(temp);
        (void) rmdir(dir);
        printf("atomic-file: %u checks, %u failures\n", checks, failures);
        return failures ? 1 : 0;
}
