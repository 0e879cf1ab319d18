/* SPDX-License-Identifier: MIT */
/* The TOML value decoder: every form we accept, and every form we refuse. */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/config/toml_value.h"

#include "check.h"

static void ok_string_n(int line, const char *in, const char *expect, size_t len) {
        struct toml_value v;
        struct toml_error e = { 0 };
        int r = toml_value_decode(in, &v, &e);

        CHECK(r == 0, "line %d: decode(%s) failed: %s", line, in, e.message);
        if (r < 0)
                return;
        CHECK(v.type == TOML_STRING, "line %d: decode(%s) gave %s", line, in, toml_type_to_string(v.type));
        if (v.type == TOML_STRING)
                CHECK(v.s.len == len && memcmp(v.s.str, expect, len) == 0 && v.s.str[len] == 0,
                      "line %d: decode(%s) = \"%s\" (len %zu), expected \"%s\"", line, in, v.s.str, v.s.len, expect);
        toml_value_done(&v);
}
#define ok_string(in, expect) ok_string_n(__LINE__, in, expect, strlen(expect))

static void ok_int_(int line, const char *in, int64_t expect) {
        struct toml_value v;
        struct toml_error e = { 0 };
        int r = toml_value_decode(in, &v, &e);

        CHECK(r == 0, "line %d: decode(%s) failed: %s", line, in, e.message);
        if (r < 0)
                return;
        CHECK(v.type == TOML_INTEGER && v.i == expect, "line %d: decode(%s) = %s %" PRId64 ", expected %" PRId64,
              line, in, toml_type_to_string(v.type), v.i, expect);
        toml_value_done(&v);
}
#define ok_int(in, expect) ok_int_(__LINE__, in, expect)

static void ok_bool_(int line, const char *in, bool expect) {
        struct toml_value v;
        struct toml_error e = { 0 };
        int r = toml_value_decode(in, &v, &e);

        CHECK(r == 0, "line %d: decode(%s) failed: %s", line, in, e.message);
        if (r < 0)
                return;
        CHECK(v.type == TOML_BOOLEAN && v.b == expect, "line %d: decode(%s) wrong", line, in);
        toml_value_done(&v);
}
#define ok_bool(in, expect) ok_bool_(__LINE__, in, expect)

/* Must fail, and the message must mention `what`. */
static void bad_(int line, const char *in, const char *what) {
        struct toml_value v;
        struct toml_error e = { 0 };
        int r = toml_value_decode(in, &v, &e);

        CHECK(r == -EINVAL, "line %d: decode(%s) should fail (r=%d)", line, in, r);
        if (r == 0) {
                toml_value_done(&v);
                return;
        }
        CHECK(strstr(e.message, what), "line %d: decode(%s): message \"%s\" lacks \"%s\"", line, in, e.message, what);
        CHECK(e.column >= 1 && e.column <= strlen(in) + 1, "line %d: decode(%s): column %zu out of range",
              line, in, e.column);
}
#define bad(in, what) bad_(__LINE__, in, what)

