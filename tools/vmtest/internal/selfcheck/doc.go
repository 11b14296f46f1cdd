// Command selfcheck runs inside the vmtest guest (booted by the tests of
// tools/vmtest/vm) and checks the runner's plumbing (environment,
// arguments, working directory, copied files, exit status) and, unless
// -plumbing-only, the kernel features of package guestcheck. It prints one
// "ok"/"FAIL" line per check and exits 1 if any failed, else with -exit N.
package main
