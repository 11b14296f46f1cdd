// Package endpointapi is the agent's local API on a UNIX socket: the CNI
// plugin (cmd/strait-cni) asks it for the node's pod CIDR and tells it about
// the endpoints it creates and deletes, so the agent allocates their
// identities and publishes their ipcache entries; straitctl reads the
// agent's status through it.
//
// It is HTTP/1.1 with JSON bodies over a socket created 0600 (root only):
//
//	GET    /v1/node                              → NodeInfo
//	PUT    /v1/endpoints/{containerID}/{ifName}  Endpoint → EndpointStatus
//	DELETE /v1/endpoints/{containerID}/{ifName}  → 204 (also when unknown)
//	GET    /v1/endpoints                         → []EndpointStatus
//	GET    /v1/status                            → Status
//
// Errors are {"error": "..."} with a 4xx status for bad input (the message
// names the field) and 5xx when the agent cannot do it now; the Client turns
// them into *Error.
package endpointapi
