/* SPDX-License-Identifier: MIT */
/*
 * The reading of an API request (common/api/api_read.h), the one query reader
 * (common/base/query.h) and header hygiene (common/http/http_framing.h): what upstream
 * could bind otherwise is refused, what it binds alike is read alike.
 */
#include <errno.h>
#include <string.h>

#include "check.h"
#include "common/api/api_read.h"
#include "common/base/cleanup.h"
#include "common/base/query.h"
#include "common/http/http_framing.h"

#define V "/api/v1/servers/virtual/"
#define JSON "application/json"

static const struct operation *op(const char *method, const char *path) {
        const struct operation *o = optable_lookup(method, path);

        CHECK(o, "%s %s in the table", method, path);
        return o;
}

static int read_it(const char *method, const char *path, enum api_read_mode mode, const char *query,
                   const char *ct, const char *body, struct api_read *a) {
        const struct operation *o = path ? optable_lookup(method, path) : NULL;

        return api_read(o, mode, query, query ? strlen(query) : 0, ct, body, body ? strlen(body) : 0, a);
}

static void expect(int line, const char *method, const char *path, enum api_read_mode mode, const char *query,
                   const char *ct, const char *body, const char *why) {
        _cleanup_(api_read_done) struct api_read a = { .op = NULL };
        int k = read_it(method, path, mode, query, ct, body, &a);

        if (!why) {
                CHECK(k == 0, "line %d: %s?%s %s: %d %s", line, path, query, body ? body : "", k, a.error);
                return;
        }
        CHECK(k == -EBADMSG, "line %d: %s?%s %s: expected refused (%s), got %d", line, path, query,
              body ? body : "", why, k);
        CHECK(strstr(a.error, why), "line %d: \"%s\" lacks \"%s\"", line, a.error, why);
}

#define OK(m, p, mode, q, ct, b) expect(__LINE__, m, p, mode, q, ct, b, NULL)
#define NO(m, p, mode, q, ct, b, why) expect(__LINE__, m, p, mode, q, ct, b, why)
#define S API_READ_STRICT
#define O API_READ_OPEN

static void test_query(void) {
        OK("GET", V "GetServer", S, "Id=vm-1&Namespace=ns&Cluster=Msc1", NULL, NULL);
        OK("GET", V "GetServer", S, "id=vm-1&NAMESPACE=ns&%43luster=Msc1&&", NULL, NULL);
        OK("GET", V "GetServers", O, "x=1", NULL, NULL);
        NO("GET", V "GetServers", S, "x=1", NULL, NULL, "not a parameter of GetServers");
        NO("GET", V "GetServer", O, "Id=vm-1&input.Id=vm-2", NULL, NULL, "dotted or bracketed");
        NO("GET", V "GetServer", O, "Id=vm-1&INPUT%2eid=vm-2", NULL, NULL, "dotted or bracketed");
        NO("GET", V "GetServer", O, "Id%5B%5D=vm-2", NULL, NULL, "dotted or bracketed");
        NO("GET", V "GetServer", O, "Id]=vm-2", NULL, NULL, "dotted or bracketed");
        NO("GET", V "GetServer", O, "Id=vm-1&id=vm-2", NULL, NULL, "given twice");
        NO("GET", V "GetServer", O, "Id=vm-1&I%64=vm-2", NULL, NULL, "given twice");
        NO("GET", V "GetServer", O, "Id=vm-1&Id", NULL, NULL, "given twice");
        NO("GET", V "GetServer", O, "%C4%B1d=vm-2", NULL, NULL, "non-ASCII");
        NO("GET", V "GetServer", O, "\xc4\xb1" "d=vm-2", NULL, NULL, "non-ASCII");
        NO("GET", V "GetServer", O, "Id=vm%zz", NULL, NULL, "bad percent-encoding in its value");
        NO("GET", V "GetServer", O, "=vm-2", NULL, NULL, "empty parameter name");
        /* A body operation binds its fields from the body only. */
        NO("POST", V "StartServer", O, "id=vm-2", JSON, "{\"id\":\"vm-1\"}", "takes it in its JSON body");
        OK("POST", V "StartServer", O, "x=1", JSON, "{\"id\":\"vm-1\"}");
        NO("POST", V "StartServer", S, "x=1", JSON, "{\"id\":\"vm-1\"}", "not a parameter");
        /* Outside the table: open reads nothing; strict judges names. */
        OK("GET", NULL, O, "input.Id=1&a=1&a=2", NULL, NULL);
        NO("GET", NULL, S, "input.Id=1", NULL, NULL, "dotted");
        NO("GET", NULL, S, "a=1&A=2", NULL, NULL, "given twice");
        OK("GET", NULL, S, "a=1&b=2", NULL, NULL);
}

