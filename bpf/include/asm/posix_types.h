/* SPDX-License-Identifier: Apache-2.0 */
/* Shim, see asm/types.h. */
#include <asm-generic/posix_types.h>
