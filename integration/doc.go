// Package integration holds ldreaper's LaunchDarkly partner integration
// manifest and its icons. It has no Go code; its test checks the manifest
// against the rules of LaunchDarkly's integration-framework schema.
package integration
