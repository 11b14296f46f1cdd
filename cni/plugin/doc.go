// Package plugin is the logic of the strait-cni CNI plugin (cmd/strait-cni):
// the ADD, DEL, CHECK, STATUS and GC commands of CNI spec 1.0/1.1, called
// by skel.PluginMainFuncs with the runtime's environment and stdin.
//
// Who feeds it: the container runtime (or tools/lab, which calls the binary
// exactly as a runtime does), with the network config on stdin (NetConf,
// ParseNetConf) and CNI_ARGS (K8S_POD_NAMESPACE, K8S_POD_NAME; ParseArgs).
// What it uses: the local strait-agent over agent/endpointapi (the node's pod
// CIDR and pod MTU; the endpoint it publishes), cni/ipam for the address,
// netlink in the node's network namespace (the plugin's own) and the pod's.
//
// ADD: GET /v1/node; allocate an address of the pod CIDR (ipam, persisted
// before use); create a veth whose node side is HostVethName ("lxc" + 11 hex
// of sha256(containerID/ifName)) with a /32 route to the pod, and whose pod
// side CNI_IFNAME has <ip>/32, the pod MTU, a link-scope route to Gateway
// (169.254.1.1), a default route via it and a permanent neighbour entry
// mapping it to the node side's MAC; PUT /v1/endpoints/<id>/<ifname>. It
// prints a CNI result (both interfaces, the /32 with gateway 169.254.1.1, the
// default route). A repeated ADD of the same container and interface takes
// over what is there and prints the same result. Any failure undoes the call
// (teardown): the agent is told to forget the endpoint, the veth is removed,
// and the address released — the release waits for the agent's confirmation,
// so an address the agent may still publish never goes to another pod.
//
// DEL: teardown; unknown containers, missing netns and repeated DELs
// succeed. If the agent cannot be reached, the veth is removed, the address
// kept and DEL fails with code 11 so the runtime retries.
//
// CHECK: prevResult's address must be the one ipam holds for the container,
// the agent must list the endpoint, and the node and pod side must have the
// veth (up, peers of each other), the address, the routes and the neighbour
// entry; the error names the first piece missing.
//
// STATUS (config version 1.1.0): code 50 when the agent does not answer or
// the pod CIDR has no free address. GC (1.1.0): tears down allocations not in
// cni.dev/valid-attachments.
//
// Errors returned are *types.Error (skel prints them as the CNI error
// object): 2 unknown netconf field, 4 bad CNI_ARGS, 6 undecodable JSON, 7 bad
// netconf value or a request the agent refused, 8 bad CNI_NETNS, 11 agent
// unreachable or failing (try again), 50 STATUS not available, 999 anything
// else (the message names the interface, route, address or file).
package plugin
