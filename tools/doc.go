// Package tools holds developer tools (network-namespace lab, kernel VM
// runner, benchmarks) under its sub-directories. No runtime package imports
// it.
package tools
