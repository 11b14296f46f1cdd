/* SPDX-License-Identifier: Apache-2.0 */
/* Shim, see asm/types.h: BPF longs are 64 bits. */
#include <asm-generic/bitsperlong.h>
