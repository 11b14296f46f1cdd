// Package testkit holds the small helpers every test package of strait
// needs: a slog logger writing through t.Log, a bounded context, a
// background runner joined at cleanup, and etcd content helpers.
//
// It is imported only from _test.go files (and tools/bench) and imports
// nothing of strait, so any package's internal tests may use it.
package testkit
