/* SPDX-License-Identifier: MIT */
#pragma once

/* Giving the free pages of denvrd's allocator (mimalloc unless built with
 * -Dallocator=system or a sanitizer) back to the system: after a burst of
 * load the RSS would otherwise stay at its peak. */
void heap_trim(void);
