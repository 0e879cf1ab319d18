/* SPDX-License-Identifier: MIT */
/*
 * Defaults fill-in: query and body, byte-exactness, validation, envelopes.
 * Every body that gets members added is also checked generically: the
 * forwarded bytes are the client's bytes with only our members inserted after
 * the opening '{', and they parse to the client's members plus ours.
 */

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/api/fillin.h"
#include "common/base/cleanup.h"

#include "check.h"

static const struct fillin_defaults D = { .cluster = "Msc1", .vpcid = "my vpc", .rpool = "on-demand" };
static const struct fillin_defaults NONE = { .cluster = NULL };

static const struct operation *op_get(const char *method, const char *path) {
        const struct operation *op = optable_lookup(method, path);

        if (!op) {
                fprintf(stderr, "no operation %s %s\n", method, path);
                exit(EXIT_FAILURE);
        }
        return op;
}

/* "Id,Cluster": the missing list as one string, for compact expectations. */
static void missing_string(const struct fillin_result *r, char *s, size_t size) {
        s[0] = 0;
        for (size_t i = 0; i < r->n_missing; i++) {
                size_t l = strlen(s);
                snprintf(s + l, size - l, "%s%s", i ? "," : "", r->missing[i]->name);
        }
}

/* ---- query -------------------------------------------------------------- */

static void expect_query(int line, const char *method, const char *path, const struct fillin_defaults *d,
                         const char *query, const char *expected, const char *missing) {
        struct fillin_result r;
        char m[512];
        int k;

        k = fillin_apply(op_get(method, path), d, query, query ? strlen(query) : 0, NULL, NULL, 0, &r);
        CHECK(k == 0, "line %d: fillin_apply: %d", line, k);
        if (!expected)
                CHECK(!r.query, "line %d: %s?%s: query should be unchanged, got \"%s\"", line, path, query, r.query);
        else {
                CHECK(r.query && r.query_len == strlen(expected) && memcmp(r.query, expected, r.query_len) == 0,
                      "line %d: %s?%s: expected \"%s\", got \"%s\"", line, path, query, expected,
                      r.query ? r.query : "(unchanged)");
                /* The client's query must be a byte-exact prefix. */
                if (r.query && query)
                        CHECK(strncmp(r.query, query, strlen(query)) == 0, "line %d: prefix kept", line);
        }
        missing_string(&r, m, sizeof(m));
        CHECK(strcmp(m, missing ? missing : "") == 0, "line %d: missing \"%s\", expected \"%s\"", line, m,
              missing ? missing : "");
        CHECK(!r.body && r.body_error == FILLIN_BODY_OK, "line %d: query ops leave the body alone", line);
        fillin_result_done(&r);
}

#define EXPECT_QUERY(...) expect_query(__LINE__, __VA_ARGS__)

/* Refused by the reading (api_read.h): a 400 that says why, nothing to forward. */
static void expect_query_refused(int line, const char *path, const char *query, const char *why) {
        struct fillin_result r;
        int k;

        k = fillin_apply(op_get("GET", path), &D, query, strlen(query), NULL, NULL, 0, &r);
        CHECK(k == 0, "line %d: fillin_apply: %d", line, k);
        CHECK(r.body_error == FILLIN_BODY_REFUSED && !r.query && !r.body, "line %d: %s refused", line, query);
        CHECK(strstr(r.refused, why) != NULL, "line %d: \"%s\" lacks \"%s\"", line, r.refused, why);
        CHECK(!fillin_result_is_valid(&r), "line %d: is_valid", line);
        fillin_result_done(&r);
}

#define EXPECT_QUERY_REFUSED(...) expect_query_refused(__LINE__, __VA_ARGS__)

/* Empty required parameters take their default in place: the query is rebuilt. */
static void expect_query_rewritten(int line, const char *path, const char *query, const char *expected) {
        struct fillin_result r;
        int k;

        k = fillin_apply(op_get("GET", path), &D, query, strlen(query), NULL, NULL, 0, &r);
        CHECK(k == 0 && r.query && strcmp(r.query, expected) == 0, "line %d: %s: expected \"%s\", got \"%s\"",
              line, query, expected, r.query ? r.query : "(unchanged)");
        CHECK(fillin_result_is_valid(&r), "line %d: is_valid", line);
        fillin_result_done(&r);
}

#define EXPECT_QUERY_REWRITTEN(...) expect_query_rewritten(__LINE__, __VA_ARGS__)

