// Package atomicfile writes files so that a reader, or a crash, sees the
// old content or the new, never half of either: the data goes to a synced
// temporary dotfile beside the target (watchers such as remoteconfig skip
// dotfiles), which is then renamed over it, or linked to it when the
// target must not be replaced, and the directory is synced.
//
// Used by the agent (endpoint state), straitctl connect (per-remote files),
// clustermesh/certs (keys and certificates) and encryption/wireguard (the
// node's private key). Errors name the path.
package atomicfile
