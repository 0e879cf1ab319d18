/* SPDX-License-Identifier: MIT */
#include "common/api/lease_store.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/base/cleanup.h"

int lease_set_add(struct lease_set *s, struct lease *l) {
        struct lease *m = reallocarray(s->leases, s->n + 1, sizeof *m);

        if (!m)
                return -ENOMEM;
        s->leases = m;
        s->leases[s->n++] = *l;
        *l = (struct lease) { 0 };
        return 0;
}

void lease_set_remove(struct lease_set *s, size_t i) {
        lease_done(&s->leases[i]);
        memmove(&s->leases[i], &s->leases[i + 1], (s->n - i - 1) * sizeof *s->leases);
        s->n--;
}

void lease_set_done(struct lease_set *s) {
        for (size_t i = 0; i < s->n; i++)
                lease_done(&s->leases[i]);
        free(s->leases);
        *s = (struct lease_set) { 0 };
}

static int bad(char *err, size_t size, int r, const char *fmt, ...) _printf_(4, 5);
static int bad(char *err, size_t size, int r, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(err, size, fmt, ap);
        va_end(ap);
        return r;
}

static int load_leases(json_t *array, const char *path, struct lease_set *ret, char *err, size_t size) {
        size_t i;
        json_t *o;

        json_array_foreach(array, i, o) {
                struct lease l;
                const char *why;

                if (lease_from_json(o, &l, &why) < 0)
                        return bad(err, size, -EBADMSG, "%s: lease %zu: %s", path, i + 1, why);
                if (lease_set_add(ret, &l) < 0) {
                        lease_done(&l);
                        return bad(err, size, -ENOMEM, "%s: out of memory", path);
                }
        }
        return 0;
}

int lease_store_load(const char *path, struct lease_set *ret, char *err, size_t size) {
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        json_error_t e;
        json_t *leases;
        int r;

        *ret = (struct lease_set) { 0 };
        f = fopen(path, "re");
        if (!f && errno == ENOENT)
                return 0;
        if (!f)
                return bad(err, size, -errno, "cannot open %s: %s", path, strerror(errno));
        root = json_loadf(f, JSON_REJECT_DUPLICATES, &e);
        if (!root)
                return bad(err, size, -EBADMSG, "%s: line %d: %s", path, e.line, e.text);
        if (json_integer_value(json_object_get(root, "version")) != LEASE_STORE_VERSION)
                return bad(err, size, -EBADMSG, "%s: not a lease file of version %d", path, LEASE_STORE_VERSION);
        leases = json_object_get(root, "leases");
        if (!json_is_array(leases))
                return bad(err, size, -EBADMSG, "%s: \"leases\" is not a list", path);
        r = load_leases(leases, path, ret, err, size);
        if (r < 0)
                lease_set_done(ret);
        return r;
}

int lease_store_save(const char *path, const struct lease_set *s, int64_t now, const struct atomic_hooks *hooks) {
        _cleanup_(json_decrefp) json_t *root = json_pack("{s:i, s:[]}", "version", LEASE_STORE_VERSION, "leases");
        _cleanup_free_ char *text = NULL;
        json_t *array = json_object_get(root, "leases");

        if (!root)
                return -ENOMEM;
        for (size_t i = 0; i < s->n; i++)
                if (json_array_append_new(array, lease_to_json(&s->leases[i], now)) < 0)
                        return -ENOMEM;
        text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (!text)
                return -ENOMEM;
        return atomic_file_write(path, text, strlen(text), 0600, hooks);
}
