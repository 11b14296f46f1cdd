// Package agent will wire strait-agent: sources, publishers, mesh state
// and reconcilers (see DESIGN.md). Not built yet: it arrives with the
// node-agent issue; nothing here is imported.
package agent
