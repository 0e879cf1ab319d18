/* SPDX-License-Identifier: MIT */
#include "common/base/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/enum_names.h"
#include "common/base/cleanup.h"

const char *atomic_step_to_string(enum atomic_step s) {
        static const char *const names[] = {
                [ATOMIC_STEP_OPENED] = "opened",
                [ATOMIC_STEP_WRITTEN] = "written",
                [ATOMIC_STEP_SYNCED] = "synced",
                [ATOMIC_STEP_RENAMED] = "renamed",
                [ATOMIC_STEP_DIR_SYNCED] = "dir-synced",
        };

        return ENUM_NAME(names, s);
}

/* dirname() and basename() of path, as two malloc'ed strings. */
static int split_path(const char *path, char **ret_dir, char **ret_base) {
        _cleanup_free_ char *a = strdup(path), *b = strdup(path);

        if (!a || !b)
                return -ENOMEM;
        *ret_dir = strdup(dirname(a));
        *ret_base = strdup(basename(b));
        if (!*ret_dir || !*ret_base) {
                free(*ret_dir);
                free(*ret_base);
                return -ENOMEM;
        }
        return 0;
}

char *atomic_file_temp_name(const char *path) {
        _cleanup_free_ char *dir = NULL, *base = NULL;
        char *t;

        if (split_path(path, &dir, &base) < 0 || asprintf(&t, "%s/.%s.tmp", dir, base) < 0)
                return NULL;
        return t;
}

static void step(const struct atomic_hooks *h, enum atomic_step s) {
        if (h && h->at)
                h->at(s, h->userdata);
}

static int write_all(int fd, const char *p, size_t len) {
        while (len > 0) {
                ssize_t n = write(fd, p, len);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                p += n;
                len -= (size_t) n;
        }
        return 0;
}

/* The data into a fresh temporary file, on disk when this returns 0. */
static int write_temp(const char *temp, const void *data, size_t len, mode_t mode, const struct atomic_hooks *h) {
        int fd, r;

        fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return -errno;
        step(h, ATOMIC_STEP_OPENED);
        r = fchmod(fd, mode) < 0 ? -errno : 0;   /* O_CREAT's mode is masked, and an old file kept its own */
        if (r == 0)
                r = write_all(fd, data, len);
        if (r == 0)
                step(h, ATOMIC_STEP_WRITTEN);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0)
                step(h, ATOMIC_STEP_SYNCED);
        return r;
}

static int sync_dir(const char *dir) {
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int r = 0;

        if (fd < 0)
                return -errno;
        if (fsync(fd) < 0)
                r = -errno;
        close(fd);
        return r;
}

int atomic_file_write(const char *path, const void *data, size_t len, mode_t mode,
                      const struct atomic_hooks *hooks) {
        _cleanup_free_ char *dir = NULL, *base = NULL, *temp = NULL;
        int r;

        r = split_path(path, &dir, &base);
        if (r < 0)
                return r;
        if (asprintf(&temp, "%s/.%s.tmp", dir, base) < 0) {
                temp = NULL;
                return -ENOMEM;
        }
        r = write_temp(temp, data, len, mode, hooks);
        if (r == 0 && rename(temp, path) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink(temp);
                return r;
        }
        step(hooks, ATOMIC_STEP_RENAMED);
        /* Without it the rename may not survive a power cut: the old file would come back. */
        r = sync_dir(dir);
        if (r == 0)
                step(hooks, ATOMIC_STEP_DIR_SYNCED);
        return r;
}
