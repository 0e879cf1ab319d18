/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for fillin_apply() and fillin_result_envelope().
 *
 * Input: byte 0 picks the operation, byte 1 the defaults and Content-Type;
 * the rest is QUERY '\0' BODY, or just BODY when there is no NUL.  Query and
 * body are copied into buffers of exactly their size so ASan sees any read
 * past them.
 *
 * Beyond "no crash, no out-of-bounds access", it checks the promises:
 *  - a request the reading refuses (api_read.h) forwards nothing;
 *  - the client's query pieces are kept byte for byte and in order, except an
 *    empty required one that a default replaces in place, followed only by
 *    "&Name=value" for parameters an independent decoder says were absent;
 *  - for a body that is a valid JSON object: no error, and the new body is
 *    the client's bytes with members inserted after '{', parses as an object
 *    holding every original member unchanged plus the added ones;
 *  - an invalid result always yields a JSON envelope, a valid one none.
 */

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/api/fillin.h"

#define CHECK(cond)                                                                     \
        do {                                                                            \
                if (!(cond)) {                                                          \
                        fprintf(stderr, "fuzz-fillin: property violated: %s (line %d)\n", \
                                #cond, __LINE__);                                       \
                        abort();                                                        \
                }                                                                       \
        } while (0)

static const struct fillin_defaults defaults_sets[] = {
        { .cluster = "Msc1", .vpcid = "tenant", .rpool = "on-demand" },
        { .cluster = "a\"b\\c\n\x01 &=%+é😀", .vpcid = "v/p?c#", .rpool = "\x7f" },
};

static const char *const content_types[] = {
        NULL,
        "application/json",
        "application/x-www-form-urlencoded",
        "text/plain",
};

static int lower(int c) {
        return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int hex(int c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        c = lower(c);
        return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Reference: fully decode every query name and compare, the slow and obvious way. */
static bool reference_query_has(const char *q, size_t len, const char *name) {
        size_t i = 0;

        while (i <= len) {
                size_t end = i, n = 0;
                char *dec;
                bool eq;

                while (end < len && q[end] != '&')
                        end++;
                dec = malloc(end - i + 1);
                CHECK(dec);
                for (size_t k = i; k < end && q[k] != '='; ) {
                        if (q[k] == '+') {
                                dec[n++] = ' ';
                                k++;
                        } else if (q[k] == '%' && k + 2 < end && hex(q[k + 1]) >= 0 && hex(q[k + 2]) >= 0) {
                                dec[n++] = (char) (hex(q[k + 1]) * 16 + hex(q[k + 2]));
                                k += 3;
                        } else
                                dec[n++] = q[k++];
                }
                eq = n == strlen(name);
                for (size_t k = 0; eq && k < n; k++)
                        eq = lower((unsigned char) dec[k]) == lower((unsigned char) name[k]);
                free(dec);
                if (eq && n > 0)
                        return true;
                i = end + 1;
        }
        return false;
}

/* The next non-empty piece of q from *pos: [*start, *end). */
static bool next_piece(const char *q, size_t len, size_t *pos, size_t *start, size_t *end) {
        while (*pos < len) {
                size_t e = *pos;

                while (e < len && q[e] != '&')
                        e++;
                *start = *pos;
                *end = e;
                *pos = e + 1;
                if (e > *start)
                        return true;
        }
        return false;
}

/* The query parameter of op a piece names (reference decoder), or NULL. */
static const struct op_param *piece_param(const struct operation *op, const char *piece, size_t n) {
        for (size_t i = 0; i < op->n_params; i++)
                if (op->params[i].location == OP_PARAM_QUERY &&
                    reference_query_has(piece, n, op->params[i].name))
                        return &op->params[i];
        return NULL;
}

static const struct op_param *check_added(const struct operation *op, const char *piece, size_t n) {
        const struct op_param *p = NULL;
        size_t name_len = strcspn(piece, "=");

        CHECK(name_len < n);
        for (size_t i = 0; i < op->n_params; i++)
                if (op->params[i].location == OP_PARAM_QUERY && strlen(op->params[i].name) == name_len &&
                    memcmp(op->params[i].name, piece, name_len) == 0)
                        p = &op->params[i];
        CHECK(p && p->fill != OP_DEFAULT_NONE);
        for (size_t i = name_len + 1; i < n; i++) {
                char c = piece[i];
                CHECK((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~' || c == '%');
        }
        return p;
}

static void check_query(const struct operation *op, const char *q, size_t q_len, const struct fillin_result *r) {
        size_t qpos = 0, rpos = 0, qs, qe, rs, re, changed = 0;

        if (!r->query) {
                CHECK(r->n_added_query == 0);
                return;
        }
        CHECK(strlen(r->query) == r->query_len);
        /* The client's pieces, in order: as sent, or an empty required one given its default. */
        while (next_piece(q, q_len, &qpos, &qs, &qe)) {
                const struct op_param *p = piece_param(op, q + qs, qe - qs);

                CHECK(next_piece(r->query, r->query_len, &rpos, &rs, &re));
                if (re - rs == qe - qs && memcmp(r->query + rs, q + qs, qe - qs) == 0)
                        continue;
                CHECK(p && p->required && p->fill != OP_DEFAULT_NONE);
                CHECK(memchr(q + qs, '=', qe - qs) == NULL || q[qe - 1] == '=');
                CHECK(check_added(op, r->query + rs, re - rs) == p);
                changed++;
        }
        /* Then the absent ones. */
        while (next_piece(r->query, r->query_len, &rpos, &rs, &re)) {
                const struct op_param *p = check_added(op, r->query + rs, re - rs);

                CHECK(!reference_query_has(q, q_len, p->name));
                changed++;
        }
        CHECK(changed == r->n_added_query);
}

static void check_body(const struct operation *op, const char *ct, const char *b, size_t b_len,
                       const struct fillin_result *r) {
        size_t bom = b_len >= 3 && memcmp(b, "\xef\xbb\xbf", 3) == 0 ? 3 : 0, brace = bom;
        const int flags = JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL;
        json_error_t error;
        json_t *in, *out;
        const char *key;
        json_t *value;
        bool applies;

        while (brace < b_len && strchr(" \t\r\n", b[brace]) && b[brace])
                brace++;
        applies = op->has_body &&
                  (b_len == 0 || !ct || strcmp(ct, "application/json") == 0 ||
                   (strcmp(ct, "application/x-www-form-urlencoded") == 0 && brace < b_len && b[brace] == '{'));
        if (!applies) {
                CHECK(!r->body && r->n_added_body == 0 && r->body_error == FILLIN_BODY_OK);
                return;
        }
        if (!r->body)
                CHECK(r->n_added_body == 0);
        if (b_len == 0) {
                CHECK(r->body_error == FILLIN_BODY_OK);
                if (r->body) {
                        out = json_loadb(r->body, r->body_len, flags, NULL);
                        CHECK(out && json_is_object(out) && json_object_size(out) == r->n_added_body);
                        json_decref(out);
                }
                return;
        }

        in = json_loadb(b + bom, b_len - bom, flags, &error);
        if (!in && json_error_code(&error) == json_error_numeric_overflow) {
                /* Valid JSON that jansson cannot hold (1e400): fill-in takes it, so
                 * only the byte promises can be checked here. */
                CHECK(r->body_error == FILLIN_BODY_OK || r->body_error == FILLIN_BODY_INVALID_JSON ||
                      r->body_error == FILLIN_BODY_NOT_OBJECT);
                if (r->body && r->n_replaced_body == 0) {
                        size_t rest = b_len - brace - 1;

                        CHECK(r->body_error == FILLIN_BODY_OK && brace < b_len && b[brace] == '{' && r->body_len > b_len);
                        CHECK(memcmp(r->body, b, brace + 1) == 0);
                        CHECK(memcmp(r->body + r->body_len - rest, b + brace + 1, rest) == 0);
                }
                return;
        }
        if (!in) {
                CHECK(r->body_error == FILLIN_BODY_INVALID_JSON && !r->body);
                CHECK(memchr(r->error_text, 0, sizeof(r->error_text)));
                return;
        }
        if (!json_is_object(in)) {
                CHECK(r->body_error == FILLIN_BODY_NOT_OBJECT && !r->body && r->json_type);
                json_decref(in);
                return;
        }
        CHECK(r->body_error == FILLIN_BODY_OK);
        if (r->body && r->n_replaced_body > 0) {
                /* Members sent "" or null took their default in place; nothing else changed. */
                size_t replaced = 0;

                out = json_loadb(r->body + bom, r->body_len - bom, flags, NULL);
                CHECK(out && json_is_object(out));
                CHECK(json_object_size(out) == json_object_size(in) + r->n_added_body - r->n_replaced_body);
                json_object_foreach(in, key, value) {
                        json_t *now = json_object_get(out, key);

                        CHECK(now);
                        if (json_equal(value, now))
                                continue;
                        CHECK(json_is_null(value) || (json_is_string(value) && json_string_length(value) == 0));
                        CHECK(json_is_string(now));
                        replaced++;
                }
                CHECK(replaced == r->n_replaced_body);
                json_decref(out);
        } else if (r->body) {
                size_t rest = b_len - brace - 1;

                /* The client's bytes, in order: all up to '{' and all after it. */
                CHECK(b[brace] == '{');
                CHECK(r->body_len > b_len);
                CHECK(memcmp(r->body, b, brace + 1) == 0);
                CHECK(memcmp(r->body + r->body_len - rest, b + brace + 1, rest) == 0);

                out = json_loadb(r->body + bom, r->body_len - bom, flags, NULL);
                CHECK(out && json_is_object(out));
                CHECK(json_object_size(out) == json_object_size(in) + r->n_added_body);
                json_object_foreach(in, key, value)
                        CHECK(json_equal(value, json_object_get(out, key)));
                json_decref(out);
        }
        json_decref(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const struct fillin_defaults *d;
        const struct operation *op;
        struct fillin_result r;
        const uint8_t *nul;
        char *q = NULL, *b = NULL, *env = NULL;
        size_t q_len = 0, b_len;
        const char *ct;
        int k;

        if (size < 2)
                return 0;
        op = &optable_operations[data[0] % optable_n_operations];
        d = &defaults_sets[(data[1] >> 3) & 1];
        ct = content_types[(data[1] >> 4) & 3];
        struct fillin_defaults partial = {
                .cluster = data[1] & 1 ? d->cluster : NULL,
                .vpcid = data[1] & 2 ? d->vpcid : NULL,
                .rpool = data[1] & 4 ? d->rpool : NULL,
        };
        data += 2, size -= 2;

        nul = memchr(data, 0, size);
        if (nul) {
                q_len = (size_t) (nul - data);
                data = nul + 1;
                size -= q_len + 1;
                q = malloc(q_len ? q_len : 1);
                CHECK(q);
                memcpy(q, data - q_len - 1, q_len);
        }
        b_len = size;
        b = malloc(b_len ? b_len : 1);
        CHECK(b);
        memcpy(b, data, b_len);

        k = fillin_apply(op, &partial, q_len ? q : NULL, q_len, ct, b_len ? b : NULL, b_len, &r);
        CHECK(k == 0 || k == -ENOMEM);
        if (k == 0 && r.body_error == FILLIN_BODY_REFUSED) {
                /* Refused: nothing to forward, and a reason for the 400. */
                CHECK(!r.query && !r.body && r.refused[0]);
                CHECK(!fillin_result_is_valid(&r));
        } else if (k == 0) {
                CHECK(!(b_len > 0 && !op->has_body));
                check_query(op, q, q_len, &r);
                check_body(op, ct, b, b_len, &r);
                for (size_t i = 0; i < r.n_missing; i++)
                        CHECK(r.missing[i]->required && r.missing[i] >= op->params &&
                              r.missing[i] < op->params + op->n_params);

                k = fillin_result_envelope(&r, &env);
                CHECK(k == (fillin_result_is_valid(&r) ? 0 : 1) || k == -ENOMEM);
                if (k == 1) {
                        json_t *j = json_loads(env, 0, NULL);
                        CHECK(j && json_is_false(json_object_get(j, "success")));
                        json_decref(j);
                }
                free(env);
        }
        fillin_result_done(&r);
        free(q);
        free(b);
        return 0;
}
