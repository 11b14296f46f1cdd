// Package route keeps the node's routes into the WireGuard device equal to
// a desired set: one route per destination prefix (another node's pod CIDR
// or an extra pod address), "dev <device> mtu <mtu> scope link proto 200"
// in the main table.
//
// # Ownership
//
// Every route it writes carries Protocol (0xC8, "strait" in
// /etc/iproute2/rt_protos); it lists, changes and deletes only routes with
// that protocol. A route of any other protocol with the same destination
// (a "foreign" route: the admin's, the kernel's, another daemon's) is never
// replaced or deleted: that destination is reported in the error instead.
//
// # Who feeds it, who consumes it
//
// The agent calls Set with datapath.Desired.Routes after each computation;
// Set talks to the kernel through the narrow Netlink interface: Kernel (a
// vishvananda/netlink handle, optionally bound to another network
// namespace) in production and real-kernel tests, Twin (in memory) in unit
// tests.
//
// # Lifecycle
//
// Set is idempotent and stateless between calls: it reads the table every
// time, so an agent restart adopts the routes of its predecessor, and a
// route already right causes no write. Routes no longer desired are deleted
// only when prune is true (the agent passes false until local and mesh
// state have synced). Nothing is removed on shutdown: the routes stay so
// traffic flows while the agent restarts.
//
// # Errors
//
// Set returns the joined errors of the routes it could not write (each
// naming the destination) after trying every route; ErrForeign marks a
// destination held by a foreign route.
package route
