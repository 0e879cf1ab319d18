/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Endpoints of the test build only (denvrd-test-hooks, built for the
 * integration tests and never installed): denvrd itself has none of them.
 */

struct request;

/* GET /_denvrd/test/sleep?seconds=N[&timers=0]: a simulated suspend of N s. */
void test_hooks_sleep(struct request *r);
