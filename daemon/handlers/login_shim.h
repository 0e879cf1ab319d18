/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The Denvr SDKs log in before every session.  Pointed at denvrd, they get
 * their login answered here: a placeholder token with a long life, which
 * denvrd ignores (it injects its own credential).  Never forwarded, so no
 * client ever needs the real password.  A local token given as the password
 * comes back as the access token (login_shim.c says why).
 */

#include <stdbool.h>

struct request;

void login_shim_handle(struct request *r);
