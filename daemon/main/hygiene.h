/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Process hygiene applied before anything else: no core dumps and no
 * ptrace by other processes of the same user (secrets live in memory), no
 * privilege gain through exec, files created private, enough descriptors
 * for many concurrent clients, SIGPIPE ignored.
 */

void hygiene_apply(void);
