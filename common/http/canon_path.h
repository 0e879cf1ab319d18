/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The one canonical form of a request path, computed once per request and
 * used for every decision denvrd takes on a path: routing, the login shim,
 * the service shorthand, the operation table, the cache, access rules and
 * audit.  The bytes forwarded upstream stay the client's.
 *
 * Upstream (ASP.NET) percent-decodes a path, removes dot segments and routes
 * case-insensitively, so two spellings it takes for one route must have one
 * canonical form here, and anything it might read differently from denvrd is
 * refused instead:
 *
 *  - refused: a target not starting with '/'; a dot segment ("." or "..",
 *    raw or percent-encoded in any case and mix); an empty segment ("//");
 *    a ';' (path parameters); a raw or encoded '\'; an encoded '/' or '%';
 *    NUL and other control bytes, raw or encoded; any byte outside ASCII,
 *    raw or encoded (ASP.NET's case-insensitive matching folds some
 *    non-ASCII letters onto ASCII ones, such as U+0131 onto 'I'); other
 *    bytes RFC 3986 does not allow raw in a path; bad percent-encoding;
 *  - percent-encoded bytes that may appear raw (unreserved characters,
 *    sub-delimiters but ';', ':' and '@') are decoded, the others keep
 *    their escape, so two paths have one form exactly when upstream decodes
 *    them to the same string;
 *  - ASCII letters, hex digits of escapes included, are lowercased;
 *  - one trailing '/' is dropped ("/" stays "/"), as ASP.NET routing
 *    ignores it.
 *
 * The result never contains a dot segment, "//", a control byte, an
 * uppercase letter or a trailing '/' (but "/"), and canonicalising it again
 * gives it back unchanged.  It is never longer than its input.
 */

#include <stddef.h>

/*
 * Canonicalises raw (raw_len bytes, the request target's path before any
 * '?', not percent-decoded) into buf, NUL-terminated.  buf_size must be at
 * least raw_len + 1.  Returns the canonical length, or -EINVAL with
 * *ret_reason set to a sentence for the client saying why the path is
 * refused, or -ENOBUFS when buf is too small.
 */
int canon_path(const char *raw, size_t raw_len, char *buf, size_t buf_size, const char **ret_reason);

/* Same, into a new malloc'ed string (*ret); -ENOMEM on OOM. */
int canon_path_dup(const char *raw, char **ret, const char **ret_reason);

/*
 * raw made safe to log: bytes outside printable ASCII (space included) as %XX,
 * truncated to fit buf with "..." at the end.  For paths that were refused,
 * which may hold any byte; an accepted path is printable already.
 */
void canon_path_printable(const char *raw, char *buf, size_t buf_size);