static void test_query(void) {
        const char *gs = "/api/v1/servers/virtual/GetServers", *g1 = "/api/v1/servers/virtual/GetServer";

        EXPECT_QUERY("GET", gs, &D, NULL, "Cluster=Msc1", NULL);
        EXPECT_QUERY("GET", gs, &D, "", "Cluster=Msc1", NULL);
        EXPECT_QUERY("GET", gs, &D, "foo=1", "foo=1&Cluster=Msc1", NULL);
        EXPECT_QUERY("GET", gs, &D, "foo=1&", "foo=1&Cluster=Msc1", NULL);
        EXPECT_QUERY("GET", gs, &NONE, "foo=1", NULL, NULL);
        EXPECT_QUERY("GET", gs, NULL, "foo=1", NULL, NULL);

        /* Present in any case or spelling ASP.NET binds: left alone. */
        EXPECT_QUERY("GET", gs, &D, "Cluster=Hou1", NULL, NULL);
        EXPECT_QUERY("GET", gs, &D, "cluster=Hou1", NULL, NULL);
        EXPECT_QUERY("GET", gs, &D, "CLUSTER=Hou1", NULL, NULL);
        EXPECT_QUERY("GET", gs, &D, "Cluster=", NULL, NULL);
        EXPECT_QUERY("GET", gs, &D, "Cluster", NULL, NULL);
        EXPECT_QUERY("GET", gs, &D, "a=1&Cluster&b", NULL, NULL);
        EXPECT_QUERY("GET", gs, &D, "%43luster=x", NULL, NULL);
        EXPECT_QUERY("GET", gs, &D, "%63LUSTER=x", NULL, NULL);
        EXPECT_QUERY("GET", gs, &D, "Clu%73ter=x", NULL, NULL);
        EXPECT_QUERY("GET", gs, &D, "Clu%73ter", NULL, NULL);
        /* Twice: which one would upstream bind?  Refused. */
        EXPECT_QUERY_REFUSED(gs, "Cluster=a&Cluster=b", "\"Cluster\" is given twice");
        EXPECT_QUERY_REFUSED(gs, "cluster=a&CLUSTER=b", "given twice");
        EXPECT_QUERY_REFUSED(gs, "Cluster=a&%43luster=b", "given twice");
        EXPECT_QUERY_REFUSED(gs, "Cluster=a&Clu%73ter", "given twice");
        EXPECT_QUERY("GET", gs, &D, "x=1&&cluster=a", NULL, NULL);
        EXPECT_QUERY("GET", gs, &D, "Cluster=a=b", NULL, NULL);

        /* Not the same name: filled. */
        EXPECT_QUERY("GET", gs, &D, "xCluster=1", "xCluster=1&Cluster=Msc1", NULL);
        EXPECT_QUERY("GET", gs, &D, "Clusterx=1", "Clusterx=1&Cluster=Msc1", NULL);
        EXPECT_QUERY("GET", gs, &D, "Cluster+=1", "Cluster+=1&Cluster=Msc1", NULL);
        EXPECT_QUERY("GET", gs, &D, "Cluster%20=1", "Cluster%20=1&Cluster=Msc1", NULL);
        EXPECT_QUERY("GET", gs, &D, "Cluster%3D=1", "Cluster%3D=1&Cluster=Msc1", NULL);
        EXPECT_QUERY("GET", gs, &D, "x=Cluster", "x=Cluster&Cluster=Msc1", NULL);
        /* What denvrd cannot read exactly, or upstream binds elsewhere: refused. */
        EXPECT_QUERY_REFUSED(gs, "Clust%er=1", "bad percent-encoding in its name");
        EXPECT_QUERY_REFUSED(gs, "Cluster%", "bad percent-encoding");
        EXPECT_QUERY_REFUSED(gs, "Cluster%4", "bad percent-encoding");
        EXPECT_QUERY_REFUSED(gs, "Cluster=%4", "bad percent-encoding in its value");
        EXPECT_QUERY_REFUSED(gs, "=Cluster", "empty parameter name");
        EXPECT_QUERY_REFUSED(gs, "input.Cluster=x", "dotted or bracketed");
        EXPECT_QUERY_REFUSED(gs, "input%2ECluster=x", "dotted or bracketed");
        EXPECT_QUERY_REFUSED(gs, "Cluster[]=x", "dotted or bracketed");
        EXPECT_QUERY_REFUSED(gs, "Cluster%5B0%5D=x", "dotted or bracketed");
        EXPECT_QUERY_REFUSED(gs, "%C4%B1d=x", "non-ASCII");
        EXPECT_QUERY_REFUSED(gs, "Clu%00ster=x", "control");
        /* ASP.NET Core splits on '&' only, so this is one parameter named "a". */
        EXPECT_QUERY("GET", gs, &D, "a=1;Cluster=x", "a=1;Cluster=x&Cluster=Msc1", NULL);

        /* Several parameters, table order, value percent-encoded. */
        EXPECT_QUERY("GET", g1, &D, "Id=5", "Id=5&Namespace=my%20vpc&Cluster=Msc1", NULL);
        /* Sent empty (as generated clients do) and required: the default, in place. */
        EXPECT_QUERY_REWRITTEN(g1, "id=5&namespace=", "id=5&Namespace=my%20vpc&Cluster=Msc1");
        EXPECT_QUERY_REWRITTEN(g1, "Cluster=&Id=5&Namespace", "Cluster=Msc1&Id=5&Namespace=my%20vpc");
        /* Optional: empty keeps meaning "none" (every cluster). */
        EXPECT_QUERY("GET", g1, &D, NULL, "Namespace=my%20vpc&Cluster=Msc1", "Id");
        EXPECT_QUERY("GET", g1, &NONE, "Id=5", NULL, "Namespace,Cluster");
        EXPECT_QUERY("GET", g1, &NONE, NULL, NULL, "Id,Namespace,Cluster");
        EXPECT_QUERY("GET", g1, &NONE, "Id=&Namespace&Cluster=", NULL, NULL);
        EXPECT_QUERY("GET", "/api/v1/servers/virtual/GetAvailability", &D, "reportNodes=true",
                     "reportNodes=true&cluster=Msc1&resourcePool=on-demand", NULL);
        EXPECT_QUERY("GET", "/api/v1/servers/applications/GetAvailability", &NONE, NULL, NULL,
                     "cluster,resourcePool");
        EXPECT_QUERY("DELETE", "/api/v1/vpcs/DestroyVpc", &D, "Id=v", "Id=v&Cluster=Msc1", NULL);
        EXPECT_QUERY("GET", "/api/v1/clusters/GetAll", &D, "x=1", NULL, NULL);

        const struct fillin_defaults odd = { .cluster = "a&b=c/d é+~", .vpcid = "", .rpool = NULL };
        EXPECT_QUERY("GET", gs, &odd, NULL, "Cluster=a%26b%3Dc%2Fd%20%C3%A9%2B~", NULL);
        /* An empty default is no default. */
        EXPECT_QUERY("GET", g1, &odd, "Id=1", "Id=1&Cluster=a%26b%3Dc%2Fd%20%C3%A9%2B~", "Namespace");

        /* Nothing past query_len is read or copied. */
        {
                const char buf[] = "foo=1&Cluster=x";
                struct fillin_result r;

                CHECK(fillin_apply(op_get("GET", gs), &D, buf, 5, NULL, NULL, 0, &r) == 0, "apply");
                CHECK(r.query && strcmp(r.query, "foo=1&Cluster=Msc1") == 0, "query_len respected: %s", r.query);
                CHECK(r.n_added_query == 1 && r.n_added_body == 0, "counts");
                fillin_result_done(&r);
                fillin_result_done(&r);  /* idempotent */
        }
}

