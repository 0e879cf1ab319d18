/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Forwarding: {server}{path}?{query} byte-exact, same method and body, the
 * credential's Authorization added, hop-by-hop headers dropped both ways.
 * Idempotent methods are retried on connection failures, 429, 502, 503 and
 * 504 with exponential backoff (0.5 s doubling, capped at 8 s) or the
 * server's Retry-After, all within request_timeout; POST and PATCH only
 * when nothing of the request was sent.  A 401 drops the token and replays
 * the request once with a fresh one.
 */

struct cache_answer;
struct request;
struct proxy;
struct upstream_transfer;

void proxy_start(struct request *r);
/* 424 when no retry can cure the login failure (auth_failure_is_permanent()), else 503. */
void proxy_reply_not_logged_in(struct request *r, const char *fallback);
/* Aborts whatever is in flight (transfer, retry timer, token wait). */
void proxy_free(struct proxy *p);
/* t's answer as passed on to a client: status, forwardable headers, the body (taken from t). */
int proxy_answer_from_transfer(struct upstream_transfer *t, struct cache_answer *a);
