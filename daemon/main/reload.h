/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * SIGHUP: re-read the configuration.  A configuration that does not load is
 * logged and the running one kept; a bad reload never stops the daemon.
 */

struct daemon;

void daemon_reload(struct daemon *d);