/* ---- body --------------------------------------------------------------- */

static size_t has_bom(const char *s, size_t len) {
        return len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
}

/*
 * Checks out is in with members text inserted after the first '{' (plus ','
 * when the object had members), and that it parses to in's members plus
 * n_added new ones.
 */
static void check_round_trip(int line, const char *in, size_t in_len, const char *out, size_t out_len,
                             size_t n_added) {
        _cleanup_(json_decrefp) json_t *a = NULL, *b = NULL;
        size_t brace = 0, rest;
        const char *key;
        json_t *value;
        json_error_t e;
        int flags = JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL;

        size_t bom_in = has_bom(in, in_len), bom_out = has_bom(out, out_len);

        for (brace = bom_in; brace < in_len && in[brace] != '{'; brace++)
                ;
        if (in_len == 0) {
                CHECK(out_len >= 2 && out[0] == '{' && out[out_len - 1] == '}', "line %d: created object", line);
        } else {
                rest = in_len - brace - 1;
                CHECK(out_len > in_len && memcmp(out, in, brace + 1) == 0, "line %d: bytes up to '{' kept", line);
                CHECK(out_len > in_len && memcmp(out + out_len - rest, in + brace + 1, rest) == 0,
                      "line %d: bytes after '{' kept", line);
        }

        a = in_len ? json_loadb(in + bom_in, in_len - bom_in, flags, &e) : json_object();
        if (!a && json_error_code(&e) == json_error_numeric_overflow)
                return;   /* numbers beyond a double: jansson cannot compare; the bytes were checked */
        b = json_loadb(out + bom_out, out_len - bom_out, flags, &e);
        CHECK(b && json_is_object(b), "line %d: output is not a JSON object: %s", line, b ? "" : e.text);
        if (!a || !b)
                return;
        CHECK(json_object_size(b) == json_object_size(a) + n_added, "line %d: %zu members, expected %zu + %zu",
              line, json_object_size(b), json_object_size(a), n_added);
        json_object_foreach(a, key, value)
                CHECK(json_equal(value, json_object_get(b, key)), "line %d: member %s changed", line, key);
}

