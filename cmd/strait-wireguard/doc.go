// Command strait-wireguard runs one userspace WireGuard device (wireguard-go)
// in the foreground until SIGTERM or SIGINT. See README.md.
package main
