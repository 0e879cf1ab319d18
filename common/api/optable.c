/* SPDX-License-Identifier: MIT */
#include "common/api/optable.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>


/*
 * optable_operations[] (generated) is sorted by ASCII-lowercased path, then
 * ASCII-lowercased method, so one bsearch() finds an operation: this runs on
 * every request.  ASCII folding, not strcasecmp(), so the result never depends
 * on the locale.
 */

static inline int ascii_lower(unsigned char c) {
        return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Compares a (a_len bytes) with NUL-terminated b, ASCII case-insensitively. */
static int ascii_casecmpn(const char *a, size_t a_len, const char *b) {
        size_t i;

        for (i = 0; i < a_len; i++) {
                int ca = ascii_lower((unsigned char) a[i]), cb = ascii_lower((unsigned char) b[i]);

                /* b ended first: a is the longer string, so it sorts after. */
                if (cb == 0)
                        return 1;
                if (ca != cb)
                        return ca < cb ? -1 : 1;
        }
        return b[i] == 0 ? 0 : -1;
}

struct lookup_key {
        const char *method;
        const char *path;
        size_t path_len;
};

static int operation_compare(const void *k, const void *e) {
        const struct lookup_key *key = k;
        const struct operation *op = e;
        int r;

        r = ascii_casecmpn(key->path, key->path_len, op->path);
        if (r != 0)
                return r;
        return ascii_casecmpn(key->method, strlen(key->method), op->method);
}

const struct operation *optable_lookupn(const char *method, const char *path, size_t path_len) {
        struct lookup_key key;

        assert(method);
        assert(path || path_len == 0);

        /* ASP.NET Core routing treats "/x/" like "/x"; only one slash, though. */
        if (path_len > 1 && path[path_len - 1] == '/')
                path_len--;

        key = (struct lookup_key) { .method = method, .path = path, .path_len = path_len };
        return bsearch(&key, optable_operations, optable_n_operations,
                       sizeof(optable_operations[0]), operation_compare);
}

static int operation_path_compare(const void *k, const void *e) {
        const struct lookup_key *key = k;
        const struct operation *op = e;

        return ascii_casecmpn(key->path, key->path_len, op->path);
}

const struct operation *optable_lookup_path(const char *path) {
        struct lookup_key key = { .method = NULL, .path = path };

        assert(path);
        key.path_len = strlen(path);
        if (key.path_len > 1 && path[key.path_len - 1] == '/')
                key.path_len--;
        /* Sorted by path first: bsearch() lands on one of the path's methods. */
        return bsearch(&key, optable_operations, optable_n_operations,
                       sizeof(optable_operations[0]), operation_path_compare);
}

const struct operation *optable_lookup(const char *method, const char *path) {
        assert(path);
        return optable_lookupn(method, path, strlen(path));
}

static const char *const op_default_names[_OP_DEFAULT_MAX] = {
        [OP_DEFAULT_NONE] = NULL,
        [OP_DEFAULT_CLUSTER] = "cluster",
        [OP_DEFAULT_VPCID] = "vpcid",
        [OP_DEFAULT_RPOOL] = "rpool",
};

const char *op_default_to_string(enum op_default d) {
        assert(d >= 0 && d < _OP_DEFAULT_MAX);
        return op_default_names[d];
}

int op_default_from_string(const char *s) {
        assert(s);
        for (int d = OP_DEFAULT_NONE + 1; d < _OP_DEFAULT_MAX; d++)
                if (strcmp(s, op_default_names[d]) == 0)
                        return d;
        return -EINVAL;
}

const struct op_param *operation_find_param(const struct operation *op,
                                            enum op_param_location location,
                                            const char *name) {
        assert(op);
        assert(name);

        for (size_t i = 0; i < op->n_params; i++)
                if (op->params[i].location == location && strcmp(op->params[i].name, name) == 0)
                        return &op->params[i];
        return NULL;
}