struct body_case {
        const char *method, *path;
        const struct fillin_defaults *d;
        const char *content_type;
        const char *body;
        size_t body_len;           /* 0: strlen(body) */
        const char *expected;      /* NULL: unchanged */
        const char *missing;       /* NULL: none */
        enum fillin_body_error error;
        bool content_type_json;
        bool replaced;             /* a value sent empty was given its default in place */
};

static void expect_body(int line, const struct body_case *c) {
        struct fillin_result r;
        size_t len = c->body_len ? c->body_len : strlen(c->body);
        char m[512];
        int k;

        k = fillin_apply(op_get(c->method, c->path), c->d, NULL, 0, c->content_type, c->body, len, &r);
        CHECK(k == 0, "line %d: fillin_apply: %d", line, k);
        CHECK(r.body_error == c->error, "line %d: body_error %d, expected %d (%s)", line, r.body_error, c->error,
              r.error_text);
        if (!c->expected)
                CHECK(!r.body, "line %d: body should be unchanged, got %.*s", line, (int) r.body_len, r.body);
        else {
                CHECK(r.body && r.body_len == strlen(c->expected) && memcmp(r.body, c->expected, r.body_len) == 0,
                      "line %d:\n  expected %s\n  got      %.*s", line, c->expected, (int) r.body_len,
                      r.body ? r.body : "(unchanged)");
                if (r.body && !c->replaced)
                        check_round_trip(line, c->body, len, r.body, r.body_len, r.n_added_body);
        }
        missing_string(&r, m, sizeof(m));
        CHECK(strcmp(m, c->missing ? c->missing : "") == 0, "line %d: missing \"%s\", expected \"%s\"", line, m,
              c->missing ? c->missing : "");
        CHECK(r.content_type_json == c->content_type_json, "line %d: content_type_json %d", line, r.content_type_json);
        CHECK(fillin_result_is_valid(&r) == (c->error == FILLIN_BODY_OK && !c->missing), "line %d: is_valid", line);
        CHECK(!r.query, "line %d: body ops have no query defaults", line);
        fillin_result_done(&r);
}

#define EXPECT_BODY(...) expect_body(__LINE__, &(struct body_case) { __VA_ARGS__ })
#define START "POST", "/api/v1/servers/virtual/StartServer"
#define JSON "application/json"
#define NS_CL "\"namespace\":\"my vpc\",\"cluster\":\"Msc1\""

static void test_body_basic(void) {
        EXPECT_BODY(START, &D, JSON, "{\"id\":\"vm-1\"}", .expected = "{" NS_CL ",\"id\":\"vm-1\"}");
        EXPECT_BODY(START, &D, JSON, "{}", .expected = "{" NS_CL "}", .missing = "id");
        EXPECT_BODY(START, &D, JSON, "", .expected = "{" NS_CL "}", .missing = "id");
        EXPECT_BODY(START, &NONE, JSON, "", .missing = "id,namespace,cluster");
        EXPECT_BODY(START, &NONE, JSON, "{\"id\":1}", .missing = "namespace,cluster");
        EXPECT_BODY(START, &D, JSON, "  \n\t{  }\r\n ", .expected = "  \n\t{" NS_CL "  }\r\n ", .missing = "id");
        EXPECT_BODY(START, &D, JSON, " \n {\n  \"id\" : 1\n}\n", .expected = " \n {" NS_CL ",\n  \"id\" : 1\n}\n");

        /* Nothing to add: forwarded untouched, no copy. */
        EXPECT_BODY(START, &D, JSON, "{\"id\":1,\"namespace\":\"n\",\"cluster\":\"c\"}");
        /* null and "" for a required member with a default: what generated clients send
         * for "unset"; the default replaces the value in place, every other byte kept. */
        EXPECT_BODY(START, &D, JSON, "{\"id\":\"v\",\"namespace\":null,\"cluster\":\"\"}",
                    .expected = "{\"id\":\"v\",\"namespace\":\"my vpc\",\"cluster\":\"Msc1\"}", .replaced = true);
        EXPECT_BODY(START, &D, JSON, "{\"id\":\"v\",\"cluster\":null}",
                    .expected = "{\"namespace\":\"my vpc\",\"id\":\"v\",\"cluster\":\"Msc1\"}", .replaced = true);
        EXPECT_BODY(START, &D, JSON, "{ \"cluster\" :  null , \"id\":\"v\",\"n\\u0061mespace\":\"\"}",
                    .expected = "{ \"cluster\" :  \"Msc1\" , \"id\":\"v\",\"n\\u0061mespace\":\"my vpc\"}",
                    .replaced = true);
        /* Without a default it stays as sent: upstream judges it. */
        EXPECT_BODY(START, &NONE, JSON, "{\"id\":\"v\",\"namespace\":null,\"cluster\":\"\"}");

        /* Table order, rpool filled even though optional. */
        EXPECT_BODY("POST", "/api/v1/servers/virtual/CreateServer", &D, JSON,
                    "{\"configuration\":\"A100\",\"ssh_keys\":[]}",
                    .expected = "{\"rpool\":\"on-demand\",\"vpc\":\"my vpc\",\"cluster\":\"Msc1\","
                                "\"configuration\":\"A100\",\"ssh_keys\":[]}");
        EXPECT_BODY("POST", "/api/v1/servers/virtual/CreateServer", &NONE, JSON, "{\"name\":\"x\"}",
                    .missing = "vpc,configuration,cluster,ssh_keys");
        EXPECT_BODY("POST", "/api/v1/servers/metal/AddHostVpc", &D, JSON, "{\"id\":\"h\"}",
                    .expected = "{\"cluster\":\"Msc1\",\"vpcId\":\"my vpc\",\"id\":\"h\"}");
        EXPECT_BODY("POST", "/api/v1/servers/applications/CreateCustomApplication", &D, JSON,
                    "{\"name\":\"a\",\"hardwarePackageName\":\"h\",\"imageUrl\":\"i\",\"ResourcePool\":null}",
                    .expected = "{\"cluster\":\"Msc1\",\"name\":\"a\",\"hardwarePackageName\":\"h\",\"imageUrl\":\"i\","
                                "\"ResourcePool\":null}");
        EXPECT_BODY("POST", "/api/TokenAuth/Authenticate", &D, JSON, "{}",
                    .missing = "userNameOrEmailAddress,password");
        EXPECT_BODY("POST", "/api/TokenAuth/Authenticate", &D, JSON, "{\"UserNameOrEmailAddress\":\"u\",\"password\":\"p\"}");
}

