/* SPDX-License-Identifier: MIT */
/*
 * Where files are: the configuration file itself, and the paths written in
 * it, made absolute so that the daemon's working directory never matters.
 */
#include "common/config/config-internal.h"

#include <assert.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <unistd.h>

char *config_home_dir(void) {
        const char *h = getenv_nonempty("HOME");
        struct passwd *pw;

        if (h && h[0] == '/')
                return strdup(h);
        pw = getpwuid(getuid());
        return pw && pw->pw_dir && pw->pw_dir[0] == '/' ? strdup(pw->pw_dir) : NULL;
}

char *config_path_make_absolute_cwd(const char *p) {
        _cleanup_free_ char *cwd = NULL;
        char *r;

        if (p[0] == '/')
                return strdup(p);
        cwd = getcwd(NULL, 0);
        if (!cwd)
                return NULL;
        if (asprintf(&r, "%s/%s", streq(cwd, "/") ? "" : cwd, p) < 0)
                return NULL;
        return r;
}

/*
 * Paths in the file: "~/" means $HOME, relative paths are relative to the
 * directory of the file (so /etc/denvrd/denvr.toml can say apikey_file =
 * "apikey"); the daemon's working directory would be a surprise.
 */
int config_resolve_file_path(struct loader *l, const char *p, char **ret) {
        _cleanup_free_ char *dir = NULL;
        const char *slash;
        char *r;

        if (p[0] == '/')
                r = strdup(p);
        else if (p[0] == '~' && p[1] == '/') {
                _cleanup_free_ char *home = config_home_dir();
                if (!home)
                        return -ENOENT;
                if (asprintf(&r, "%s%s", home, p + 1) < 0)
                        r = NULL;
        } else {
                assert(l->path && l->path[0] == '/');
                slash = strrchr(l->path, '/');
                dir = strndup(l->path, (size_t) (slash - l->path));
                if (!dir)
                        return -ENOMEM;
                if (asprintf(&r, "%s/%s", dir, p) < 0)
                        r = NULL;
        }
        if (!r)
                return -ENOMEM;
        *ret = r;
        return 0;
}

/*
 * --config, else $DENVR_CONFIG, else ~/.config/denvr.toml (as the SDKs).
 * Only the last may be missing.  *ret is absolute, or NULL without a home.
 */
int config_locate(const struct config_overrides *o, char **ret, bool *ret_explicit) {
        const char *p = o->config_path ? o->config_path : getenv_nonempty("DENVR_CONFIG");
        _cleanup_free_ char *home = NULL;

        *ret_explicit = p != NULL;
        if (p) {
                *ret = config_path_make_absolute_cwd(p);
                return *ret ? 0 : -ENOMEM;
        }
        home = config_home_dir();
        if (!home) {
                *ret = NULL;
                return 0;
        }
        return asprintf(ret, "%s/.config/denvr.toml", home) < 0 ? -ENOMEM : 0;
}
