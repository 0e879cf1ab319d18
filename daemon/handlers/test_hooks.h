/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Endpoints of the test build only (denvrd-test-hooks, built for the
 * integration tests and never installed): denvrd itself has none of them.
 */

struct request;

/* GET /_denvrd/test/sleep?seconds=N[&timers=0]: a simulated suspend of N s. */
void test_hooks_sleep(struct request *r);
/* GET /_denvrd/test/lease-clock?advance=N: the leases' clock moves on, as if N s passed. */
void test_hooks_lease_clock(struct request *r);