static void test_body_exact_bytes(void) {
        /* Numbers jansson would round if it re-serialised them. */
        EXPECT_BODY(START, &D, JSON,
                    "{\"id\":12345678901234567890,\"x\":0.1000000000000000055511151231257827,\"y\":-1e-400,\"z\":1E+300}",
                    .expected = "{" NS_CL ",\"id\":12345678901234567890,\"x\":0.1000000000000000055511151231257827,"
                                "\"y\":-1e-400,\"z\":1E+300}");
        /* Beyond a double: jansson alone says "real number overflow", yet it is valid JSON. */
        EXPECT_BODY(START, &D, JSON, "{\"id\":1e400,\"s\":\"1e400 \\\"\",\"a\":[-1E+999,"
                    "1000000000000000000000000000000000000000000000000000000000000000000000000000000000"
                    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000"
                    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000"
                    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000]}",
                    .expected = "{" NS_CL ",\"id\":1e400,\"s\":\"1e400 \\\"\",\"a\":[-1E+999,"
                    "1000000000000000000000000000000000000000000000000000000000000000000000000000000000"
                    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000"
                    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000"
                    "0000000000000000000000000000000000000000000000000000000000000000000000000000000000]}");
        EXPECT_BODY(START, &D, JSON, "{\"cluster\":1e400,\"namespace\":-2E999,\"id\":1}");
        /* Unicode escapes kept as written; an escaped key name still counts as present. */
        EXPECT_BODY(START, &D, JSON, "{\"id\":\"\\u00e9\\ud83d\\ude00\\/\",\"n\\u0061mespace\":\"x\"}",
                    .expected = "{\"cluster\":\"Msc1\",\"id\":\"\\u00e9\\ud83d\\ude00\\/\",\"n\\u0061mespace\":\"x\"}");
        EXPECT_BODY(START, &D, JSON, "{\"id\":\"é😀\",\"s\":\"a\\u0000b\"}",
                    .expected = "{" NS_CL ",\"id\":\"é😀\",\"s\":\"a\\u0000b\"}");
        /* Duplicate-looking keys. */
        EXPECT_BODY(START, &D, JSON, "{\"Cluster\":\"x\",\"id\":1}",
                    .expected = "{\"namespace\":\"my vpc\",\"Cluster\":\"x\",\"id\":1}");
        EXPECT_BODY(START, &D, JSON, "{\"CLUSTER\":\"\",\"NameSpace\":null,\"ID\":1}",
                    .expected = "{\"CLUSTER\":\"Msc1\",\"NameSpace\":\"my vpc\",\"ID\":1}", .replaced = true);
        EXPECT_BODY(START, &D, JSON, "{\"clu\\u0073ter\":1,\"namespace\":1,\"id\":1}");
        EXPECT_BODY(START, &D, JSON, "{\"id\":1,\"cluster \":1,\" namespace\":2}",
                    .expected = "{" NS_CL ",\"id\":1,\"cluster \":1,\" namespace\":2}");
        EXPECT_BODY(START, &D, JSON, "{\"id\":1,\"id\":2}", .error = FILLIN_BODY_REFUSED);
        EXPECT_BODY(START, &D, JSON, "{\"id\":1,\"ID\":2}", .error = FILLIN_BODY_REFUSED);
        EXPECT_BODY(START, &D, JSON, "{\"id\":1,\"\\u0069d\":2}", .error = FILLIN_BODY_REFUSED);
        EXPECT_BODY(START, &D, JSON, "{\"\\u0131d\":1}", .error = FILLIN_BODY_REFUSED);
        EXPECT_BODY(START, &D, JSON, "{\"id\":1,\"nested\":{\"cluster\":\"inner\",\"namespace\":\"inner\"}}",
                    .expected = "{" NS_CL ",\"id\":1,\"nested\":{\"cluster\":\"inner\",\"namespace\":\"inner\"}}");
        /* A UTF-8 byte order mark stays in front. */
        EXPECT_BODY(START, &D, JSON, "\xef\xbb\xbf {\"id\":1}", .expected = "\xef\xbb\xbf {" NS_CL ",\"id\":1}");
        /* Defaults that need JSON escaping. */
        {
                const struct fillin_defaults esc = { .cluster = "a\"b\\c\n\x01/é", .vpcid = "v" };
                EXPECT_BODY(START, &esc, JSON, "{\"id\":1}",
                            .expected = "{\"namespace\":\"v\",\"cluster\":\"a\\\"b\\\\c\\u000a\\u0001/é\",\"id\":1}");
        }
}

