/* SPDX-License-Identifier: Apache-2.0 */
/* Shim: clang -target bpf does not search the host's multiarch include
 * directory (/usr/include/<triplet>/asm), so <linux/types.h> would not find
 * <asm/types.h>. The generic definitions are right for the BPF target. */
#include <asm-generic/types.h>
