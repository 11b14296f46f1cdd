// Command lab builds, inspects and removes a strait network-namespace lab
// (package tools/lab). See README.md.
package main