static void test_body_deep(void) {
        /* 1000 levels: fine (jansson's limit is 2048); nested "cluster" keys do not count. */
        size_t depth = 1000, n = 0, cap = depth * 20 + 64;
        _cleanup_free_ char *in = malloc(cap), *expected = malloc(cap + 64);

        if (!in || !expected) {
                CHECK(false, "OOM");
                return;
        }
        n += (size_t) sprintf(in + n, "{\"id\":1,\"d\":");
        for (size_t i = 0; i < depth; i++)
                n += (size_t) sprintf(in + n, i % 2 ? "[" : "{\"cluster\":");
        n += (size_t) sprintf(in + n, "0");
        for (size_t i = depth; i > 0; i--)
                n += (size_t) sprintf(in + n, (i - 1) % 2 ? "]" : "}");
        n += (size_t) sprintf(in + n, "}");
        sprintf(expected, "{" NS_CL ",%s", in + 1);
        EXPECT_BODY(START, &D, JSON, in, .expected = expected);

        /* 3000 levels: jansson refuses; a 400 saying where, not a crash. */
        {
                size_t d2 = 3000;
                _cleanup_free_ char *deep = malloc(d2 * 2 + 16);

                if (!deep)
                        return;
                n = (size_t) sprintf(deep, "{\"id\":");
                memset(deep + n, '[', d2);
                memset(deep + n + d2, ']', d2);
                strcpy(deep + n + 2 * d2, "}");
                EXPECT_BODY(START, &D, JSON, deep, .error = FILLIN_BODY_INVALID_JSON);
        }
}

