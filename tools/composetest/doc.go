// Package composetest checks deploy/compose: kits.sh makes real kits with
// concordctl, and compose.yaml is parsed and checked against them and
// against the images (the health probe's path, the config and state paths,
// the metrics ports each config listens on).
package composetest