static void test_strings(void) {
        ok_string("\"abc\"", "abc");
        ok_string("\"\"", "");
        ok_string("''", "");
        ok_string("   \"padded\"   ", "padded");
        ok_string("\"a\\\"b\"", "a\"b");
        ok_string("\"a\\\\b\"", "a\\b");
        ok_string("\"\\n\\t\\r\\b\\f\"", "\n\t\r\b\f");
        ok_string("\"\\u00e9\"", "\xc3\xa9");
        ok_string("\"\\u20AC\"", "\xe2\x82\xac");
        ok_string("\"\\U0001F600\"", "\xf0\x9f\x98\x80");
        ok_string("\"\\u007f\"", "\x7f");     /* escaped control characters are fine */
        ok_string("\"raw \xc3\xa9 utf-8\"", "raw \xc3\xa9 utf-8");
        ok_string("\"tab\there\"", "tab\there");
        ok_string("\"a # not a comment\"", "a # not a comment");
        ok_string("\"a ;b\"", "a ;b");
        ok_string("\"host:port\"", "host:port");
        ok_string("\"x\" # comment", "x");
        ok_string("\"x\"# comment right after", "x");
        ok_string("\"x\" # comment with \"quotes\" and 'more'", "x");
        ok_string("'C:\\Users\\nodejs\\templates'", "C:\\Users\\nodejs\\templates");
        ok_string("'<\\i\\c*\\s*>'", "<\\i\\c*\\s*>");
        ok_string("'say \"hi\"'", "say \"hi\"");
        ok_string("'a # b' # c", "a # b");

        bad("\"abc", "unterminated");
        bad("'abc", "unterminated");
        bad("\"abc\\\"", "unterminated");
        bad("\"a\\qb\"", "invalid escape");
        bad("\"\\x41\"", "invalid escape");   /* TOML 1.1 only */
        bad("\"\\e\"", "invalid escape");
        bad("\"\\ \"", "invalid escape");
        bad("\"\\u12\"", "hexadecimal digits");
        bad("\"\\u12G4\"", "hexadecimal digits");
        bad("\"\\U0001F60\"", "hexadecimal digits");
        bad("\"\\uD800\"", "scalar value");
        bad("\"\\uDFFF\"", "scalar value");
        bad("\"\\U00110000\"", "scalar value");
        bad("\"\\u0000\"", "NUL");
        bad("\"\"\"multi\"\"\"", "multi-line");
        bad("\"\"\"", "multi-line");
        bad("'''multi'''", "multi-line");
        bad("\"a\x01\"", "control character");
        bad("\"a\x7f\"", "control character");
        bad("'a\x1b'", "control character");
        bad("\"bad \xff utf8\"", "UTF-8");
        bad("\"overlong \xc0\xaf\"", "UTF-8");
        bad("\"surrogate \xed\xa0\x80\"", "UTF-8");
        bad("\"a\" \"b\"", "unexpected text");
        bad("\"a\" b", "unexpected text");
        bad("\"a\" # bad \x01 comment", "control character in a comment");
}

static void test_integers(void) {
        ok_int("0", 0);
        ok_int("+0", 0);
        ok_int("-0", 0);
        ok_int("42", 42);
        ok_int("+99", 99);
        ok_int("-17", -17);
        ok_int("1_000", 1000);
        ok_int("5_349_221", 5349221);
        ok_int("53_49_221", 5349221);
        ok_int("1_2_3_4_5", 12345);
        ok_int("0xDEADBEEF", 0xdeadbeef);
        ok_int("0xdeadbeef", 0xdeadbeef);
        ok_int("0xdead_beef", 0xdeadbeef);
        ok_int("0x0001", 1);
        ok_int("0o01234567", 01234567);
        ok_int("0o755", 0755);
        ok_int("0b11010110", 0xd6);
        ok_int("0b1_0", 2);
        ok_int("9223372036854775807", INT64_MAX);
        ok_int("-9223372036854775808", INT64_MIN);
        ok_int("0x7fffffffffffffff", INT64_MAX);
        ok_int("3 # three", 3);
        ok_int("  7\t", 7);

        bad("01", "leading zeros");
        bad("-01", "leading zeros");
        bad("00", "leading zeros");
        bad("0_0", "leading zeros");
        bad("1__0", "between two digits");
        bad("_1", "not a value");
        bad("1_", "between two digits");
        bad("0x_1", "between two digits");
        bad("0x1_", "between two digits");
        bad("0x", "missing digits");
        bad("0xg", "invalid digit");
        bad("0o8", "invalid digit");
        bad("0b2", "invalid digit");
        bad("-0x1", "sign");
        bad("+0o7", "sign");
        bad("0X1F", "lower case");
        bad("9223372036854775808", "out of range");
        bad("-9223372036854775809", "out of range");
        bad("99999999999999999999999", "out of range");
        bad("0x8000000000000000", "out of range");
        bad("12a", "invalid digit");
        bad("1 2", "unexpected text");
}

static void test_refused_types(void) {
        bad("1.5", "floating-point");
        bad("-0.0", "floating-point");
        bad("1e5", "floating-point");
        bad("6.626e-34", "floating-point");
        bad("1E5", "floating-point");
        bad("inf", "floating-point");
        bad("+inf", "floating-point");
        bad("-inf", "floating-point");
        bad("nan", "floating-point");
        bad("1979-05-27", "dates");
        bad("1979-05-27T07:32:00Z", "dates");
        bad("1979-05-27 07:32:00", "dates");
        bad("1979-05-27T00:32:00.999999-07:00", "dates");
        bad("07:32:00", "dates");
        bad("{ a = 1 }", "inline tables");
        bad("{}", "inline tables");
        bad("[1, [2]]", "nested arrays");
        bad("[[1]]", "nested arrays");
        bad("[1, {a = 1}]", "inline tables");
        bad("True", "not a value");
        bad("yes", "not a value");
        bad("bare", "not a value");
        bad("truex", "not a value");
        bad("", "missing value");
        bad("   ", "missing value");
        bad("# only a comment", "missing value");
}