static void test_body_errors(void) {
        struct fillin_result r;
        const char *bad = "{\n  \"id\": 1,\n  \"x\": tru\n}";

        CHECK(fillin_apply(op_get(START), &D, NULL, 0, JSON, bad, strlen(bad), &r) == 0, "apply");
        CHECK(r.body_error == FILLIN_BODY_INVALID_JSON, "invalid");
        CHECK(r.error_line == 3 && r.error_column == 10, "line %d column %d", r.error_line, r.error_column);
        CHECK(strstr(r.error_text, "invalid token") != NULL, "text: %s", r.error_text);
        CHECK(!r.body && r.n_missing == 0 && !fillin_result_is_valid(&r), "nothing else reported");
        fillin_result_done(&r);

        /* With a BOM, the column still counts from the real start of the line. */
        CHECK(fillin_apply(op_get(START), &D, NULL, 0, JSON, "\xef\xbb\xbf{x}", 6, &r) == 0, "apply");
        CHECK(r.body_error == FILLIN_BODY_INVALID_JSON && r.error_line == 1 && r.error_column == 3,
              "BOM column %d", r.error_column);
        fillin_result_done(&r);

        EXPECT_BODY(START, &D, JSON, "{} x", .error = FILLIN_BODY_INVALID_JSON);
        EXPECT_BODY(START, &D, JSON, "{\"id\":", .error = FILLIN_BODY_INVALID_JSON);
        EXPECT_BODY(START, &D, JSON, "{\"id\":1,}", .error = FILLIN_BODY_INVALID_JSON);
        EXPECT_BODY(START, &D, JSON, " ", .error = FILLIN_BODY_INVALID_JSON);
        EXPECT_BODY(START, &D, JSON, "{\"id\":\"\xff\"}", .error = FILLIN_BODY_INVALID_JSON);
        EXPECT_BODY(START, &D, JSON, "{\"id\":\"a\0b\"}", .body_len = 12, .error = FILLIN_BODY_INVALID_JSON);
        /* An overflowing number does not hide the real error, nor become one. */
        EXPECT_BODY(START, &D, JSON, "{\"id\":1e999,}", .error = FILLIN_BODY_INVALID_JSON);
        EXPECT_BODY(START, &D, JSON, "{\"id\":1e999 01}", .error = FILLIN_BODY_INVALID_JSON);
        EXPECT_BODY(START, &D, JSON, "[1e999]", .error = FILLIN_BODY_NOT_OBJECT);
        EXPECT_BODY(START, &D, JSON, "[{\"id\":1}]", .error = FILLIN_BODY_NOT_OBJECT);
        EXPECT_BODY(START, &D, JSON, "\"{}\"", .error = FILLIN_BODY_NOT_OBJECT);
        EXPECT_BODY(START, &D, JSON, " 42 ", .error = FILLIN_BODY_NOT_OBJECT);
        EXPECT_BODY(START, &D, JSON, "null", .error = FILLIN_BODY_NOT_OBJECT);

        CHECK(fillin_apply(op_get(START), &D, NULL, 0, JSON, "[]", 2, &r) == 0, "apply");
        CHECK(r.json_type && strcmp(r.json_type, "array") == 0, "json_type %s", r.json_type);
        fillin_result_done(&r);

        /* A bad default is a configuration error, not the client's. */
        {
                const struct fillin_defaults bad_utf8 = { .cluster = "a\xc3(" };
                CHECK(fillin_apply(op_get(START), &bad_utf8, NULL, 0, JSON, "{}", 2, &r) == -EINVAL, "bad UTF-8");
                CHECK(!r.body && !r.query, "nothing left to free");
        }

        /* Nothing past body_len is read. */
        {
                const char buf[] = "{\"id\":1}garbage";
                CHECK(fillin_apply(op_get(START), &D, NULL, 0, JSON, buf, 8, &r) == 0, "apply");
                CHECK(r.body && r.body_len == strlen("{" NS_CL ",\"id\":1}"), "body_len respected");
                fillin_result_done(&r);
        }
}

static void test_content_types(void) {
        CHECK(fillin_content_type_is_json("application/json"), "plain");
        CHECK(fillin_content_type_is_json("Application/JSON; charset=utf-8"), "case + charset");
        CHECK(fillin_content_type_is_json(" application/json ;charset=utf-8"), "blanks");
        CHECK(fillin_content_type_is_json("text/json"), "text/json");
        CHECK(fillin_content_type_is_json("application/merge-patch+json"), "+json");
        CHECK(!fillin_content_type_is_json("application/+json"), "bare +json");
        CHECK(!fillin_content_type_is_json("application/jsonx"), "jsonx");
        CHECK(!fillin_content_type_is_json("text/plain"), "text/plain");
        CHECK(!fillin_content_type_is_json(""), "empty");
        CHECK(!fillin_content_type_is_json(NULL), "NULL");

        /* No Content-Type: inspected, and the proxy must label it JSON. */
        EXPECT_BODY(START, &D, NULL, "{\"id\":1}", .expected = "{" NS_CL ",\"id\":1}", .content_type_json = true);
        EXPECT_BODY(START, &D, NULL, "", .expected = "{" NS_CL "}", .missing = "id", .content_type_json = true);
        EXPECT_BODY(START, &NONE, NULL, "", .missing = "id,namespace,cluster");
        EXPECT_BODY(START, &D, NULL, "[]", .error = FILLIN_BODY_NOT_OBJECT);
        /* curl -d '{...}' sends a form type: taken as JSON and relabelled. */
        EXPECT_BODY(START, &D, "application/x-www-form-urlencoded", " {\"id\":1}",
                    .expected = " {" NS_CL ",\"id\":1}", .content_type_json = true);
        EXPECT_BODY(START, &D, "application/x-www-form-urlencoded", "{\"id\":1,\"namespace\":1,\"cluster\":1}",
                    .content_type_json = true);
        EXPECT_BODY(START, &D, "application/x-www-form-urlencoded", "{bad", .error = FILLIN_BODY_INVALID_JSON);
        /* A real form, or another type: upstream would bind a form's fields; refused. */
        EXPECT_BODY(START, &D, "application/x-www-form-urlencoded", "id=1", .error = FILLIN_BODY_REFUSED);
        EXPECT_BODY(START, &D, "text/plain", "{\"id\":1}", .error = FILLIN_BODY_REFUSED);
        EXPECT_BODY(START, &D, "multipart/form-data; boundary=x", "not json", .error = FILLIN_BODY_REFUSED);
        /* An empty body counts as {}: what is added goes labelled JSON. */
        EXPECT_BODY(START, &D, "application/x-www-form-urlencoded", "", .expected = "{" NS_CL "}", .missing = "id",
                    .content_type_json = true);
        EXPECT_BODY(START, &D, "application/json; charset=utf-8", "{\"id\":1}", .expected = "{" NS_CL ",\"id\":1}");
}

