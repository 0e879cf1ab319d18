/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Replacing a file so that a crash at any point leaves it whole: the old
 * contents or the new, never a mix or nothing.  The data goes to a temporary
 * file beside it, which is written and fsync'ed, then renamed over the file,
 * then the directory is fsync'ed so the rename itself is on disk.
 *
 * The temporary file has a fixed name (".NAME.tmp" in the same directory): a
 * crash may leave one behind, which the next write simply replaces, and
 * readers never look at it.
 */

#include <stddef.h>
#include <sys/types.h>

/* The steps, in order; the hooks' at() runs after each (tests crash there). */
enum atomic_step {
        ATOMIC_STEP_OPENED,             /* the temporary file is created, empty */
        ATOMIC_STEP_WRITTEN,            /* ... holds the data, perhaps only in the page cache */
        ATOMIC_STEP_SYNCED,             /* ... is on disk */
        ATOMIC_STEP_RENAMED,            /* it is the file now (the rename perhaps not yet on disk) */
        ATOMIC_STEP_DIR_SYNCED,         /* the rename is on disk */
        _ATOMIC_STEP_MAX,
};

struct atomic_hooks {
        void (*at)(enum atomic_step step, void *userdata);
        void *userdata;
};

/* Replaces path with len bytes of data, the new file with mode; hooks may be
 * NULL.  0 or a negative errno (the file is then as it was). */
int atomic_file_write(const char *path, const void *data, size_t len, mode_t mode,
                      const struct atomic_hooks *hooks);

/* The temporary file's name for path, malloc'ed (tests, cleanup). */
char *atomic_file_temp_name(const char *path);

const char *atomic_step_to_string(enum atomic_step s);