static void test_booleans(void) {
        ok_bool("true", true);
        ok_bool("false", false);
        ok_bool("true # yes", true);
        ok_bool(" false ", false);
}

static void test_arrays(void) {
        struct toml_value v;
        struct toml_error e = { 0 };

        CHECK(toml_value_decode("[]", &v, &e) == 0 && v.type == TOML_ARRAY && v.a.n == 0, "empty array");
        toml_value_done(&v);
        CHECK(toml_value_decode("[ ]  # none", &v, &e) == 0 && v.type == TOML_ARRAY && v.a.n == 0, "empty array 2");
        toml_value_done(&v);

        CHECK(toml_value_decode("[\"a\", 'b # c', \"d;e\",] # trailing comma is TOML", &v, &e) == 0,
              "string array: %s", e.message);
        CHECK(v.type == TOML_ARRAY && v.a.n == 3, "string array count");
        if (v.type == TOML_ARRAY && v.a.n == 3) {
                CHECK(v.a.items[0].type == TOML_STRING && strcmp(v.a.items[0].s.str, "a") == 0, "item 0");
                CHECK(strcmp(v.a.items[1].s.str, "b # c") == 0, "item 1");
                CHECK(strcmp(v.a.items[2].s.str, "d;e") == 0, "item 2");
        }
        toml_value_done(&v);
        toml_value_done(&v);  /* idempotent */

        CHECK(toml_value_decode("[1, 0x10, -3]", &v, &e) == 0 && v.a.n == 3 && v.a.items[1].i == 16 &&
              v.a.items[2].i == -3, "int array");
        toml_value_done(&v);

        /* Mixed arrays are TOML 1.0; the config layer checks element types. */
        CHECK(toml_value_decode("[ \"root\" , 1000 ]", &v, &e) == 0 && v.a.n == 2 &&
              v.a.items[0].type == TOML_STRING && v.a.items[1].type == TOML_INTEGER, "mixed array");
        toml_value_done(&v);

        CHECK(toml_value_decode("[true,false]", &v, &e) == 0 && v.a.n == 2 && v.a.items[0].b && !v.a.items[1].b,
              "bool array");
        toml_value_done(&v);

        bad("[1, 2", "multi-line arrays");
        bad("[1,", "multi-line arrays");
        bad("[", "multi-line arrays");
        bad("[ # comment", "multi-line arrays");
        bad("[1, # comment", "multi-line arrays");
        bad("[1 2]", "expected ',' or ']'");
        bad("[,]", "expected a value");
        bad("[1,,2]", "expected a value");
        bad("[1.5]", "floating-point");
        bad("[\"a\"] x", "unexpected text");
        bad("[\"unterminated]", "unterminated");
}

static void scan_ok_(int line, const char *in, size_t expect) {
        struct toml_error e = { 0 };
        size_t n = 0;
        int r = toml_value_scan(in, &n, &e);

        CHECK(r == 0 && n == expect, "line %d: scan(%s) = %d, len %zu (expected %zu): %s", line, in, r, n, expect,
              e.message);
}
#define scan_ok(in, expect) scan_ok_(__LINE__, in, expect)

static void scan_bad_(int line, const char *in, const char *what) {
        struct toml_error e = { 0 };
        size_t n;
        int r = toml_value_scan(in, &n, &e);

        CHECK(r == -EINVAL && strstr(e.message, what), "line %d: scan(%s) = %d \"%s\", expected \"%s\"", line, in,
              r, e.message, what);
}
#define scan_bad(in, what) scan_bad_(__LINE__, in, what)

