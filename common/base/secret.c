/* SPDX-License-Identifier: MIT */
#define LOG_MODULE "secret"
#include "common/base/secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/base/log.h"

#include <jansson.h>
#include <malloc.h>

#define SECRET_FILE_MAX (64 * 1024)

struct secret *secret_new(const char *s, size_t len) {
        struct secret *x;

        x = malloc(sizeof *x + len + 1);
        if (!x)
                return NULL;
        x->len = len;
        memcpy(x->data, s, len);
        x->data[len] = 0;
        /* Best effort: RLIMIT_MEMLOCK may be small; a failed mlock is not fatal. */
        (void) mlock(x, sizeof *x + len + 1);
        return x;
}

struct secret *secret_dup(const struct secret *s) {
        return s ? secret_new(s->data, s->len) : NULL;
}

void secret_free(struct secret *s) {
        size_t size;

        if (!s)
                return;
        size = sizeof *s + s->len + 1;
        explicit_bzero(s, size);
        (void) munlock(s, size);
        free(s);
}

void erase_and_free(char *s) {
        if (!s)
                return;
        explicit_bzero(s, strlen(s));
        free(s);
}

int secret_read_file(const char *path, struct secret **ret) {
        _cleanup_close_ int fd = -1;
        char buf[SECRET_FILE_MAX + 1];
        size_t len = 0;
        struct stat st;
        int r = 0;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;

        for (;;) {
                ssize_t n = read(fd, buf + len, sizeof buf - len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        r = -errno;
                        break;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > SECRET_FILE_MAX) {
                        r = -EFBIG;
                        break;
                }
        }

        if (r == 0) {
                if (len > 0 && buf[len - 1] == '\n')
                        len--;
                if (len > 0 && buf[len - 1] == '\r')
                        len--;
                if (len == 0 || memchr(buf, 0, len))
                        r = -EBADMSG;
        }
        if (r == 0) {
                *ret = secret_new(buf, len);
                if (!*ret)
                        r = -ENOMEM;
        }
        explicit_bzero(buf, sizeof buf);
        return r;
}

/*
 * Plain malloc() blocks, so strings from json_dumps() may be freed with
 * free() as usual; malloc_usable_size() tells how much to wipe.
 */
static void wiping_free(void *p) {
        if (!p)
                return;
        explicit_bzero(p, malloc_usable_size(p));
        free(p);
}

void secret_use_wiping_json_allocator(void) {
        json_set_alloc_funcs(malloc, wiping_free);
}
