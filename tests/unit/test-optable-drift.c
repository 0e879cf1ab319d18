/* SPDX-License-Identifier: MIT */
/*
 * Drift: compares the compiled operation table (the generated C, not the
 * table file) with upstream's operation list, operations.tsv, given as argv[1].
 * Any difference in operations, parameters, required flags or default mapping
 * fails; so does a missing or unreadable file (never a skip: a silently
 * skipped drift test catches nothing).
 */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/api/optable.h"
#include "common/base/cleanup.h"

static unsigned failures;

#define FAIL(...)                                                       \
        do {                                                            \
                fprintf(stderr, "drift: ");                             \
                fprintf(stderr, __VA_ARGS__);                           \
                fputc('\n', stderr);                                    \
                failures++;                                             \
        } while (0)

/* Splits s in place at sep; returns the number of fields (at most max). */
static size_t split(char *s, char sep, char **fields, size_t max) {
        size_t n = 0;

        while (n < max) {
                char *e = strchr(s, sep);

                fields[n++] = s;
                if (!e)
                        break;
                *e = 0;
                s = e + 1;
        }
        return n;
}

/* Checks one "query" or "body" column of a TSV line against op. */
static void check_params(const char *where, const struct operation *op, char *column,
                         enum op_param_location loc, bool *seen) {
        char *names[OPTABLE_MAX_PARAMS + 1];
        size_t n, n_op = 0;

        for (size_t i = 0; i < op->n_params; i++)
                n_op += op->params[i].location == loc;

        if (strcmp(column, "-") == 0)
                n = 0;
        else
                n = split(column, ',', names, ELEMENTSOF(names));
        if (n != n_op)
                FAIL("%s: upstream has %zu %s parameters, the table %zu", where, n,
                     loc == OP_PARAM_QUERY ? "query" : "body", n_op);

        for (size_t i = 0; i < n; i++) {
                size_t len = strlen(names[i]);
                bool required = len > 0 && names[i][len - 1] == '*';
                const struct op_param *p;

                if (required)
                        names[i][len - 1] = 0;
                p = operation_find_param(op, loc, names[i]);
                if (!p) {
                        FAIL("%s: %s parameter %s missing from the table", where,
                             loc == OP_PARAM_QUERY ? "query" : "body", names[i]);
                        continue;
                }
                seen[p - op->params] = true;
                if (p->required != required)
                        FAIL("%s: %s is %s upstream but %s in the table", where, names[i],
                             required ? "required" : "optional", p->required ? "required" : "optional");
        }
}

static void check_defaults(const char *where, const struct operation *op, char *column) {
        char *maps[OPTABLE_MAX_PARAMS + 1];
        bool filled[OPTABLE_MAX_PARAMS] = { false };
        size_t n = 0;

        if (strcmp(column, "-") != 0)
                n = split(column, ',', maps, ELEMENTSOF(maps));

        for (size_t i = 0; i < n; i++) {
                char *eq = strchr(maps[i], '=');
                const struct op_param *p = NULL;
                int d;

                if (!eq) {
                        FAIL("%s: bad defaults entry %s", where, maps[i]);
                        continue;
                }
                *eq = 0;
                d = op_default_from_string(eq + 1);
                if (d < 0) {
                        FAIL("%s: unknown [defaults] key %s", where, eq + 1);
                        continue;
                }
                p = operation_find_param(op, OP_PARAM_QUERY, maps[i]);
                if (!p)
                        p = operation_find_param(op, OP_PARAM_BODY, maps[i]);
                if (!p) {
                        FAIL("%s: default for %s, which the table does not have", where, maps[i]);
                        continue;
                }
                filled[p - op->params] = true;
                if ((int) p->fill != d)
                        FAIL("%s: %s is filled from %s upstream, from %s in the table", where, maps[i],
                             eq + 1, p->fill != OP_DEFAULT_NONE ? op_default_to_string(p->fill) : "nothing");
        }
        for (size_t i = 0; i < op->n_params; i++)
                if (!filled[i] && op->params[i].fill != OP_DEFAULT_NONE)
                        FAIL("%s: the table fills %s from %s, upstream from nothing", where,
                             op->params[i].name, op_default_to_string(op->params[i].fill));
}

int main(int argc, char *argv[]) {
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_free_ char *line = NULL;
        size_t cap = 0, n_ops = 0;
        bool *matched;
        unsigned lineno = 0;
        bool header = false;

        if (argc != 2) {
                fprintf(stderr, "usage: %s PATH/TO/operations.tsv\n", argv[0]);
                return EXIT_FAILURE;
        }
        f = fopen(argv[1], "re");
        if (!f) {
                fprintf(stderr, "drift: cannot read %s: %s (Denvr's operation list, kept in tests/denvr-api/)\n",
                        argv[1], strerror(errno));
                return EXIT_FAILURE;
        }
        matched = calloc(optable_n_operations, sizeof(bool));
        if (!matched)
                return EXIT_FAILURE;

        for (ssize_t l; (l = getline(&line, &cap, f)) >= 0; ) {
                char where[512], *fields[6];
                const struct operation *op;
                bool seen[OPTABLE_MAX_PARAMS] = { false };

                lineno++;
                while (l > 0 && (line[l - 1] == '\n' || line[l - 1] == '\r'))
                        line[--l] = 0;
                if (l == 0 || line[0] == '#')
                        continue;
                if (!header) {
                        /* The column header; insist on the layout this parser knows. */
                        header = true;
                        if (strcmp(line, "method\tpath\tquery\tbody\tdefaults") != 0) {
                                FAIL("line %u: unexpected header \"%s\"", lineno, line);
                                break;
                        }
                        continue;
                }
                if (split(line, '\t', fields, ELEMENTSOF(fields)) != 5) {
                        FAIL("line %u: expected 5 tab-separated fields", lineno);
                        continue;
                }
                snprintf(where, sizeof(where), "line %u: %s %s", lineno, fields[0], fields[1]);
                n_ops++;

                op = optable_lookup(fields[0], fields[1]);
                if (!op) {
                        FAIL("%s: not in the table", where);
                        continue;
                }
                /* Lookup is case-insensitive; the table must still spell it as upstream. */
                if (strcmp(op->method, fields[0]) != 0 || strcmp(op->path, fields[1]) != 0)
                        FAIL("%s: the table spells it %s %s", where, op->method, op->path);
                if (matched[op - optable_operations])
                        FAIL("%s: listed twice upstream", where);
                matched[op - optable_operations] = true;

                check_params(where, op, fields[2], OP_PARAM_QUERY, seen);
                check_params(where, op, fields[3], OP_PARAM_BODY, seen);
                for (size_t i = 0; i < op->n_params; i++)
                        if (!seen[i])
                                FAIL("%s: the table has %s, upstream does not", where, op->params[i].name);
                check_defaults(where, op, fields[4]);
        }

        if (!header)
                FAIL("%s: no header line, no operations", argv[1]);
        for (size_t i = 0; i < optable_n_operations; i++)
                if (!matched[i])
                        FAIL("the table has %s %s, upstream does not", optable_operations[i].method,
                             optable_operations[i].path);
        free(matched);

        if (failures) {
                fprintf(stderr, "test-optable-drift: %u difference(s) from %s\n", failures, argv[1]);
                return EXIT_FAILURE;
        }
        printf("test-optable-drift: table matches %s (%zu operations)\n", argv[1], n_ops);
        return EXIT_SUCCESS;
}