static void test_scan(void) {
        /* Unknown keys may hold any single-line TOML value. */
        scan_ok(" 1.5 # c", 3);
        scan_ok("1979-05-27 07:32:00 # when", 19);
        scan_ok("{ a = 1, b = [1, 2] }", 21);
        scan_ok("\"a # b\" # c", 7);
        scan_ok("'a # b'", 7);
        scan_ok("\"esc \\\" # q\"", 12);
        scan_ok("[[1, 2], [3]]  ", 13);
        scan_ok("true", 4);

        scan_bad("", "missing value");
        scan_bad("  # c", "missing value");
        scan_bad("\"\"\"multi", "multi-line");
        scan_bad("'''multi", "multi-line");
        scan_bad("[1,", "multi-line");
        scan_bad("[1, # c", "multi-line");
        scan_bad("{ a = 1", "multi-line");
        scan_bad("\"abc", "unterminated");
        scan_bad("'abc", "unterminated");
        scan_bad("1]", "unexpected");
}

static void key_ok_(int line, const char *in, const char *p0, const char *p1, char rest) {
        struct toml_error e = { 0 };
        const char *end = NULL;
        char **parts = NULL;
        int r = toml_key_parse(in, &end, &parts, &e);

        CHECK(r == 0, "line %d: key(%s) failed: %s", line, in, e.message);
        if (r < 0)
                return;
        CHECK(parts[0] && strcmp(parts[0], p0) == 0, "line %d: key(%s) part 0 = %s", line, in, parts[0]);
        if (p1)
                CHECK(parts[1] && strcmp(parts[1], p1) == 0, "line %d: key(%s) part 1", line, in);
        else
                CHECK(!parts[1], "line %d: key(%s) has extra parts", line, in);
        CHECK(*end == rest, "line %d: key(%s) stopped at '%c'", line, in, *end);
        strv_free(parts);
}
#define key_ok(in, p0, p1, rest) key_ok_(__LINE__, in, p0, p1, rest)

static void test_keys(void) {
        struct toml_error e = { 0 };
        const char *end;
        char **parts = NULL;

        key_ok("server = 1", "server", NULL, '=');
        key_ok("bare_key-1= 1", "bare_key-1", NULL, '=');
        key_ok("1234 = 1", "1234", NULL, '=');
        key_ok("\"/api/v1/servers/virtual/GetConfigurations\" = 300",
               "/api/v1/servers/virtual/GetConfigurations", NULL, '=');
        key_ok("\"a=b;c:d\" = 1", "a=b;c:d", NULL, '=');
        key_ok("'lit\\eral' = 1", "lit\\eral", NULL, '=');
        key_ok("\"q\\\"k\" = 1", "q\"k", NULL, '=');
        key_ok("a.b = 1", "a", "b", '=');
        key_ok("a . \"b.c\" = 1", "a", "b.c", '=');
        key_ok("defaults]", "defaults", NULL, ']');
        key_ok("x y", "x", NULL, 'y');

        CHECK(toml_key_parse("= 1", &end, &parts, &e) == -EINVAL && strstr(e.message, "expected a key"), "no key");
        CHECK(toml_key_parse("a. = 1", &end, &parts, &e) == -EINVAL && strstr(e.message, "after '.'"), "dot");
        CHECK(toml_key_parse("\"\"\"k\"\"\" = 1", &end, &parts, &e) == -EINVAL, "multi-line key");
        CHECK(toml_key_parse("\"open = 1", &end, &parts, &e) == -EINVAL, "unterminated key");
}

static void test_utf8(void) {
        CHECK(toml_utf8_valid("plain", 5), "ascii");
        CHECK(toml_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9), "multi-byte");
        CHECK(!toml_utf8_valid("\xc3", 1), "truncated");
        CHECK(!toml_utf8_valid("\xc0\x80", 2), "overlong NUL");
        CHECK(!toml_utf8_valid("\xe0\x80\xaf", 3), "overlong 3");
        CHECK(!toml_utf8_valid("\xed\xa0\x80", 3), "surrogate");
        CHECK(!toml_utf8_valid("\xf4\x90\x80\x80", 4), "above U+10FFFF");
        CHECK(!toml_utf8_valid("\x80", 1), "lone continuation");
        CHECK(!toml_utf8_valid("\xff", 1), "0xff");
}

int main(void) {
        test_strings();
        test_integers();
        test_refused_types();
        test_booleans();
        test_arrays();
        test_scan();
        test_keys();
        test_utf8();

        if (failures) {
                fprintf(stderr, "test-toml-value: %u of %u checks FAILED\n", failures, checks);
                return EXIT_FAILURE;
        }
        printf("test-toml-value: all %u checks passed\n", checks);
        return EXIT_SUCCESS;
}