static void test_body(void) {
        OK("POST", V "StartServer", S, NULL, JSON, "{\"id\":\"vm-1\",\"namespace\":\"n\",\"cluster\":\"c\"}");
        OK("POST", V "StartServer", S, NULL, "application/json-patch+json; charset=utf-8", "{\"id\":\"vm-1\"}");
        OK("POST", V "StartServer", S, NULL, NULL, "{\"id\":\"vm-1\"}");
        OK("POST", V "StartServer", S, NULL, "application/x-www-form-urlencoded", " {\"id\":\"vm-1\"}");
        OK("POST", V "StartServer", S, NULL, "text/plain", "");
        NO("POST", V "StartServer", O, NULL, "application/x-www-form-urlencoded", "id=vm-2", "must be JSON");
        NO("POST", V "StartServer", O, NULL, "multipart/form-data; boundary=b", "--b\r\n", "must be JSON");
        NO("POST", V "StartServer", O, NULL, "text/plain", "{\"id\":\"vm-1\"}", "must be JSON");
        NO("POST", V "StartServer", O, NULL, JSON, "{\"id\":\"vm-1\",\"id\":\"vm-2\"}", "member twice");
        NO("POST", V "StartServer", O, NULL, JSON, "{\"id\":\"vm-1\",\"ID\":\"vm-2\"}", "given twice");
        NO("POST", V "StartServer", O, NULL, JSON, "{\"id\":\"vm-1\",\"\\u0049d\":\"vm-2\"}", "given twice");
        /* Dots mean nothing to a JSON binder: an unknown member, kept for full rights. */
        OK("POST", V "StartServer", O, NULL, JSON, "{\"input.id\":\"vm-2\",\"id\":\"vm-1\"}");
        NO("POST", V "StartServer", S, NULL, JSON, "{\"input.id\":\"vm-2\"}", "not a parameter");
        NO("POST", V "StartServer", O, NULL, JSON, "{\"\\u0131d\":\"vm-2\"}", "non-ASCII");
        NO("POST", V "StartServer", S, NULL, JSON, "{\"id\":\"vm-1\",\"input\":{\"id\":\"vm-2\"}}",
           "not a parameter");
        OK("POST", V "StartServer", O, NULL, JSON, "{\"id\":\"vm-1\",\"extra\":{\"id\":\"vm-2\"}}");
        NO("POST", V "StartServer", O, NULL, JSON, "[1]", "must be a JSON object, not an array");
        NO("POST", V "StartServer", O, NULL, JSON, "{\"id\":", "not valid JSON");
        /* A body where none is taken, whatever its type. */
        NO("GET", V "GetServer", O, "Id=vm-1", "application/x-www-form-urlencoded", "Id=vm-2", "takes no request body");
        NO("DELETE", V "DestroyServer", O, "Id=vm-1", JSON, "{}", "takes no request body");
        OK("GET", V "GetServer", O, "Id=vm-1", JSON, "");
        NO("POST", NULL, S, NULL, "application/x-www-form-urlencoded", "id=1", "body is refused");
        NO("POST", NULL, S, NULL, "Multipart/Form-Data; boundary=x", "--x", "body is refused");
        OK("POST", NULL, S, NULL, JSON, "{\"id\":1}");
        OK("POST", NULL, O, NULL, "application/x-www-form-urlencoded", "id=1");
}

static void test_values(void) {
        _cleanup_(api_read_done) struct api_read a = { .op = NULL };
        const struct api_param *p;

        CHECK(read_it("GET", V "GetServer", O, "iD=vm%2D1+x&Cluster=&x", NULL, NULL, &a) == 0, "read");
        p = api_read_get(&a, OP_PARAM_QUERY, "Id");
        CHECK(p && p->def && strcmp(p->value, "vm-1 x") == 0 && !p->empty, "Id decoded");
        p = api_read_get(&a, OP_PARAM_QUERY, "cluster");
        CHECK(p && p->empty && p->def && p->def->required, "Cluster empty");
        p = api_read_get(&a, OP_PARAM_QUERY, "x");
        CHECK(p && !p->def && p->empty, "x kept, unknown");
        CHECK(!api_read_get(&a, OP_PARAM_BODY, "Id"), "no body params");
        api_read_done(&a);

        CHECK(read_it("POST", V "StartServer", O, NULL, JSON, "{\"ID\":5,\"cluster\":null,\"namespace\":\"n\"}",
                      &a) == 0, "read body");
        p = api_read_get(&a, OP_PARAM_BODY, "id");
        CHECK(p && p->def && !p->value, "a number is not a string");
        p = api_read_get(&a, OP_PARAM_BODY, "Cluster");
        CHECK(p && p->empty && !p->value, "null is empty");
        p = api_read_get(&a, OP_PARAM_BODY, "namespace");
        CHECK(p && strcmp(p->value, "n") == 0, "namespace");
        CHECK(!a.body_unlabelled && a.body_brace == 0, "labelled, brace at 0");
        (void) op("POST", V "StartServer");
}

