package wireguard

import "syscall"

const noFollow = syscall.O_NOFOLLOW
