// Command strait-cni is strait's CNI plugin; see README.md.
package main