/* ---- envelopes ---------------------------------------------------------- */

static json_t *envelope_for(const char *path, const struct fillin_defaults *d, const char *query, const char *body,
                            int *ret_k) {
        _cleanup_free_ char *text = NULL;
        struct fillin_result r;
        const struct operation *op = optable_lookup(body ? "POST" : "GET", path);
        json_t *j;

        if (fillin_apply(op, d, query, query ? strlen(query) : 0, JSON, body, body ? strlen(body) : 0, &r) < 0)
                return NULL;
        *ret_k = fillin_result_envelope(&r, &text);
        fillin_result_done(&r);
        if (*ret_k <= 0)
                return NULL;
        j = json_loads(text, 0, NULL);
        CHECK(j, "envelope is not JSON: %s", text);
        return j;
}

static void test_envelopes(void) {
        json_t *j, *ve;
        int k;

        j = envelope_for("/api/v1/servers/virtual/GetServer", &NONE, "Namespace=", NULL, &k);
        CHECK(k == 1 && j, "missing → envelope");
        if (j) {
                CHECK(json_is_false(json_object_get(j, "success")), "success false");
                CHECK(json_is_true(json_object_get(j, "__abp")), "__abp");
                CHECK(strcmp(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
                             "Your request is not valid!") == 0, "message");
                ve = json_object_get(json_object_get(j, "error"), "validationErrors");
                CHECK(json_array_size(ve) == 2, "two violations");
                CHECK(strcmp(json_string_value(json_array_get(json_object_get(json_array_get(ve, 0), "members"), 0)),
                             "id") == 0, "Id first, camelCased as ABP names members");
                CHECK(strcmp(json_string_value(json_object_get(json_array_get(ve, 0), "message")),
                             "The Id field is required.") == 0, "plain message");
                CHECK(strcmp(json_string_value(json_object_get(json_array_get(ve, 1), "message")),
                             "The Cluster field is required (no [defaults] cluster is configured).") == 0,
                      "hint message");
                json_decref(j);
        }

        j = envelope_for("/api/v1/servers/virtual/StartServer", &D, NULL, "{\n\"id\": tru\n}", &k);
        CHECK(k == 1 && j, "invalid JSON → envelope");
        if (j) {
                const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
                CHECK(m && strncmp(m, "request body is not valid JSON: line 2, column 9: invalid token", 63) == 0,
                      "message: %s", m);
                CHECK(json_is_null(json_object_get(json_object_get(j, "error"), "validationErrors")) ||
                      !json_object_get(json_object_get(j, "error"), "validationErrors"), "no violations");
                json_decref(j);
        }

        /* jansson quotes the input; invalid UTF-8 there must not break the envelope. */
        j = envelope_for("/api/v1/servers/virtual/StartServer", &D, NULL, "{\"id\":\"\xff\xfe\"}", &k);
        CHECK(k == 1 && j, "invalid UTF-8 → envelope");
        json_decref(j);

        j = envelope_for("/api/v1/servers/virtual/StartServer", &D, NULL, "[1]", &k);
        CHECK(k == 1 && j, "array → envelope");
        if (j) {
                const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
                CHECK(m && strcmp(m, "request body must be a JSON object, not an array") == 0, "message: %s", m);
                json_decref(j);
        }
        j = envelope_for("/api/v1/servers/virtual/StartServer", &D, NULL, "null", &k);
        if (j) {
                const char *m = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
                CHECK(m && strcmp(m, "request body must be a JSON object, not null") == 0, "message: %s", m);
                json_decref(j);
        }

        j = envelope_for("/api/v1/servers/virtual/StartServer", &D, NULL, "{\"id\":1}", &k);
        CHECK(k == 0 && !j, "valid → no envelope");
}

int main(void) {
        test_query();
        test_body_basic();
        test_body_exact_bytes();
        test_body_deep();
        test_body_errors();
        test_content_types();
        test_envelopes();

        if (failures) {
                fprintf(stderr, "test-fillin: %u check(s) failed\n", failures);
                return EXIT_FAILURE;
        }
        printf("test-fillin: all checks passed\n");
        return EXIT_SUCCESS;
}
