// Command strait-agent is strait's node agent; see README.md.
package main