static void test_query_reader(void) {
        char out[32];
        struct query_field f;
        size_t pos = 0, n = 0;
        _cleanup_free_ char *v = NULL;

        CHECK(query_decode("a+b%20c%2b", 10, out) == 6 && strcmp(out, "a b c+") == 0, "decode: %s", out);
        CHECK(query_decode("%", 1, out) == -EINVAL, "lone %%");
        CHECK(query_decode("%4", 2, out) == -EINVAL, "short escape");
        CHECK(query_decode("%4g", 3, out) == -EINVAL, "bad hex");
        CHECK(query_decode("a%00b", 5, out) == 3 && out[1] == 0, "NUL kept with its length");
        while (query_next("&a=1&&b&=c&", 11, &pos, &f))
                n++;
        CHECK(n == 3, "three pieces, empty ones skipped: %zu", n);
        CHECK(query_name_is("Re%66resh+Token", 15, "refresh token"), "name decoded, case-insensitive");
        CHECK(!query_name_is("refresh%", 8, "refresh%"), "bad escape never matches");
        CHECK(query_get("a=1&B=x%2By&b=2", 15, "b", &v, &n) == 1 && strcmp(v, "x+y") == 0 && n == 3, "first b");
        CHECK(query_get("a=1", 3, "b", &v, &n) == 0, "absent");
}

static void test_framing(void) {
        static const struct { const char *head, *why; } heads[] = {
                { "GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\r\n", NULL },
                { "GET / HTTP/1.1\r\nHost: a\r\nX: b\tc\r\n\r\nX: \r\x01", NULL },  /* past the head: not ours */
                { "GET / HTTP/1.1\r\nHost: a\r\nX: b", NULL },                     /* incomplete line: later */
                { "GET / HTTP/1.1\r\nX: a\rY: b\r\n\r\n", "bare CR" },
                { "GET / HTTP/1.1\r\nX: a\r\n Y: b\r\n\r\n", "obs-fold" },
                { "GET / HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", "obs-fold" },
                { "GET / HTTP/1.1\r\nX : a\r\n\r\n", "whitespace between" },
                { "GET / HTTP/1.1\r\nX\t: a\r\n\r\n", "whitespace between" },
                { "GET / HTTP/1.1\r\nX(: a\r\n\r\n", "not an RFC 9110 token" },
                { "GET / HTTP/1.1\r\n: a\r\n\r\n", "empty header name" },
                { "GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", "control character" },
                { "GET / HTTP/1.1\r\nX: a\nY: b\r\n\r\n", "LF without CR" },
                { "GET / HT\rTP/1.1\r\n\r\n", "request line" },
        };

        for (size_t i = 0; i < ELEMENTSOF(heads); i++) {
                const char *why = http_head_problem(heads[i].head, strlen(heads[i].head));

                CHECK(heads[i].why ? why && strstr(why, heads[i].why) : !why, "head %zu: %s", i, why ? why : "ok");
        }
        CHECK(!http_field_problem("X-A", "b\tc"), "HTAB allowed");
        CHECK(http_field_problem("X A", "b"), "space in name");
        CHECK(http_field_problem("X", "a\rb"), "CR in value");

        struct http_framing f = { 0 };
        http_framing_add(&f, "Content-Length", "5");
        CHECK(!http_framing_problem(&f), "one Content-Length");
        http_framing_add(&f, "content-length", "5");
        CHECK(http_framing_problem(&f), "two");
        f = (struct http_framing) { 0 };
        http_framing_add(&f, "Content-Length", "5, 5");
        CHECK(http_framing_problem(&f), "list");
        f = (struct http_framing) { 0 };
        http_framing_add(&f, "Transfer-Encoding", "Chunked");
        CHECK(!http_framing_problem(&f), "chunked alone");
        http_framing_add(&f, "Content-Length", "0");
        CHECK(http_framing_problem(&f), "both");
        f = (struct http_framing) { 0 };
        http_framing_add(&f, "Transfer-Encoding", "chunked\t");
        CHECK(http_framing_problem(&f), "blank after chunked: the server would not read it so");
        f = (struct http_framing) { 0 };
        http_framing_add(&f, "Transfer-Encoding", "gzip, chunked");
        CHECK(http_framing_problem(&f), "gzip");
        f = (struct http_framing) { 0 };
        http_framing_add(&f, "Transfer-Encoding", "chunked");
        http_framing_add(&f, "Transfer-Encoding", "chunked");
        CHECK(http_framing_problem(&f), "twice");
}

int main(void) {
        test_query();
        test_body();
        test_values();
        test_query_reader();
        test_framing();
        printf("api-read: %u checks, %u failures\n", checks, failures);
        return failures ? 1 : 0;
}
